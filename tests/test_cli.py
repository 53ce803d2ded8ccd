"""The ``images-api user`` commands (README: Users and tokens), checked over HTTP too."""

import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import NEW, POLICIES, SCRIPTS, run_process, sqlite_path

from images_api.cli import main

TOKEN = re.compile(r"[\x21-\x7e]{40,}")


def token_of(result):
    """The token a command printed, checking it stands alone on one line of stdout."""
    assert result.exit_code == 0, (result.exit_code, result.output)
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1, repr(result.stdout)
    token = result.stdout[:-1]
    assert TOKEN.fullmatch(token), repr(token)
    return token


def granted(client, token):
    """The policies ``token`` holds, probed without changing anything.

    403 comes before 400/404 (README: Errors), so a request that would fail
    later tells by its status whether the policy was there.
    """
    headers = {"Authorization": f"Bearer {token}"}
    probes = {
        "read_images": client.get("/v3/image/ami-none", headers=headers),
        "create_image": client.post("/v3/image", json={}, headers=headers),
        "delete_image": client.delete("/v3/image/ami-none", headers=headers),
    }
    statuses = {resp.status_code for resp in probes.values()}
    assert statuses <= {400, 403, 404} or statuses == {401}, statuses
    if statuses == {401}:
        return None
    return {policy for policy, resp in probes.items() if resp.status_code != 403}


def users(cli):
    result = cli("user", "list")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout.splitlines()


# -- add --------------------------------------------------------------------------------


def test_add_prints_a_working_token_alone(cli, client):
    token = token_of(cli("user", "add", "alice", "--policy", "read_images"))
    assert granted(client, token) == {"read_images"}


@pytest.mark.parametrize(
    "options, policies",
    [
        ([], set()),
        (["--policy", "read_images"], {"read_images"}),
        (["--policy", "delete_image", "--policy", "create_image"], {"create_image", "delete_image"}),
        (["--policy", "create_image", "--policy", "create_image"], {"create_image"}),
        (["--all-policies"], set(POLICIES)),
        (["--all-policies", "--policy", "read_images"], set(POLICIES)),
    ],
)
def test_add_grants_the_policies_given(cli, client, options, policies):
    token = token_of(cli("user", "add", "alice", *options))
    assert granted(client, token) == policies
    assert "alice\t" + ",".join(sorted(policies)) in users(cli)


def test_every_token_is_new(cli):
    tokens = {token_of(cli("user", "add", f"user{i}")) for i in range(5)}
    assert len(tokens) == 5


def test_add_works_on_a_fresh_database_and_creates_no_admin(cli):
    token_of(cli("user", "add", "alice", "--policy", "read_images"))
    assert users(cli) == ["alice\tread_images"]


# -- list -------------------------------------------------------------------------------


def test_list_of_no_users_prints_nothing(cli):
    assert users(cli) == []


def test_list_is_sorted_by_name_with_sorted_policies(cli):
    cli("user", "add", "carol")
    cli("user", "add", "alice", "--policy", "read_images", "--policy", "delete_image")
    cli("user", "add", "bob", "--all-policies")
    cli("user", "add", "Zed", "--policy", "create_image")
    assert users(cli) == [
        "Zed\tcreate_image",
        "alice\tdelete_image,read_images",
        "bob\tcreate_image,delete_image,read_images",
        "carol\t",
    ]


def test_database_from_the_environment(cli, database_url):
    result = CliRunner().invoke(main, ["user", "add", "erin"], env={"IMAGES_API_DATABASE_URL": database_url})
    token_of(result)
    assert users(cli) == ["erin\t"]


# -- remove, reset-token, set-policies -------------------------------------------------


def test_remove_revokes_the_token_at_once(cli, client):
    alice = token_of(cli("user", "add", "alice", "--all-policies"))
    bob = token_of(cli("user", "add", "bob", "--policy", "read_images"))
    assert granted(client, alice) == set(POLICIES)
    result = cli("user", "remove", "alice")
    assert result.exit_code == 0, result.output
    assert alice not in result.output
    assert granted(client, alice) is None
    assert granted(client, bob) == {"read_images"}
    assert not any(line.startswith("alice\t") for line in users(cli))


def test_reset_token_replaces_the_old_one_at_once(cli, client):
    old = token_of(cli("user", "add", "alice", "--policy", "read_images", "--policy", "create_image"))
    assert granted(client, old) == {"read_images", "create_image"}
    before = users(cli)
    new = token_of(cli("user", "reset-token", "alice"))
    assert new != old
    assert granted(client, old) is None
    assert granted(client, new) == {"read_images", "create_image"}
    assert users(cli) == before


def test_reset_token_twice_keeps_only_the_last(cli, client):
    token_of(cli("user", "add", "alice", "--policy", "read_images"))
    first = token_of(cli("user", "reset-token", "alice"))
    second = token_of(cli("user", "reset-token", "alice"))
    assert granted(client, first) is None
    assert granted(client, second) == {"read_images"}


@pytest.mark.parametrize(
    "policies",
    [
        [],
        ["create_image"],
        ["read_images", "delete_image"],
        ["delete_image", "create_image", "read_images"],
        ["read_images", "read_images"],
    ],
)
def test_set_policies_takes_effect_at_once(cli, client, policies):
    token = token_of(cli("user", "add", "alice", "--policy", "read_images"))
    assert granted(client, token) == {"read_images"}
    result = cli("user", "set-policies", "alice", *policies)
    assert result.exit_code == 0, result.output
    assert token not in result.output
    assert granted(client, token) == set(policies)
    assert users(cli) == ["admin\t" + ",".join(sorted(POLICIES)), "alice\t" + ",".join(sorted(set(policies)))]


def test_set_policies_leaves_others_alone(cli, client):
    alice = token_of(cli("user", "add", "alice", "--policy", "read_images"))
    bob = token_of(cli("user", "add", "bob", "--policy", "read_images"))
    assert cli("user", "set-policies", "alice", "create_image").exit_code == 0
    assert granted(client, alice) == {"create_image"}
    assert granted(client, bob) == {"read_images"}


# -- errors: one line on stderr, exit status 2, nothing changed ------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["add", "alice", "--policy", "bogus"],
        ["add", "alice", "--policy", "read_images", "--policy", "Read_Images"],
        ["add", "alice", "--policy", ""],
        ["add", "existing"],
        ["add", "existing", "--all-policies"],
        ["remove", "ghost"],
        ["remove", "Existing"],
        ["reset-token", "ghost"],
        ["set-policies", "ghost", "read_images"],
        ["set-policies", "ghost"],
        ["set-policies", "existing", "bogus"],
        ["set-policies", "existing", "read_images", "bogus"],
    ],
    ids=lambda args: "-".join(a or "empty" for a in args),
)
def test_refused_command_exits_2_with_one_line_and_changes_nothing(cli, client, args):
    token = token_of(cli("user", "add", "existing", "--policy", "read_images"))
    before = users(cli)
    result = cli("user", *args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == ""
    assert result.stderr.startswith("Error:"), repr(result.stderr)
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, repr(result.stderr)
    assert users(cli) == before
    assert granted(client, token) == {"read_images"}


# -- tokens: never stored in clear, usable from a shell ------------------------------------


@pytest.mark.sqlite_only
def test_tokens_are_never_stored_in_clear(cli, client, admin_token, database_url):
    tokens = [admin_token]
    tokens.append(token_of(cli("user", "add", "alice", "--all-policies")))
    tokens.append(token_of(cli("user", "add", "bob")))
    tokens.append(token_of(cli("user", "reset-token", "bob")))
    assert client.post("/v3/image", json=NEW, headers={"Authorization": f"Bearer {tokens[1]}"}).status_code == 200
    directory = Path(sqlite_path(database_url)).parent
    files = [p for p in directory.iterdir() if p.name.startswith(Path(sqlite_path(database_url)).name)]
    assert files
    for path in files:
        data = path.read_bytes()
        for token in tokens:
            assert token.encode() not in data, (path.name, token)


def test_token_can_be_captured_by_a_shell(database_url, client):
    script = SCRIPTS / "images-api"
    assert script.exists(), "the images-api console script is not installed"
    shell = 'TOKEN=$("$0" user add frank --policy read_images --database "$1") && printf "%s" "$TOKEN"'
    done = run_process(["bash", "-c", shell, script, database_url])
    assert done.returncode == 0, done.stderr
    assert granted(client, done.stdout) == {"read_images"}


@pytest.mark.sqlite_only
def test_a_database_that_fails_a_command_is_one_line_and_status_2(cli, client, database_url):
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as broken:
        broken.execute("DROP TABLE users")
    result = cli("user", "add", "erin", "--all-policies")
    assert result.exit_code == 2
    assert result.output.startswith("Error: the database failed: ") and len(result.output.strip().splitlines()) == 1
