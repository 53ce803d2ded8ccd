"""Writers of one process take turns; no turn within the busy timeout is a 503 (README: Storage, Errors)."""

import contextlib
import re
import threading

import apsw
import pytest

from support import call

from images_api import opening
from images_api.state import api_state

pytestmark = pytest.mark.sqlite_only  # SQLite's own behaviour, or not about the database

IMAGE = {"id": "ami-1", "provider": "ec2", "remote_user": "ubuntu"}


@pytest.fixture
def turn_held(app, monkeypatch):
    """``with turn_held():`` another thread holds this process's turn to write; the busy timeout is 50 ms."""
    turn = api_state(app).database.write_turn
    monkeypatch.setattr(turn, "deadline", 0.05)
    lock = turn.lock

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


def test_a_write_refused_its_turn_gives_back_what_it_took(app, client, admin_headers, turn_held):
    """More writers refused than there is room for writers: each 503 frees its room, and the writes after the turn is released go through."""
    room = api_state(app).settings.threads  # more than the threads - 1 writers it lets in at once
    with turn_held():
        for _ in range(room):
            assert client.post("/v3/image", json=IMAGE, headers=admin_headers).status_code == 503
    assert client.post("/v3/image", json=IMAGE, headers=admin_headers).status_code == 200
    assert client.delete("/v3/image/ami-1", headers=admin_headers).status_code == 200


def test_sqlite_waits_the_whole_write_deadline_for_a_lock_held_elsewhere(app):
    database = api_state(app).database
    with app.app_context(), database.connection_context():
        assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == opening.WRITE_DEADLINE * 1000


def test_while_a_lock_held_elsewhere_keeps_writers_waiting_reads_and_health_are_answered(serve, admin_token, monkeypatch, database_url, caplog):
    """More writers than threads wait on a lock held by another process: one thread stays free, and each
    writer's whole wait, for this process's turn and SQLite's lock, is one deadline (README: Storage)."""
    monkeypatch.setattr(opening, "WRITE_DEADLINE", 4)
    server = serve(threads=4, IMAGES_API_THREADS=4)
    # APSW, as the service: another copy of SQLite in this process would not see its locks (README: Storage).
    holder = apsw.Connection(database_url.removeprefix("sqlite:///"))
    holder.execute("BEGIN IMMEDIATE")
    results = []

    def write(n):
        results.append(call(server.port, "POST", "/v3/image", {**IMAGE, "id": f"ami-w{n}"}, token=admin_token).status)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    try:
        for thread in writers:
            thread.start()
        # Answered while the lock is still held, before any writer's deadline: the writers
        # that answered first were those that found no room, not those that waited it out.
        assert call(server.port, "GET", "/v3/images", token=admin_token).status == 200
        assert call(server.port, "GET", "/healthz").status == 200
        answered_before = [float(m) / 1000 for m in re.findall(r"POST /v3/image 503 ([0-9.]+)ms", caplog.text)]
        assert all(wait < opening.WRITE_DEADLINE / 2 for wait in answered_before), answered_before
        for thread in writers:
            thread.join()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert results == [503] * 8
    # Each writer's wait as the server measured it (the access line), not its time queued for a thread.
    waits = [float(m) / 1000 for m in re.findall(r"POST /v3/image 503 ([0-9.]+)ms", caplog.text)]
    assert len(waits) == 8 and max(waits) < 2 * opening.WRITE_DEADLINE  # not the turn's deadline and then SQLite's
