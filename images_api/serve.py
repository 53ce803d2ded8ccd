"""Serve the API with waitress: ``images-api serve``, ``python app.py`` (README: Settings).

    images-api serve [--host 127.0.0.1] [--port 8080] [--threads 4] [--database URL]

Every flag also reads its ``IMAGES_API_*`` variable. A start-up mistake (a
malformed setting or flag, a database that cannot be opened, a port in use)
is one line on standard error and exit status 2.
"""

import logging
import resource
import signal
import sys

import click
import waitress
from click.core import ParameterSource
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer

from . import logs
from .settings import SettingError, masked_url
from .state import api_state

log = logging.getLogger("images_api")


class StartError(click.ClickException):
    """The service cannot start: one line, exit status 2."""

    exit_code = 2

WAITRESS_SETTINGS = {
    # waitress reads a whole body before the app sees it; past 1 MiB it
    # refuses it itself (a plain-text 413) rather than spool up to 1 GiB.
    # Between 64 KiB and 1 MiB the API's own JSON 413 answers.
    "max_request_body_size": 1024 * 1024,
    # Keep X-Forwarded-* for images_api's TrustedProxy, which believes them
    # only from IMAGES_API_TRUSTED_PROXY; Flask itself never reads them.
    "clear_untrusted_proxy_headers": False,
    # Idle and slow clients hold a socket each, not a thread: with waitress's
    # 100 connections, 98 of them locked every other client out. poll(), not
    # select(), which cannot watch descriptors past 1024.
    "asyncore_use_poll": True,
    # An idle connection is closed after a minute (waitress: two).
    "channel_timeout": 60,
}
#: Connections held open at once, idle or slow ones included (README: Settings).
CONNECTION_LIMIT = 10_000
#: File descriptors kept for the database, the log and waitress's own.
SPARE_FILES = 256


class Channel(HTTPChannel):
    """waitress's connection, which the server's loop does not watch for writing while a worker holds its output.

    A worker sends its response itself, holding the connection's output lock,
    and wakes the loop when it leaves bytes unsent; the task's end wakes it
    too. waitress's loop, though, takes a connection with bytes pending for
    one to write, however long the worker holds the lock: ``poll()`` answers
    at once, the lock cannot be had, and the loop goes round again, holding
    the GIL the worker needs to finish. On a 2-core VM that spin cut bare
    Flask under 8 connections from 2,900 requests a second to 470, and cost
    each GIL hand-over of the API's own (a database query, a ``stat``) the
    most (bench/README.md). Closing connections are watched as before.
    Written against waitress 3.0 (``setup.cfg`` keeps it below 4);
    tests/test_waitress_channel.py checks what the loop must still do.
    """

    def writable(self):
        """Whether the loop should wait for the socket to take bytes: as waitress says, unless a worker holds the output."""
        if not super().writable():
            return False
        if self.will_close or self.close_when_flushed:
            return True
        # A lock the worker holds: whoever releases it with bytes left wakes
        # the loop (``write_soon``, the end of ``service``).
        if not self.outbuf_lock.acquire(blocking=False):
            return False
        self.outbuf_lock.release()
        return True


def use_channel(server):
    """Make each listening socket of ``server`` (what ``waitress.create_server`` returned) accept ``Channel`` connections."""
    listeners = server.map.values() if isinstance(server, MultiSocketServer) else (server,)
    for listener in listeners:
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = Channel


def connection_limit():
    """How many connections this process can hold: raise its soft file limit toward ``CONNECTION_LIMIT``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = CONNECTION_LIMIT + SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return CONNECTION_LIMIT if soft == resource.RLIM_INFINITY else max(1, min(CONNECTION_LIMIT, soft - SPARE_FILES))


class SettingOption(click.Option):
    """A flag that also reads an ``IMAGES_API_*`` variable, and names the one its bad value came from."""

    def process_value(self, ctx, value):
        try:
            return super().process_value(ctx, value)
        except click.BadParameter as error:
            if ctx.get_parameter_source(self.name) is ParameterSource.ENVIRONMENT:
                error.param_hint = f"{self.envvar} (from the environment)"
            raise


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="images-api", message="images-api %(version)s")
@click.option("--host", cls=SettingOption, default="127.0.0.1", show_default=True, envvar="IMAGES_API_HOST", help="Address to listen on.")
@click.option("--port", cls=SettingOption, type=click.IntRange(1, 65535), default=8080, show_default=True, envvar="IMAGES_API_PORT", help="Port to listen on.")
@click.option("--threads", cls=SettingOption, type=click.IntRange(1, 256), default=4, show_default=True, envvar="IMAGES_API_THREADS", help="Worker threads.")
@click.option("--database", metavar="URL", help="Database URL (default: IMAGES_API_DATABASE_URL, else sqlite:///images.db).")
def main(host, port, threads, database):
    """Serve the images-api HTTP API with waitress."""
    from . import create_app  # here, not at the top: the package imports this module through cli
    # The pool of a server database holds a connection for each thread.
    config = {"IMAGES_API_THREADS": threads}
    if database:
        config["IMAGES_API_DATABASE_URL"] = database
    # Listen first, so that a port in use stops the start before the app
    # touches the database (and, on a first start, prints an admin token).
    # No request is served before server.run(), by which time app exists.
    try:
        server = waitress.create_server(
            lambda environ, start_response: app(environ, start_response),
            host=host,
            port=port,
            threads=threads,
            connection_limit=connection_limit(),
            **WAITRESS_SETTINGS,
        )
    except (OSError, ValueError) as error:  # ValueError: waitress cannot resolve the host
        reason = getattr(error, "strerror", None) or error
        raise StartError(f"cannot listen on {host}:{port}: {reason}") from None
    use_channel(server)
    try:
        app = create_app(config)
    except SettingError as error:
        server.close()
        raise StartError(str(error)) from None
    logs.configure(api_state(app).settings.log_level, batched=True)
    url = masked_url(app.config["IMAGES_API_DATABASE_URL"])
    log.info(
        "images-api listening on http://%s:%s with %d threads and up to %d connections, database %s",
        host, server.effective_port, threads, server.adj.connection_limit, url,
    )  # fmt: skip
    signal.signal(signal.SIGTERM, stop)
    server.run()


def stop(signum, frame):
    """On SIGTERM, stop as on Ctrl-C, so that the log lines not yet written are (``logs.BatchedStreamHandler``).

    Python's own SIGTERM ends the process at once and loses them. Requests
    in progress are cut off either way: waitress does not drain.
    """
    raise SystemExit(0)


def run(args=None, prog_name=None):
    """Run ``main`` (``args``: the command line, default ``sys.argv[1:]``); any usage or start-up error is one line and exit status 2."""
    try:
        main.main(args, prog_name=prog_name, standalone_mode=False)
    except click.ClickException as error:
        click.echo(f"images-api: {error.format_message()}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        pass

