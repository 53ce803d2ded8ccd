"""The database over time: schema versions, the first start, export and import (README: Upgrading, Moving to another database)."""

import importlib.util
import json
import threading

import pytest
from click.testing import CliRunner
from conftest import ADMIN_TOKEN, SERVER_URLS
from servers import ServerDatabase
from support import SEED, call, image, wait_for

from images_api import create_app, opening, schema
from images_api.auth import hash_token
from images_api.cli import main
from images_api.settings import SettingError

OLD_TOKEN = "a-token-issued-by-images-api-3.0.0-0123456789"


def run(*args, database_url=None, input=None):
    """``images-api ARGS [--database URL]`` in this process; returns click's ``Result``."""
    args = [*args, "--database", database_url] if database_url else list(args)
    return CliRunner().invoke(main, args, input=input)


def migration(name):
    """The module of the package's migration ``name``."""
    spec = importlib.util.spec_from_file_location(name, schema.DIRECTORY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def drop_tables(database):
    """Drop every table of ``database`` (connected)."""
    for table in database.get_tables():
        database.execute_sql(f"DROP TABLE {database.quote[0]}{table}{database.quote[1]}")


@pytest.fixture(name="new_database")
def new_database_fixture(database_url):
    """``database_url`` with no table at all, as a database created for the service is."""
    return new_database(database_url)


def new_database(database_url):
    """Drop every table of ``database_url``; returns it."""
    database = opening.open_database(database_url, 1)
    with database.connection_context():
        drop_tables(database)
    if database.pooled:
        database.close_all()
    return database_url


@pytest.fixture
def old_database(database_url):
    """``database_url`` made as images-api 3.0.0 left it: its two tables, no history, an image and a user."""
    database = opening.open_database(database_url, 1)
    with database.connection_context():
        drop_tables(database)
        migration("0001_initial").up(None, database)
        param = database.param
        database.execute_sql(
            f"INSERT INTO images (id, provider, remote_user, name) VALUES ({param}, {param}, {param}, {param})",
            ("ami-old", "ec2", "ubuntu", "Ünïcode 🚀 kept"),
        )
        database.execute_sql(
            f"INSERT INTO users (name, policies, token_hash) VALUES ({param}, {param}, {param})",
            ("deployer", "create_image read_images", hash_token(OLD_TOKEN)),
        )
    if database.pooled:
        database.close_all()
    return database_url


def history(database_url):
    """The names in the database's migration history, in order, each as often as it was recorded."""
    database = opening.open_database(database_url, 1)
    with database.connection_context():
        names = [row[0] for row in database.execute_sql(f"SELECT name FROM {schema.HISTORY} ORDER BY name")]
    if database.pooled:
        database.close_all()
    return names


CURRENT = sorted(path.stem for path in schema.DIRECTORY.glob("[0-9]*.py"))


# -- schema versions ----------------------------------------------------------------------


def test_a_3_0_0_database_is_upgraded_in_place_at_start_with_nothing_lost(old_database, config, capfd):
    client = create_app({**config, "IMAGES_API_DATABASE_URL": old_database}).test_client()
    headers = {"Authorization": f"Bearer {OLD_TOKEN}"}
    assert client.get("/v3/images", headers=headers).get_json() == [
        {"id": "ami-old", "provider": "ec2", "remote_user": "ubuntu", "name": "Ünïcode 🚀 kept"}
    ]
    # The columns compare exactly now, MariaDB's included: a case variant is another image.
    assert client.post("/v3/image", json=image(id="AMI-OLD"), headers=headers).status_code == 200
    # The old database had had its first start: no admin, and the token given is said to be unused.
    assert client.delete("/v3/image/AMI-OLD", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 401
    assert "IMAGES_API_ADMIN_TOKEN was not used" in capfd.readouterr().err
    assert history(old_database) == CURRENT


def test_status_and_upgrade_commands(old_database):
    result = run("db", "status", database_url=old_database)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"version: none (no migration recorded: a new database, or one made by images-api 3.0.0); {len(CURRENT)} pending"] + [f"pending\t{name}" for name in CURRENT]
    result = run("db", "upgrade", database_url=old_database)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"applied\t{name}" for name in CURRENT]
    result = run("db", "status", database_url=old_database)
    assert result.stdout.splitlines() == [f"version: {CURRENT[-1]}; 0 pending"] + [f"applied\t{name}" for name in CURRENT]
    assert run("db", "upgrade", database_url=old_database).stdout == ""


def test_auto_upgrade_off_refuses_an_old_database_naming_the_command(old_database, config):
    config = {**config, "IMAGES_API_DATABASE_URL": old_database, "IMAGES_API_AUTO_UPGRADE": "0"}
    with pytest.raises(SettingError) as raised:
        create_app(config)
    assert "images-api db upgrade --database URL" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert run("db", "upgrade", database_url=old_database).exit_code == 0
    client = create_app(config).test_client()
    assert client.get("/v3/images", headers={"Authorization": f"Bearer {OLD_TOKEN}"}).status_code == 200


def test_a_database_newer_than_the_code_is_refused_in_one_line(database_url, config):
    create_app(config)
    database = opening.open_database(database_url, 1)
    with database.connection_context():
        database.execute_sql(f"INSERT INTO {schema.HISTORY} (name, applied) VALUES ('9999_from_the_future', {database.param})", ("2030-01-01 00:00:00",))
    if database.pooled:
        database.close_all()
    with pytest.raises(SettingError) as raised:
        create_app(config)
    assert "newer than this images-api knows" in str(raised.value) and "9999_from_the_future" in str(raised.value)
    result = run("db", "status", database_url=database_url)
    assert result.exit_code == 0 and "unknown\t9999_from_the_future" in result.stdout
    assert run("db", "upgrade", database_url=database_url).exit_code == 2


@pytest.mark.parametrize("made", ["new_database", "old_database"])
def test_instances_starting_at_once_apply_each_migration_once(request, database_url, spawn, admin_token, made):
    database_url = request.getfixturevalue(made)  # the same URL, made so
    token = OLD_TOKEN if made == "old_database" else admin_token
    processes = [spawn(database_url, wait=False) for _ in range(3)]
    for process in processes:
        wait_for(process)
        assert call(process.port, "GET", "/v3/images", token=token).status == 200
    assert history(database_url) == CURRENT


# -- the first start ---------------------------------------------------------------------


def test_removing_every_user_never_brings_admin_back(database_url, config, capfd):
    create_app(config)
    assert run("user", "remove", "admin", database_url=database_url).exit_code == 0
    capfd.readouterr()
    create_app({**config, "IMAGES_API_ADMIN_TOKEN": None})
    assert run("user", "list", database_url=database_url).stdout == ""
    assert "first start" not in capfd.readouterr().err


def test_an_admin_token_given_after_the_first_start_says_it_was_not_used(database_url, config, capfd):
    create_app(config)
    capfd.readouterr()
    create_app({**config, "IMAGES_API_ADMIN_TOKEN": "another-token-0123456789-0123456789"})
    err = capfd.readouterr().err
    assert err.count("IMAGES_API_ADMIN_TOKEN was not used") == 1, err
    assert "another-token" not in err


# -- export and import -------------------------------------------------------------------


def export(database_url):
    result = run("export", database_url=database_url)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_export_writes_every_image_and_user_and_no_token(client, admin_headers, admin_token, database_url, make_user):
    token = make_user("deployer", "read_images")
    for body in (SEED, image(id="ami-2", name="Ünïcode")):
        assert client.post("/v3/image", json=body, headers=admin_headers).status_code == 200
    text = export(database_url)
    assert admin_token not in text and token not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0] == {"format": "images-api-export", "version": 1}
    assert lines[1:3] == [{"type": "image", **image(id="ami-2", name="Ünïcode")}, {"type": "image", **SEED}]
    assert [(r["type"], r["name"], r["policies"]) for r in lines[3:]] == [
        ("user", "admin", ["create_image", "delete_image", "read_images"]),
        ("user", "deployer", ["read_images"]),
    ]
    assert lines[4]["token_hash"] == hash_token(token)


def test_import_into_an_empty_database_keeps_tokens_working(client, admin_headers, database_url, make_user, tmp_path):
    token = make_user("deployer", "read_images")
    assert client.post("/v3/image", json=SEED, headers=admin_headers).status_code == 200
    path = tmp_path / "catalogue.jsonl"
    path.write_text(export(database_url), encoding="utf-8")
    target = f"sqlite:///{tmp_path / 'target.db'}"
    result = run("import", str(path), database_url=target)
    assert result.exit_code == 0, result.output
    moved = create_app({"TESTING": True, "IMAGES_API_DATABASE_URL": target}).test_client()
    assert moved.get("/v3/images", headers={"Authorization": f"Bearer {token}"}).get_json() == [SEED]


@pytest.mark.sqlite_only  # it goes through every backend the run has, from SQLite
def test_a_catalogue_moves_sqlite_postgresql_mariadb_sqlite_with_tokens_working(client, admin_headers, database_url, make_user, tmp_path, server_databases):
    token = make_user("deployer", "read_images")
    stored = [image(id="AMI-A"), image(id="ami-a"), image(id="ami-x", name="Ünïcode 🚀 ")]  # in code point order
    for body in stored:
        assert client.post("/v3/image", json=body, headers=admin_headers).status_code == 200
    route = [database_url]
    for backend in SERVER_URLS:
        if SERVER_URLS[backend]:
            if backend not in server_databases:
                server_databases[backend] = ServerDatabase(SERVER_URLS[backend])
            server_databases[backend].empty()
            new_database(server_databases[backend].url)
            route.append(server_databases[backend].url)
    route.append(f"sqlite:///{tmp_path / 'back.db'}")
    path = tmp_path / "catalogue.jsonl"
    for source, target in zip(route, route[1:]):
        path.write_text(export(source), encoding="utf-8")
        result = run("import", str(path), "--replace", database_url=target)
        assert result.exit_code == 0, (target, result.output)
        moved = create_app({"TESTING": True, "IMAGES_API_DATABASE_URL": target, "IMAGES_API_CREATE_ADMIN": False}).test_client()
        assert moved.get("/v3/images", headers={"Authorization": f"Bearer {token}"}).get_json() == stored, target
    assert export(route[-1]) == export(database_url)


def test_import_refuses_a_database_with_contents_unless_replace(client, admin_headers, database_url, tmp_path):
    path = tmp_path / "catalogue.jsonl"
    path.write_text(export(database_url), encoding="utf-8")
    assert client.post("/v3/image", json=SEED, headers=admin_headers).status_code == 200
    result = run("import", str(path), database_url=database_url)
    assert result.exit_code == 2 and "--replace" in result.output
    assert len(export(database_url).splitlines()) == 3  # header, the image, admin
    result = run("import", str(path), "--replace", database_url=database_url)
    assert result.exit_code == 0, result.output
    assert len(export(database_url).splitlines()) == 2  # header, admin


HEADER = '{"format": "images-api-export", "version": 1}\n'
GOOD_IMAGE = json.dumps({"type": "image", **SEED}) + "\n"


@pytest.mark.parametrize(
    "text, message",
    [
        (HEADER + GOOD_IMAGE + '{"type": "image", "id": "ami-2", "provider": "ec2", "remote_user": 5}\n', "line 3: remote_user:"),
        (HEADER + GOOD_IMAGE + '{"type": "image", "id": "a b", "provider": "ec2", "remote_user": "u"}\n', "line 3: id:"),
        (HEADER + GOOD_IMAGE + '{"type": "user", "name": "x", "policies": ["root"], "token_hash": "' + "a" * 64 + '"}\n', "line 3: policies:"),
        (HEADER + GOOD_IMAGE + '{"type": "user", "name": "x", "policies": [], "token_hash": "secret"}\n', "line 3: token_hash:"),
        (HEADER + GOOD_IMAGE + GOOD_IMAGE, "line 3: image 'ami-seed' is on line 2 already"),
        (HEADER + GOOD_IMAGE + '{"type": "image", "id": "ami-2", "provider": "ec', "line 3: cut short"),
        (HEADER + GOOD_IMAGE + '{"type": "flavor"}\n', "line 3: not a record"),
        (HEADER + GOOD_IMAGE + "not json\n", "line 3: not JSON"),
        (HEADER + '{"type": "image", "id": "x", "id": "y", "provider": "ec2", "remote_user": "u"}\n', "line 2: not JSON: key 'id' appears twice"),
        (HEADER + "[" * 100_000 + "\n", "line 2: not JSON this reads: nested too deep"),
        ('{"format": "images-api-export", "version": 2}\n' + GOOD_IMAGE, "line 1: format version 2 is newer"),
        ('{"type": "image"}\n', "line 1: not an images-api export"),
        ("", "line 1: the file is empty"),
    ],
)
def test_a_bad_file_imports_nothing_and_names_the_line(database_url, tmp_path, text, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(text, encoding="utf-8")
    result = run("import", str(path), database_url=database_url)
    assert result.exit_code == 2, result.output
    assert message in result.output and "nothing was imported" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert export(database_url) == HEADER


def test_an_export_taken_while_writers_run_is_one_consistent_state(serve, admin_token, database_url):
    """One writer creates images in order: any consistent state holds exactly the first k of them."""
    server = serve(threads=4)
    stop, written = threading.Event(), []

    def writer():
        for n in range(3000):
            if stop.is_set():
                return
            assert call(server.port, "POST", "/v3/image", image(id=f"ami-{n:05d}"), token=admin_token).status == 200
            written.append(n)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        exports = []
        while len(exports) < 3 and thread.is_alive():
            exports.append(export(database_url))
    finally:
        stop.set()
        thread.join()
    for text in exports:
        ids = [record["id"] for record in map(json.loads, text.splitlines()[1:]) if record["type"] == "image"]
        assert ids == [f"ami-{n:05d}" for n in range(len(ids))]
