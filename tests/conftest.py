"""Fixtures: an app on an empty database of each backend, its client, users and tokens.

Every test that uses ``database_url`` runs on SQLite, and on PostgreSQL and
MariaDB/MySQL when ``IMAGES_API_TEST_POSTGRESQL_URL`` / ``IMAGES_API_TEST_MYSQL_URL``
name a server (README: Development). A test or module marked ``sqlite_only``
runs on SQLite alone.
"""

import os

import pytest
from click.testing import CliRunner

from images_api import create_app, db
from images_api.cli import main
from servers import SERVER_BACKENDS, Relay, ServerDatabase
from support import SEED, TIMEOUT, listing, quiet_environ, start_app_py, wait_for

ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdefghij"
#: Read before ``clean_environ`` hides every ``IMAGES_API_*`` variable from the tests.
SERVER_URLS = {name: os.environ.get(variable) for name, variable in SERVER_BACKENDS.items()}


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: the test is about SQLite; it runs on no other backend")
    config.addinivalue_line("markers", "server_only: the test is about database servers; it runs on no SQLite file")


def pytest_generate_tests(metafunc):
    """Run each test that uses ``backend`` once per backend (SQLite alone where marked ``sqlite_only``)."""
    if "backend" not in metafunc.fixturenames:
        return
    marked = metafunc.definition.get_closest_marker
    params = [] if marked("server_only") else [pytest.param("sqlite", id="sqlite")]
    if not marked("sqlite_only"):
        for name, variable in SERVER_BACKENDS.items():
            reason = f"{variable} names no {name} server"
            marks = () if SERVER_URLS[name] else pytest.mark.skip(reason=reason)
            params.append(pytest.param(name, id=name, marks=marks))
    metafunc.parametrize("backend", params)


@pytest.fixture(scope="session")
def server_databases():
    """One database per server backend for this run, created on first use and dropped at the end."""
    opened = {}
    yield opened
    for server in opened.values():
        server.drop()


@pytest.fixture
def server_database(backend, server_databases):
    """This run's ``ServerDatabase`` on the backend's server, emptied; None on SQLite."""
    if backend == "sqlite":
        return None
    if backend not in server_databases:
        server_databases[backend] = ServerDatabase(SERVER_URLS[backend])
    server = server_databases[backend]
    server.empty()
    return server


@pytest.fixture
def database_url(server_database, tmp_path):
    """The URL of an empty database: a SQLite file of its own, or this run's server database."""
    if server_database is None:
        return f"sqlite:///{tmp_path / 'images.db'}"
    return server_database.url


@pytest.fixture
def relay(server_database):
    """A ``Relay`` to the test's database server, to cut and restore; ``relay.url(database_url)`` goes through it."""
    relay = Relay(server_database.host, server_database.port)
    yield relay
    relay.cut()


@pytest.fixture(autouse=True)
def close_pools(monkeypatch):
    """Close the pools of the apps a test built, so that a run never holds more connections than one test."""
    opened = []
    open_database = db.open_database

    def recording(*args, **kwargs):
        database = open_database(*args, **kwargs)
        opened.append(database)
        return database

    monkeypatch.setattr(db, "open_database", recording)
    yield
    for database in opened:
        if database.pooled:
            database.close_all()


@pytest.fixture
def admin_token():
    return ADMIN_TOKEN


@pytest.fixture
def config(database_url, admin_token):
    """The config mapping ``app`` is built from; tests may change it before using ``app``."""
    return {
        "TESTING": True,
        "IMAGES_API_DATABASE_URL": database_url,
        "IMAGES_API_ADMIN_TOKEN": admin_token,
    }


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch):
    """Keep the developer's own ``IMAGES_API_*`` variables out of every test."""
    for name in list(os.environ):
        if name.startswith("IMAGES_API_"):
            monkeypatch.delenv(name)


@pytest.fixture
def app(config):
    return create_app(config)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def cli(database_url):
    """Run ``images-api ARGS... --database URL``; returns click's ``Result``."""
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, [*args, "--database", database_url])

    return run


@pytest.fixture
def make_user(app, cli):
    """Create a user with the given policies through the CLI; returns its token."""

    def make(name, *policies):
        args = ["user", "add", name]
        for policy in policies:
            args += ["--policy", policy]
        result = cli(*args)
        assert result.exit_code == 0, result.output
        return result.stdout.strip()

    return make


@pytest.fixture
def seeded(client, admin_headers):
    """``SEED`` stored through the API."""
    resp = client.post("/v3/image", json=SEED, headers=admin_headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)


@pytest.fixture
def unchanged(seeded, client, admin_headers):
    """``unchanged()`` asserts that the store still holds the seed image and nothing else."""

    def check():
        assert listing(client, admin_headers) == [SEED]

    return check


@pytest.fixture
def auth():
    """``auth(token)``: the headers of a Bearer request."""

    def headers(token):
        return {"Authorization": f"Bearer {token}"}

    return headers


@pytest.fixture
def admin_headers(auth, admin_token):
    return auth(admin_token)


@pytest.fixture
def spawn(tmp_path, admin_token):
    """``spawn(database_url, wait=True)``: run ``python app.py`` on a free port until the test ends; returns its ``Process``."""
    processes = []
    environ = quiet_environ(IMAGES_API_ADMIN_TOKEN=admin_token)

    def start(database_url, wait=True):
        process = start_app_py(database_url, tmp_path / f"server-{len(processes)}.log", environ)
        processes.append(process)
        if wait:
            wait_for(process)
        return process

    yield start
    for process in processes:
        if process.popen.poll() is None:
            process.popen.kill()
        process.popen.wait(timeout=TIMEOUT)
