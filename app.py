"""Serve images-api on this machine with waitress (contract: Command line).

    python app.py [--host 127.0.0.1] [--port 8080] [--threads 8] [--database URL]

Every flag also reads its ``IMAGES_API_*`` variable. A start-up mistake (a
malformed setting or flag, a database that cannot be opened, a port in use)
is one line on standard error and exit status 2.
"""

import logging
import sys

import click
import waitress

from images_api import create_app, logs
from images_api.settings import SettingError, masked_url

log = logging.getLogger("images_api")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, envvar="IMAGES_API_HOST", help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True, envvar="IMAGES_API_PORT", help="Port to listen on.")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True, envvar="IMAGES_API_THREADS", help="Worker threads.")
@click.option("--database", metavar="URL", help="Database URL (default: IMAGES_API_DATABASE_URL, else sqlite:///images.db).")
def main(host, port, threads, database):
    """Serve the images-api HTTP API with waitress."""
    config = {"IMAGES_API_DATABASE_URL": database} if database else {}
    try:
        app = create_app(config)
        logs.configure(app.extensions["images_api"].settings.log_level)
        server = waitress.create_server(app, host=host, port=port, threads=threads)
    except SettingError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    url = masked_url(app.config["IMAGES_API_DATABASE_URL"])
    log.info("images-api listening on http://%s:%s with %d threads, database %s", host, server.effective_port, threads, url)
    server.run()


def run(args=None):
    """Run ``main``; any usage or start-up error is one line and exit status 2."""
    try:
        main.main(args, standalone_mode=False)
    except click.ClickException as error:
        click.echo(f"images-api: {error.format_message()}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    run()
