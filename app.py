"""Serve images-api on this machine with waitress (contract: Command line).

    python app.py [--host 127.0.0.1] [--port 8080] [--threads 8] [--database URL]
"""

import logging

import click
import waitress
from peewee import DatabaseError

from images_api import create_app


class StartError(click.ClickException):
    """A start-up mistake: one line on standard error, exit status 2."""

    exit_code = 2


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, envvar="IMAGES_API_HOST", help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True, envvar="IMAGES_API_PORT", help="Port to listen on.")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True, envvar="IMAGES_API_THREADS", help="Worker threads.")
@click.option("--database", metavar="URL", help="Database URL (default: IMAGES_API_DATABASE_URL, else sqlite:///images.db).")
def main(host, port, threads, database):
    """Serve the images-api HTTP API with waitress."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = {"IMAGES_API_DATABASE_URL": database} if database else {}
    try:
        app = create_app(config)
    except (ValueError, DatabaseError) as error:
        raise StartError(str(error)) from None
    try:
        waitress.serve(app, host=host, port=port, threads=threads)
    except OSError as error:
        raise StartError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


if __name__ == "__main__":
    main()
