"""Peewee models and the database each app opens (contract: Resource, Persistence)."""

import contextlib
import threading
from urllib.parse import urlsplit

import peewee
from flask import current_app
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
    return db


def lookup(model, field, value):
    """``model.get_or_none(field == value)``, with the SQL built once per database.

    For the lookups every request makes (the user by token, the image by id):
    peewee building the same SELECT again was most of an authorized GET. The
    instance is what peewee's own query returns: values through
    ``python_value``, nothing dirty.
    """
    db = database.obj
    key = (model, field.name)
    sql = db.lookup_sql.get(key)
    if sql is None:
        slot = "lookup value"
        sql, params = model.select().where(field == slot).sql()
        assert params == [slot], params
        db.lookup_sql[key] = sql
    row = db.execute_sql(sql, (value,)).fetchone()
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
    lock = getattr(db, "write_lock", None)
    if lock is None:
        with db.atomic():
            yield
        return
    if not lock.acquire(timeout=SQLITE_TIMEOUT):
        raise peewee.OperationalError("database is locked: no turn to write within the busy timeout")
    try:
        with db.atomic():
            yield
    finally:
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
