"""400: the rules a body or a query must follow (README: The API, Errors), and the bad inputs each must refuse.

Every refusal names what broke a rule; every test that starts from the seed image
(``SEED``) ends by checking that the refused request stored, changed and deleted
nothing. Which check answers first when a request breaks several: test_errors.py.
"""

import json

import pytest
from support import BODY_ROUTES, JSON, NEW, ROUTES, SEED, assert_error, route_params


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
def test_bad_create_body_is_400_naming_the_field(client, admin_headers, refused, body, field):
    result = refused(client.post("/v3/image", data=json.dumps(body), content_type=JSON, headers=admin_headers), 400)
    assert field in result.get("errors", {}), result


@pytest.mark.parametrize("body, field", update_cases())
def test_bad_update_body_is_400(client, admin_headers, refused, body, field):
    result = refused(client.put("/v3/image/ami-seed", data=json.dumps(body), content_type=JSON, headers=admin_headers), 400)
    if field is not None:
        assert field in result.get("errors", {}), result


def test_changing_both_id_and_provider_names_both(client, admin_headers, refused):
    body = {"id": "ami-other", "provider": "gce", "name": "x"}
    result = refused(client.put("/v3/image/ami-seed", json=body, headers=admin_headers), 400)
    assert {"id", "provider"} <= set(result["errors"]), result


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
def test_malformed_body_is_400(client, admin_headers, refused, route, content):
    refused(route.open(client, admin_headers, data=RAW_BODIES[content](route)), 400)


@pytest.mark.parametrize("route", route_params(BODY_ROUTES))
def test_raw_bodies_are_what_they_say(route):
    """The table above would prove nothing if its bodies were what the route accepts."""
    assert json.loads(raw(route, "{BODY}")) == route.body
    assert raw(route, '{BODY, "name": "again"}').count(b'"name"') == 2
    assert with_name(route, b'"\\ud800"').count(b'"name"') == 1
    assert b'"name": "\\ud800"' in RAW_BODIES["lone-surrogate"](route)
    assert b'"name": "caf\xe9"' in RAW_BODIES["not-utf8"](route)
    assert json.loads(RAW_BODIES["utf16"](route)) == route.body


# -- 400: query parameters ----------------------------------------------------------

UNKNOWN_QUERIES = ["typo=1", "provder=ec2", "MAX_BODY=1", "Provider=ec2", "foo", "foo="]
OTHER_ROUTES_QUERIES = ["limit=1", "provider=ec2", "marker=a", "id=ami-seed"]


@pytest.mark.parametrize("route", route_params())
@pytest.mark.parametrize("query", UNKNOWN_QUERIES)
def test_unknown_query_parameter_is_400_naming_it(client, admin_headers, refused, route, query):
    result = refused(route.open(client, admin_headers, query=query), 400)
    assert query.split("=")[0] in result.get("errors", {}), result


@pytest.mark.parametrize("route", route_params([r for r in ROUTES if r.name != "list"]))
@pytest.mark.parametrize("query", OTHER_ROUTES_QUERIES)
def test_list_parameters_are_unknown_on_other_routes(client, admin_headers, refused, route, query):
    result = refused(route.open(client, admin_headers, query=query), 400)
    assert query.split("=")[0] in result.get("errors", {}), result


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
def test_bad_list_parameter_is_400_naming_it(client, admin_headers, refused, query, field):
    result = refused(client.get("/v3/images?" + query, headers=admin_headers), 400)
    assert field in result.get("errors", {}), result


# -- messages are for people ----------------------------------------------------------


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
