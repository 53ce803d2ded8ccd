"""Logging: one access line per request, and a readable waitress log under load.

Access lines go to the ``images_api.access`` logger as
``METHOD PATH STATUS DURATIONms user=NAME``; they never carry a header, a
token or a body.
"""

import json
import logging
import os
import sys
import threading
import time

from flask import g, request

from .auth import USER
from .state import current_api
from .views import is_api_path

access_logger = logging.getLogger("images_api.access")


#: Query parameters the access log may show; any other, name and value, is
#: masked (a token sent by mistake as ``?access_token=TOKEN`` or ``?TOKEN``).
LOGGED_PARAMETERS = {"provider", "limit", "marker"}
MAX_LOGGED = 512  # characters of a path or name kept in a log line


def printable(text):
    """``text`` cut to ``MAX_LOGGED`` characters, with control and non-ASCII ones escaped."""
    if len(text) > MAX_LOGGED:
        text = text[:MAX_LOGGED] + "..."
    if text.isascii() and text.isprintable() and "\\" not in text:
        return text  # the common case, left as it is
    return json.dumps(text)[1:-1]


def logged_path(this):
    """The path of ``this`` request (under its mount prefix, as the client sent it) and query, unknown parameters masked."""
    path = this.script_root + this.path
    if not this.query_string:  # most requests: nothing to parse
        return path
    # An unknown parameter is masked whole: a token sent by mistake may be its name (?TOKEN).
    query = "&".join(
        f"{key}={value}" if key in LOGGED_PARAMETERS else "***" for key, value in this.args.items(multi=True)
    )
    return f"{path}?{query}"


#: Key in ``flask.g`` of when the request started (``time.perf_counter()``).
STARTED = "images_api_started"


def start_timer():
    """Before-request hook: note when the request started."""
    setattr(g, STARTED, time.perf_counter())


def log_access(response):
    """After-request hook: log the request on ``images_api.access``, when it is the API's."""
    if not access_logger.isEnabledFor(logging.INFO):
        return response
    # Each read through ``request`` or ``g`` finds the context again: read
    # once each, the line costs two fifths less than with eight reads.
    this, values = request._get_current_object(), g._get_current_object()
    started = values.get(STARTED)
    if started is None or not (is_api_path(this.path) or current_api.standalone):
        return response
    user = values.get(USER)
    access_logger.info(
        "%s %s %d %.1fms user=%s",
        this.method,
        printable(logged_path(this)),
        response.status_code,
        (time.perf_counter() - started) * 1000,
        printable(user) if user is not None else "-",
    )
    return response


class EveryMinute(logging.Filter):
    """Let a logger's records through at most once per ``interval`` seconds.

    waitress warns "Task queue depth is N" on every request that waits for a
    thread; under load that floods the log. One line a minute still says the
    server is saturated.
    """

    def __init__(self, interval=60.0):
        super().__init__()
        self.interval = interval
        self.last = float("-inf")

    def filter(self, record):
        now = time.monotonic()
        if now - self.last < self.interval:
            return False
        self.last = now
        return True


class BatchedStreamHandler(logging.StreamHandler):
    """A ``StreamHandler`` whose lines reach the stream in batches, at most ``interval`` seconds late.

    Every write to a file or pipe lets go of the GIL, and under load the
    thread that wrote then waits for it behind the others: one access line
    per request cost a sixth of an authorized GET's throughput (bench/README.md).
    Lines are formatted at once and written together by a thread of the
    handler (one per process, so a forked worker starts its own), under the
    handler's lock: a stream that blocks holds up logging, as it would a
    ``StreamHandler``, instead of piling lines up. ``flush()`` writes what
    is pending, as ``logging.shutdown`` does at a clean exit; a ``kill -9``
    loses at most ``interval`` seconds of lines.
    """

    def __init__(self, stream=None, interval=0.05):
        super().__init__(stream)
        self.interval = interval
        self.pending = []
        self.writer_pid = None  # the process whose writer thread runs

    def emit(self, record):
        try:
            self.pending.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
            return
        if self.writer_pid != os.getpid():
            self.writer_pid = os.getpid()
            threading.Thread(target=self._write_every_interval, name="images-api-log-writer", daemon=True).start()

    def flush(self):
        with self.lock:
            lines, self.pending = self.pending, []
            if not lines:
                return
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except Exception:  # reported as a StreamHandler reports a line it cannot write
                self.handleError(logging.makeLogRecord({"msg": f"{len(lines)} log lines not written"}))

    def _write_every_interval(self):
        while True:
            time.sleep(self.interval)
            self.flush()


class Formatter(logging.Formatter):
    """A ``logging.Formatter`` that formats the time of day once a second, not once a line.

    ``time.strftime`` was a tenth of writing an access line; the line reads
    as ``logging.Formatter``'s default (``2026-12-03 04:05:06,789``).
    """

    def __init__(self, fmt):
        super().__init__(fmt)
        self.second = (None, "")  # (whole second, its text), replaced as one: lines are formatted in several threads

    def formatTime(self, record, datefmt=None):
        whole = int(record.created)
        second, text = self.second
        if whole != second:
            text = time.strftime(self.default_time_format, self.converter(record.created))
            self.second = (whole, text)
        return self.default_msec_format % (text, record.msecs)


def configure(level, *, batched=False):
    """Set up logging for a process that serves the API (``app.py``, ``wsgi.py``).

    ``level`` is a level name such as ``"INFO"``. Adds a stderr handler only
    when the process has none (a WSGI server may have its own), and quiets
    waitress's per-request queue warnings to one a minute. ``batched``
    writes the handler's lines in batches (``BatchedStreamHandler``): only
    for a process that flushes them when told to stop, as ``app.py`` does.
    """
    handler = BatchedStreamHandler(sys.stderr) if batched else logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # What no line of this process shows, each record need not look up:
    # the caller's file and line, threads and processes (the logging HOWTO,
    # "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = logging.logAsyncioTasks = False
    logging.basicConfig(handlers=[handler])
    logging.getLogger("waitress").setLevel(level)
    queue_logger = logging.getLogger("waitress.queue")
    if not any(isinstance(f, EveryMinute) for f in queue_logger.filters):
        queue_logger.addFilter(EveryMinute())
