"""Databases of this test run on the PostgreSQL and MariaDB/MySQL servers the environment names."""

import contextlib
import socket
import threading
import uuid
from urllib.parse import urlsplit, urlunsplit

from peewee import PostgresqlDatabase
from playhouse import db_url

from images_api.schema import HISTORY

#: Backend name -> the variable naming a server (a URL of any database on it, as an admin user).
SERVER_BACKENDS = {"postgresql": "IMAGES_API_TEST_POSTGRESQL_URL", "mysql": "IMAGES_API_TEST_MYSQL_URL"}
DEFAULT_PORTS = {"postgres": 5432, "postgresql": 5432, "mysql": 3306}


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
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or DEFAULT_PORTS[parts.scheme.partition("+")[0]]
        self.database = db_url.connect(self.url)

    def empty(self):
        """Delete every row of every table of the database but the schema's history, which stays current."""
        with self.database.connection_context():
            opening, closing = self.database.quote
            for table in self.database.get_tables():
                if table != HISTORY:
                    self.database.execute_sql(f"DELETE FROM {opening}{table}{closing}")

    def sessions(self):
        """How many sessions are connected to the database (the admin's own is connected to another)."""
        if isinstance(self.admin, PostgresqlDatabase):
            sql = "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s"
        else:
            sql = "SELECT COUNT(*) FROM information_schema.processlist WHERE db = %s"
        return self.admin.execute_sql(sql, (self.name,)).fetchone()[0]

    def drop(self):
        """Drop the database, closing whatever connections are still open to it."""
        self.database.close()
        force = " WITH (FORCE)" if isinstance(self.admin, PostgresqlDatabase) else ""
        self.admin.execute_sql(f"DROP DATABASE IF EXISTS {self.name}{force}")
        self.admin.close()


def kill_sessions(admin, name):
    """End, from the server's side, every session connected to database ``name`` but ``admin``'s own.

    As an administrator's kill, a restart or an idle timeout would end them.
    """
    if isinstance(admin, PostgresqlDatabase):
        # With a timeout (PostgreSQL 14+) it returns once each session has
        # ended: without one it only signals, and the pool's check before
        # the next query could still find a session alive that then died.
        admin.execute_sql(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        return
    own = admin.execute_sql("SELECT CONNECTION_ID()").fetchone()[0]
    sessions = admin.execute_sql("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> %s", (name, own))
    for (session,) in sessions.fetchall():
        admin.execute_sql(f"KILL {int(session)}")


class Relay:
    """A TCP relay from a free port of 127.0.0.1 to a database server, which a test can cut and restore.

    ``cut()`` closes every relayed connection and refuses new ones, as a
    server that is restarting or out of reach does; ``restore()`` relays
    again on the same port. ``url(url)`` is ``url`` pointed at the relay.
    """

    def __init__(self, host, port):
        self.target = (host, port)
        self.lock = threading.Lock()
        self.connections = set()
        self.listener = None
        self.port = 0
        self.restore()

    def url(self, url):
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        return urlunsplit(parts._replace(netloc=f"{credentials}{'@' if credentials else ''}127.0.0.1:{self.port}"))

    def restore(self):
        """Accept and relay connections (again) on the relay's port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener, self.port = listener, listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self):
        """Refuse new connections and close every relayed one."""
        with contextlib.suppress(OSError):  # already cut
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting on it
        self.listener.close()
        self.drop()

    def drop(self):
        """Close every relayed connection, leaving the relay accepting new ones."""
        with self.lock:
            connections, self.connections = self.connections, set()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.connections.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
