"""The framework's ceiling: bare Flask answering one image's JSON, served as app.py serves.

    python bench/bare.py --port 8081 --threads 8 --image '{"id": ..., ...}'

No database, no auth, no schema: one route with the service's path shape
returning the given image through ``jsonify``, under waitress with the same
host, threads, server settings (``images_api.serve.WAITRESS_SETTINGS`` and the
connection limit) and logging as ``app.py``: ``waitress.serve`` would add
the proxy-header middleware that ``app.py`` turns off.
"""

import argparse
import json

import waitress
from flask import Flask, jsonify

from images_api import logs
from images_api.serve import WAITRESS_SETTINGS, connection_limit


def create_bare_app(image):
    """A Flask app whose ``GET /v3/image/<id>`` returns ``image`` (a dict) as JSON."""
    app = Flask(__name__)

    @app.get("/v3/image/<image_id>")
    def show_image(image_id):
        return jsonify(image)

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--image", type=json.loads, required=True, help="the image to answer, as JSON")
    args = parser.parse_args()
    logs.configure("INFO", batched=True)  # as app.py: waitress's lines, queue warnings once a minute
    server = waitress.create_server(
        create_bare_app(args.image),
        host=args.host,
        port=args.port,
        threads=args.threads,
        connection_limit=connection_limit(),
        **WAITRESS_SETTINGS,
    )
    server.run()


if __name__ == "__main__":
    main()
