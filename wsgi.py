"""The service for any WSGI server: ``application``, configured from ``IMAGES_API_*``.

    waitress-serve --listen 127.0.0.1:8080 wsgi:application
"""

from images_api import create_app

application = create_app()
