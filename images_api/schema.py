"""The schema over time: migrations shipped in the package, applied by ``playhouse.migrations`` (README: Upgrading).

``ensure_current`` runs at every start: it upgrades an out-of-date database
(or refuses, with ``IMAGES_API_AUTO_UPGRADE=0``) and refuses one that a newer
images-api has upgraded. Several instances starting at once on one database
take turns on a lock, so each migration is applied once.
"""

import contextlib
from pathlib import Path

import peewee
from playhouse.migrations import Runner

DIRECTORY = Path(__file__).resolve().parent / "migrations"
HISTORY = "schema_migration"  # the table where peewee's runner records applied migrations
LOCK_NAME = "images_api_schema"  # MariaDB/MySQL GET_LOCK name
LOCK_KEY = 0x696D61676573  # PostgreSQL advisory lock key: "images" in hex
LOCK_TIMEOUT = 300  # seconds an instance waits for another's upgrade


class SchemaError(Exception):
    """The database's schema is not one this images-api can use; the message says what to do."""


def runner(db):
    """peewee's migration runner for ``db`` (a connected database) and the package's migrations."""
    return Runner(db, str(DIRECTORY), table_name=HISTORY)


def status(db):
    """The migrations of ``db`` as three lists of names: applied, pending, and unknown to this version."""
    rows = runner(db).status()
    applied = [m.name for m in rows if m.applied and m.path is not None]
    pending = [m.name for m in rows if not m.applied]
    unknown = [m.name for m in rows if m.path is None]
    return applied, pending, unknown


@contextlib.contextmanager
def upgrade_turn(db):
    """Hold ``db``'s schema lock: one instance upgrades at a time, the others wait and then find nothing to do.

    SQLite: one write transaction around the whole upgrade (its DDL is
    transactional). PostgreSQL: a session advisory lock. MariaDB/MySQL: a
    named lock (``GET_LOCK``).
    """
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            yield
        finally:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    elif isinstance(db, peewee.MySQLDatabase):
        if not db.execute_sql("SELECT GET_LOCK(%s, %s)", (LOCK_NAME, LOCK_TIMEOUT)).fetchone()[0]:
            raise SchemaError(f"another instance held the schema lock for {LOCK_TIMEOUT} s; try again")
        try:
            yield
        finally:
            db.execute_sql("SELECT RELEASE_LOCK(%s)", (LOCK_NAME,))
    else:
        with db.atomic():
            yield


def check_known(unknown):
    """Raise ``SchemaError`` when the database has migrations this version does not know (``unknown``)."""
    if unknown:
        raise SchemaError(
            f"the database's schema is newer than this images-api knows (it has {', '.join(unknown)}): "
            "run the images-api that upgraded it, or a later one"
        )


def upgrade(db):
    """Apply ``db``'s pending migrations in order; returns their names (none when it is current)."""
    with upgrade_turn(db):
        check_known(status(db)[2])
        return runner(db).up()


def ensure_current(db, auto_upgrade):
    """At start: bring ``db`` (connected) to the current schema, or raise ``SchemaError`` saying why not.

    With ``auto_upgrade`` off, pending migrations are an error naming the
    command that applies them.
    """
    applied, pending, unknown = status(db)
    check_known(unknown)
    if pending and not auto_upgrade:
        raise SchemaError(
            f"the database's schema is out of date ({len(pending)} pending: {', '.join(pending)}) and "
            "IMAGES_API_AUTO_UPGRADE is off; run: images-api db upgrade --database URL"
        )
    if pending:
        upgrade(db)
