"""The database at request time (README: Storage, Scaling out).

One module owns it, as flaskr's ``db.py`` does: opening the database of each
app, a connection for each request (kept per thread on SQLite, taken from a
bounded pool on PostgreSQL and MariaDB/MySQL), the rows kept per thread on
SQLite, the write turn, the health query, and the two named ways a database
fails a request: ``DatabaseBusy`` and ``DatabaseUnavailable``, both a JSON 503.
"""

import contextlib
import os
import threading
import time
from urllib.parse import parse_qsl, urlsplit

import peewee
from flask import current_app, g
from playhouse import db_url
from playhouse.pool import MaxConnectionsExceeded, PooledDatabase
from werkzeug.exceptions import ServiceUnavailable

from .schema import HISTORY, SchemaError
from .settings import SettingError, masked_url
from .state import api_state

#: SQLite settings for every connection: WAL lets readers run beside a writer,
#: ``synchronous=FULL`` makes a commit survive a crash (no speed bought with
#: durability), and the busy timeout makes writers queue instead of failing.
SQLITE_PRAGMAS = {"journal_mode": "wal", "synchronous": "full", "foreign_keys": 1}
WRITE_DEADLINE = 30  # seconds a write may wait for its turn, or a request for a pooled connection
CONNECT_TIMEOUT = 5  # seconds to reach a database server before the request is a 503

#: ``pip install 'images-api[EXTRA]'`` brings the driver a URL scheme needs.
EXTRAS = {"postgres": "postgresql", "postgresql": "postgresql", "mysql": "mysql"}

SERVER_FAMILIES = ("postgres", "postgresql", "mysql")


def server_options(family):
    """Options each connection to a server database of ``family`` gets, unless the URL sets them.

    A wait for a lock ends at ``WRITE_DEADLINE``, as SQLite's busy timeout
    does, and is then ``DatabaseBusy``. MariaDB/MySQL is strict: a value a
    column cannot hold is an error, never cut short.
    """
    if family == "mysql":
        return {
            "connect_timeout": CONNECT_TIMEOUT,
            "sql_mode": "STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION",
            "init_command": f"SET SESSION innodb_lock_wait_timeout = {WRITE_DEADLINE}, SESSION lock_wait_timeout = {WRITE_DEADLINE}",
        }
    return {"connect_timeout": CONNECT_TIMEOUT, "options": f"-c lock_timeout={WRITE_DEADLINE * 1000}"}


class DatabaseBusy(ServiceUnavailable):
    """503: the database stayed locked past the write deadline, or every pooled connection stayed in use."""

    description = "The database is busy; retry shortly."

    def __init__(self, description=None):
        super().__init__(description, retry_after=1)


class DatabaseUnavailable(ServiceUnavailable):
    """503: the database cannot be reached, opened or read, is full, or is not the file the service opened."""

    description = "The database is unavailable; retry shortly."

    def __init__(self, description=None):
        super().__init__(description, retry_after=5)


class DiskFull(DatabaseUnavailable):
    """503: the database's disk is full. ``/healthz`` says so until a write of this process goes through again."""

    description = "The database's disk is full; writes succeed again once there is room."


class AppDatabase(peewee.DatabaseProxy):
    """Stands for the database of the Flask app in context.

    Each app opens its own database in ``init_app``; resolving it per app, not
    once per process, keeps two apps in one process (tests, host apps) from
    writing to each other's databases.
    """

    __slots__ = ()

    def __init__(self):
        pass

    @property
    def obj(self):
        return api_state(current_app).database


database = AppDatabase()


def open_database(url, connections=4):
    """Open the database at ``url`` (any scheme ``playhouse.db_url`` knows); returns it unconnected.

    SQLite gets WAL, full sync, a busy timeout and ``BEGIN IMMEDIATE`` writes,
    and each thread keeps its connection. A PostgreSQL or MariaDB/MySQL URL
    gets a pool of at most ``connections`` (``playhouse.pool``; a ``+pool``
    scheme is taken as it is), checked before each use. Options in the URL's
    query win over ours. Raises ``ValueError`` for a URL that names no known
    database or an in-memory SQLite one.
    """
    given_url = url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is no number raises here)
    except ValueError:  # its message would quote what it could not read, a password perhaps
        raise ValueError(
            "it cannot be read as a URL: a password with / # ? @ or : in it must be percent-encoded (%2F %23 %3F %40 %3A)"
        ) from None
    family = parts.scheme.partition("+")[0]
    given = {key for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    params = {}
    if family == "sqlite":
        params = {"pragmas": SQLITE_PRAGMAS, "timeout": WRITE_DEADLINE, "lock_type": "IMMEDIATE"}
        path = db_url.parse(url)["database"]
        if parts.netloc and not parts.path.strip("/"):
            raise ValueError(f"it names no file: a SQLite file takes three slashes (sqlite:///{parts.netloc})")
        if path in ("", ":memory:") or "mode=memory" in path:
            # Each thread opens its own connection, and each connection to
            # an in-memory SQLite database would see an empty one of its own.
            raise ValueError("in-memory SQLite cannot be shared between threads; name a file (sqlite:///images.db)")
        if not path.startswith("file:"):
            params["database"] = os.path.abspath(path)  # a later chdir must not move the service to another file
    elif family in SERVER_FAMILIES:
        if not parts.scheme.endswith("+pool"):
            url = f"{family}+pool{url[len(parts.scheme):]}"
        params = {"max_connections": connections, "timeout": WRITE_DEADLINE, **server_options(family)}
    params = {key: value for key, value in params.items() if key not in given}
    try:
        db = db_url.connect(url, unquote_user=True, unquote_password=True, **params)
    except RuntimeError as error:  # db_url's word for an unknown scheme
        raise ValueError(f"no database of that kind: {error}") from None
    except TypeError as error:  # a query parameter the database class does not take
        raise ValueError(f"a parameter of the URL is not one the database takes: {error}") from None
    except ValueError as error:  # no database name: db_url's message quotes the URL, password and all
        raise ValueError(str(error).replace(url, masked_url(given_url))) from None
    db.pooled = isinstance(db, PooledDatabase)
    db.extra = EXTRAS.get(family)
    db.full = False  # a write failed on a full disk, and none has gone through since: see health()
    db.file = None  # (path, device, inode) of the SQLite file, once open: see check_file()
    db.wal_files = None  # per thread: its connection and the -wal file it found, in WAL mode
    sqlite = isinstance(db, peewee.SqliteDatabase) and not db.pooled
    db.write_turn = WriteTurn(connections) if sqlite else None
    db.lookup_sql = {}  # (model, field name) -> SQL, see lookup()
    db.read_rows = ReadRows() if sqlite else None
    return db


@contextlib.contextmanager
def start_errors(db, url):
    """Turn what can go wrong while opening ``db`` at ``url`` into one ``SettingError`` line (password masked)."""
    masked = masked_url(url)
    try:
        yield
    except SchemaError as error:
        raise SettingError(f"cannot use the database {masked}: {error}") from None
    except peewee.ImproperlyConfigured:
        raise SettingError(f"cannot use the database {masked}: {missing_driver(db)}") from None
    except (peewee.PeeweeException, MaxConnectionsExceeded) as error:
        reason = " ".join(str(error).split())  # drivers' messages run over several lines
        raise SettingError(f"cannot use the database {masked}: {reason}") from None
    except TypeError as error:  # a parameter of the URL that the driver refuses when it connects
        raise SettingError(f"cannot use the database {masked}: a parameter of the URL is not one the driver takes: {error}") from None


@contextlib.contextmanager
def closing_pool(db):
    """Close the idle connections of ``db``'s pool, if it has one, when the block ends."""
    try:
        yield
    finally:
        if db.pooled:
            db.close_idle()


def missing_driver(db):
    """The start-up message for ``db`` whose driver is not installed, naming the extra that brings it."""
    if db.extra:
        return (
            f"the driver for this database is not installed; install the {db.extra!r} extra: "
            f"pip install 'images-api[{db.extra}]' (from a checkout: pip install '.[{db.extra}]')"
        )
    return "the driver for this database is not installed"


def remember_file(db):
    """Note which file ``db`` (SQLite, connected) is, so that a deleted or replaced one is noticed."""
    if isinstance(db, peewee.SqliteDatabase) and not db.database.startswith("file:"):
        status = os.stat(db.database)
        db.file = (db.database, status.st_dev, status.st_ino)
        # In WAL mode the -wal file exists as long as a connection is open.
        if os.path.exists(db.database + "-wal"):
            db.wal_files = threading.local()


def check_file(db):
    """Raise ``DatabaseUnavailable`` when the SQLite file ``db`` opened, or its -wal file, was deleted or replaced.

    Writes would go on succeeding into the old file, and all be gone at the
    next start (README: Storage). Called with this thread's connection open:
    SQLite keeps a -wal file for as long as a connection is, so the one this
    connection found when it opened must still be there.
    """
    if db.file is None:
        return
    path, device, inode = db.file
    try:
        status = os.stat(path)
        wal = os.stat(path + "-wal") if db.wal_files is not None else None
    except OSError:
        status = None
    if status is None or (status.st_dev, status.st_ino) != (device, inode):
        raise DatabaseUnavailable(
            "The database file was deleted or replaced since the service opened it; restart the service."
        )
    if wal is not None:
        seen, connection = db.wal_files, db.connection()
        if getattr(seen, "connection", None) is not connection:
            seen.connection, seen.wal = connection, (wal.st_dev, wal.st_ino)
        elif seen.wal != (wal.st_dev, wal.st_ino):
            raise DatabaseUnavailable(
                "The database's -wal file was deleted or replaced since the service opened it; restart the service."
            )


def connect():
    """Before-request hook of the API: this request's connection, and the rows it may take from memory.

    SQLite: each thread opens its connection on its first request and keeps
    it (opening one per request, pragmas and WAL files, was a third of an
    authorized GET). Server databases: a connection from the pool, which
    replaces one the server has closed; ``release`` gives it back.
    """
    db = database.obj
    db.connect(reuse_if_open=True)
    check_file(db)
    if db.read_rows is not None:
        g.setdefault(READ_ROWS, db.read_rows.current(db))


def release(exc=None):
    """Teardown hook: give a pooled connection back to the pool (one the server closed is dropped)."""
    db = api_state(current_app).database
    if db.pooled and not db.is_closed():
        db.close()


def health():
    """Whether the database answers a query, for ``/healthz``: None, or the ``ServiceUnavailable`` to answer.

    The query reads a table (the schema's history), so that a file that can
    be opened but not read is reported too.
    """
    if database.obj.full:
        return DiskFull()
    try:
        connect()
        database.execute_sql(f"SELECT COUNT(*) FROM {HISTORY}").fetchone()
    except (peewee.PeeweeException, MaxConnectionsExceeded) as error:
        return failure(error) or DatabaseUnavailable()
    except ServiceUnavailable as error:
        return error
    return None


#: Driver error codes that mean "busy, retry": SQLite's BUSY and LOCKED;
#: PostgreSQL's lock_not_available, serialization and deadlock failures and a
#: cancelled statement; MariaDB's lock wait timeout and deadlock.
BUSY = {5, 6, "55P03", "40001", "40P01", "57014", 1205, 1213}
#: Codes that mean "the disk is full": SQLite FULL, PostgreSQL disk_full,
#: MariaDB "disk full" and "table is full".
FULL = {13, "53100", 1021, 1114}
#: SQLite's code for a statement that does not fit the schema (a table gone): a bug, not an outage.
SQLITE_ERROR = 1


def error_code(error):
    """The driver's code for a wrapped driver ``error``: SQLite's primary code, PostgreSQL's SQLSTATE or MariaDB's number."""
    # peewee raises its own class while handling the driver's exception.
    cause = error.__cause__ or error.__context__ or error
    if getattr(cause, "sqlite_errorcode", None) is not None:
        return cause.sqlite_errorcode & 0xFF  # the extended code's primary part
    if getattr(cause, "pgcode", None) is not None:
        return cause.pgcode
    if cause.args and isinstance(cause.args[0], int):
        return cause.args[0]
    return None


def failure(error):
    """The 503 that stands for ``error``, raised by peewee or its pool; None for one that is a bug (a 500).

    Busy (a lock, every pooled connection in use) is ``DatabaseBusy``; a full
    disk, and anything else that keeps the database from answering (refused
    or lost connections, a file that cannot be opened or read), is
    ``DatabaseUnavailable`` (README: Errors).
    """
    if isinstance(error, MaxConnectionsExceeded):
        return DatabaseBusy()
    if not isinstance(error, (peewee.OperationalError, peewee.InterfaceError, peewee.InternalError)):
        if type(error) is not peewee.DatabaseError:  # Integrity, Programming, Data, NotSupported errors
            return None
    code = error_code(error)
    if code == SQLITE_ERROR:
        # SQLite rolls a transaction back itself on a full disk or an I/O
        # error; peewee's ROLLBACK then fails with "no transaction is active"
        # while handling the error that says what happened.
        cause = error.__context__
        while cause is not None and not isinstance(cause, peewee.PeeweeException):
            cause = cause.__context__
        return failure(cause) if cause is not None else None
    if code in BUSY:
        return DatabaseBusy()
    if code in FULL:
        return DiskFull()
    return DatabaseUnavailable()


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
        version = (data_version, connection.total_changes)
        # Holding the connection (not its id) keeps a new one from passing for it.
        if connection is not self.connection or version != self.version or len(self.rows) >= self.LIMIT:
            self.connection, self.version, self.rows = connection, version, {}
        return self.rows


#: Key in ``flask.g`` of the rows this request may take from memory (see ``connect``).
READ_ROWS = "images_api_read_rows"


def lookup(model, field, value, for_update=False):
    """``model.get_or_none(field == value)``, with the SQL built once per database.

    For the lookups every request makes (the user by token, the image by id):
    peewee building the same SELECT again was most of an authorized GET. In a
    request on SQLite, a row read since the last write comes from memory
    (``ReadRows``). ``for_update`` locks the row until the transaction ends
    where the database can (SQLite's write transaction locks it all). The
    instance is built as peewee's own query builds it.
    """
    db = database.obj
    for_update = for_update and db.for_update
    key = (model, field.name, for_update)
    sql = db.lookup_sql.get(key)
    if sql is None:
        slot = "lookup value"
        query = model.select().where(field == slot)
        sql, params = (query.for_update() if for_update else query).sql()
        assert params == [slot], params
        db.lookup_sql[key] = sql
    # A value longer than its field allows names no row; keeping it would let
    # a client fill memory with junk ids.
    rows = g.get(READ_ROWS) if len(value) <= field.max_length else None
    if rows is not None and (key, value) in rows:
        row = rows[key, value]
    else:
        row = db.execute_sql(sql, (value,)).fetchone()
        if rows is not None:
            rows[key, value] = row
    if row is None:
        return None
    return model.from_row(row)


def kept(key):
    """What this request's thread kept under ``key`` (a tuple) since the database last changed; None off SQLite."""
    rows = g.get(READ_ROWS)
    return rows.get(key) if rows is not None else None


def keep(key, value):
    """Keep ``value`` under ``key`` on this thread until the database changes (SQLite; elsewhere nothing is kept)."""
    rows = g.get(READ_ROWS)
    if rows is not None:
        rows[key] = value


def snapshot(db):
    """A transaction in which every read of ``db`` sees one committed state, without holding up writers."""
    if isinstance(db, peewee.SqliteDatabase):
        return db.atomic(lock_type="DEFERRED")  # a WAL read snapshot, not the write lock
    return db.atomic(isolation_level="REPEATABLE READ")


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

    def __init__(self, threads):
        self.lock = threading.RLock()
        self.room = threading.BoundedSemaphore(max(1, threads - 1))
        self.since = None  # when the turn was taken; None while nobody holds it

    def stuck(self):
        """Whether the turn has been held past ``STUCK``: its writer waits on a lock held elsewhere."""
        since = self.since
        return since is not None and time.monotonic() - since > self.STUCK

    @contextlib.contextmanager
    def taken(self, db):
        """Hold the turn, then run the block in ``db.atomic()``, all within one ``WRITE_DEADLINE``."""
        deadline = time.monotonic() + WRITE_DEADLINE
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
                shortened = left < WRITE_DEADLINE - 0.01
                if shortened:
                    db.execute_sql(f"PRAGMA busy_timeout = {max(1, int(left * 1000))}")
                try:
                    with db.atomic():
                        yield
                finally:
                    if shortened:
                        db.execute_sql(f"PRAGMA busy_timeout = {WRITE_DEADLINE * 1000}")
            finally:
                self.since = None
                self.lock.release()
        finally:
            self.room.release()


@contextlib.contextmanager
def write_transaction():
    """``database.atomic()`` for a write; on SQLite within this process's ``WriteTurn``.

    Waiting longer than ``WRITE_DEADLINE`` in all, for the turn and for the
    database's own lock, is ``DatabaseBusy``. A write that fails on a full
    disk makes ``/healthz`` say so until one goes through.
    """
    db = database.obj
    # From here on this request reads from the database: inside the write,
    # what it changes must be read as it is now, and after it, as changed.
    g.pop(READ_ROWS, None)
    try:
        if db.write_turn is None:
            with db.atomic():
                yield
        else:
            with db.write_turn.taken(db):
                yield
    except peewee.PeeweeException as error:
        db.full = db.full or isinstance(failure(error), DiskFull)
        raise
    db.full = False
