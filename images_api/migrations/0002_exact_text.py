"""Text compared, kept unique and sorted by code point: binary collations on PostgreSQL and MariaDB/MySQL.

SQLite's columns compare so already (BINARY). PostgreSQL's "C" compares
bytes, which in UTF-8 is code point order; MariaDB's ``utf8mb4_nopad_bin``
compares code points and, unlike ``utf8mb4_bin``, counts trailing spaces. A
stricter collation can only tell apart values the old one took as equal, so
no unique key can break.
"""

from peewee import MySQLDatabase, PostgresqlDatabase

COLUMNS = {
    "images": {"id": 255, "provider": 64, "remote_user": 64, "name": 255},
    "users": {"name": 64, "token_hash": 64},
}


def up(migrator, db):
    if isinstance(db, PostgresqlDatabase):
        for table, columns in COLUMNS.items():
            changes = ", ".join(f'ALTER COLUMN "{name}" TYPE VARCHAR({length}) COLLATE "C"' for name, length in columns.items())
            db.execute_sql(f'ALTER TABLE "{table}" {changes}')
    elif isinstance(db, MySQLDatabase):
        for table in COLUMNS:
            db.execute_sql(f"ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin")
