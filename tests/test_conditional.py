"""Conditional requests: ETag, If-None-Match and If-Match (README: Conditional requests)."""

import threading
from collections import Counter

import pytest
from support import SEED, assert_error, call, image, listing


@pytest.fixture
def etag(seeded, client, admin_headers):
    """The ETag of the seed image, as a GET gives it."""
    return client.get("/v3/image/ami-seed", headers=admin_headers).headers["ETag"]


def test_get_one_carries_a_strong_etag_of_its_body_and_no_cache(client, admin_headers, etag):
    resp = client.get("/v3/image/ami-seed", headers=admin_headers)
    assert resp.get_data() == client.get("/v3/images", headers=admin_headers).get_data()[1:-2] + b"\n"  # one JSON style
    assert resp.headers["ETag"] == etag and not etag.startswith("W/")
    assert resp.headers["Cache-Control"] == "no-cache"
    head = client.head("/v3/image/ami-seed", headers=admin_headers)
    assert head.headers["ETag"] == etag and head.get_data() == b""
    assert client.post("/v3/image", json=image(id="ami-2"), headers=admin_headers).status_code == 200
    assert client.get("/v3/image/ami-2", headers=admin_headers).headers["ETag"] != etag
    assert client.get("/v3/image/ami-seed", headers=admin_headers).headers["ETag"] == etag


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("template", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
def test_if_none_match_that_matches_is_304_without_a_body(client, admin_headers, etag, method, template):
    headers = {**admin_headers, "If-None-Match": template.format(etag=etag)}
    resp = client.open("/v3/image/ami-seed", method=method, headers=headers)
    assert resp.status_code == 304
    assert resp.headers["ETag"] == etag
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.get_data() == b""


@pytest.mark.parametrize("value", ['"other"', 'W/"other"', '"other", W/"another"'])
def test_if_none_match_that_does_not_match_is_a_200(client, admin_headers, etag, value):
    resp = client.get("/v3/image/ami-seed", headers={**admin_headers, "If-None-Match": value})
    assert resp.status_code == 200 and resp.get_json() == SEED


def test_if_none_match_on_an_unknown_image_is_404(client, admin_headers, etag):
    assert_error(client.get("/v3/image/ami-none", headers={**admin_headers, "If-None-Match": "*"}), 404)


def test_a_listing_page_has_its_own_etag(client, admin_headers):
    for n in range(4):
        assert client.post("/v3/image", json=image(id=f"ami-{n}"), headers=admin_headers).status_code == 200

    def page(marker=None):
        query = "?limit=2" + (f"&marker={marker}" if marker else "")
        resp = client.get(f"/v3/images{query}", headers=admin_headers)
        assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-cache"
        return resp.headers["ETag"]

    first, second, whole = page(), page("ami-1"), client.get("/v3/images", headers=admin_headers).headers["ETag"]
    assert len({first, second, whole}) == 3
    assert client.put("/v3/image/ami-3", json={"name": "changed"}, headers=admin_headers).status_code == 200
    assert page() == first  # another page's image changed
    assert page("ami-1") != second
    assert client.get("/v3/images", headers=admin_headers).headers["ETag"] != whole
    assert client.delete("/v3/image/ami-0", headers=admin_headers).status_code == 200
    assert page() != first


def test_the_last_pages_etag_changes_when_images_come_after_it(client, admin_headers, etag):
    """A client that revalidates its last page must learn of a next one (the Link header)."""
    listed = client.get("/v3/images?limit=1", headers=admin_headers).headers["ETag"]
    assert client.post("/v3/image", json=image(id="ami-zzz"), headers=admin_headers).status_code == 200
    resp = client.get("/v3/images?limit=1", headers={**admin_headers, "If-None-Match": listed})
    assert resp.status_code == 200 and resp.get_json() == [SEED] and 'rel="next"' in resp.headers["Link"]
    assert resp.headers["ETag"] != listed


def test_an_unchanged_listing_is_304_and_a_changed_one_is_not(client, admin_headers, etag):
    listed = client.get("/v3/images", headers=admin_headers).headers["ETag"]
    for _ in range(2):  # the second from what the thread kept
        resp = client.get("/v3/images", headers={**admin_headers, "If-None-Match": listed})
        assert resp.status_code == 304 and resp.headers["ETag"] == listed and resp.get_data() == b""
    assert client.post("/v3/image", json=image(id="ami-2"), headers=admin_headers).status_code == 200
    resp = client.get("/v3/images", headers={**admin_headers, "If-None-Match": listed})
    assert resp.status_code == 200 and len(resp.get_json()) == 2


@pytest.mark.parametrize("template", ["{etag}", '"other", {etag}', "*"])
def test_put_with_if_match_that_matches_changes_and_gives_the_new_etag(client, admin_headers, etag, template):
    resp = client.put("/v3/image/ami-seed", json={"name": "v2"}, headers={**admin_headers, "If-Match": template.format(etag=etag)})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    shown = client.get("/v3/image/ami-seed", headers=admin_headers)
    assert resp.headers["ETag"] == shown.headers["ETag"] != etag
    assert shown.get_json()["name"] == "v2"


@pytest.mark.parametrize("method, body", [("PUT", {"name": "v2"}), ("DELETE", None)])
@pytest.mark.parametrize("template", ['"other"', "W/{etag}", '"other", W/{etag}', ""])
def test_if_match_that_does_not_match_is_412_and_changes_nothing(client, admin_headers, etag, unchanged, method, body, template):
    headers = {**admin_headers, "If-Match": template.format(etag=etag)}
    body_of_error = assert_error(client.open("/v3/image/ami-seed", method=method, json=body, headers=headers), 412)
    assert "If-Match" in body_of_error["message"]
    unchanged()


@pytest.mark.parametrize("method, body", [("PUT", {"name": "v2"}), ("DELETE", None)])
@pytest.mark.parametrize("template", ["{etag}", "W/{etag}", "*"])
def test_a_write_with_if_none_match_naming_the_image_is_412(client, admin_headers, etag, unchanged, method, body, template):
    headers = {**admin_headers, "If-None-Match": template.format(etag=etag)}
    assert_error(client.open("/v3/image/ami-seed", method=method, json=body, headers=headers), 412)
    unchanged()
    headers["If-None-Match"] = '"another"'
    assert client.open("/v3/image/ami-seed", method=method, json=body, headers=headers).status_code == 200


def test_delete_with_if_match_that_matches_deletes(client, admin_headers, etag):
    assert client.delete("/v3/image/ami-seed", headers={**admin_headers, "If-Match": etag}).status_code == 200
    assert listing(client, admin_headers) == []


@pytest.mark.parametrize("method, body", [("PUT", {"name": "v2"}), ("DELETE", None)])
def test_if_match_on_an_unknown_image_is_404(client, admin_headers, etag, method, body):
    """RFC 9110, 13.2.1: a request that would fail without its preconditions ignores them."""
    resp = client.open("/v3/image/ami-none", method=method, json=body, headers={**admin_headers, "If-Match": "*"})
    assert_error(resp, 404)


@pytest.mark.parametrize(
    "headers, body, status",
    [
        ({}, {"name": "v2"}, 401),  # credentials first
        (None, {"name": 5}, 400),  # then the body's own checks
        (None, {"id": "ami-other", "name": "v2"}, 412),  # then the precondition, before the stored values are compared
    ],
)
def test_where_if_match_stands_in_the_error_order(client, admin_headers, etag, headers, body, status):
    headers = {**(admin_headers if headers is None else headers), "If-Match": '"stale"'}
    assert_error(client.put("/v3/image/ami-seed", json=body, headers=headers), status)


def test_of_editors_who_read_one_etag_exactly_one_writes(serve, admin_token, admin_headers, client, etag):
    """The lost update: every PUT carries If-Match of the same read; one wins, the others get 412."""
    server = serve(threads=8)
    barrier = threading.Barrier(8)
    statuses = []

    def editor(n):
        barrier.wait()
        reply = call(server.port, "PUT", "/v3/image/ami-seed", {"name": f"editor {n}"}, token=admin_token, headers={"If-Match": etag})
        statuses.append(reply.status)

    editors = [threading.Thread(target=editor, args=(n,)) for n in range(8)]
    for thread in editors:
        thread.start()
    for thread in editors:
        thread.join()
    assert Counter(statuses) == {200: 1, 412: 7}
    assert client.get("/v3/image/ami-seed", headers=admin_headers).get_json()["name"].startswith("editor ")
