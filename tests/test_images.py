"""The five routes' success paths (README: The API)."""

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from support import JSON, allow_header, assert_error, body_of, image, listing

from images_api import create_app
from images_api.state import api_state

LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')
UUID = "5f0c7e3a-2d4b-4f7e-9a61-0c2b8e1d9f44"


@pytest.fixture
def create(client, admin_headers):
    """``create(**fields)``: store an image through POST; returns its body."""

    def post(**fields):
        body = image(**fields)
        resp = client.post("/v3/image", json=body, headers=admin_headers)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return body

    return post


def show(client, headers, image_id):
    resp = client.get(f"/v3/image/{image_id}", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return body_of(resp)


def next_link(resp):
    """The URL of a ``Link: <URL>; rel="next"`` header, or None without one."""
    value = resp.headers.get("Link")
    if value is None:
        return None
    match = LINK.match(value)
    assert match, value
    return match["url"]


def follow(client, headers, url):
    """GET an absolute URL that the test client's app serves (``http://localhost``)."""
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("http", "localhost"), url
    return client.get(parts.path + ("?" + parts.query if parts.query else ""), headers=headers)


# -- create and show ---------------------------------------------------------


def test_create_answers_id_message_and_location(client, admin_headers):
    resp = client.post("/v3/image", json=image(id="ami-0abc"), headers=admin_headers)
    assert resp.status_code == 200
    assert resp.mimetype == JSON
    assert body_of(resp) == {"id": "ami-0abc", "message": "Created"}
    assert resp.headers["Location"] == "http://localhost/v3/image/ami-0abc"


@pytest.mark.parametrize(
    "image_id",
    ["ami-0abc", UUID, "Canonical:UbuntuServer:22.04:latest", "user@host+x~y_z.1", "...", ".x", "x" * 255],
)
def test_location_leads_to_the_image(client, admin_headers, image_id):
    body = image(id=image_id)
    resp = client.post("/v3/image", json=body, headers=admin_headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert body_of(resp) == {"id": image_id, "message": "Created"}
    shown = follow(client, admin_headers, resp.headers["Location"])
    assert shown.status_code == 200
    assert body_of(shown) == body


def test_show_returns_exactly_the_four_fields(client, admin_headers, create):
    body = create(id="ami-1", provider="ec2", remote_user="ec2-user", name="Amazon Linux")
    resp = client.get("/v3/image/ami-1", headers=admin_headers)
    assert resp.status_code == 200
    assert resp.mimetype == JSON
    assert body_of(resp) == body


def test_name_is_optional_and_defaults_to_empty(client, admin_headers):
    body = {"id": "ami-1", "provider": "ec2", "remote_user": "ubuntu"}
    assert client.post("/v3/image", json=body, headers=admin_headers).status_code == 200
    assert show(client, admin_headers, "ami-1") == {**body, "name": ""}


VALID_VALUES = {
    "id": ["a", "x" * 255, "a..b"],
    "provider": ["p", "x" * 64, "a.b:c@d+e~f-g_h"],
    "remote_user": ["a", "_svc", "A.b-c_9", "x" * 64],
    "name": ["", "Ubuntu 22.04 — LTS ✓ 日本語 🚀", "é" * 255, "  spaces kept  "],
}


@pytest.mark.parametrize("field, value", [(field, value) for field, values in VALID_VALUES.items() for value in values])
def test_valid_values_are_stored_as_sent(client, admin_headers, field, value):
    body = {**image(id="ami-1"), field: value}
    resp = client.post("/v3/image", json=body, headers=admin_headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert show(client, admin_headers, body["id"]) == body


def test_raw_utf8_body_is_read_as_utf8(client, admin_headers):
    body = image(id="ami-1", name="café ✓")
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    resp = client.post("/v3/image", data=data, content_type="application/json", headers=admin_headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert show(client, admin_headers, "ami-1") == body


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/json;charset=UTF-8"])
def test_content_type_with_charset_is_fine(client, admin_headers, content_type):
    body = image(id="ami-1")
    resp = client.post("/v3/image", data=json.dumps(body), content_type=content_type, headers=admin_headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert listing(client, admin_headers) == [body]


def test_ids_are_case_sensitive(client, admin_headers, create):
    lower = create(id="ami-a", name="lower")
    upper = create(id="AMI-A", name="upper")
    assert show(client, admin_headers, "ami-a") == lower
    assert show(client, admin_headers, "AMI-A") == upper


def test_duplicate_create_is_409_and_changes_nothing(client, admin_headers, create):
    first = create(id="ami-1", provider="ec2", remote_user="ubuntu", name="first")
    again = image(id="ami-1", provider="openstack", remote_user="centos", name="second")
    resp = client.post("/v3/image", json=again, headers=admin_headers)
    assert_error(resp, 409)
    assert "Location" not in resp.headers
    assert listing(client, admin_headers) == [first]


def test_id_can_be_created_again_after_delete(client, admin_headers, create):
    create(id="ami-1", name="first")
    assert client.delete("/v3/image/ami-1", headers=admin_headers).status_code == 200
    second = create(id="ami-1", name="second")
    assert listing(client, admin_headers) == [second]


# -- exact strings on every backend (README: The API) -----------------------------


def test_an_id_in_another_case_names_no_image(client, admin_headers, create):
    kept = create(id="keep-me")
    canonical = create(id="Canonical:UbuntuServer:22.04:latest")
    assert_error(client.delete("/v3/image/KEEP-ME", headers=admin_headers), 404)
    assert_error(client.put("/v3/image/canonical:ubuntuserver:22.04:LATEST", json={"name": "x"}, headers=admin_headers), 404)
    assert_error(client.get("/v3/image/Keep-Me", headers=admin_headers), 404)
    assert listing(client, admin_headers) == [canonical, kept]


@pytest.mark.parametrize("path_id", ["ec2%C3%ADmg", "a%00b", "ec2img%20", "%20ec2img", "ec2img%09"])
def test_a_path_id_that_breaks_the_rule_is_404_whatever_is_stored(client, admin_headers, create, path_id):
    create(id="ec2img")
    create(id="ab")
    assert_error(client.get(f"/v3/image/{path_id}", headers=admin_headers), 404)
    assert_error(client.put(f"/v3/image/{path_id}", json={"name": "x"}, headers=admin_headers), 404)
    assert_error(client.delete(f"/v3/image/{path_id}", headers=admin_headers), 404)
    assert [i["id"] for i in listing(client, admin_headers)] == ["ab", "ec2img"]


def test_names_are_kept_to_the_code_point(client, admin_headers, create):
    names = ["Ubuntu ", "Ubuntu", "ubuntu", "Übuntu", "Ubuntu 🚀", "Ubuntu  "]
    for n, name in enumerate(names):
        create(id=f"img-{n}", name=name)
    assert [i["name"] for i in listing(client, admin_headers)] == names


def test_the_columns_themselves_compare_exactly(app, create):
    """The rule is the columns', not only the API's queries': what any SQL sees (README: The API)."""
    create(id="keep-me", provider="ec2")
    database = api_state(app).database
    with app.app_context(), database.connection_context():
        param = database.param
        for sql, values in [
            (f"SELECT COUNT(*) FROM images WHERE id = {param}", ["KEEP-ME"]),
            (f"SELECT COUNT(*) FROM images WHERE provider = {param}", ["EC2"]),
            (f"SELECT COUNT(*) FROM images WHERE id > {param}", ["keep-me"]),
            (f"SELECT COUNT(*) FROM users WHERE name = {param}", ["ADMIN"]),
        ]:
            assert database.execute_sql(sql, values).fetchone()[0] == 0, sql


# -- list ----------------------------------------------------------------------


def test_list_of_nothing_is_an_empty_array(client, admin_headers):
    resp = client.get("/v3/images", headers=admin_headers)
    assert resp.status_code == 200
    assert resp.mimetype == JSON
    assert body_of(resp) == []
    assert "Link" not in resp.headers


def test_list_shows_exactly_the_four_fields(client, admin_headers, create):
    stored = [create(id="ami-1"), create(id="ami-2", provider="openstack", name="")]
    assert listing(client, admin_headers) == stored


def test_list_is_in_code_point_order_of_id(client, admin_headers, create):
    ids = ["B", "a", "Z", "_", "~", "0", "ami-10", "ami-9", "AMI-1", "@x", "+y", "-z", ".x", "a:b", "ab"]
    for image_id in ids:
        create(id=image_id)
    assert [i["id"] for i in listing(client, admin_headers)] == sorted(ids)


@pytest.mark.parametrize(
    "provider, expected",
    [
        ("ec2", ["a-1", "c-3", "e-5"]),
        ("openstack", ["b-2", "d-4"]),
        ("static", []),
        ("EC2", []),
    ],
)
def test_provider_filter_lists_only_that_provider(client, admin_headers, create, provider, expected):
    for image_id, image_provider in [("e-5", "ec2"), ("b-2", "openstack"), ("a-1", "ec2"), ("d-4", "openstack"), ("c-3", "ec2")]:
        create(id=image_id, provider=image_provider)
    resp = client.get(f"/v3/images?provider={provider}", headers=admin_headers)
    assert resp.status_code == 200
    assert [i["id"] for i in body_of(resp)] == expected
    assert all(i["provider"] == provider for i in body_of(resp))
    assert "Link" not in resp.headers


@pytest.mark.parametrize(
    "stored, query, listed",
    [
        (["a", "b", "c", "d"], "marker=b", ["c", "d"]),  # after that id
        (["ami-10", "ami-20", "ami-30"], "marker=ami-15", ["ami-20", "ami-30"]),  # which need not exist
        (["a", "B", "c", "_"], "marker=B", ["_", "a", "c"]),  # in code point order
        (["a"], "marker=a&limit=5", []),  # an empty page at the end
        (["a", "b", "c"], "limit=3", ["a", "b", "c"]),
        (["a", "b", "c"], "limit=4", ["a", "b", "c"]),
        (["a", "b", "c"], "limit=1000", ["a", "b", "c"]),
    ],
)
def test_a_last_page_lists_what_follows_the_marker_and_links_nowhere(client, admin_headers, create, stored, query, listed):
    for image_id in stored:
        create(id=image_id)
    resp = client.get(f"/v3/images?{query}", headers=admin_headers)
    assert resp.status_code == 200
    assert [i["id"] for i in body_of(resp)] == listed
    assert "Link" not in resp.headers


def test_page_cut_short_links_to_the_next(client, admin_headers, create):
    for image_id in ["e", "a", "d", "b", "c"]:
        create(id=image_id)
    resp = client.get("/v3/images?limit=2", headers=admin_headers)
    assert resp.status_code == 200
    assert [i["id"] for i in body_of(resp)] == ["a", "b"]
    url = next_link(resp)
    assert url is not None
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "localhost", "/v3/images")
    assert parse_qs(parts.query) == {"limit": ["2"], "marker": ["b"]}


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 8])
def test_following_links_walks_every_image_once(client, admin_headers, create, limit):
    ids = ["g", "c", "a", "f", "b", "e", "d"]
    for image_id in ids:
        create(id=image_id)
    seen, pages = [], 0
    resp = client.get(f"/v3/images?limit={limit}", headers=admin_headers)
    for _ in range(len(ids) + 2):
        assert resp.status_code == 200
        page = [i["id"] for i in body_of(resp)]
        assert 0 < len(page) <= limit
        seen += page
        pages += 1
        url = next_link(resp)
        if url is None:
            break
        resp = follow(client, admin_headers, url)
    assert seen == sorted(ids)
    assert pages == -(-len(ids) // limit)


def test_link_keeps_the_provider_filter(client, admin_headers, create):
    for image_id, provider in [("a", "ec2"), ("b", "gce"), ("c", "ec2"), ("d", "gce"), ("e", "ec2")]:
        create(id=image_id, provider=provider)
    resp = client.get("/v3/images?provider=ec2&limit=1", headers=admin_headers)
    seen = []
    for _ in range(5):
        assert resp.status_code == 200
        seen += [i["id"] for i in body_of(resp)]
        url = next_link(resp)
        if url is None:
            break
        assert parse_qs(urlsplit(url).query)["provider"] == ["ec2"]
        resp = follow(client, admin_headers, url)
    assert seen == ["a", "c", "e"]


def test_link_includes_the_mount_prefix(client, admin_headers, create):
    for image_id in ["a", "b"]:
        create(id=image_id)
    resp = client.get("/v3/images?limit=1", headers=admin_headers, environ_overrides={"SCRIPT_NAME": "/api"})
    assert resp.status_code == 200
    assert urlsplit(next_link(resp)).path == "/api/v3/images"


# -- update ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"name": "renamed"},
        {"name": ""},
        {"remote_user": "ec2-user"},
        {"remote_user": "_svc", "name": "both"},
        {"id": "ami-1", "name": "echoing id"},
        {"provider": "ec2", "remote_user": "admin"},
        {"id": "ami-1", "provider": "ec2", "remote_user": "centos", "name": "all four"},
    ],
)
def test_put_changes_only_what_it_sends(client, admin_headers, create, change):
    before = create(id="ami-1", provider="ec2", remote_user="ubuntu", name="before")
    other = create(id="ami-2", name="untouched")
    after = {**before, **change}
    resp = client.put("/v3/image/ami-1", json=change, headers=admin_headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == JSON
    assert body_of(resp) == {"image": after, "message": "Updated"}
    assert listing(client, admin_headers) == [after, other]


def test_put_accepts_what_get_returned(client, admin_headers, create):
    create(id="ami-1")
    shown = show(client, admin_headers, "ami-1")
    edited = {**shown, "name": "edited"}
    resp = client.put("/v3/image/ami-1", json=edited, headers=admin_headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert show(client, admin_headers, "ami-1") == edited


# -- delete ----------------------------------------------------------------------


def test_delete_then_get_is_404(client, admin_headers, create):
    create(id="ami-1")
    kept = create(id="ami-2")
    resp = client.delete("/v3/image/ami-1", headers=admin_headers)
    assert resp.status_code == 200
    assert resp.mimetype == JSON
    assert body_of(resp) == {"id": "ami-1", "message": "Deleted"}
    assert_error(client.get("/v3/image/ami-1", headers=admin_headers), 404)
    assert_error(client.delete("/v3/image/ami-1", headers=admin_headers), 404)
    assert listing(client, admin_headers) == [kept]


# -- every read sees the last write ------------------------------------------------
# Between writes, a thread answers lookups from the rows it read (README: Storage).


@pytest.mark.parametrize("writer", ["this app", "another app"])
def test_each_write_is_read_back_at_once(config, client, admin_headers, writer):
    """Writes through the reader's own connection, or another app's: its own database object, so its own connection."""
    writes = client if writer == "this app" else create_app(config).test_client()
    assert_error(client.get("/v3/image/ami-1", headers=admin_headers), 404)
    assert writes.post("/v3/image", json=image(id="ami-1", name="first"), headers=admin_headers).status_code == 200
    assert show(client, admin_headers, "ami-1")["name"] == "first"
    assert writes.put("/v3/image/ami-1", json={"name": "second"}, headers=admin_headers).status_code == 200
    assert show(client, admin_headers, "ami-1")["name"] == "second"
    assert writes.delete("/v3/image/ami-1", headers=admin_headers).status_code == 200
    assert_error(client.get("/v3/image/ami-1", headers=admin_headers), 404)
    assert writes.post("/v3/image", json=image(id="ami-1", name="third"), headers=admin_headers).status_code == 200
    assert show(client, admin_headers, "ami-1")["name"] == "third"


@pytest.mark.sqlite_only
def test_rows_are_kept_only_for_values_a_row_can_have(app, client, admin_headers, create):
    create(id="ami-kept")
    junk = "a" * 100_000  # breaks the id rule: names no image
    for n in range(3):
        assert_error(client.get(f"/v3/image/{n}{junk}", headers=admin_headers), 404)
    assert show(client, admin_headers, "ami-kept")["id"] == "ami-kept"
    kept = api_state(app).database.read_rows.rows  # this thread's, as the test client's
    assert any(value == "ami-kept" for _, value in kept)
    assert max(len(value) for _, value in kept) <= 255


# -- HEAD and OPTIONS ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v3/images", "/v3/image/ami-1", "/v3/images?provider=ec2&limit=1"])
def test_head_answers_like_get_without_a_body(client, admin_headers, create, path):
    create(id="ami-1")
    create(id="ami-2")
    get = client.get(path, headers=admin_headers)
    head = client.head(path, headers=admin_headers)
    assert head.status_code == get.status_code == 200
    assert head.mimetype == JSON
    assert head.get_data() == b""
    assert head.headers.get("Link") == get.headers.get("Link")


def test_head_of_unknown_image_is_404(client, admin_headers):
    assert_error(client.head("/v3/image/ami-none", headers=admin_headers), 404)


@pytest.mark.parametrize(
    "path, allowed",
    [
        ("/v3/images", {"GET", "HEAD", "OPTIONS"}),
        ("/v3/image", {"POST", "OPTIONS"}),
        ("/v3/image/ami-1", {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}),
        ("/v3/image/ami-none", {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}),
    ],
)
def test_options_answers_without_credentials(client, admin_headers, create, path, allowed):
    stored = [create(id="ami-1")]
    resp = client.options(path)
    assert resp.status_code == 204
    assert "Content-Type" not in resp.headers  # nothing to describe: no HTML type on an empty body
    assert allow_header(resp) == allowed
    assert listing(client, admin_headers) == stored


# -- provider allow-list ---------------------------------------------------------


ALLOW_LIST = "ec2,openstack,static"


@pytest.fixture
def allow_list_client(config):
    """A client of an app that only accepts the providers ec2, openstack and static."""
    app = create_app({**config, "IMAGES_API_PROVIDERS": ALLOW_LIST})
    return app.test_client()


@pytest.mark.parametrize(
    "allowed, provider",
    [*[(ALLOW_LIST, p) for p in ["ec2", "openstack", "static"]], *[(None, p) for p in ["azure", "my-private-cloud", "x" * 64, "a.b:c@d+e~f-g_h"]]],
)
def test_a_provider_on_the_allow_list_or_any_without_one_is_accepted(config, admin_headers, allowed, provider):
    client = create_app({**config, "IMAGES_API_PROVIDERS": allowed} if allowed else config).test_client()
    body = image(id="ami-1", provider=provider)
    resp = client.post("/v3/image", json=body, headers=admin_headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert listing(client, admin_headers) == [body]


@pytest.mark.parametrize("provider", ["azure", "EC2", "ec", "ec2x", "static2"])
def test_provider_outside_the_list_is_400_naming_the_allowed(allow_list_client, admin_headers, provider):
    resp = allow_list_client.post("/v3/image", json=image(id="ami-1", provider=provider), headers=admin_headers)
    body = assert_error(resp, 400)
    assert "provider" in body["errors"]
    text = json.dumps(body)
    assert all(name in text for name in ("ec2", "openstack", "static")), text
    assert listing(allow_list_client, admin_headers) == []


def test_put_sends_back_a_provider_the_allow_list_no_longer_has(config, client, admin_headers):
    stored = image(id="ami-old", provider="gce")
    assert client.post("/v3/image", json=stored, headers=admin_headers).status_code == 200
    narrowed = create_app({**config, "IMAGES_API_PROVIDERS": "ec2,openstack"}).test_client()
    resp = narrowed.put("/v3/image/ami-old", json={**stored, "name": "renamed"}, headers=admin_headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert body_of(resp)["image"] == {**stored, "name": "renamed"}
