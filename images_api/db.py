"""The database at request time (README: Databases, Storage, Scaling out).

One module opens it and hands it out, as flaskr's ``db.py`` does: the
database of each app, a connection for each request (kept per thread on
SQLite, taken from a bounded pool on PostgreSQL and MariaDB/MySQL), the
lookups every request makes, writes and the health query. What only SQLite
needs is in ``sqlite.py``, the pools in ``pools.py``, and the 503s a failing
database is answered with in ``failures.py``.
"""

import contextlib
import os
from urllib.parse import parse_qsl, urlsplit

import apsw
import peewee
from flask import current_app, g
from playhouse import db_url
from playhouse.pool import MaxConnectionsExceeded, PooledDatabase
from werkzeug.exceptions import ServiceUnavailable

from .failures import DiskFull, DatabaseUnavailable, failure
from .pools import POOLS
from .schema import HISTORY, SchemaError
from .settings import SettingError, masked_url
from .sqlite import ReadRows, SqliteDatabase, WriteTurn, check_file
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
        elif parts.scheme == "sqlite":
            params["flags"] = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE | apsw.SQLITE_OPEN_URI
    elif family in SERVER_FAMILIES:
        if not parts.scheme.endswith("+pool"):
            url = f"{family}+pool{url[len(parts.scheme):]}"
        params = {"max_connections": connections, "timeout": WRITE_DEADLINE, **server_options(family)}
    params = {key: value for key, value in params.items() if key not in given}
    scheme = url.partition(":")[0]
    try:
        if scheme == "sqlite":
            db = SqliteDatabase(**{**db_url.parse(url), **params})
        elif scheme in POOLS:
            options = db_url.parse(url, unquote_user=True, unquote_password=True)
            if not options["database"]:
                raise ValueError(f"it names no database: the URL ends in its name ({family}://user@host/images)")
            db = POOLS[scheme](**{**options, **params})
        else:
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
    db.write_turn = WriteTurn(connections, WRITE_DEADLINE) if sqlite else None
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
