"""A database server that ends sessions, goes out of reach and comes back (README: Errors, Scaling out)."""

import pytest
from peewee import PostgresqlDatabase
from servers import kill_sessions
from support import ROUTES, SEED, assert_error, route_params, wait_until

from images_api import create_app, opening

pytestmark = pytest.mark.server_only


@pytest.fixture
def relayed(config, relay, database_url, admin_headers):
    """A client of an app whose database connections go through ``relay``, with the seed image stored."""
    client = create_app({**config, "IMAGES_API_DATABASE_URL": relay.url(database_url)}).test_client()
    assert client.post("/v3/image", json=SEED, headers=admin_headers).status_code == 200
    return client


def test_sessions_the_server_ended_are_replaced_before_use(client, admin_headers, server_database):
    assert client.post("/v3/image", json=SEED, headers=admin_headers).status_code == 200
    for _ in range(3):
        kill_sessions(server_database.admin, server_database.name)
        assert client.get("/v3/images", headers=admin_headers).get_json() == [SEED]
        assert client.get("/healthz").status_code == 200


def test_connections_cut_under_the_app_are_replaced_before_use(relayed, relay, admin_headers):
    relay.drop()
    assert relayed.get("/v3/image/ami-seed", headers=admin_headers).status_code == 200
    relay.drop()
    assert relayed.put("/v3/image/ami-seed", json={"name": "kept"}, headers=admin_headers).status_code == 200
    assert relayed.get("/v3/image/ami-seed", headers=admin_headers).get_json()["name"] == "kept"


@pytest.mark.parametrize("route", route_params(ROUTES))
def test_out_of_reach_is_503_with_retry_after_then_recovers(relayed, relay, admin_headers, route):
    relay.cut()
    body = assert_error(route.open(relayed, admin_headers), 503)
    assert body["message"] == "The database is unavailable; retry shortly."
    assert route.open(relayed, admin_headers).headers["Retry-After"] == "5"
    assert_error(relayed.get("/healthz"), 503)
    relay.restore()
    assert relayed.get("/healthz").status_code == 200
    assert route.open(relayed, admin_headers).status_code == 200


def test_nothing_changes_while_out_of_reach(relayed, relay, admin_headers):
    relay.cut()
    for route in ROUTES:
        assert route.open(relayed, admin_headers).status_code == 503
    relay.restore()
    assert relayed.get("/v3/images", headers=admin_headers).get_json() == [SEED]


def test_a_new_app_leaves_no_connection_open(config, server_database):
    """A server that forks workers after loading the app (gunicorn --preload) must not hand them one connection."""
    create_app(config)
    wait_until(lambda: server_database.sessions() == 0)  # the server ends a closed session a moment later



@pytest.fixture
def short_deadline(monkeypatch):
    """The write deadline is one second for the apps the test builds."""
    monkeypatch.setattr(opening, "WRITE_DEADLINE", 1)


def test_a_lock_held_past_the_deadline_is_503_busy_then_writes_go_through(short_deadline, config, admin_headers, server_database):
    client = create_app(config).test_client()
    holder = server_database.database
    with holder.connection_context():
        if isinstance(holder, PostgresqlDatabase):
            with holder.atomic():
                holder.execute_sql("LOCK TABLE images IN ACCESS EXCLUSIVE MODE")
                resp = client.post("/v3/image", json=SEED, headers=admin_headers)
        else:
            holder.execute_sql("LOCK TABLES images WRITE")
            try:
                resp = client.post("/v3/image", json=SEED, headers=admin_headers)
            finally:
                holder.execute_sql("UNLOCK TABLES")
    assert assert_error(resp, 503)["message"] == "The database is busy; retry shortly."
    assert resp.headers["Retry-After"] == "1"
    assert client.post("/v3/image", json=SEED, headers=admin_headers).status_code == 200
