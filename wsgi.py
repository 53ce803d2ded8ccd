"""The service for any WSGI server, from a checkout: ``wsgi:application`` (README: Any WSGI server).

    waitress-serve --listen 127.0.0.1:8080 wsgi:application

The same as ``images_api.wsgi``, which works wherever the package is installed.
"""

from images_api.wsgi import application  # noqa: F401 (what a WSGI server imports)
