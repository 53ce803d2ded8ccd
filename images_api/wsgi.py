"""The service for any WSGI server: ``application``, configured from ``IMAGES_API_*`` (README: Any WSGI server).

    waitress-serve --listen 127.0.0.1:8080 images_api.wsgi:application

Importing this module builds the app: that is what a WSGI server imports it for.

A start-up mistake (a malformed setting, a database that cannot be opened)
is one line on standard error and exit status 2, not a traceback.
"""

import sys

from . import create_app, logs
from .settings import SettingError
from .state import api_state

try:
    application = create_app()
except SettingError as error:
    print(f"images-api: {error}", file=sys.stderr)
    sys.exit(2)
logs.configure(api_state(application).settings.log_level)
