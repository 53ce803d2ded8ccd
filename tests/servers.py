"""Databases of this test run on the PostgreSQL and MariaDB/MySQL servers the environment names."""

import uuid
from urllib.parse import urlsplit, urlunsplit

from peewee import PostgresqlDatabase
from playhouse import db_url

#: Backend name -> the variable naming a server (a URL of any database on it, as an admin user).
SERVER_BACKENDS = {"postgresql": "IMAGES_API_TEST_POSTGRESQL_URL", "mysql": "IMAGES_API_TEST_MYSQL_URL"}


class ServerDatabase:
    """A database of its own on the server at ``admin_url``, named for this run, until ``drop()``.

    ``url`` is the URL the service uses for it; ``empty()`` deletes every row
    of every table, so that each test starts from nothing, faster than a
    database per test.
    """

    def __init__(self, admin_url):
        self.name = f"images_api_test_{uuid.uuid4().hex[:12]}"
        self.admin = db_url.connect(admin_url)
        self.admin.connect()
        self.admin.execute_sql(f"CREATE DATABASE {self.name}")
        parts = urlsplit(admin_url)
        self.url = urlunsplit(parts._replace(path="/" + self.name))
        self.database = db_url.connect(self.url)

    def empty(self):
        """Delete every row of every table of the database."""
        with self.database.connection_context():
            opening, closing = self.database.quote
            for table in self.database.get_tables():
                self.database.execute_sql(f"DELETE FROM {opening}{table}{closing}")

    def drop(self):
        """Drop the database, closing whatever connections are still open to it."""
        self.database.close()
        force = " WITH (FORCE)" if isinstance(self.admin, PostgresqlDatabase) else ""
        self.admin.execute_sql(f"DROP DATABASE IF EXISTS {self.name}{force}")
        self.admin.close()
