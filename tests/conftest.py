"""Fixtures: an app on an empty database of each backend, its client, users and tokens, real servers.

Every test that uses ``database_url`` runs on SQLite, and on PostgreSQL and
MariaDB/MySQL when ``IMAGES_API_TEST_POSTGRESQL_URL`` / ``IMAGES_API_TEST_MYSQL_URL``
name a server (README: Development). A test or module marked ``sqlite_only``
runs on SQLite alone.
"""

import os

import pytest
from click.testing import CliRunner

from images_api import create_app, opening
from images_api.cli import main
from servers import SERVER_BACKENDS, Relay, ServerDatabase
from support import APP_PY, REPO, SEED, SERVER_THREADS, ThreadServer, assert_error, listing, quiet_environ, start_server, wait_for

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
    open_database = opening.open_database

    def recording(*args, **kwargs):
        database = open_database(*args, **kwargs)
        opened.append(database)
        return database

    monkeypatch.setattr(opening, "open_database", recording)
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
def first_start(app):
    """The test database after ``app``'s first start, which created the admin (README: Users and tokens).

    Fixtures that make users depend on it: a user made before the first start
    would keep it from creating the admin.
    """


@pytest.fixture
def make_user(first_start, cli):
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
def refused(unchanged, admin_token):
    """``refused(resp, status, *secrets)``: ``resp`` is that error (``assert_error``), showing neither the
    secrets nor the admin's token, and the store still holds the seed image alone; returns its body."""

    def check(resp, status, *secrets):
        body = assert_error(resp, status, admin_token, *secrets)
        unchanged()
        return body

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
def serve(config):
    """``serve(threads=SERVER_THREADS, **settings)``: waitress in a thread for a new app on the test's
    database (``TESTING`` off, as deployed); returns its ``ThreadServer``, stopped at teardown."""
    servers = []

    def start(threads=SERVER_THREADS, **settings):
        server = ThreadServer(create_app({**config, "TESTING": False, **settings}), threads=threads)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def spawn(tmp_path, admin_token):
    """``spawn(database_url, command=APP_PY, cwd=REPO, wait=True, log=None, **environ)``: the one launcher of
    server processes. Runs ``command`` (``python app.py`` by default) on a free port until the test ends, with
    ``database_url``, the admin token and ``environ`` in its environment, its output to ``log`` (a file of its
    own by default); waits until it listens unless told not to. Returns its ``Process``."""
    processes = []

    def start(database_url, command=APP_PY, *, cwd=REPO, wait=True, log=None, **environ):
        log = log or tmp_path / f"server-{len(processes)}.log"
        environ = quiet_environ(IMAGES_API_DATABASE_URL=database_url, IMAGES_API_ADMIN_TOKEN=admin_token, **environ)
        process = start_server(command, log, environ, cwd)
        processes.append(process)
        if wait:
            wait_for(process)
        return process

    yield start
    for process in processes:
        process.kill()
