"""Pools of PostgreSQL and MariaDB/MySQL connections that check a connection only when it needs it (README: Databases).

``playhouse.pool`` checks each connection it hands out with a round trip (a
``SELECT 1``, a ping): a fifth of GET one's throughput on PostgreSQL
(bench/README.md). A server that ends a session (a restart, a killed session,
``idle_session_timeout``, ``wait_timeout``) sends its last words or just
closes its end, and either way the client's socket turns readable; an idle
session in good order has nothing to read. So the round trip is made only
for a connection whose socket has something to say, or that is not idle.
"""

import select

from playhouse.pool import PooledMySQLDatabase, PooledPostgresqlDatabase


def has_input(fd):
    """Whether the socket ``fd`` has something to read, or its peer closed it (``poll``, not ``select``: fds past 1024)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class PostgresqlPool(PooledPostgresqlDatabase):
    """``playhouse.pool``'s PostgreSQL pool, checking a connection with ``SELECT 1`` only when the server has spoken."""

    def _is_closed(self, conn):
        adapter = self._adapter
        if conn.closed or adapter.txn_status(conn) != adapter.txn_idle or has_input(conn.fileno()):
            return super()._is_closed(conn)
        return False


class MySQLPool(PooledMySQLDatabase):
    """``playhouse.pool``'s MariaDB/MySQL pool, pinging a connection only when the server has spoken or closed it."""

    def _is_closed(self, conn):
        sock = getattr(conn, "_sock", None)  # PyMySQL's; a driver without one is pinged every time
        if sock is None or has_input(sock.fileno()):
            return super()._is_closed(conn)
        return False


#: URL scheme -> pool class, for the schemes ``opening.open_database`` takes.
POOLS = {"postgres+pool": PostgresqlPool, "postgresql+pool": PostgresqlPool, "mysql+pool": MySQLPool}
