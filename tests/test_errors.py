"""The README's error table, row by row and in its order, and the bad inputs each must refuse.

Every test starts from one stored image (``SEED``) and ends by checking through the
list route that a refused request stored, changed and deleted nothing.
"""

import base64
import contextlib
import io
import json
import os
import sqlite3
from pathlib import Path

import pytest
from support import (
    BODY_ROUTES,
    ITEM_ROUTES,
    JSON,
    NEW,
    ROUTES,
    SEED,
    WWW_AUTHENTICATE,
    allow_header,
    assert_error,
    listing,
    route_params,
)
from werkzeug.test import EnvironBuilder, run_wsgi_app

from images_api.parsing import MAX_BODY
from images_api.state import api_state



@pytest.fixture
def lacking(make_user, auth):
    """``lacking(policy)``: headers of a user holding every policy except that one."""

    def headers(policy):
        others = [p for p in ("read_images", "create_image", "delete_image") if p != policy]
        return auth(make_user("lacking_" + policy, *others))

    return headers


def padded(body, size):
    """``body`` as JSON padded with trailing spaces to exactly ``size`` bytes."""
    data = json.dumps(body).encode()
    assert len(data) <= size
    return data + b" " * (size - len(data))


def chunked(client, method, path, data, headers):
    """Send ``data`` as a server that decoded a chunked body would pass it: no
    Content-Length, ``Transfer-Encoding: chunked``, ``wsgi.input_terminated``."""
    builder = EnvironBuilder(
        path=path,
        method=method,
        headers={**headers, "Transfer-Encoding": "chunked", "Content-Type": JSON},
        input_stream=io.BytesIO(data),
    )
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    app_iter, status, headers = run_wsgi_app(client.application, environ, buffered=True)
    try:
        payload = b"".join(app_iter)
    finally:
        getattr(app_iter, "close", lambda: None)()
    return int(status.split()[0]), headers, payload


# -- 404 / 405: routing, before anything else ------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/v3", "/v3/", "/v2/images", "/v3/imagez", "/v3/images/ami-seed", "/v3/image/ami-seed/extra", "/v3//images"],
)
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("credentials", ["none", "admin"])
def test_unknown_route_is_404_json(client, admin_headers, admin_token, unchanged, path, method, credentials):
    headers = {"Accept": "text/html"}
    if credentials == "admin":
        headers.update(admin_headers)
    resp = client.open(path, method=method, headers=headers, data=json.dumps(NEW), content_type="text/plain")
    assert_error(resp, 404, admin_token)
    unchanged()


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
def test_wrong_method_is_405_with_allow(client, admin_headers, admin_token, unchanged, method, path, allowed, credentials):
    headers = {"Accept": "text/html"}
    if credentials == "admin":
        headers.update(admin_headers)
    resp = client.open(path, method=method, headers=headers, data=json.dumps({"name": "patched"}), content_type="text/plain")
    assert_error(resp, 405, admin_token)
    assert allow_header(resp) == allowed
    unchanged()


# -- 401: no credentials, unknown token; before 403/406/415/413/400/404 ------------


SPOILERS = {
    # name: (applies to body routes only, request overrides)
    "accept-html": (False, {"headers": {"Accept": "text/html"}}),
    "unknown-query": (False, {"query": "typo=1"}),
    "text-plain": (True, {"content_type": "text/plain"}),
    "no-content-type": (True, {"content_type": None}),
    "oversized": (True, {"data": b"{" + b" " * MAX_BODY + b"}"}),
    "invalid-json": (True, {"data": b"{nope"}),
    "invalid-field": (True, {"data": json.dumps({"id": 1, "provider": [], "remote_user": None, "name": {}})}),
}


def spoiled(route, spoiler, headers):
    """The keyword arguments of ``route.open`` for ``route`` with ``spoiler`` (or none) added."""
    if spoiler is None:
        return {"headers": headers}
    _, overrides = SPOILERS[spoiler]
    kwargs = {key: value for key, value in overrides.items() if key != "headers"}
    kwargs["headers"] = {**headers, **overrides.get("headers", {})}
    return kwargs


def spoiler_cases(routes=ROUTES, spoilers=(None, *SPOILERS)):
    """(route, spoiler) params for every spoiler that applies to the route."""
    return [
        pytest.param(route, spoiler, id=f"{route.name}-{spoiler or 'clean'}")
        for route in routes
        for spoiler in spoilers
        if spoiler is None or route.has_body or not SPOILERS[spoiler][0]
    ]


@pytest.mark.parametrize("route, spoiler", spoiler_cases())
def test_no_credentials_is_401_before_later_checks(client, unchanged, route, spoiler):
    resp = route.open(client, **spoiled(route, spoiler, {}))
    assert_error(resp, 401)
    assert resp.headers["WWW-Authenticate"] == WWW_AUTHENTICATE
    unchanged()


@pytest.mark.parametrize("route", route_params(ITEM_ROUTES))
@pytest.mark.parametrize("image_id", ["ami-none", "bad%20id", ".."])
def test_no_credentials_is_401_for_unknown_or_malformed_ids(client, unchanged, route, image_id):
    resp = route.open(client, path=route.item_path(image_id))
    assert_error(resp, 401)
    assert resp.headers["WWW-Authenticate"] == WWW_AUTHENTICATE
    unchanged()


@pytest.mark.parametrize("route", route_params())
@pytest.mark.parametrize("token", ["not-a-token", "admin-token-for-tests-0123456789abcdefghiJ", "x" * 43])
def test_unknown_token_is_401(client, auth, unchanged, route, token):
    resp = route.open(client, auth(token))
    assert_error(resp, 401, token)
    assert resp.headers["WWW-Authenticate"] == WWW_AUTHENTICATE
    unchanged()


@pytest.mark.parametrize("route", route_params([r for r in ROUTES if r.method == "GET"]))
def test_head_without_credentials_is_401(client, unchanged, route):
    resp = client.head(route.path)
    assert_error(resp, 401)
    assert resp.headers["WWW-Authenticate"] == WWW_AUTHENTICATE
    unchanged()


# -- 403: lacking the route's policy; before 406/415/413/400/404 -------------------


@pytest.mark.parametrize("route, spoiler", spoiler_cases())
def test_lacking_the_policy_is_403_naming_it(client, lacking, unchanged, route, spoiler):
    headers = lacking(route.policy)
    resp = route.open(client, **spoiled(route, spoiler, headers))
    body = assert_error(resp, 403, headers["Authorization"].split()[1])
    assert route.policy in body["message"]
    unchanged()


@pytest.mark.parametrize("route", route_params(ITEM_ROUTES))
@pytest.mark.parametrize("image_id", ["ami-none", "bad%20id"])
def test_lacking_the_policy_is_403_for_unknown_or_malformed_ids(client, lacking, unchanged, route, image_id):
    headers = lacking(route.policy)
    resp = route.open(client, headers, path=route.item_path(image_id))
    body = assert_error(resp, 403)
    assert route.policy in body["message"]
    unchanged()


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
def test_accept_without_json_is_406(client, admin_headers, admin_token, unchanged, route, accept):
    resp = route.open(client, {**admin_headers, "Accept": accept})
    assert_error(resp, 406, admin_token)
    unchanged()


@pytest.mark.parametrize("route, spoiler", spoiler_cases(spoilers=[s for s in SPOILERS if s != "accept-html"]))
def test_406_comes_before_later_checks(client, admin_headers, unchanged, route, spoiler):
    resp = route.open(client, **spoiled(route, spoiler, {**admin_headers, "Accept": "text/html"}))
    assert_error(resp, 406)
    unchanged()


@pytest.mark.parametrize("route", route_params(ITEM_ROUTES))
def test_406_comes_before_unknown_image(client, admin_headers, unchanged, route):
    resp = route.open(client, {**admin_headers, "Accept": "text/html"}, path=route.item_path("ami-none"))
    assert_error(resp, 406)
    unchanged()


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
def test_body_without_json_content_type_is_415(client, admin_headers, admin_token, unchanged, route, content_type):
    resp = route.open(client, admin_headers, content_type=content_type)
    assert_error(resp, 415, admin_token)
    unchanged()


@pytest.mark.parametrize("route, spoiler", spoiler_cases(BODY_ROUTES, ["oversized", "invalid-json", "invalid-field", "unknown-query"]))
def test_415_comes_before_later_checks(client, admin_headers, unchanged, route, spoiler):
    kwargs = spoiled(route, spoiler, admin_headers)
    kwargs["content_type"] = "text/plain"
    assert_error(route.open(client, **kwargs), 415)
    unchanged()


def test_415_comes_before_unknown_image(client, admin_headers, unchanged):
    resp = client.put("/v3/image/ami-none", data=json.dumps({"name": "x"}), content_type="text/plain", headers=admin_headers)
    assert_error(resp, 415)
    unchanged()


# -- 413: body over 64 KiB ------------------------------------------------------------

OVERSIZED = {
    "valid-padded": lambda route: padded(route.body, MAX_BODY + 1),
    "invalid-json": lambda route: b"{" + b"x" * MAX_BODY,
    "not-utf8": lambda route: b'{"name": "' + b"\xff" * MAX_BODY + b'"}',
    "huge": lambda route: b"[" + b"1," * MAX_BODY + b"1]",
}


@pytest.mark.parametrize("route", route_params(BODY_ROUTES))
@pytest.mark.parametrize("content", list(OVERSIZED))
def test_body_over_64_kib_is_413(client, admin_headers, admin_token, unchanged, route, content):
    resp = route.open(client, admin_headers, data=OVERSIZED[content](route))
    assert_error(resp, 413, admin_token)
    unchanged()


@pytest.mark.parametrize("route", route_params(BODY_ROUTES))
@pytest.mark.parametrize("content", list(OVERSIZED))
def test_chunked_body_over_64_kib_is_413(client, admin_headers, unchanged, route, content):
    status, headers, payload = chunked(client, route.method, route.path, OVERSIZED[content](route), admin_headers)
    assert status == 413, payload[:300]
    assert headers["Content-Type"].split(";")[0] == JSON
    assert isinstance(json.loads(payload)["message"], str)
    unchanged()


@pytest.mark.parametrize("route", route_params(BODY_ROUTES))
def test_chunked_body_within_limit_is_read(client, admin_headers, seeded, route):
    status, _, payload = chunked(client, route.method, route.path, json.dumps(route.body).encode(), admin_headers)
    assert status == 200, payload[:300]


def test_body_of_exactly_64_kib_is_not_too_large(client, admin_headers, seeded):
    resp = client.post("/v3/image", data=padded(NEW, MAX_BODY), content_type=JSON, headers=admin_headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert listing(client, admin_headers) == [NEW, SEED]


def test_413_comes_before_unknown_image(client, admin_headers, unchanged):
    resp = client.put("/v3/image/ami-none", data=b"{" * (MAX_BODY + 1), content_type=JSON, headers=admin_headers)
    assert_error(resp, 413)
    unchanged()


@pytest.mark.parametrize("route", route_params(BODY_ROUTES))
def test_413_comes_before_unknown_query_parameter(client, admin_headers, unchanged, route):
    resp = route.open(client, admin_headers, query="typo=1", data=padded(route.body, MAX_BODY + 1))
    assert_error(resp, 413)
    unchanged()


# -- 400: bodies ---------------------------------------------------------------------

WRONG_TYPES = [[], ["x"], {}, {"a": "b"}, 0, 1, 1.5, True, False, None]

BAD_IDS = ["a/b", "a b", "a\tb", "ami-1\n", "\nami-1", "x" * 256, ".", "..", "", "ami-é", "ami\x00", "a#b", "a?b", "a%2Fb", "a\\b"]
BAD_PROVIDERS = ["", "x" * 65, "ec 2", "ec2/", "ec2\n", "ec2\t", "éc2", "ec2,gce"]
BAD_REMOTE_USERS = ["ubuntu user", "", "1ubuntu", "-ubuntu", ".ubuntu", "x" * 65, "ubüntu", "root\n", "a@b", "a:b", "a/b"]
BAD_NAMES = ["x" * 256, "é" * 256, "line\nbreak", "tab\there", "nul\x00", "del\x7f", "\x1b[31mred", "nel\x85", "cr\r"]


def create_cases():
    """(case id, body, the field ``errors`` must name) for POST /v3/image."""
    cases = []
    for field in ("id", "provider", "remote_user", "name"):
        for value in WRONG_TYPES:
            cases.append((f"{field}={json.dumps(value)}", {**NEW, field: value}, field))
    for field in ("id", "provider", "remote_user"):
        body = {k: v for k, v in NEW.items() if k != field}
        cases.append((f"missing-{field}", body, field))
    for field, values in [("id", BAD_IDS), ("provider", BAD_PROVIDERS), ("remote_user", BAD_REMOTE_USERS), ("name", BAD_NAMES)]:
        for value in values:
            cases.append((f"{field}={value[:20]!r}", {**NEW, field: value}, field))
    for unknown in ("extra", "ID", "image", "message"):
        cases.append((f"unknown-{unknown}", {**NEW, unknown: "x"}, unknown))
    return [pytest.param(body, field, id=case) for case, body, field in cases]


def update_cases():
    """(case id, body, the field ``errors`` must name, or None) for PUT /v3/image/ami-seed."""
    cases = [
        ("empty-object", {}, None),
        ("only-id", {"id": SEED["id"]}, None),
        ("only-provider", {"provider": SEED["provider"]}, None),
        ("only-id-and-provider", {"id": SEED["id"], "provider": SEED["provider"]}, None),
        ("changes-id", {"id": "ami-other", "name": "x"}, "id"),
        ("changes-id-case", {"id": "AMI-SEED", "name": "x"}, "id"),
        ("changes-provider", {"provider": "openstack", "name": "x"}, "provider"),
        ("changes-both", {"id": "ami-other", "provider": "gce", "remote_user": "x"}, "id"),
        ("unknown-field", {"name": "x", "extra": "y"}, "extra"),
    ]
    for field in ("id", "provider", "remote_user", "name"):
        for value in WRONG_TYPES:
            cases.append((f"{field}={json.dumps(value)}", {"name": "x", "remote_user": "x", field: value}, field))
    for field, values in [("id", BAD_IDS[:4]), ("remote_user", BAD_REMOTE_USERS), ("name", BAD_NAMES)]:
        for value in values:
            cases.append((f"{field}={value[:20]!r}", {"name": "x", field: value}, field))
    return [pytest.param(body, field, id=case) for case, body, field in cases]


@pytest.mark.parametrize("body, field", create_cases())
def test_bad_create_body_is_400_naming_the_field(client, admin_headers, admin_token, unchanged, body, field):
    resp = client.post("/v3/image", data=json.dumps(body), content_type=JSON, headers=admin_headers)
    result = assert_error(resp, 400, admin_token)
    assert field in result.get("errors", {}), result
    unchanged()


@pytest.mark.parametrize("body, field", update_cases())
def test_bad_update_body_is_400(client, admin_headers, admin_token, unchanged, body, field):
    resp = client.put("/v3/image/ami-seed", data=json.dumps(body), content_type=JSON, headers=admin_headers)
    result = assert_error(resp, 400, admin_token)
    if field is not None:
        assert field in result.get("errors", {}), result
    unchanged()


def test_changing_both_id_and_provider_names_both(client, admin_headers, unchanged):
    body = {"id": "ami-other", "provider": "gce", "name": "x"}
    result = assert_error(client.put("/v3/image/ami-seed", json=body, headers=admin_headers), 400)
    assert {"id", "provider"} <= set(result["errors"]), result
    unchanged()


def raw(route, text):
    """A body made from ``text``, with ``BODY`` standing for the route's valid fields."""
    fields = json.dumps(route.body)[1:-1]
    return text.replace("BODY", fields).encode("utf-8")


def with_name(route, value):
    """The route's valid body with ``value`` (raw bytes, not JSON-encoded) as the name."""
    return json.dumps({**route.body, "name": "@@"}).encode().replace(b'"@@"', value)


RAW_BODIES = {
    "empty": lambda r: b"",
    "whitespace": lambda r: b"  \n",
    "array": lambda r: b"[]",
    "array-of-body": lambda r: raw(r, "[{BODY}]"),
    "string": lambda r: b'"x"',
    "null": lambda r: b"null",
    "number": lambda r: b"1",
    "true": lambda r: b"true",
    "truncated": lambda r: raw(r, "{BODY"),
    "trailing-comma": lambda r: raw(r, "{BODY,}"),
    "single-quotes": lambda r: raw(r, "{BODY}").replace(b'"', b"'"),
    "trailing-garbage": lambda r: raw(r, "{BODY} x"),
    "two-objects": lambda r: raw(r, "{BODY}{BODY}"),
    "nan": lambda r: with_name(r, b"NaN"),
    "infinity": lambda r: with_name(r, b"Infinity"),
    "minus-infinity": lambda r: with_name(r, b"-Infinity"),
    "duplicate-key": lambda r: raw(r, '{BODY, "name": "again"}'),
    "lone-surrogate": lambda r: with_name(r, b'"\\ud800"'),
    "not-utf8": lambda r: with_name(r, b'"caf\xe9"'),
    "overlong-utf8": lambda r: raw(r, "{BODY}").replace(b"{", b"{\xc0\xa0", 1),
    "utf16": lambda r: raw(r, "{BODY}").decode().encode("utf-16"),
    "utf32": lambda r: raw(r, "{BODY}").decode().encode("utf-32"),
}


@pytest.mark.parametrize("route", route_params(BODY_ROUTES))
@pytest.mark.parametrize("content", list(RAW_BODIES))
def test_malformed_body_is_400(client, admin_headers, admin_token, unchanged, route, content):
    resp = route.open(client, admin_headers, data=RAW_BODIES[content](route))
    assert_error(resp, 400, admin_token)
    unchanged()


@pytest.mark.parametrize("route", route_params(BODY_ROUTES))
def test_raw_bodies_are_what_they_say(route):
    """The table above would prove nothing if its bodies were what the route accepts."""
    assert json.loads(raw(route, "{BODY}")) == route.body
    assert raw(route, '{BODY, "name": "again"}').count(b'"name"') == 2
    assert with_name(route, b'"\\ud800"').count(b'"name"') == 1
    assert b'"name": "\\ud800"' in RAW_BODIES["lone-surrogate"](route)
    assert b'"name": "caf\xe9"' in RAW_BODIES["not-utf8"](route)
    assert json.loads(RAW_BODIES["utf16"](route)) == route.body


@pytest.mark.parametrize(
    "data",
    [json.dumps({}), json.dumps({"name": 1}), b"[]", b"{nope", json.dumps({"name": "x", "extra": 1})],
    ids=["empty-object", "wrong-type", "array", "invalid-json", "unknown-field"],
)
def test_invalid_body_on_unknown_image_is_400(client, admin_headers, unchanged, data):
    resp = client.put("/v3/image/ami-none", data=data, content_type=JSON, headers=admin_headers)
    assert_error(resp, 400)
    unchanged()


@pytest.mark.parametrize(
    "body",
    [{"name": "x"}, {"id": "ami-other", "name": "x"}, {"provider": "gce", "name": "x"}, {"id": "ami-none", "provider": "ec2", "remote_user": "x"}],
    ids=["plain", "other-id", "other-provider", "echoing-path-id"],
)
def test_valid_update_of_unknown_image_is_404(client, admin_headers, unchanged, body):
    resp = client.put("/v3/image/ami-none", json=body, headers=admin_headers)
    assert_error(resp, 404)
    unchanged()


# -- 400: query parameters ----------------------------------------------------------

UNKNOWN_QUERIES = ["typo=1", "provder=ec2", "MAX_BODY=1", "Provider=ec2", "foo", "foo="]
OTHER_ROUTES_QUERIES = ["limit=1", "provider=ec2", "marker=a", "id=ami-seed"]


@pytest.mark.parametrize("route", route_params())
@pytest.mark.parametrize("query", UNKNOWN_QUERIES)
def test_unknown_query_parameter_is_400_naming_it(client, admin_headers, admin_token, unchanged, route, query):
    result = assert_error(route.open(client, admin_headers, query=query), 400, admin_token)
    name = query.split("=")[0]
    assert name in result.get("errors", {}), result
    unchanged()


@pytest.mark.parametrize("route", route_params([r for r in ROUTES if r.name != "list"]))
@pytest.mark.parametrize("query", OTHER_ROUTES_QUERIES)
def test_list_parameters_are_unknown_on_other_routes(client, admin_headers, unchanged, route, query):
    result = assert_error(route.open(client, admin_headers, query=query), 400)
    assert query.split("=")[0] in result.get("errors", {}), result
    unchanged()


@pytest.mark.parametrize("route", route_params(ITEM_ROUTES))
def test_unknown_query_parameter_comes_before_unknown_image(client, admin_headers, unchanged, route):
    assert_error(route.open(client, admin_headers, path=route.item_path("ami-none"), query="typo=1"), 400)
    unchanged()


@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=1&limit=1", "limit"),
        ("limit=1&limit=2", "limit"),
        ("provider=ec2&provider=ec2", "provider"),
        ("provider=ec2&provider=gce", "provider"),
        ("marker=a&marker=b", "marker"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=%205", "limit"),
        ("limit=5%20", "limit"),
        ("limit=", "limit"),
        ("limit=1e2", "limit"),
        ("limit=0x10", "limit"),
        ("limit=%EF%BC%95", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("provider=", "provider"),
        ("provider=ec%202", "provider"),
        ("provider=ec2%2Fx", "provider"),
        ("provider=ec2%0A", "provider"),
        ("provider=" + "x" * 65, "provider"),
        ("provider=%C3%A9c2", "provider"),
        ("marker=", "marker"),
        ("marker=a%20b", "marker"),
        ("marker=a%2Fb", "marker"),
        ("marker=.", "marker"),
        ("marker=..", "marker"),
        ("marker=ami-seed%0A", "marker"),
        ("marker=" + "x" * 256, "marker"),
    ],
)
def test_bad_list_parameter_is_400_naming_it(client, admin_headers, admin_token, unchanged, query, field):
    result = assert_error(client.get("/v3/images?" + query, headers=admin_headers), 400, admin_token)
    assert field in result.get("errors", {}), result
    unchanged()


# -- 404: the image does not exist, or the path id breaks the id rule --------------

MALFORMED_PATH_IDS = ["a%20b", "a%09b", "ami-seed%0A", "%20ami-seed", "x" * 256, ".", "..", "caf%C3%A9", "ami-seed%00"]


@pytest.mark.parametrize("route", route_params(ITEM_ROUTES))
@pytest.mark.parametrize("image_id", ["ami-none", "AMI-SEED", "ami-see", *MALFORMED_PATH_IDS])
def test_unknown_or_malformed_image_id_is_404(client, admin_headers, admin_token, unchanged, route, image_id):
    assert_error(route.open(client, admin_headers, path=route.item_path(image_id)), 404, admin_token)
    unchanged()


def test_head_of_malformed_id_is_404(client, admin_headers, unchanged):
    assert_error(client.head("/v3/image/a%20b", headers=admin_headers), 404)
    unchanged()


# -- trailing slashes --------------------------------------------------------------


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
def test_trailing_slash_is_404_and_touches_nothing(client, admin_headers, unchanged, method, path):
    body = NEW if method == "POST" else {"name": "changed"}
    resp = client.open(path, method=method, json=body, headers=admin_headers)
    assert_error(resp, 404)
    assert "Location" not in resp.headers
    unchanged()


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


# -- messages are for people, and never echo junk ---------------------------------


@pytest.mark.parametrize(
    ("body", "leak"),
    [
        (b'{"id": ' + b"9" * 5000 + b"}", "sys."),
        (b"[" * 100000, "recursion"),
        (b'\xef\xbb\xbf{"id": "a"}', "utf-8-sig"),
    ],
    ids=["huge-integer", "deep-nesting", "byte-order-mark"],
)
def test_unreadable_body_message_speaks_of_the_body_not_python(client, admin_headers, body, leak):
    resp = client.post("/v3/image", data=body[: 64 * 1024], content_type=JSON, headers=admin_headers)
    message = assert_error(resp, 400)["message"]
    assert message.startswith("The body ")
    assert leak not in message


@pytest.mark.parametrize("limit", ["-1", "0", "1001", "x", "+5"])
def test_bad_limit_message_gives_the_range(client, admin_headers, limit):
    body = assert_error(client.get(f"/v3/images?limit={limit}", headers=admin_headers), 400)
    assert body["errors"]["limit"] == ["Must be a whole number from 1 to 1000, in digits."]


def test_put_without_a_change_names_the_fields_to_give(client, admin_headers, seeded):
    body = assert_error(client.put("/v3/image/ami-seed", json={}, headers=admin_headers), 400)
    assert set(body["errors"]) == {"remote_user", "name"}


def test_malformed_path_id_is_404_without_echoing_it(client, admin_headers, caplog):
    junk = "x" * 300 + "%00"
    resp = client.get(f"/v3/image/{junk}", headers=admin_headers)
    assert "x" * 300 not in assert_error(resp, 404)["message"]
    assert all(len(record.getMessage()) < 1000 for record in caplog.records)


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
@pytest.mark.parametrize("change", [deleted, replaced_by_another, wal_deleted, wal_deleted_and_made_anew, overwritten])
def test_a_database_file_changed_under_the_service_is_503_and_takes_no_write(client, admin_headers, database_file, change):
    assert client.post("/v3/image", json=SEED, headers=admin_headers).status_code == 200
    change(database_file)
    for route in ROUTES:
        body = assert_error(route.open(client, admin_headers), 503)
        assert "database" in body["message"]
    assert_error(client.get("/healthz"), 503)



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
