"""Fixtures: an app on a temp-file SQLite database, its client, users and tokens."""

import os

import pytest
from click.testing import CliRunner

from images_api import create_app
from images_api.cli import main

ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdefghij"


@pytest.fixture
def database_url(tmp_path):
    """A SQLite URL for a file of its own (``:memory:`` would be one database per connection)."""
    return f"sqlite:///{tmp_path / 'images.db'}"


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
def auth():
    """``auth(token)``: the headers of a Bearer request."""

    def headers(token):
        return {"Authorization": f"Bearer {token}"}

    return headers


@pytest.fixture
def admin_headers(auth, admin_token):
    return auth(admin_token)
