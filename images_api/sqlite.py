"""What SQLite needs that a server database does not (README: Storage).

The driver (APSW), the check that the file opened is still the one at its
path, the rows each thread keeps while the database is unchanged, and this
process's turn to write.
"""

import contextlib
import datetime
import os
import threading
import time

import peewee
from playhouse.apsw_ext import APSWDatabase

from .failures import DatabaseBusy, DatabaseUnavailable


class SqliteDatabase(APSWDatabase):
    """A ``sqlite:///`` database, through APSW (``playhouse.apsw_ext``) rather than the ``sqlite3`` module.

    APSW lets go of the GIL a few times per query where ``sqlite3`` does so
    several times more, and under load each time costs a wait for it: worth
    about a quarter of GET one's throughput (bench/README.md). peewee binds a
    ``datetime`` for a ``DateTimeField`` (``playhouse.migrations``' history,
    the first start), which APSW does not take: it is bound as the ISO text
    ``sqlite3``'s default adapter stored.
    """

    def _add_conn_hooks(self, conn):
        conn.convert_binding = iso_datetime
        super()._add_conn_hooks(conn)


def iso_datetime(cursor, number, value):
    """APSW's ``convert_binding``: a ``datetime`` (or ``date``) as ISO text; anything else is refused as APSW refuses it."""
    if isinstance(value, datetime.date):
        return value.isoformat(" ") if isinstance(value, datetime.datetime) else value.isoformat()
    raise TypeError(f"Bad binding argument type supplied - argument #{number}: type {type(value).__name__}")


def remember_file(db):
    """Note which file ``db`` (SQLite, connected) is, so that a deleted or replaced one is noticed."""
    if isinstance(db, peewee.SqliteDatabase) and not db.database.startswith("file:"):
        status = os.stat(db.database)
        db.file = (db.database, status.st_dev, status.st_ino)
        # In WAL mode the -wal and -shm files exist as long as a connection is open.
        if os.path.exists(db.database + "-wal"):
            db.wal_files = threading.local()


def identity(path):
    """``(device, inode)`` of the file at ``path``; None when there is none (``OSError`` from ``os.stat`` taken as none)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


#: The files SQLite keeps beside the database in WAL mode: the log, and the
#: index into it that every connection to the file shares.
WAL_FILES = ("-wal", "-shm")

#: Seconds a read goes on trusting the files ``check_file`` last found in
#: place. Each look is a ``stat`` call for each file, and each lets go of
#: the GIL: about a tenth of GET one's throughput under load
#: (bench/README.md). Writes look every time.
FILE_RECHECK = 0.1


def check_file(db, every_time=False):
    """Raise ``DatabaseUnavailable`` when the SQLite file ``db`` opened, its -wal or its -shm file, was deleted or replaced.

    Writes would go on succeeding into the old file, and all be gone at the
    next start; a new -shm file lets another process write into the log
    over this one's commits (README: Storage). Called with this thread's
    connection open: SQLite keeps the -wal and -shm files for as long as a
    connection is, so the ones this connection found when it opened must
    still be there. Looks at the files on a connection's first request,
    ``every_time`` (in a write's transaction, for ``/healthz``) and
    otherwise once ``FILE_RECHECK`` seconds have passed since they were
    last found in place.
    """
    if db.file is None:
        return
    seen, connection = db.wal_files, db.connection()
    known = seen is None or getattr(seen, "connection", None) is connection
    if known and not every_time and time.monotonic() < db.file_trusted_until:
        return
    path, device, inode = db.file
    if identity(path) != (device, inode):
        raise DatabaseUnavailable(
            "The database file was deleted or replaced since the service opened it; restart the service."
        )
    if seen is not None:
        found = tuple(identity(path + suffix) for suffix in WAL_FILES)
        if not known and None not in found:
            seen.connection, seen.found = connection, found
        for suffix, now, then in zip(WAL_FILES, found, getattr(seen, "found", (None, None))):
            if now is None or now != then:
                raise DatabaseUnavailable(
                    f"The database's {suffix} file was deleted or replaced since the service opened it; restart the service."
                )
    db.file_trusted_until = time.monotonic() + FILE_RECHECK


class ReadRows(threading.local):
    """The rows ``lookup()`` read on this thread's SQLite connection, while no one has written since.

    ``PRAGMA data_version`` changes when any other connection, in this process
    or another, commits; ``total_changes`` when this one writes. Reading both
    at the start of a request is one query where the token's user and the
    image were two, and each query hands the GIL to another thread several
    times (bench/README.md). A write is seen by the next request, as without
    the rows: a reset token stops working at once (README: Storage).
    """

    #: Rows kept per thread before they are all dropped (user and image rows, a few hundred bytes each).
    LIMIT = 1024

    def __init__(self):
        self.connection = None
        self.version = None
        self.rows = {}

    def current(self, db):
        """The rows read on ``db``'s connection in this thread, emptied first if the database changed.

        Raises ``peewee.OperationalError`` when the database cannot be read.
        """
        data_version = db.execute_sql("PRAGMA data_version").fetchone()[0]
        connection = db.connection()
        version = (data_version, connection.total_changes())
        # Holding the connection (not its id) keeps a new one from passing for it.
        if connection is not self.connection or version != self.version or len(self.rows) >= self.LIMIT:
            self.connection, self.version, self.rows = connection, version, {}
        return self.rows


class WriteTurn:
    """This process's turn to write on SQLite: one writer at a time, and never every thread waiting for it.

    SQLite takes one writer at a time and makes the others poll, sleeping 1,
    2, 5, ... 100 ms between tries; queueing this process's writers on a lock
    first hands the turn on the moment a commit ends. At most ``threads - 1``
    threads are ever in a write, and while a lock held elsewhere keeps the
    turn's writer waiting, a writer that finds no room is ``DatabaseBusy`` at
    once: a thread stays free for reads and ``/healthz`` (README: Storage).
    """

    STUCK = 0.25  # seconds a turn is held before it is taken for waiting on a lock elsewhere (a write takes milliseconds)

    def __init__(self, threads, deadline):
        self.deadline = deadline
        self.lock = threading.RLock()
        self.room = threading.BoundedSemaphore(max(1, threads - 1))
        self.since = None  # when the turn was taken; None while nobody holds it

    def stuck(self):
        """Whether the turn has been held past ``STUCK``: its writer waits on a lock held elsewhere."""
        since = self.since
        return since is not None and time.monotonic() - since > self.STUCK

    @contextlib.contextmanager
    def taken(self, db):
        """Hold the turn, then run the block in ``db.atomic()``, all within one ``self.deadline`` (seconds)."""
        deadline = time.monotonic() + self.deadline
        # Room frees within milliseconds while writes go through; once the
        # turn is stuck, waiting on for room would hold a thread reads need.
        while not self.room.acquire(blocking=False):
            if self.stuck() or time.monotonic() >= deadline:
                raise DatabaseBusy()
            if self.room.acquire(timeout=min(self.STUCK, deadline - time.monotonic())):
                break
        try:
            if not self.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise DatabaseBusy()
            self.since = time.monotonic()
            try:
                # What is left of the deadline is what SQLite may wait for a
                # writer of another process (its busy timeout), not 30 s more.
                left = deadline - time.monotonic()
                shortened = left < self.deadline - 0.01
                if shortened:
                    db.execute_sql(f"PRAGMA busy_timeout = {max(1, int(left * 1000))}")
                try:
                    with db.atomic():
                        yield
                finally:
                    if shortened:
                        db.execute_sql(f"PRAGMA busy_timeout = {self.deadline * 1000}")
            finally:
                self.since = None
                self.lock.release()
        finally:
            self.room.release()
