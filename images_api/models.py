"""Peewee models and the database each app opens (contract: Resource, Persistence)."""

import contextlib
import threading
from urllib.parse import urlsplit

import peewee
from flask import current_app, g
from playhouse import db_url

#: SQLite settings for every connection: WAL lets readers run beside a writer,
#: ``synchronous=FULL`` makes a commit survive a crash (no speed bought with
#: durability), and the busy timeout makes writers queue instead of failing.
SQLITE_PRAGMAS = {"journal_mode": "wal", "synchronous": "full", "foreign_keys": 1}
SQLITE_TIMEOUT = 30  # seconds a writer waits for the lock before giving up

#: Collations that compare text by code point, so listings keep one order on
#: every database (contract: Routes, ``GET /v3/images``).
BINARY_COLLATIONS = {
    peewee.SqliteDatabase: "BINARY",
    peewee.PostgresqlDatabase: "C",
    peewee.MySQLDatabase: "utf8mb4_bin",
}


class AppDatabase(peewee.DatabaseProxy):
    """Stands for the database of the Flask app in context.

    Each app opens its own database in ``init_app``; resolving it per app, not
    once per process, keeps two apps in one process (tests, host apps) from
    writing to each other's files.
    """

    __slots__ = ()

    def __init__(self):
        pass

    @property
    def obj(self):
        return current_app.extensions["images_api"].database


database = AppDatabase()


class BaseModel(peewee.Model):
    class Meta:
        database = database


class Image(BaseModel):
    """A cloud machine image: where it lives and whom to log in as."""

    id = peewee.CharField(max_length=255, primary_key=True)
    provider = peewee.CharField(max_length=64, index=True)
    remote_user = peewee.CharField(max_length=64)
    name = peewee.CharField(max_length=255, default="")

    class Meta:
        table_name = "images"


class User(BaseModel):
    """An API user: a name, its policies and the SHA-256 of its one token."""

    name = peewee.CharField(max_length=64, unique=True)
    policies = peewee.TextField(default="")  # space-separated policy names
    token_hash = peewee.CharField(max_length=64, unique=True)

    class Meta:
        table_name = "users"

    @property
    def policy_set(self):
        """The user's policies as a frozenset of names."""
        return frozenset(self.policies.split())


def open_database(url):
    """Open the database at ``url`` (any scheme ``playhouse.db_url`` knows).

    Returns an unconnected ``peewee.Database``. SQLite gets WAL, full sync, a
    busy timeout and ``BEGIN IMMEDIATE`` writes, so concurrent writers across
    threads and processes wait their turn instead of failing with "database is
    locked" (contract: Persistence). Raises ``ValueError`` for a URL that names
    no known database, or an in-memory SQLite one.
    """
    params = {}
    sqlite = urlsplit(url).scheme.startswith("sqlite")
    if sqlite:
        params = {"pragmas": SQLITE_PRAGMAS, "timeout": SQLITE_TIMEOUT, "lock_type": "IMMEDIATE"}
    try:
        db = db_url.connect(url, **params)
    except RuntimeError as error:  # db_url's word for an unknown scheme
        raise ValueError(f"unsupported database URL {url!r}: {error}") from None
    # Each thread opens its own connection, and each connection to an
    # in-memory SQLite database would see an empty one of its own.
    if isinstance(db, peewee.SqliteDatabase) and (db.database in ("", ":memory:") or "mode=memory" in db.database):
        raise ValueError(f"in-memory SQLite ({url!r}) cannot be shared between threads; name a file")
    # SQLite takes one writer at a time and makes the others poll, sleeping
    # 1, 2, 5, ... 100 ms between tries; queueing this process's writers on a
    # lock first hands the turn on the moment a commit ends.
    db.write_lock = threading.RLock() if sqlite else None
    db.lookup_sql = {}  # (model, field name) -> SQL, see lookup()
    db.read_rows = ReadRows() if sqlite else None
    return db


class ReadRows(threading.local):
    """The rows ``lookup()`` read on this thread's SQLite connection, while no one has written since.

    ``PRAGMA data_version`` changes when any other connection, in this process
    or another, commits; ``total_changes`` when this one writes. Reading both
    at the start of a request is one query where the token's user and the
    image were two, and each query hands the GIL to another thread several
    times (issue 5). A write is seen by the next request, as without the
    rows: a reset token stops working at once (contract: Command line).
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


#: Key in ``flask.g`` of the rows this request may take from memory (see ``start_reads``).
READ_ROWS = "images_api_read_rows"


def start_reads():
    """Let this request's lookups use rows read earlier on its thread's connection, if still current.

    Called by the blueprint once its connection is open; raises
    ``peewee.OperationalError`` when the database cannot be read. Lookups
    outside a request (the CLI), and from ``write_transaction()`` on, query.
    """
    db = database.obj
    if db.read_rows is not None:
        g.setdefault(READ_ROWS, db.read_rows.current(db))


def lookup(model, field, value):
    """``model.get_or_none(field == value)``, with the SQL built once per database.

    For the lookups every request makes (the user by token, the image by id):
    peewee building the same SELECT again was most of an authorized GET. In a
    request, a row read since the last write comes from memory (``ReadRows``).
    The instance is a new one each time, as peewee's own query returns it:
    values through ``python_value``, nothing dirty.
    """
    db = database.obj
    key = (model, field.name)
    sql = db.lookup_sql.get(key)
    if sql is None:
        slot = "lookup value"
        sql, params = model.select().where(field == slot).sql()
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
    instance = model(__no_default__=1, **{f.name: f.python_value(v) for f, v in zip(model._meta.sorted_fields, row)})
    instance._dirty.clear()
    return instance


@contextlib.contextmanager
def write_transaction():
    """``database.atomic()`` for a write, entered by one thread of this process at a time on SQLite.

    Waiting longer than the busy timeout for the turn fails like a locked
    database (``OperationalError``, a 503; contract: Persistence).
    """
    db = database.obj
    # From here on this request reads from the database: inside the write,
    # what it changes must be read as it is now, and after it, as changed.
    g.pop(READ_ROWS, None)
    lock = db.write_lock  # None off SQLite
    if lock is not None and not lock.acquire(timeout=SQLITE_TIMEOUT):
        raise peewee.OperationalError("database is locked: no turn to write within the busy timeout")
    try:
        with db.atomic():
            yield
    finally:
        if lock is not None:
            lock.release()


def binary_order(field, db):
    """``field`` compared by code point on ``db`` (contract: ``GET /v3/images``)."""
    for kind, collation in BINARY_COLLATIONS.items():
        if isinstance(db, kind):
            return field.collate(collation)
    return field


def create_tables():
    """Create the missing tables on the database of the app in context."""
    database.create_tables([Image, User], safe=True)
