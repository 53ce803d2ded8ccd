"""The README's error table (README: Errors), row by row and in its order: which check answers first.

Every test starts from one stored image (``SEED``) and ends by checking through the
list route that a refused request stored, changed and deleted nothing. Who may call
what (401, 403) is in test_auth.py; the rules of bodies and queries (400), in
test_validation.py.
"""

import base64
import contextlib
import io
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import BODY_ROUTES, ITEM_ROUTES, JSON, NEW, POLICIES, ROUTES, SEED, allow_header, assert_error, listing, route_params
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from images_api import sqlite
from images_api.parsing import MAX_BODY
from images_api.state import api_state


@pytest.fixture
def lacking(make_user, auth):
    """``lacking(policy)``: headers of a user holding every policy except that one."""

    def headers(policy):
        others = [p for p in POLICIES if p != policy]
        return auth(make_user("lacking_" + policy, *others))

    return headers


def padded(body, size):
    """``body`` as JSON padded with trailing spaces to exactly ``size`` bytes."""
    data = json.dumps(body).encode()
    assert len(data) <= size
    return data + b" " * (size - len(data))


#: Bodies over 64 KiB, each as a function of the route it is sent to.
OVERSIZED = {
    "valid-padded": lambda route: padded(route.body, MAX_BODY + 1),
    "invalid-json": lambda route: b"{" + b"x" * MAX_BODY,
    "not-utf8": lambda route: b'{"name": "' + b"\xff" * MAX_BODY + b'"}',
    "huge": lambda route: b"[" + b"1," * MAX_BODY + b"1]",
}


def chunked(client, route, data, headers):
    """Send ``data`` to ``route`` as a server that decoded a chunked body would pass it: no
    Content-Length, ``Transfer-Encoding: chunked``, ``wsgi.input_terminated``."""
    builder = EnvironBuilder(
        path=route.path,
        method=route.method,
        headers={**headers, "Transfer-Encoding": "chunked", "Content-Type": JSON},
        input_stream=io.BytesIO(data),
    )
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    return client.open(Request(environ), buffered=True)  # a Request: its environ goes as it is


# -- 404 / 405: routing, before anything else ------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/v3", "/v3/", "/v2/images", "/v3/imagez", "/v3/images/ami-seed", "/v3/image/ami-seed/extra", "/v3//images"],
)
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("credentials", ["none", "admin"])
def test_unknown_route_is_404_json(client, admin_headers, refused, path, method, credentials):
    headers = {"Accept": "text/html"}
    if credentials == "admin":
        headers.update(admin_headers)
    refused(client.open(path, method=method, headers=headers, data=json.dumps(NEW), content_type="text/plain"), 404)


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("PATCH", "/v3/images", {"GET", "HEAD", "OPTIONS"}),
        ("POST", "/v3/images", {"GET", "HEAD", "OPTIONS"}),
        ("PUT", "/v3/images", {"GET", "HEAD", "OPTIONS"}),
        ("DELETE", "/v3/images", {"GET", "HEAD", "OPTIONS"}),
        ("PATCH", "/v3/image", {"POST", "OPTIONS"}),
        ("GET", "/v3/image", {"POST", "OPTIONS"}),
        ("HEAD", "/v3/image", {"POST", "OPTIONS"}),
        ("PUT", "/v3/image", {"POST", "OPTIONS"}),
        ("DELETE", "/v3/image", {"POST", "OPTIONS"}),
        ("PATCH", "/v3/image/ami-seed", {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}),
        ("POST", "/v3/image/ami-seed", {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}),
        ("PATCH", "/v3/image/ami-none", {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}),
    ],
)
@pytest.mark.parametrize("credentials", ["none", "admin"])
def test_wrong_method_is_405_with_allow(client, admin_headers, refused, method, path, allowed, credentials):
    headers = {"Accept": "text/html"}
    if credentials == "admin":
        headers.update(admin_headers)
    resp = client.open(path, method=method, headers=headers, data=json.dumps({"name": "patched"}), content_type="text/plain")
    refused(resp, 405)
    assert allow_header(resp) == allowed


# -- the order: a request that fails two checks gets the earlier one's answer -----------


@dataclass(frozen=True)
class Failure:
    """What makes a route's request fail one check of the table, and no earlier one."""

    status: int
    routes: tuple  # the routes whose request it can be put in
    part: str  # what it changes: "caller", "Accept", "content_type", "data", "query" or "image"
    value: object = None  # for "data", a function of the route


#: One or more failures for each check, in the table's order (415 comes before 413).
FAILURES = {
    "no-credentials": Failure(401, ROUTES, "caller"),
    "lacking-policy": Failure(403, ROUTES, "caller"),
    "accept-html": Failure(406, ROUTES, "Accept", "text/html"),
    "text-plain": Failure(415, BODY_ROUTES, "content_type", "text/plain"),
    "no-content-type": Failure(415, BODY_ROUTES, "content_type", None),
    "oversized": Failure(413, BODY_ROUTES, "data", OVERSIZED["valid-padded"]),
    "oversized-invalid": Failure(413, BODY_ROUTES, "data", OVERSIZED["invalid-json"]),
    "invalid-json": Failure(400, BODY_ROUTES, "data", lambda route: b"{nope"),
    "invalid-field": Failure(400, BODY_ROUTES, "data", lambda route: json.dumps({"id": 1, "provider": [], "remote_user": None, "name": {}})),
    "unknown-query": Failure(400, ROUTES, "query", "typo=1"),
    "unknown-image": Failure(404, ITEM_ROUTES, "image", "ami-none"),
    "malformed-id": Failure(404, ITEM_ROUTES, "image", "bad%20id"),
    "dot-dot-id": Failure(404, ITEM_ROUTES, "image", ".."),
}


def order_cases():
    """(route, earlier, later): every two failures of different checks that one request of the route can carry."""
    names = list(FAILURES)
    return [
        pytest.param(route, earlier, later, id=f"{route.name}-{earlier}-before-{later}")
        for route in ROUTES
        for n, earlier in enumerate(names)
        for later in names[n + 1 :]
        if FAILURES[earlier].status != FAILURES[later].status
        and FAILURES[earlier].part != FAILURES[later].part
        and route in FAILURES[earlier].routes
        and route in FAILURES[later].routes
    ]


def failing(client, route, headers, *names):
    """``route``'s request with ``headers``, changed by each named failure (but its caller)."""
    kwargs = {"headers": dict(headers)}
    for failure in map(FAILURES.get, names):
        if failure.part == "Accept":
            kwargs["headers"]["Accept"] = failure.value
        elif failure.part == "image":
            kwargs["path"] = route.item_path(failure.value)
        elif failure.part == "data":
            kwargs["data"] = failure.value(route)
        elif failure.part != "caller":
            kwargs[failure.part] = failure.value
    return route.open(client, **kwargs)


@pytest.mark.parametrize("route, earlier, later", order_cases())
def test_the_earlier_check_answers(client, admin_headers, lacking, refused, route, earlier, later):
    if earlier == "lacking-policy":
        headers = lacking(route.policy)
    else:
        headers = {} if earlier == "no-credentials" else admin_headers
    secrets = [value.split()[1] for value in headers.values()]  # the token
    body = refused(failing(client, route, headers, earlier, later), FAILURES[earlier].status, *secrets)
    if earlier == "lacking-policy":
        assert route.policy in body["message"]


# -- 406: Accept admits no application/json ----------------------------------------

NOT_ACCEPTABLE = [
    "text/html",
    "text/plain",
    "application/xml",
    "text/*",
    "image/png",
    "application/json;q=0",
    "*/*;q=0",
    "text/html, application/json;q=0",
    "application/jsonx",
]
ACCEPTABLE = [
    "",
    "*/*",
    "application/*",
    "application/json",
    "application/json; charset=utf-8",
    "text/html, application/json;q=0.1",
    "text/html;q=0.9, */*;q=0.1",
    "text/html, application/*;q=0.5",
]


@pytest.mark.parametrize("route", route_params())
@pytest.mark.parametrize("accept", NOT_ACCEPTABLE)
def test_accept_without_json_is_406(client, admin_headers, refused, route, accept):
    refused(route.open(client, {**admin_headers, "Accept": accept}), 406)


@pytest.mark.parametrize("route", route_params())
@pytest.mark.parametrize("accept", ACCEPTABLE)
def test_accept_admitting_json_succeeds(client, admin_headers, seeded, route, accept):
    resp = route.open(client, {**admin_headers, "Accept": accept})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == JSON


# -- 415: POST/PUT without Content-Type: application/json ---------------------------

NOT_JSON_TYPES = [
    None,
    "text/plain",
    "text/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
    "application/json-patch+json",
]


@pytest.mark.parametrize("route", route_params(BODY_ROUTES))
@pytest.mark.parametrize("content_type", NOT_JSON_TYPES)
def test_body_without_json_content_type_is_415(client, admin_headers, refused, route, content_type):
    refused(route.open(client, admin_headers, content_type=content_type), 415)


# -- 413: body over 64 KiB ------------------------------------------------------------


@pytest.mark.parametrize("route", route_params(BODY_ROUTES))
@pytest.mark.parametrize("content", list(OVERSIZED))
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_over_64_kib_is_413(client, admin_headers, refused, route, content, framing):
    data = OVERSIZED[content](route)
    if framing == "chunked":
        refused(chunked(client, route, data, admin_headers), 413)
    else:
        refused(route.open(client, admin_headers, data=data), 413)


@pytest.mark.parametrize("route", route_params(BODY_ROUTES))
def test_chunked_body_within_limit_is_read(client, admin_headers, seeded, route):
    resp = chunked(client, route, json.dumps(route.body).encode(), admin_headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]


def test_body_of_exactly_64_kib_is_not_too_large(client, admin_headers, seeded):
    resp = client.post("/v3/image", data=padded(NEW, MAX_BODY), content_type=JSON, headers=admin_headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert listing(client, admin_headers) == [NEW, SEED]


# -- 404 / 409: the image does not exist, or the path id breaks the id rule --------
# (409, a create of an id that exists: test_images.py)

MALFORMED_PATH_IDS = ["a%20b", "a%09b", "ami-seed%0A", "%20ami-seed", "x" * 256, ".", "..", "caf%C3%A9", "ami-seed%00"]


@pytest.mark.parametrize("route", route_params(ITEM_ROUTES))
@pytest.mark.parametrize("image_id", ["ami-none", "AMI-SEED", "ami-see", *MALFORMED_PATH_IDS])
def test_unknown_or_malformed_image_id_is_404(client, admin_headers, refused, route, image_id):
    refused(route.open(client, admin_headers, path=route.item_path(image_id)), 404)


def test_head_of_malformed_id_is_404(client, admin_headers, refused):
    refused(client.head("/v3/image/a%20b", headers=admin_headers), 404)


@pytest.mark.parametrize(
    "data",
    [json.dumps({}), json.dumps({"name": 1}), b"[]", b"{nope", json.dumps({"name": "x", "extra": 1})],
    ids=["empty-object", "wrong-type", "array", "invalid-json", "unknown-field"],
)
def test_invalid_body_on_unknown_image_is_400(client, admin_headers, refused, data):
    refused(client.put("/v3/image/ami-none", data=data, content_type=JSON, headers=admin_headers), 400)


@pytest.mark.parametrize(
    "body",
    [{"name": "x"}, {"id": "ami-other", "name": "x"}, {"provider": "gce", "name": "x"}, {"id": "ami-none", "provider": "ec2", "remote_user": "x"}],
    ids=["plain", "other-id", "other-provider", "echoing-path-id"],
)
def test_valid_update_of_unknown_image_is_404(client, admin_headers, refused, body):
    """Decided before ``PUT`` compares ``id`` and ``provider`` with the stored ones."""
    refused(client.put("/v3/image/ami-none", json=body, headers=admin_headers), 404)


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/v3/image/"),
        ("PUT", "/v3/image/"),
        ("POST", "/v3/images/"),
        ("GET", "/v3/images/"),
        ("GET", "/v3/image/"),
        ("DELETE", "/v3/image/"),
        ("GET", "/v3/image/ami-seed/"),
        ("PUT", "/v3/image/ami-seed/"),
        ("DELETE", "/v3/image/ami-seed/"),
        ("POST", "/v3/image/ami-new/"),
        ("PUT", "/v3/image/ami-new/"),
    ],
)
def test_trailing_slash_is_404_and_touches_nothing(client, admin_headers, refused, method, path):
    body = NEW if method == "POST" else {"name": "changed"}
    resp = client.open(path, method=method, json=body, headers=admin_headers)
    refused(resp, 404)
    assert "Location" not in resp.headers


def test_malformed_path_id_is_404_without_echoing_it(client, admin_headers, caplog):
    junk = "x" * 300 + "%00"
    resp = client.get(f"/v3/image/{junk}", headers=admin_headers)
    assert "x" * 300 not in assert_error(resp, 404)["message"]
    assert all(len(record.getMessage()) < 1000 for record in caplog.records)


# -- 503: the database is busy or cannot answer ------------------------------------
# (busy: test_write_turns.py, test_recovery.py; a server out of reach: test_recovery.py)


@pytest.mark.sqlite_only
def test_unopenable_database_is_503_on_the_routes(app, admin_headers, tmp_path):
    api_state(app).database.init(str(tmp_path / "gone" / "images.db"))
    assert_error(app.test_client().get("/v3/images", headers=admin_headers), 503)


@pytest.fixture
def database_file(database_url):
    """The path of the test's SQLite file."""
    return Path(database_url.removeprefix("sqlite:///"))


def replaced_by_another(path):
    other = path.with_name("other.db")
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    os.replace(other, path)


def deleted(path):
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        path.with_name(name).unlink(missing_ok=True)


def wal_deleted(path):
    for name in (path.name + "-wal", path.name + "-shm"):
        path.with_name(name).unlink()


def shm_deleted(path):
    """The shared index into the -wal: a process that opens the file now makes a new one and writes past this one's."""
    path.with_name(path.name + "-shm").unlink()


def wal_deleted_and_made_anew(path):
    """As when another connection opens the file after the -wal file was deleted."""
    wal_deleted(path)
    sqlite3.connect(path).execute("SELECT 1 FROM sqlite_master").fetchall()


def overwritten(path):
    """Every page written to the file first, then the file overwritten: nothing readable is left."""
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").connection.close()
    with open(path, "r+b") as file:
        file.write(b"not a database at all " * 200)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("change", [deleted, replaced_by_another, wal_deleted, shm_deleted, wal_deleted_and_made_anew, overwritten])
def test_a_database_file_changed_under_the_service_is_503_and_takes_no_write(client, admin_headers, database_file, change, monkeypatch):
    monkeypatch.setattr(sqlite, "FILE_RECHECK", 0.0)  # reads look at the file every time, as writes always do
    assert client.post("/v3/image", json=SEED, headers=admin_headers).status_code == 200
    change(database_file)
    for route in ROUTES:
        body = assert_error(route.open(client, admin_headers), 503)
        assert "database" in body["message"]
    assert_error(client.get("/healthz"), 503)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("change", [deleted, replaced_by_another, wal_deleted, shm_deleted])
def test_writes_and_health_look_at_the_file_every_time_reads_once_per_interval(client, admin_headers, database_file, change, monkeypatch):
    """README: Storage. Reads trust the files found in place for ``FILE_RECHECK`` seconds, here an hour."""
    monkeypatch.setattr(sqlite, "FILE_RECHECK", 3600.0)
    assert client.post("/v3/image", json=SEED, headers=admin_headers).status_code == 200
    assert client.get("/v3/image/ami-seed", headers=admin_headers).status_code == 200  # the files were found in place
    change(database_file)
    assert client.get("/v3/images", headers=admin_headers).get_json() == [SEED]  # from the file the service opened
    for route in BODY_ROUTES + (ROUTES[-1],):  # every write
        assert "database" in assert_error(route.open(client, admin_headers), 503)["message"]
    assert_error(client.get("/healthz"), 503)
    assert client.get("/v3/image/ami-seed", headers=admin_headers).get_json() == SEED  # the write took nothing


@pytest.mark.sqlite_only
def test_a_full_disk_is_503_saying_so_health_reports_it_and_writes_resume_with_room(app, client, admin_headers):
    """SQLite's max_page_count stands in for a full disk: the same SQLITE_FULL."""
    database = api_state(app).database
    assert client.get("/healthz").status_code == 200  # this thread's connection, which the test limits

    def pages(count):
        with app.app_context():
            database.execute_sql(f"PRAGMA max_page_count = {count}")

    with app.app_context():
        pages(database.execute_sql("PRAGMA page_count").fetchone()[0])
    for n in range(1000):  # until the pages there are run out
        resp = client.post("/v3/image", json={**SEED, "id": f"ami-{n}", "name": "x" * 255}, headers=admin_headers)
        if resp.status_code != 200:
            break
    body = assert_error(resp, 503)
    assert body["message"] == "The database's disk is full; writes succeed again once there is room."
    assert assert_error(client.get("/healthz"), 503)["message"] == body["message"]
    assert client.get("/v3/images", headers=admin_headers).status_code == 200  # reads go on
    pages(1_000_000)
    assert client.post("/v3/image", json=SEED, headers=admin_headers).status_code == 200
    assert client.get("/healthz").status_code == 200


# -- 500: anything unexpected -------------------------------------------------------


@pytest.fixture
def image_table_renamed(app):
    """``with image_table_renamed():`` the image table is gone under the app, as a broken schema would be."""

    @contextlib.contextmanager
    def renamed():
        database = api_state(app).database
        with app.app_context(), database.connection_context():
            database.execute_sql("ALTER TABLE images RENAME TO broken_on_purpose")
        try:
            yield
        finally:
            with app.app_context(), database.connection_context():
                database.execute_sql("ALTER TABLE broken_on_purpose RENAME TO images")

    return renamed


def test_unexpected_failure_is_500_json_and_logged(app, client, admin_headers, admin_token, image_table_renamed, caplog):
    """Break the image table under the app; the list route must fail as a JSON 500."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    assert client.post("/v3/image", json=SEED, headers=admin_headers).status_code == 200
    with image_table_renamed():
        resp = client.get("/v3/images", headers=admin_headers)
    body = assert_error(resp, 500, admin_token)
    assert body == {"message": "Internal server error"}
    assert any(r.exc_info for r in caplog.records), [r.getMessage() for r in caplog.records]


# -- every refusal is JSON and carries no secret ------------------------------------


def test_no_error_echoes_the_token_it_was_sent(client, make_user, unchanged):
    token = make_user("alice", "read_images")
    pair = base64.b64encode(f"alice:{token}".encode()).decode()
    for headers in ({"Authorization": f"Bearer {token}"}, {"Authorization": f"Basic {pair}"}):
        for resp in (
            client.post("/v3/image", json=NEW, headers=headers),
            client.get("/v3/images?typo=1", headers=headers),
            client.get("/v3/image/ami-none", headers=headers),
            client.get("/v3/images", headers={**headers, "Accept": "text/html"}),
            client.get("/v3/images", headers={"Authorization": f"Bearer {token}x"}),
        ):
            assert resp.status_code >= 400
            assert_error(resp, resp.status_code, token, pair)
    unchanged()
