"""Who may call what (README: Authentication; Users and tokens, the first start)."""

import base64
import json
import re

import pytest
from click.testing import CliRunner
from support import JSON, NEW, POLICIES, SEED, assert_error, basic, listing, route_params

from images_api import create_app
from images_api.cli import main

SCHEMES = ["bearer", "basic"]


def credentials(scheme, name, token):
    """Headers carrying ``token`` for user ``name`` by ``scheme``."""
    if scheme == "bearer":
        return {"Authorization": f"Bearer {token}"}
    return basic(name, token)


def effect_of(route, client, admin_headers):
    """What the store must hold after ``route``'s request succeeded."""
    stored = listing(client, admin_headers)
    expected = {
        "list": [SEED],
        "show": [SEED],
        "create": [NEW, SEED],
        "update": [{**SEED, **(route.body or {})}],
        "delete": [],
    }[route.name]
    assert stored == expected


# -- the matrix: route x (none, unknown, without policy, with policy) x scheme -------
# Which check answers when a request fails a later one too: test_errors.py.


@pytest.mark.parametrize("route", route_params())
def test_no_credentials_is_401(client, refused, route):
    refused(route.open(client), 401)
    if route.method == "GET":  # HEAD follows GET's rules
        refused(client.head(route.path), 401)


@pytest.mark.parametrize("route", route_params())
@pytest.mark.parametrize("scheme", SCHEMES)
def test_unknown_token_is_401(client, admin_token, refused, make_user, route, scheme):
    make_user("alice", *POLICIES)
    for token in ["unknown-" + "x" * 40, "not-a-token", admin_token[:-1] + "J", "x" * 43]:
        refused(route.open(client, credentials(scheme, "alice", token)), 401, token)


@pytest.mark.parametrize("route", route_params())
@pytest.mark.parametrize("scheme", SCHEMES)
def test_valid_token_without_the_policy_is_403(client, refused, make_user, route, scheme):
    token = make_user("alice", *[p for p in POLICIES if p != route.policy])
    body = refused(route.open(client, credentials(scheme, "alice", token)), 403, token)
    assert route.policy in body["message"]


@pytest.mark.parametrize("route", route_params())
@pytest.mark.parametrize("scheme", SCHEMES)
def test_valid_token_with_only_the_policy_succeeds(client, admin_headers, seeded, make_user, route, scheme):
    token = make_user("alice", route.policy)
    resp = route.open(client, credentials(scheme, "alice", token))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == JSON
    effect_of(route, client, admin_headers)


@pytest.mark.parametrize("route", route_params())
def test_user_without_any_policy_is_403(client, refused, make_user, route):
    token = make_user("nobody")
    body = refused(route.open(client, {"Authorization": f"Bearer {token}"}), 403, token)
    assert route.policy in body["message"]


# -- Basic: the name must match the token ---------------------------------------------


@pytest.mark.parametrize("route", route_params())
@pytest.mark.parametrize("name", ["bob", "nobody", "", "ALICE", "alice ", " alice"])
def test_basic_with_another_name_and_alices_token_is_401(client, refused, make_user, route, name):
    token = make_user("alice", *POLICIES)
    make_user("bob", *POLICIES)
    refused(route.open(client, basic(name, token)), 401, token)


def test_basic_with_the_other_users_token_is_401(client, admin_headers, seeded, make_user):
    make_user("alice", *POLICIES)
    bob = make_user("bob", *POLICIES)
    assert_error(client.get("/v3/images", headers=basic("alice", bob)), 401, bob)


def test_each_user_is_known_by_their_own_token(client, seeded, make_user):
    reader = make_user("reader", "read_images")
    writer = make_user("writer", "create_image")
    assert client.get("/v3/images", headers=basic("reader", reader)).status_code == 200
    assert_error(client.get("/v3/images", headers=basic("writer", writer)), 403)
    assert client.post("/v3/image", json=NEW, headers=basic("writer", writer)).status_code == 200
    assert_error(client.post("/v3/image", json=NEW, headers=basic("reader", reader)), 403)


# -- malformed Authorization headers: 401, never 500 ----------------------------------


def b64(data):
    return base64.b64encode(data).decode("ascii")


def malformed(token):
    """(case, raw header value as a WSGI latin-1 str) for a user ``alice`` with ``token``."""
    good_basic = b64(f"alice:{token}".encode())
    return {
        "empty": "",
        "spaces": "   ",
        "bearer-only": "Bearer",
        "bearer-empty": "Bearer ",
        "bearer-spaces": "Bearer    ",
        "bearer-two-tokens": f"Bearer {token} {token}",
        "bearer-non-ascii": f"Bearer {token}\xe9",
        "bearer-utf8-bytes": "Bearer " + "tökén".encode("utf-8").decode("latin-1"),
        "bearer-latin1-only": "Bearer \xe9\xe8\xff",
        "bearer-control-char": f"Bearer {token}\x01",
        "token-without-scheme": token,
        "unknown-scheme": f"Token {token}",
        "digest": 'Digest username="alice", realm="images-api", nonce="x", uri="/", response="y"',
        "basic-only": "Basic",
        "basic-empty": "Basic ",
        "basic-not-base64": "Basic !!!not*base64!!!",
        "basic-bad-padding": "Basic " + good_basic.rstrip("=")[:-1],
        "basic-no-colon": "Basic " + b64(b"alice" + token.encode()),
        "basic-empty-token": "Basic " + b64(b"alice:"),
        "basic-empty-both": "Basic " + b64(b":"),
        "basic-not-utf8": "Basic " + b64(b"\xff\xfe:\xff" + token.encode()),
        "basic-non-ascii": "Basic \xe9" + good_basic,
        "basic-with-bearer-token": f"Basic {token}",
        "bearer-with-basic-pair": f"Bearer {good_basic}",
    }


MALFORMED_CASES = list(malformed("t"))


@pytest.mark.parametrize("case", MALFORMED_CASES)
@pytest.mark.parametrize("route", route_params())
def test_malformed_authorization_is_401(client, refused, make_user, route, case):
    token = make_user("alice", *POLICIES)
    value = malformed(token)[case]
    refused(route.open(client, environ_overrides={"HTTP_AUTHORIZATION": value}), 401, token)


# -- REMOTE_USER -------------------------------------------------------------------


@pytest.fixture
def trusting_client(config):
    """A client of an app that trusts the WSGI ``REMOTE_USER`` variable."""
    return create_app({**config, "IMAGES_API_TRUST_REMOTE_USER": True}).test_client()


@pytest.fixture
def alice(make_user):
    """User ``alice`` who may only read."""
    return make_user("alice", "read_images")


@pytest.mark.parametrize("trust", [False, True])
@pytest.mark.parametrize("header", ["Remote-User", "Remote_User", "X-Remote-User", "REMOTE-USER"])
def test_remote_user_request_header_never_authenticates(config, alice, trust, header):
    client = create_app({**config, "IMAGES_API_TRUST_REMOTE_USER": trust}).test_client()
    assert_error(client.get("/v3/images", headers={header: "admin"}), 401)
    assert_error(client.post("/v3/image", json=NEW, headers={header: "alice"}), 401)


@pytest.mark.parametrize("route", route_params())
def test_trusted_remote_user_names_the_user(trusting_client, admin_headers, make_user, route):
    assert trusting_client.post("/v3/image", json=SEED, headers=admin_headers).status_code == 200
    make_user("carol", route.policy)
    make_user("dave", *[p for p in POLICIES if p != route.policy])
    resp = route.open(trusting_client, environ_base={"REMOTE_USER": "dave"})
    body = assert_error(resp, 403)
    assert route.policy in body["message"]
    resp = route.open(trusting_client, environ_base={"REMOTE_USER": "carol"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    effect_of(route, trusting_client, admin_headers)


@pytest.mark.parametrize("route", route_params())
def test_trusted_remote_user_not_in_the_table_is_403(trusting_client, admin_headers, route):
    assert trusting_client.post("/v3/image", json=SEED, headers=admin_headers).status_code == 200
    assert_error(route.open(trusting_client, environ_base={"REMOTE_USER": "mallory"}), 403)
    assert listing(trusting_client, admin_headers) == [SEED]


@pytest.mark.parametrize(
    "authorization",
    ["admin", "unknown", "malformed"],
)
def test_trusted_remote_user_ignores_authorization(trusting_client, admin_headers, admin_token, alice, authorization):
    value = {
        "admin": f"Bearer {admin_token}",
        "unknown": "Bearer unknown-" + "x" * 40,
        "malformed": "Basic !!!",
    }[authorization]
    environ = {"REMOTE_USER": "alice"}
    headers = {"Authorization": value}
    assert trusting_client.get("/v3/images", headers=headers, environ_base=environ).status_code == 200
    body = assert_error(trusting_client.post("/v3/image", json=NEW, headers=headers, environ_base=environ), 403, admin_token)
    assert "create_image" in body["message"]
    assert listing(trusting_client, admin_headers) == []


def test_trusting_app_still_takes_tokens_without_remote_user(trusting_client, alice):
    assert trusting_client.get("/v3/images", headers={"Authorization": f"Bearer {alice}"}).status_code == 200
    assert_error(trusting_client.get("/v3/images"), 401)


def test_untrusted_remote_user_is_ignored(client, admin_headers, alice):
    assert_error(client.get("/v3/images", environ_base={"REMOTE_USER": "admin"}), 401)
    resp = client.post("/v3/image", json=NEW, headers={"Authorization": f"Bearer {alice}"}, environ_base={"REMOTE_USER": "admin"})
    assert_error(resp, 403)
    assert listing(client, admin_headers) == []


def test_a_user_name_in_another_case_is_another_user(trusting_client, make_user, alice, admin_headers):
    assert_error(trusting_client.get("/v3/images", environ_base={"REMOTE_USER": "ADMIN"}), 403)
    assert_error(trusting_client.get("/v3/images", environ_base={"REMOTE_USER": "Alice"}), 403)
    make_user("ADMIN", "read_images")
    make_user("alicé", "read_images")
    assert trusting_client.get("/v3/images", environ_base={"REMOTE_USER": "ADMIN"}).status_code == 200
    assert_error(trusting_client.delete("/v3/image/ami-x", environ_base={"REMOTE_USER": "ADMIN"}), 403)


def test_a_remote_user_in_utf8_names_the_user_of_that_name(trusting_client, make_user):
    make_user("ädmin", "read_images")
    as_wsgi_carries_it = "ädmin".encode().decode("latin-1")  # PEP 3333: bytes as Latin-1
    assert trusting_client.get("/v3/images", environ_base={"REMOTE_USER": as_wsgi_carries_it}).status_code == 200
    assert_error(trusting_client.get("/v3/images", environ_base={"REMOTE_USER": "\xe4dmin"}), 403)  # not UTF-8


@pytest.mark.parametrize("name", ["al\x00ice", "alice ", " alice", "al:ice", "a" * 65])
def test_a_remote_user_that_cannot_be_a_user_name_is_403(trusting_client, alice, name):
    assert_error(trusting_client.get("/v3/images", environ_base={"REMOTE_USER": name}), 403)


@pytest.mark.parametrize("value, trusted", [("1", True), ("true", True), ("0", False), ("false", False)])
def test_trust_remote_user_from_the_environment(monkeypatch, config, alice, value, trusted):
    monkeypatch.setenv("IMAGES_API_TRUST_REMOTE_USER", value)
    client = create_app(config).test_client()
    resp = client.get("/v3/images", environ_base={"REMOTE_USER": "alice"})
    assert resp.status_code == (200 if trusted else 401), resp.get_data(as_text=True)


# -- first start: the admin user -------------------------------------------------------


def users(database_url):
    result = CliRunner().invoke(main, ["user", "list", "--database", database_url])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def printed_tokens(text):
    """Words of ``text`` long enough to be a 256-bit token."""
    return [w.strip("'\".,;:()[]<>") for w in text.split() if len(w.strip("'\".,;:()[]<>")) >= 40]


def test_first_start_creates_admin_with_the_given_token(database_url, capfd):
    token = "first-start-token-" + "a" * 30
    app = create_app({"TESTING": True, "IMAGES_API_DATABASE_URL": database_url, "IMAGES_API_ADMIN_TOKEN": token})
    client = app.test_client()
    assert token not in "".join(capfd.readouterr())
    assert users(database_url) == ["admin\t" + ",".join(sorted(POLICIES))]
    assert client.get("/v3/images", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.post("/v3/image", json=SEED, headers=basic("admin", token)).status_code == 200
    assert client.put("/v3/image/ami-seed", json={"name": "x"}, headers=basic("admin", token)).status_code == 200
    assert client.delete("/v3/image/ami-seed", headers=basic("admin", token)).status_code == 200


def test_first_start_without_a_token_prints_one_that_works(database_url, capfd):
    app = create_app({"TESTING": True, "IMAGES_API_DATABASE_URL": database_url})
    out, err = capfd.readouterr()
    candidates = printed_tokens(err)
    assert len(candidates) == 1, err
    token = candidates[0]
    assert token not in out
    assert re.fullmatch(r"[\x21-\x7e]+", token)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/v3/image", json=SEED, headers=headers).status_code == 200
    assert client.get("/v3/images", headers=headers).status_code == 200
    assert client.delete("/v3/image/ami-seed", headers=headers).status_code == 200
    assert users(database_url) == ["admin\t" + ",".join(sorted(POLICIES))]

    second = create_app({"TESTING": True, "IMAGES_API_DATABASE_URL": database_url})
    out, err = capfd.readouterr()
    assert printed_tokens(err) == [] and token not in out + err
    assert second.test_client().get("/v3/images", headers=headers).status_code == 200
    assert users(database_url) == ["admin\t" + ",".join(sorted(POLICIES))]


def test_fresh_tokens_differ_between_databases(tmp_path, capfd):
    tokens = []
    for name in ("one", "two"):
        create_app({"TESTING": True, "IMAGES_API_DATABASE_URL": f"sqlite:///{tmp_path / name}.db"})
        tokens += printed_tokens(capfd.readouterr().err)
    assert len(tokens) == 2 and tokens[0] != tokens[1]


def test_second_start_does_not_recreate_a_removed_admin_when_users_exist(database_url, capfd):
    create_app({"TESTING": True, "IMAGES_API_DATABASE_URL": database_url, "IMAGES_API_ADMIN_TOKEN": "x" * 40})
    runner = CliRunner()
    assert runner.invoke(main, ["user", "add", "alice", "--database", database_url]).exit_code == 0
    assert runner.invoke(main, ["user", "remove", "admin", "--database", database_url]).exit_code == 0
    capfd.readouterr()
    app = create_app({"TESTING": True, "IMAGES_API_DATABASE_URL": database_url})
    assert printed_tokens(capfd.readouterr().err) == []
    assert users(database_url) == ["alice\t"]
    assert_error(app.test_client().get("/v3/images", headers={"Authorization": "Bearer " + "x" * 40}), 401)


def test_users_made_before_first_start_prevent_the_admin(database_url, capfd):
    result = CliRunner().invoke(main, ["user", "add", "alice", "--all-policies", "--database", database_url])
    assert result.exit_code == 0, result.output
    capfd.readouterr()
    create_app({"TESTING": True, "IMAGES_API_DATABASE_URL": database_url, "IMAGES_API_ADMIN_TOKEN": "y" * 40})
    assert printed_tokens(capfd.readouterr().err) == []
    assert users(database_url) == ["alice\t" + ",".join(sorted(POLICIES))]


def test_create_admin_off_creates_nobody_and_says_nobody_can_log_in(database_url, capfd, caplog):
    app = create_app({"TESTING": True, "IMAGES_API_DATABASE_URL": database_url, "IMAGES_API_CREATE_ADMIN": False})
    assert printed_tokens(capfd.readouterr().err) == []
    assert "no user can log in yet" in caplog.text
    assert users(database_url) == []
    assert_error(app.test_client().get("/v3/images"), 401)


def test_a_user_added_without_policies_is_said_to_allow_nothing(database_url):
    result = CliRunner().invoke(main, ["user", "add", "idle", "--database", database_url])
    assert result.exit_code == 0
    assert len(result.stdout.split()) == 1  # the token alone, for TOKEN=$(...)
    assert "has no policies" in result.stderr
    assert "no user can log in yet" not in result.stderr


def test_the_access_log_names_a_remote_user_that_is_not_a_user(trusting_client, caplog):
    assert_error(trusting_client.get("/v3/images", environ_base={"REMOTE_USER": "mallory\n"}), 403)
    assert "GET /v3/images 403" in caplog.text and "user=mallory\\n" in caplog.text


def test_admin_token_from_the_environment(monkeypatch, database_url):
    token = "env-admin-token-" + "z" * 30
    monkeypatch.setenv("IMAGES_API_ADMIN_TOKEN", token)
    monkeypatch.setenv("IMAGES_API_DATABASE_URL", database_url)
    client = create_app({"TESTING": True}).test_client()
    resp = client.get("/v3/images", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert json.loads(resp.get_data()) == []


def test_trusted_remote_user_unset_leaves_tokens_working(trusting_client, admin_headers):
    """Authorization is ignored only when REMOTE_USER is set (README: Users authenticated by the server)."""
    assert trusting_client.get("/v3/images", headers=admin_headers).status_code == 200
    assert trusting_client.get("/v3/images", headers=admin_headers, environ_base={"REMOTE_USER": ""}).status_code == 200
