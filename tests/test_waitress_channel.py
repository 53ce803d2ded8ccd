"""The connection class ``images-api serve`` gives waitress (``images_api.serve.Channel``).

Its server loop leaves alone a connection whose output a worker holds, so these
tests check what that must not break: responses larger than the socket buffers,
sent in one piece or streamed, reach a client that reads them slowly, whole and
in order, with the next request on the same connection answered after them.
"""

import http.client
import socket
import threading

import pytest
import waitress
from flask import Flask, Response
from support import TIMEOUT, ThreadServer

from images_api import serve

BIG = 6 * 1024 * 1024  # bytes: far past a loopback socket's buffers
CHUNK = 64 * 1024


def pattern(size, seed):
    """``size`` bytes that differ from position to position, so a lost or repeated piece shows."""
    line = bytes(f"{seed}:", "ascii") + bytes(range(256))
    return (line * (size // len(line) + 1))[:size]


def big_app():
    app = Flask(__name__)

    @app.get("/whole/<int:seed>")
    def whole(seed):
        return Response(pattern(BIG, seed), mimetype="application/octet-stream")

    @app.get("/streamed/<int:seed>")
    def streamed(seed):
        body = pattern(BIG, seed)
        return Response((body[at : at + CHUNK] for at in range(0, BIG, CHUNK)), mimetype="application/octet-stream")

    return app


@pytest.fixture
def big_server():
    server = ThreadServer(big_app(), threads=2)
    yield server
    server.stop()


def test_in_process_servers_use_the_channel(big_server):
    assert big_server.server.channel_class is serve.Channel


@pytest.mark.parametrize("kind", ["whole", "streamed"])
def test_large_responses_reach_a_slow_reader_whole_and_in_order(big_server, kind):
    conn = http.client.HTTPConnection("127.0.0.1", big_server.port, timeout=TIMEOUT)
    try:
        for seed in (1, 2):  # the second on the same connection, once the first is read
            conn.request("GET", f"/{kind}/{seed}")
            resp = conn.getresponse()
            assert resp.status == 200
            received = bytearray()
            while piece := resp.read(4096):
                received += piece
            assert received == pattern(BIG, seed)
    finally:
        conn.close()


def test_large_responses_on_parallel_connections_all_arrive_whole(big_server):
    results = {}

    def fetch(seed):
        conn = http.client.HTTPConnection("127.0.0.1", big_server.port, timeout=TIMEOUT)
        try:
            conn.request("GET", f"/streamed/{seed}")
            results[seed] = conn.getresponse().read() == pattern(BIG, seed)
        finally:
            conn.close()

    threads = [threading.Thread(target=fetch, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10 * TIMEOUT)
    assert results == dict.fromkeys(range(6), True)


def test_the_loop_does_not_watch_output_a_worker_holds():
    server = waitress.create_server(Flask(__name__), host="127.0.0.1", port=0)
    serve.use_channel(server)
    ours, theirs = socket.socketpair()
    try:
        channel = server.channel_class(server, ours, ("127.0.0.1", 0), server.adj, map={})
        channel.outbufs[-1].append(b"pending")
        channel.total_outbufs_len = len(b"pending")
        assert channel.writable()

        held, done = threading.Event(), threading.Event()

        def worker():
            with channel.outbuf_lock:
                held.set()
                done.wait(TIMEOUT)

        thread = threading.Thread(target=worker)
        thread.start()
        try:
            assert held.wait(TIMEOUT)
            assert not channel.writable()
            channel.close_when_flushed = True  # a connection to close is watched all the same
            assert channel.writable()
            channel.close_when_flushed = False
        finally:
            done.set()
            thread.join(TIMEOUT)
        assert channel.writable()
    finally:
        server.close()
        theirs.close()
        ours.close()
