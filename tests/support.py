"""Plain helpers shared by the test modules: request bodies, credentials, checks, and real servers."""

import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import waitress

from processes import TIMEOUT, free_port, listening, wait_serving, wait_until  # noqa: F401 (re-exported)

from images_api.serve import WAITRESS_SETTINGS, use_channel

JSON = "application/json"
WWW_AUTHENTICATE = 'Bearer realm="images-api"'
POLICIES = ("read_images", "create_image", "delete_image")
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


def image(id="ami-0abc", provider="ec2", remote_user="ubuntu", name="Ubuntu 22.04 LTS"):
    """An image body with every field of an image (README: The API)."""
    return {"id": id, "provider": provider, "remote_user": remote_user, "name": name}


def basic(name, token):
    """Headers for HTTP Basic with the user's name and the token as password."""
    pair = f"{name}:{token}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def sqlite_path(database_url):
    """The file behind a `sqlite:///...` URL."""
    prefix = "sqlite:///"
    assert database_url.startswith(prefix), database_url
    return database_url[len(prefix):]


def body_of(resp):
    """The JSON body of a test-client response, whatever its Content-Type says."""
    return json.loads(resp.get_data(as_text=True))


def assert_error(resp, status, *secrets):
    """Check an error answer (README: Errors): status, JSON object with a message,
    field errors as lists of strings, no secret and no traceback anywhere; a 401
    carries the challenge."""
    text = resp.get_data(as_text=True)
    assert resp.status_code == status, f"{resp.status_code} {text[:500]}"
    assert resp.mimetype == JSON, resp.content_type
    if status == 401:
        assert resp.headers.get("WWW-Authenticate") == WWW_AUTHENTICATE, resp.headers
    for secret in secrets:
        assert secret not in text
        assert all(secret not in value for _, value in resp.headers)
    assert "Traceback" not in text
    if resp.request.method == "HEAD":
        assert text == ""
        return {}
    body = json.loads(text)
    assert isinstance(body, dict), body
    assert isinstance(body.get("message"), str) and body["message"], body
    if "errors" in body:
        assert isinstance(body["errors"], dict) and body["errors"], body
        for messages in body["errors"].values():
            assert isinstance(messages, list) and messages, body
            assert all(isinstance(m, str) and m for m in messages), body
    return body


def listing(client, headers):
    """Every stored image, through the list route."""
    resp = client.get("/v3/images", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return body_of(resp)


def listing_at(port, token):
    """Every stored image, through the list route of the server on ``port``."""
    reply = call(port, "GET", "/v3/images", token=token)
    assert reply.status == 200, reply.data[:300]
    return reply.json()


def allow_header(resp):
    """The set of methods a response's `Allow` header names."""
    return {m.strip().upper() for m in resp.headers.get("Allow", "").split(",") if m.strip()}


@dataclass(frozen=True)
class Route:
    """One of the five routes, with a request that succeeds on it given the seed image."""

    name: str
    method: str
    path: str
    policy: str
    body: dict | None = None

    @property
    def has_body(self):
        return self.body is not None

    def open(self, client, headers=None, *, path=None, query=None, **kwargs):
        """Send this route's request; kwargs override the body or the content type."""
        if self.has_body and "data" not in kwargs:
            kwargs["data"] = json.dumps(self.body)
        if self.has_body:
            kwargs.setdefault("content_type", JSON)
        target = path or self.path
        if query is not None:
            target += "?" + query
        return client.open(target, method=self.method, headers=headers or {}, **kwargs)

    def item_path(self, image_id):
        """This route's path for another image id (item routes only)."""
        assert self.path.startswith("/v3/image/")
        return "/v3/image/" + image_id


SEED = image(id="ami-seed", provider="ec2", remote_user="ubuntu", name="seed")
NEW = image(id="ami-new", provider="openstack", remote_user="cloud-user", name="new")

ROUTES = (
    Route("list", "GET", "/v3/images", "read_images"),
    Route("create", "POST", "/v3/image", "create_image", NEW),
    Route("show", "GET", "/v3/image/ami-seed", "read_images"),
    Route("update", "PUT", "/v3/image/ami-seed", "create_image", {"name": "changed"}),
    Route("delete", "DELETE", "/v3/image/ami-seed", "delete_image"),
)
BODY_ROUTES = tuple(r for r in ROUTES if r.has_body)
ITEM_ROUTES = tuple(r for r in ROUTES if r.path.startswith("/v3/image/"))


def route_params(routes=ROUTES):
    """Routes as pytest params, named for reading in test ids."""
    return [pytest.param(r, id=r.name) for r in routes]


# -- real servers on 127.0.0.1 ----------------------------------------------------------

@dataclass
class Reply:
    status: int
    headers: object  # http.client.HTTPMessage: case-insensitive ``get``
    data: bytes

    def json(self):
        return json.loads(self.data)


def call(port, method, path, body=None, *, token=None, headers=None, data=None, chunks=None):
    """One request on a fresh connection; ``chunks`` (an iterable) sends the body chunked."""
    sent = {}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if body is not None:
        data = json.dumps(body).encode()
    if body is not None or chunks is not None:
        sent["Content-Type"] = JSON
    if chunks is not None:
        sent["Transfer-Encoding"] = "chunked"
    sent.update(headers or {})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        if chunks is not None:
            conn.request(method, path, body=iter(chunks), headers=sent, encode_chunked=True)
        else:
            conn.request(method, path, body=data, headers=sent)
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


class ThreadServer:
    """A waitress server for ``app`` on a free port of 127.0.0.1, run in a thread."""

    def __init__(self, app, threads=8):
        # The settings and connection class app.py serves with (README: Settings).
        self.server = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads, **WAITRESS_SETTINGS)
        use_channel(self.server)
        self.port = self.server.effective_port
        self.thread = threading.Thread(target=self.server.run, name=f"waitress-{self.port}", daemon=True)
        self.thread.start()

    def stop(self):
        # First let the workers finish (they pull the loop's trigger when done),
        # then close every channel from the loop's own thread: run() returns
        # once its map is empty.
        if not self.thread.is_alive():
            return
        self.server.task_dispatcher.shutdown(timeout=TIMEOUT)
        # What pull_trigger(thunk) does, but writing to the trigger under its lock: pull_trigger
        # writes after letting go of it, and a loop that another pull has woken meanwhile can run
        # the thunk first and close the trigger under the write (EBADF, or a byte in a file that
        # took the descriptor's number). The loop takes the lock before it runs any thunk.
        trigger = self.server.trigger
        with trigger.lock:
            trigger.thunks.append(self._close_all)
            trigger._physical_pull()
        self.thread.join(timeout=TIMEOUT)
        assert not self.thread.is_alive(), "waitress did not stop"

    def _close_all(self):
        for channel in list(self.server._map.values()):
            channel.close()


# -- server processes ------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = Path(sys.executable).parent  # the venv's console scripts: images-api, waitress-serve
SERVER_THREADS = 8  # of each app.py a test starts
PORT = "{port}"  # stands for the server's port in a command
#: ``python app.py`` from the checkout, on 127.0.0.1.
APP_PY = (sys.executable, "app.py", "--host", "127.0.0.1", "--port", PORT, "--threads", str(SERVER_THREADS))


def quiet_environ(**extra):
    """The test process's environment without ``IMAGES_API_*``, plus ``extra``."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("IMAGES_API_")}
    return {**environ, **extra}


def run_process(command, *, cwd=REPO, timeout=60, **environ):
    """Run ``command`` to its end in ``quiet_environ(**environ)``; returns its ``CompletedProcess`` (text)."""
    return subprocess.run(command, cwd=cwd, env=quiet_environ(**environ), capture_output=True, text=True, timeout=timeout)


@dataclass
class Process:
    """A server process a test started: the process, its port and where its output goes."""

    popen: subprocess.Popen
    port: int
    log: Path  # standard output and error together; a file, or a FIFO the test reads

    def output(self):
        """What the process wrote so far (a FIFO's is the test's to read)."""
        return self.log.read_text(errors="replace") if self.log.is_file() else f"(written to {self.log})"

    def stop(self, signum=signal.SIGTERM):
        """Send ``signum`` (SIGKILL: no chance to flush or close anything) and wait; returns its exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
        return self.popen.wait(timeout=TIMEOUT)

    def kill(self):
        return self.stop(signal.SIGKILL)


def start_server(command, log, environ, cwd=REPO):
    """Start ``command`` with ``PORT`` in it standing for a free port of 127.0.0.1, its output to ``log``;
    does not wait for it to listen (``wait_for``)."""
    port = free_port()
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            [str(arg).replace(PORT, str(port)) for arg in command], cwd=cwd, env=environ, stdout=out, stderr=subprocess.STDOUT
        )
    return Process(popen, port, Path(log))


def wait_for(process):
    """Wait (bounded) until the process accepts connections on its port."""
    wait_serving(process.popen, lambda: listening(process.port), process.output)
