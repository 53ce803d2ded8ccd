"""Against real waitress servers on 127.0.0.1 (README: Storage, Errors, Users and tokens).

In-process servers run ``waitress.create_server`` in a thread; ``python app.py`` runs
as a subprocess where the test needs to kill or restart a whole server.
"""

import http.client
import json
import resource
import socket
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from support import JSON, SCRIPTS, SERVER_THREADS, TIMEOUT, WWW_AUTHENTICATE, Reply, call, image, listing_at, run_process

from images_api.parsing import MAX_BODY

THREADS = SERVER_THREADS


def assert_json_error(reply, status):
    assert reply.status == status, (reply.status, reply.data[:300])
    assert reply.headers.get("Content-Type", "").split(";")[0] == JSON
    body = reply.json()
    assert isinstance(body.get("message"), str) and body["message"]
    return body


def in_parallel(jobs):
    """Run the callables in ``jobs`` on their own threads; return their results in order."""
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [future.result(timeout=10 * TIMEOUT) for future in futures]


@pytest.fixture
def server(serve):
    return serve()


# -- persistence across restarts ---------------------------------------------------------


def test_restart_keeps_the_data(serve, admin_token):
    first = serve()
    for image_id in ("ami-1", "ami-2", "ami-3"):
        assert call(first.port, "POST", "/v3/image", image(id=image_id), token=admin_token).status == 200
    assert call(first.port, "PUT", "/v3/image/ami-2", {"name": "renamed"}, token=admin_token).status == 200
    assert call(first.port, "DELETE", "/v3/image/ami-3", token=admin_token).status == 200
    first.stop()

    second = serve()
    assert listing_at(second.port, admin_token) == [image(id="ami-1"), image(id="ami-2", name="renamed")]


@pytest.mark.parametrize(
    "method, path, body, expected",
    [
        ("POST", "/v3/image", image(id="ami-new"), [image(id="ami-new"), image(id="ami-old")]),
        ("PUT", "/v3/image/ami-old", {"remote_user": "centos"}, [image(id="ami-old", remote_user="centos")]),
        ("DELETE", "/v3/image/ami-old", None, []),
    ],
    ids=["create", "update", "delete"],
)
def test_a_200_survives_kill_9_the_next_instant(spawn, database_url, admin_token, method, path, body, expected):
    process = spawn(database_url)
    assert call(process.port, "POST", "/v3/image", image(id="ami-old"), token=admin_token).status == 200
    reply = call(process.port, method, path, body, token=admin_token)
    assert reply.status == 200, reply.data
    process.kill()

    again = spawn(database_url)
    assert listing_at(again.port, admin_token) == expected


# -- reads between writes (README: Storage) ----------------------------------------------------
# Each server thread answers lookups from the rows it read until the database changes.


def from_every_thread(port, path, token):
    """GET ``path`` on twice as many connections as the server has threads, all at once."""
    barrier = threading.Barrier(2 * THREADS, timeout=TIMEOUT)

    def get():
        barrier.wait()
        return call(port, "GET", path, token=token)

    return in_parallel([get] * (2 * THREADS))


def images_api_command(*args):
    """Run the ``images-api`` console script in its own process; returns its stdout."""
    done = run_process([SCRIPTS / "images-api", *args])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_writes_through_one_process_are_read_at_once_by_another(spawn, database_url, admin_token):
    reader, writer = spawn(database_url), spawn(database_url)
    assert call(writer.port, "POST", "/v3/image", image(id="ami-1", name="v0"), token=admin_token).status == 200
    for version in range(1, 4):
        replies = from_every_thread(reader.port, "/v3/image/ami-1", admin_token)
        assert {(r.status, r.json()["name"]) for r in replies} == {(200, f"v{version - 1}")}
        assert call(writer.port, "PUT", "/v3/image/ami-1", {"name": f"v{version}"}, token=admin_token).status == 200
    assert {r.json()["name"] for r in from_every_thread(reader.port, "/v3/image/ami-1", admin_token)} == {"v3"}
    assert call(writer.port, "DELETE", "/v3/image/ami-1", token=admin_token).status == 200
    assert {r.status for r in from_every_thread(reader.port, "/v3/image/ami-1", admin_token)} == {404}


def test_a_token_reset_or_user_removed_by_the_cli_acts_on_every_instance_at_once(spawn, database_url):
    servers = [spawn(database_url), spawn(database_url)]

    def statuses(token):
        return {r.status for server in servers for r in from_every_thread(server.port, "/v3/images", token)}

    old = images_api_command("user", "add", "alice", "--policy", "read_images", "--database", database_url)
    for _ in range(2):
        assert statuses(old) == {200}
    new = images_api_command("user", "reset-token", "alice", "--database", database_url)
    assert statuses(old) == {401}
    assert statuses(new) == {200}
    images_api_command("user", "set-policies", "alice", "create_image", "--database", database_url)
    assert statuses(new) == {403}
    images_api_command("user", "remove", "alice", "--database", database_url)
    assert statuses(new) == {401}


# -- concurrency ------------------------------------------------------------------------


def test_parallel_distinct_creates_are_all_stored(server, admin_token):
    def creator(worker):
        def run():
            return [
                call(server.port, "POST", "/v3/image", image(id=f"ami-{worker}-{n:02d}"), token=admin_token).status
                for n in range(25)
            ]

        return run

    statuses = in_parallel([creator(w) for w in range(THREADS)])
    assert Counter(s for worker in statuses for s in worker) == {200: THREADS * 25}
    ids = [i["id"] for i in listing_at(server.port, admin_token)]
    assert ids == sorted(f"ami-{w}-{n:02d}" for w in range(THREADS) for n in range(25))


@pytest.mark.parametrize("round_", range(5))
def test_racing_creates_of_one_id_give_one_200_and_409s(server, admin_token, round_):
    barrier = threading.Barrier(THREADS, timeout=TIMEOUT)

    def racer(worker):
        def run():
            barrier.wait()
            return call(server.port, "POST", "/v3/image", image(id="ami-race", name=f"worker {worker}"), token=admin_token)

        return run

    replies = in_parallel([racer(w) for w in range(THREADS)])
    assert Counter(r.status for r in replies) == {200: 1, 409: THREADS - 1}
    for reply in replies:
        if reply.status == 409:
            assert_json_error(reply, 409)
    winner = next(w for w, r in enumerate(replies) if r.status == 200)
    assert listing_at(server.port, admin_token) == [image(id="ami-race", name=f"worker {winner}")]


def test_concurrent_reads_and_writes_all_succeed(server, admin_token):
    def worker(w):
        def run():
            unexpected = []

            def expect(reply, status=200):
                if reply.status != status:
                    unexpected.append((reply.status, reply.data[:200]))
                return reply

            for n in range(12):
                image_id = f"rw-{w}-{n:02d}"
                expect(call(server.port, "POST", "/v3/image", image(id=image_id), token=admin_token))
                expect(call(server.port, "PUT", f"/v3/image/{image_id}", {"name": f"v{n}"}, token=admin_token))
                shown = expect(call(server.port, "GET", f"/v3/image/{image_id}", token=admin_token))
                if shown.status == 200 and shown.json()["name"] != f"v{n}":
                    unexpected.append(("stale", shown.data))
                expect(call(server.port, "GET", "/v3/images?limit=5", token=admin_token))
                expect(call(server.port, "GET", "/v3/images", token=admin_token))
                if n % 2:
                    expect(call(server.port, "DELETE", f"/v3/image/{image_id}", token=admin_token))
            return unexpected

        return run

    results = in_parallel([worker(w) for w in range(THREADS)])
    assert [u for result in results for u in result] == []
    kept = sorted(f"rw-{w}-{n:02d}" for w in range(THREADS) for n in range(0, 12, 2))
    assert [i["id"] for i in listing_at(server.port, admin_token)] == kept


def test_two_processes_on_one_database_lose_nothing(spawn, database_url, admin_token):
    processes = [spawn(database_url), spawn(database_url)]

    def creator(worker):
        def run():
            port = processes[worker % 2].port
            return [
                call(port, "POST", "/v3/image", image(id=f"ami-{worker}-{n:02d}"), token=admin_token).status
                for n in range(25)
            ]

        return run

    statuses = in_parallel([creator(w) for w in range(THREADS)])
    assert Counter(s for worker in statuses for s in worker) == {200: THREADS * 25}
    expected = sorted(f"ami-{w}-{n:02d}" for w in range(THREADS) for n in range(25))
    for process in processes:
        assert [i["id"] for i in listing_at(process.port, admin_token)] == expected


def test_racing_creates_across_two_processes(spawn, database_url, admin_token):
    processes = [spawn(database_url), spawn(database_url)]
    barrier = threading.Barrier(THREADS, timeout=TIMEOUT)

    def racer(worker):
        def run():
            barrier.wait()
            body = image(id="ami-race", name=f"worker {worker}")
            return call(processes[worker % 2].port, "POST", "/v3/image", body, token=admin_token).status

        return run

    assert Counter(in_parallel([racer(w) for w in range(THREADS)])) == {200: 1, 409: THREADS - 1}


@pytest.mark.server_only
def test_a_database_server_out_of_reach_under_load_gives_200s_and_503s_and_loses_no_200(spawn, relay, database_url, admin_token):
    """Two instances on one server database; it goes away under their writers and comes back (README: Scaling out)."""
    url = relay.url(database_url)
    ports = [spawn(url).port, spawn(url).port]
    lock = threading.Lock()
    statuses, stored = Counter(), []
    before, unreachable, restored, recovered, stop = (threading.Event() for _ in range(5))
    after = []

    def writer(worker):
        for n in range(5000):  # bounded: the events below end it long before
            if stop.is_set():
                return
            image_id = f"w{worker}-{n}"
            status = call(ports[n % 2], "POST", "/v3/image", image(id=image_id), token=admin_token).status
            with lock:
                statuses[status] += 1
                if status == 200:
                    stored.append(image_id)
                    (after if restored.is_set() else []).append(image_id)
                if len(stored) >= 20:
                    before.set()
                if status == 503:
                    unreachable.set()
                if len(after) >= 20:
                    recovered.set()

    writers = [threading.Thread(target=writer, args=(worker,)) for worker in range(4)]
    for thread in writers:
        thread.start()
    try:
        assert before.wait(TIMEOUT)
        relay.cut()
        assert unreachable.wait(TIMEOUT)
        relay.restore()
        restored.set()
        assert recovered.wait(TIMEOUT), statuses
    finally:
        stop.set()
        for thread in writers:
            thread.join(TIMEOUT)
    assert set(statuses) == {200, 503}, statuses
    for port in ports:
        listed = {item["id"] for item in listing_at(port, admin_token)}
        assert listed >= set(stored), set(stored) - listed


# -- errors through a real server --------------------------------------------------------


def pieces(data, size=4096):
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize(
    "data",
    [
        json.dumps(image(id="ami-big")).encode() + b" " * MAX_BODY,
        b"{" + b"x" * (MAX_BODY + 1),
        b"[" + b"1," * MAX_BODY + b"1]",
    ],
    ids=["valid-padded", "invalid-json", "huge-array"],
)
@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_body_over_64_kib_is_413_json(server, admin_token, data, framing):
    if framing == "chunked":
        reply = call(server.port, "POST", "/v3/image", token=admin_token, chunks=pieces(data))
    else:
        reply = call(server.port, "POST", "/v3/image", token=admin_token, data=data, headers={"Content-Type": JSON})
    assert_json_error(reply, 413)
    assert listing_at(server.port, admin_token) == []


def test_chunked_body_within_the_limit_is_read(server, admin_token):
    body = image(id="ami-chunked")
    reply = call(server.port, "POST", "/v3/image", token=admin_token, chunks=pieces(json.dumps(body).encode(), 7))
    assert reply.status == 200, reply.data
    assert listing_at(server.port, admin_token) == [body]


@pytest.mark.parametrize("path", ["/", "/v3/nothing", "/v3/images/", "/v3/image/ami-1/x"])
def test_unknown_route_is_404_json(server, admin_token, path):
    assert_json_error(call(server.port, "GET", path, token=admin_token, headers={"Accept": "text/html"}), 404)


def test_wrong_method_is_405_json_with_allow(server):
    reply = call(server.port, "PATCH", "/v3/images")
    assert_json_error(reply, 405)
    assert {m.strip() for m in reply.headers["Allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}


def test_no_credentials_is_401_json_with_challenge(server):
    reply = call(server.port, "GET", "/v3/images")
    assert_json_error(reply, 401)
    assert reply.headers["WWW-Authenticate"] == WWW_AUTHENTICATE


def test_non_ascii_authorization_is_401(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        conn.putrequest("GET", "/v3/images")
        conn.putheader("Authorization", "Bearer tök€n".encode("utf-8"))
        conn.endheaders()
        resp = conn.getresponse()
        reply = Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()
    assert_json_error(reply, 401)


def test_remote_user_header_does_not_authenticate_through_waitress(serve):
    trusting = serve(IMAGES_API_TRUST_REMOTE_USER=True)
    assert_json_error(call(trusting.port, "GET", "/v3/images", headers={"Remote-User": "admin"}), 401)
    assert_json_error(call(trusting.port, "GET", "/v3/images", headers={"Remote_User": "admin"}), 401)


# -- hostile clients ---------------------------------------------------------------------


@pytest.mark.sqlite_only
@pytest.mark.parametrize("kind", ["idle", "slow"])
def test_a_thousand_idle_or_slow_connections_leave_other_clients_answered(spawn, database_url, admin_token, kind):
    """waitress's 100 connections once let 98 idle sockets lock every other client out (README: Settings)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    process = spawn(database_url)
    hostile = []
    try:
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", process.port), timeout=TIMEOUT)
            if kind == "slow":  # a request that never ends, a byte at a time (slowloris)
                sock.sendall(b"GET /v3/images HTTP/1.1\r\nHost: x\r\nX-a: b")
            hostile.append(sock)
        for _ in range(20):
            assert call(process.port, "GET", "/v3/images", token=admin_token).status == 200
            assert call(process.port, "GET", "/healthz").status == 200
    finally:
        for sock in hostile:
            sock.close()


def raw_request(port, request_line, token):
    """Send ``request_line`` as the client wrote it, byte for byte; return the reply's status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request_line + f"\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET //v3/images HTTP/1.1",
        b"GET ///v3/images HTTP/1.1",
        b"DELETE /v3/image/u\t3 HTTP/1.1",
        b"GET /v3/ima\tges HTTP/1.1",
        b"GET /v3/images?provider=e\tc2 HTTP/1.1",
        b"GET /v3/images?pro\tvider=ec2 HTTP/1.1",
    ],
)
def test_a_request_target_the_server_rewrote_is_404(server, admin_token, request_line):
    assert call(server.port, "POST", "/v3/image", image(id="u3"), token=admin_token).status == 200
    status, body = raw_request(server.port, request_line, admin_token)
    assert status == 404 and json.loads(body)["message"]
    assert [i["id"] for i in listing_at(server.port, admin_token)] == ["u3"]


@pytest.mark.parametrize("target", [b"/v3/image/u3", b"/v3/image/%75%33", b"http://x/v3/image/u3", b"/v3/image/u3?", b"/v3/images?provider=ec2&limit=5"])
def test_a_target_as_sent_is_routed(server, admin_token, target):
    assert call(server.port, "POST", "/v3/image", image(id="u3"), token=admin_token).status == 200
    status, body = raw_request(server.port, b"GET " + target + b" HTTP/1.1", admin_token)
    assert status == 200, body
