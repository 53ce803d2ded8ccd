"""Opening the database a URL names (README: Databases, Settings).

``open_database`` turns an ``IMAGES_API_DATABASE_URL`` into a peewee
database with the service's settings: SQLite through APSW (``sqlite.py``),
PostgreSQL and MariaDB/MySQL through a pool (``pools.py``). What can go
wrong while opening one is a one-line ``SettingError``. ``db.py`` hands the
opened database out at request time.
"""

import contextlib
import os
from urllib.parse import parse_qsl, urlsplit

import apsw
import peewee
from playhouse import db_url
from playhouse.pool import MaxConnectionsExceeded, PooledDatabase

from .pools import POOLS
from .schema import SchemaError
from .settings import SettingError, masked_url
from .sqlite import ReadRows, SqliteDatabase, WriteTurn

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
    db.wal_files = None  # per thread: its connection and the -wal and -shm files it found, in WAL mode
    db.file_trusted_until = 0.0  # time.monotonic() until which reads skip check_file()
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
