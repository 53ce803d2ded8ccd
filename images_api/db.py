"""The database at request time (README: Databases, Storage, Scaling out).

Hands the database out as flaskr's ``db.py`` does: the database of each
app, a connection for each request (kept per thread on SQLite, taken from a
bounded pool on PostgreSQL and MariaDB/MySQL), the lookups every request
makes, writes and the health query. Opening it from its URL is in
``opening.py``, what only SQLite needs in ``sqlite.py``, the pools in
``pools.py``, and the 503s a failing database is answered with in
``failures.py``.
"""

import contextlib

import peewee
from flask import current_app, g
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import ServiceUnavailable

from .failures import DiskFull, DatabaseUnavailable, failure
from .schema import HISTORY
from .sqlite import check_file
from .state import api_state


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


def connect(check_every_time=False):
    """Before-request hook of the API: this request's connection, and the rows it may take from memory.

    SQLite: each thread opens its connection on its first request and keeps
    it (opening one per request, pragmas and WAL files, was a third of an
    authorized GET); ``check_file`` looks at its files, ``every_time`` when
    ``check_every_time``. Server databases: a connection from the pool,
    which replaces one the server has closed; ``release`` gives it back.
    """
    db = database.obj
    db.connect(reuse_if_open=True)
    check_file(db, every_time=check_every_time)
    if db.read_rows is not None:
        g.setdefault(READ_ROWS, db.read_rows.current(db))


def release(exc=None):
    """Teardown hook of a pooled database: give the connection back to the pool (one the server closed is dropped)."""
    db = api_state(current_app).database
    if not db.is_closed():
        db.close()


def health():
    """Whether the database answers a query, for ``/healthz``: None, or the ``ServiceUnavailable`` to answer.

    The query reads a table (the schema's history), so that a file that can
    be opened but not read is reported too.
    """
    if database.obj.full:
        return DiskFull()
    try:
        connect(check_every_time=True)
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
                # With the write lock held: the file this write goes to is
                # the one the service opened, checked every time.
                check_file(db, every_time=True)
                yield
    except peewee.PeeweeException as error:
        db.full = db.full or isinstance(failure(error), DiskFull)
        raise
    db.full = False
