"""The API inside a host Flask app, under a URL prefix, and behind a reverse proxy."""

import json

import pytest
from flask import Flask, g
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

import images_api
from images_api import create_app
from images_api.state import api_state

pytestmark = pytest.mark.sqlite_only  # SQLite's own behaviour, or not about the database

IMAGE = {"id": "ami-1", "provider": "ec2", "remote_user": "ubuntu", "name": "one"}


@pytest.fixture
def host(config):
    """A host app with pages and error handlers of its own, and the API added."""
    app = Flask("host")
    app.config.update(config)

    @app.get("/")
    def index():
        return "host index"

    @app.errorhandler(404)
    def not_found(error):
        return "<h1>host page not found</h1>", 404

    @app.errorhandler(405)
    def not_allowed(error):
        return "<h1>host method not allowed</h1>", 405

    images_api.init_app(app)
    return app


def test_host_keeps_its_pages_and_error_pages(host):
    client = host.test_client()
    assert client.get("/").get_data(as_text=True) == "host index"
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.get_data(as_text=True) == "<h1>host page not found</h1>"
    response = client.post("/")
    assert response.status_code == 405
    assert response.get_data(as_text=True) == "<h1>host method not allowed</h1>"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v3/nope", 404),
        ("GET", "/v3", 404),
        ("GET", "/v3//images", 404),
        ("PATCH", "/v3/image/ami-1", 405),
        ("GET", "/v3/images", 401),
        ("GET", "/v3/image/missing", 401),
    ],
)
def test_errors_under_the_api_are_json_in_a_host(host, method, path, status):
    response = host.test_client().open(path, method=method)
    assert response.status_code == status
    assert response.content_type == "application/json"
    assert isinstance(response.get_json()["message"], str)


def test_api_works_in_a_host(host, admin_headers):
    client = host.test_client()
    response = client.post("/v3/image", json=IMAGE, headers=admin_headers)
    assert response.status_code == 200, response.get_json()
    assert client.get("/v3/image/ami-1", headers=admin_headers).get_json() == IMAGE
    response = client.get("/v3/image/missing", headers=admin_headers)
    assert (response.status_code, response.content_type) == (404, "application/json")


@pytest.fixture
def flaskr_host(config):
    """A host in flaskr's style: its own ``g.user``, a row of its own users, set before every request."""
    app = Flask("flaskr")
    app.config.update(config)

    @app.before_request
    def load_logged_in_user():
        g.user = {"id": 1, "username": "flaskr-user"}

    @app.get("/whoami")
    def whoami():
        return {"user": g.user}

    images_api.init_app(app)
    return app


@pytest.mark.parametrize("headers, status", [({}, 401), (None, 200)])
def test_the_api_keeps_its_user_apart_from_the_hosts_g_user(flaskr_host, admin_headers, headers, status, caplog):
    client = flaskr_host.test_client()
    resp = client.get("/v3/images", headers=admin_headers if headers is None else headers)
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert client.get("/whoami").get_json() == {"user": {"id": 1, "username": "flaskr-user"}}
    assert f"GET /v3/images {status}" in caplog.text
    assert ("user=admin" in caplog.text) == (status == 200)


def test_host_cli_has_user_commands(host, admin_headers):
    result = host.test_cli_runner().invoke(args=["user", "add", "bob", "--policy", "read_images"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    client = host.test_client()
    assert client.get("/v3/images", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_host_cli_refuses_database_option(host):
    result = host.test_cli_runner().invoke(args=["user", "list", "--database", "sqlite:///elsewhere.db"])
    assert result.exit_code == 2
    assert "IMAGES_API_DATABASE_URL" in result.output


def test_two_apps_in_one_process_keep_their_own_databases(tmp_path, admin_headers):
    first, second = (
        create_app(
            {
                "IMAGES_API_DATABASE_URL": f"sqlite:///{tmp_path / name}",
                "IMAGES_API_ADMIN_TOKEN": admin_headers["Authorization"].split()[1],
            }
        )
        for name in ("first.db", "second.db")
    )
    assert first.test_client().post("/v3/image", json=IMAGE, headers=admin_headers).status_code == 200
    assert first.test_client().get("/v3/images", headers=admin_headers).get_json() == [IMAGE]
    assert second.test_client().get("/v3/images", headers=admin_headers).get_json() == []


@pytest.fixture
def mounted(app):
    """The standalone app mounted at ``/catalogue`` with werkzeug's DispatcherMiddleware."""

    def root(environ, start_response):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"root"]

    return Client(DispatcherMiddleware(root, {"/catalogue": app}))


def test_access_lines_under_a_prefix_show_the_path_the_client_sent(mounted, admin_headers, caplog):
    assert mounted.get("/catalogue/v3/images?limit=5", headers=admin_headers).status_code == 200
    assert "GET /catalogue/v3/images?limit=5 200" in caplog.text


def test_prefix_routes_location_and_link(mounted, admin_headers):
    for number in range(3):
        body = json.dumps({**IMAGE, "id": f"ami-{number}"})
        response = mounted.post("/catalogue/v3/image", data=body, headers={**admin_headers, "Content-Type": "application/json"})
        assert response.status_code == 200
    assert response.headers["Location"] == "http://localhost/catalogue/v3/image/ami-2"
    response = mounted.get("/catalogue/v3/images?limit=2", headers=admin_headers)
    assert response.headers["Link"] == '<http://localhost/catalogue/v3/images?limit=2&marker=ami-1>; rel="next"'
    response = mounted.get("/catalogue/v3/images?limit=2&marker=ami-1", headers=admin_headers)
    assert [image["id"] for image in response.json] == ["ami-2"]
    assert "Link" not in response.headers
    assert mounted.get("/catalogue/healthz").json == {"status": "ok"}
    assert mounted.get("/v3/images", headers=admin_headers).get_data() == b"root"


PROXY_HEADERS = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "images.example.com",
    "X-Forwarded-Prefix": "/catalogue",
}


@pytest.mark.parametrize(
    ("trusted", "peer", "location"),
    [
        ("127.0.0.1", "127.0.0.1", "https://images.example.com/catalogue/v3/image/ami-1"),
        ("10.0.0.0/8", "10.1.2.3", "https://images.example.com/catalogue/v3/image/ami-1"),
        ("127.0.0.1", "192.0.2.7", "http://localhost/v3/image/ami-1"),
        ("", "127.0.0.1", "http://localhost/v3/image/ami-1"),
    ],
)
def test_forwarded_headers_count_only_from_the_trusted_proxy(config, admin_headers, trusted, peer, location):
    app = create_app({**config, "IMAGES_API_TRUSTED_PROXY": trusted})
    response = app.test_client().post(
        "/v3/image", json=IMAGE, headers={**admin_headers, **PROXY_HEADERS}, environ_base={"REMOTE_ADDR": peer}
    )
    assert response.status_code == 200
    assert response.headers["Location"] == location


def test_health_needs_no_credentials(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_health_is_503_when_the_database_does_not_answer(app, tmp_path):
    database = api_state(app).database
    database.init(str(tmp_path / "missing-dir" / "images.db"))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.content_type == "application/json"
    assert "message" in response.get_json()
