"""images-api: a catalogue of cloud machine images over HTTP (``/v3``)."""

import os
from dataclasses import dataclass

from flask import Flask

from . import errors, settings
from .auth import create_admin
from .cli import user_cli
from .models import create_tables, open_database
from .schemas import ImageQuerySchema, ImageSchema, ImageUpdateSchema, NoQuerySchema
from .views import bp


@dataclass
class State:
    """What one app's API needs at request time: ``app.extensions["images_api"]``."""

    settings: settings.Settings
    database: object
    schemas: dict


def init_app(app):
    """Add the API to ``app`` (a Flask app), configured from its ``IMAGES_API_*`` keys.

    Registers the ``/v3`` blueprint with its JSON errors, opens the database
    and creates missing tables, adds the ``user`` CLI group, and on a first
    start creates the ``admin`` user. The host's own routes and error handlers
    are left as they were. Raises ``settings.SettingError`` for a malformed
    setting and ``ValueError`` for an unusable database URL.
    """
    config = settings.read(app.config)
    for key, value in settings.DEFAULTS.items():
        app.config.setdefault(key, value)
    schemas = {
        ImageSchema: ImageSchema(providers=config.providers),
        ImageUpdateSchema: ImageUpdateSchema(providers=config.providers),
        ImageQuerySchema: ImageQuerySchema(),
        NoQuerySchema: NoQuerySchema(),
    }
    app.extensions["images_api"] = State(config, open_database(config.database_url), schemas)
    app.register_blueprint(bp)
    app.before_request(errors.routing_errors_under(bp.url_prefix))
    app.cli.add_command(user_cli)
    with app.app_context():
        create_tables()
        if config.create_admin:
            create_admin(config.admin_token)
    return app


def create_app(config=None):
    """Build the standalone service: a Flask app that is the API and nothing else.

    ``config`` (a mapping of ``IMAGES_API_*`` keys, plus any Flask key) wins
    over the environment, which wins over the defaults. Every error, on any
    path, is JSON.
    """
    app = Flask(__name__)
    app.config.from_mapping(settings.from_environ(os.environ))
    app.config.from_mapping(config or {})
    app.url_map.merge_slashes = False
    errors.register(app)
    return init_app(app)
