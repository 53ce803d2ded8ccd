"""The ceilings bench/run.py measures against: bare Flask, served by the very server app.py builds.

    python bench/bare.py --image '{"id": ..., ...}' [app.py's options: --host, --port, --threads, --database]
    python bench/bare.py --select URL [app.py's options]

``--image JSON``: the framework's ceiling. One route with the service's path
shape, ``GET /v3/image/<id>``, answers the given image through ``jsonify``:
no database, no auth, no schema.

``--select URL``: the framework + driver ceiling of a server database. The
same route runs one ``SELECT`` of the image's row by primary key through the
driver the service uses for ``URL`` (psycopg2 for ``postgresql://``, PyMySQL
for ``mysql://``), on one connection per waitress thread in autocommit, and
answers the row through ``jsonify`` (404 when there is none).

Either way the server is app.py's own: this runs ``app.py`` of this checkout
with the options given, as ``python app.py`` would, and hands
``waitress.create_server`` the bare app in place of the service's, every
other argument as app.py passes it. So host, threads, connection limit,
server settings and logging are app.py's, whatever they become. The
arguments are written to standard error as one line, ``bench/bare.py:
waitress.create_server {...}`` (JSON). app.py opens its ``--database`` (give it
a scratch SQLite file) and never serves it. The route needs no credentials:
that is how bench/run.py tells the bare app from the service.
"""

import argparse
import importlib
import json
import runpy
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import waitress
from flask import Flask, abort, jsonify

ROOT = Path(__file__).resolve().parent.parent
ROUTE = "/v3/image/<image_id>"
COLUMNS = ("id", "name", "provider", "remote_user")  # an image's fields, as the API shows them
SELECT = f"SELECT {', '.join(COLUMNS)} FROM images WHERE id = %s"
CONNECT_TIMEOUT = 5  # seconds to reach a database server
#: URL scheme (before any ``+``) -> the DB-API driver peewee uses for it.
DRIVERS = {"postgres": "psycopg2", "postgresql": "psycopg2", "mysql": "pymysql"}


def driver(url):
    """The DB-API module for ``url``'s database (``ImportError`` when it is not installed, ``ValueError`` for no server URL)."""
    family = urlsplit(url).scheme.partition("+")[0]
    if family not in DRIVERS:
        raise ValueError(f"not a PostgreSQL or MariaDB/MySQL URL: {url.partition(':')[0]}://")
    return importlib.import_module(DRIVERS[family])


def connect(url):
    """A connection in autocommit to the database at ``url`` (``postgresql://`` or ``mysql://``), through its driver.

    Autocommit: each statement is its own transaction, so a SELECT is one
    round trip and no connection sits in an open transaction.
    """
    module = driver(url)
    parts = urlsplit(url)
    if module.__name__ == "psycopg2":
        connection = module.connect(urlunsplit(parts._replace(scheme="postgresql")), connect_timeout=CONNECT_TIMEOUT)
        connection.autocommit = True
        return connection
    return module.connect(
        host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
        user=unquote(parts.username or ""), password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")) or None, charset="utf8mb4", autocommit=True,
        connect_timeout=CONNECT_TIMEOUT,
    )  # fmt: skip


def create_bare_app(image):
    """A Flask app whose ``GET /v3/image/<id>`` returns ``image`` (a dict) as JSON."""
    app = Flask(__name__)

    @app.get(ROUTE)
    def show_image(image_id):
        return jsonify(image)

    return app


def create_select_app(url):
    """A Flask app whose ``GET /v3/image/<id>`` returns that image's row of the database at ``url`` as JSON."""
    app = Flask(__name__)
    local = threading.local()  # waitress's threads live as long as the server: one connection each

    @app.get(ROUTE)
    def show_image(image_id):
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = connect(url)
        cursor = connection.cursor()
        try:
            cursor.execute(SELECT, (image_id,))
            row = cursor.fetchone()
        finally:
            cursor.close()
        if row is None:
            abort(404)
        return jsonify(dict(zip(COLUMNS, row)))

    return app


def serve_as_app_py(app, argv):
    """Run ``app.py`` with ``argv``, its waitress server serving ``app`` instead of the service."""
    create_server = waitress.create_server

    def create_bare_server(application, *args, **options):
        print(f"bench/bare.py: waitress.create_server {json.dumps(options, default=repr, sort_keys=True)}", file=sys.stderr, flush=True)
        return create_server(app, *args, **options)

    # Before app.py imports anything: it finds waitress already patched,
    # however it names create_server.
    waitress.create_server = create_bare_server
    # As ``python app.py``: its directory first on the path, so that it
    # imports the images_api of this checkout.
    sys.path.insert(0, str(ROOT))
    sys.argv = [str(ROOT / "app.py"), *argv]
    runpy.run_path(str(ROOT / "app.py"), run_name="__main__")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ceiling = parser.add_mutually_exclusive_group(required=True)
    ceiling.add_argument("--image", type=json.loads, help="the image to answer, as JSON")
    ceiling.add_argument("--select", metavar="URL", help="the PostgreSQL or MariaDB/MySQL database to read the image from")
    args, app_py_argv = parser.parse_known_args()
    if args.select:
        try:
            driver(args.select)
        except (ImportError, ValueError) as error:
            parser.error(str(error))
        app = create_select_app(args.select)
    else:
        app = create_bare_app(args.image)
    serve_as_app_py(app, app_py_argv)


if __name__ == "__main__":
    main()
