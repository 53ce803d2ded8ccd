"""images-api: a catalogue of cloud machine images over HTTP (``/v3``)."""

import logging
import os

from flask import Flask

from . import db, errors, health, logs, opening, schema, settings, sqlite
from .auth import first_start
from .cli import user_cli
from .models import User
from .proxy import TrustedProxy
from .schemas import ImageSchema
from .state import EXTENSION, State, api_state
from .views import bp, is_api_path


log = logging.getLogger("images_api")
#: Flask config key the ``images-api`` command sets on the app it builds: not a server start.
COMMAND = "IMAGES_API_COMMAND"


def init_app(app, *, standalone=False):
    """Add the API to ``app`` (a Flask app), configured from its ``IMAGES_API_*`` keys.

    Registers the ``/v3`` blueprint with its JSON errors and access log, opens
    the database and brings its schema up to date (``schema.ensure_current``),
    adds the ``user`` CLI group, and on the database's first start creates the
    ``admin`` user. The host's own routes and error handlers stay as they
    were. ``standalone`` (for ``create_app``) means the app is the API and
    nothing else: every request is logged. Raises ``settings.SettingError``
    for a malformed setting or a database that cannot be opened.
    """
    config = settings.read(app.config)
    for key, value in settings.DEFAULTS.items():
        app.config.setdefault(key, value)
    logging.getLogger("images_api").setLevel(config.log_level)
    try:
        database = opening.open_database(config.database_url, config.threads)
    except ValueError as error:
        # The value, not a setting's name: it may have come from a flag (--database).
        raise settings.SettingError(f"the database URL {settings.masked_url(config.database_url)!r}: {error}") from None
    app.extensions[EXTENSION] = State(config, database, ImageSchema(providers=config.providers), standalone)
    app.register_blueprint(bp)
    # The timer first: a routing failure answered by the next hook gets its access line too.
    app.before_request(logs.start_timer)
    app.before_request(errors.routing_errors_where(is_api_path))
    app.after_request(logs.log_access)
    if database.pooled:  # SQLite keeps each thread's connection: nothing to give back
        app.teardown_request(db.release)
    app.cli.add_command(user_cli)
    # Closed again at once (a pool's too): a server that forks workers after
    # loading the app (gunicorn --preload) must not hand them a shared
    # connection.
    with opening.start_errors(database, config.database_url), app.app_context():
        with opening.closing_pool(database), database.connection_context():
            schema.ensure_current(database, config.auto_upgrade)
            sqlite.remember_file(database)
            if config.create_admin:
                first_start(config.admin_token)
            elif not app.config.get(COMMAND) and not User.select().exists():
                log.warning("no user can log in yet: add one with 'images-api user add NAME --all-policies'")
    return app


def create_app(config=None):
    """Build the standalone service: a Flask app that is the API and nothing else.

    ``config`` (a mapping of ``IMAGES_API_*`` keys, plus any Flask key) wins
    over the environment, which wins over the defaults. Every error, on any
    path, is JSON; ``GET /healthz`` reports on the database; with
    ``IMAGES_API_TRUSTED_PROXY`` set, that proxy's forwarded headers are
    believed. Raises ``settings.SettingError`` as ``init_app`` does.
    """
    app = Flask(__name__)
    app.config.from_mapping(settings.from_environ(os.environ))
    app.config.from_mapping(config or {})
    app.url_map.merge_slashes = False
    errors.register(app)
    app.register_blueprint(health.bp)
    init_app(app, standalone=True)
    proxies = api_state(app).settings.trusted_proxies
    if proxies:
        app.wsgi_app = TrustedProxy(app.wsgi_app, proxies)
    return app
