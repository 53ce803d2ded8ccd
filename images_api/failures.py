"""The ways a database fails a request, as the 503s the API answers (README: Errors, Storage).

``failure`` reads the driver's own code (SQLite's result code, PostgreSQL's
SQLSTATE, MariaDB's error number), never the wording of a message.
"""

import peewee
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import ServiceUnavailable


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
    if getattr(cause, "extendedresult", None) is not None:  # APSW
        return cause.extendedresult & 0xFF  # the extended code's primary part
    if getattr(cause, "sqlite_errorcode", None) is not None:  # sqlite3 (sqlite+pool)
        return cause.sqlite_errorcode & 0xFF
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
