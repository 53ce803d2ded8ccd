"""Writers of one process take turns; no turn within the busy timeout is a 503 (contract: Persistence, Errors)."""

import contextlib
import threading

import pytest

from images_api import db

pytestmark = pytest.mark.sqlite_only  # SQLite's own behaviour, or not about the database

IMAGE = {"id": "ami-1", "provider": "ec2", "remote_user": "ubuntu"}


@pytest.fixture
def turn_held(app, monkeypatch):
    """``with turn_held():`` another thread holds this process's turn to write; the busy timeout is 50 ms."""
    monkeypatch.setattr(db, "WRITE_DEADLINE", 0.05)
    lock = app.extensions["images_api"].database.write_lock

    @contextlib.contextmanager
    def held():
        taken, done = threading.Event(), threading.Event()

        def hold():
            with lock:
                taken.set()
                done.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        taken.wait(10)
        try:
            yield
        finally:
            done.set()
            holder.join(10)

    return held


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("post", "/v3/image", {**IMAGE, "id": "ami-2"}),
        ("put", "/v3/image/ami-1", {"name": "renamed"}),
        ("delete", "/v3/image/ami-1", None),
    ],
)
def test_no_turn_to_write_is_503_and_changes_nothing(client, admin_headers, turn_held, method, path, body):
    assert client.post("/v3/image", json=IMAGE, headers=admin_headers).status_code == 200
    before = client.get("/v3/images", headers=admin_headers).get_json()
    with turn_held():
        resp = getattr(client, method)(path, json=body, headers=admin_headers)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "1"
    assert resp.get_json() == {"message": "The database is busy; retry shortly."}
    assert client.get("/v3/images", headers=admin_headers).get_json() == before


def test_writes_go_through_once_the_turn_is_released(client, admin_headers, turn_held):
    with turn_held():
        pass
    assert client.post("/v3/image", json=IMAGE, headers=admin_headers).status_code == 200
    assert client.delete("/v3/image/ami-1", headers=admin_headers).status_code == 200


def test_sqlite_waits_the_whole_write_deadline_for_a_lock_held_elsewhere(app):
    database = app.extensions["images_api"].database
    with app.app_context(), database.connection_context():
        assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == db.WRITE_DEADLINE * 1000
