"""Operating the service: access log, log level, start-up mistakes, waitress-serve."""

import io
import logging
import os
import re
import socket
import sys
import threading
import warnings

import peewee
import pytest
from support import PORT, REPO, SCRIPTS, TIMEOUT, call, free_port, run_process, wait_serving, wait_until

from images_api import create_app, opening
from images_api.logs import BatchedStreamHandler, EveryMinute
from images_api.settings import SettingError, masked_url

pytestmark = pytest.mark.sqlite_only  # SQLite's own behaviour, or not about the database

IMAGE = {"id": "ami-1", "provider": "ec2", "remote_user": "ubuntu", "name": "body-marker-name"}
PASSWORD = "pw-never-shown"


def test_access_log_line_names_request_and_user_but_no_secret(client, admin_headers, admin_token, make_user, auth, caplog):
    reader = make_user("reader", "read_images")
    caplog.set_level(logging.INFO, logger="images_api.access")
    client.post("/v3/image?", json=IMAGE, headers=admin_headers)
    client.get("/v3/images?limit=5", headers=admin_headers)
    client.get("/v3/images", headers={"Authorization": f"Basic {admin_token}"})
    client.get("/nowhere")
    client.delete("/v3/image/ami-1", headers=auth(reader))
    client.get("/v3/images?access_token=leaked-by-mistake&limit=2", headers=admin_headers)
    client.get(f"/v3/images?{admin_token}", headers=admin_headers)
    lines = [record.getMessage() for record in caplog.records if record.name == "images_api.access"]
    assert len(lines) == 7, lines
    method, path, status, duration, user = lines[0].split()
    assert (method, path, status, user) == ("POST", "/v3/image", "200", "user=admin")
    assert duration.endswith("ms") and float(duration[:-2]) >= 0
    assert lines[1].split()[:3] == ["GET", "/v3/images?limit=5", "200"]
    assert lines[2].split()[2:] == ["401", lines[2].split()[3], "user=-"]
    assert lines[3].split()[:3] == ["GET", "/nowhere", "404"]
    assert lines[4].split()[::4] == ["DELETE", "user=reader"] and " 403 " in lines[4]
    assert lines[5].split()[1] == "/v3/images?***&limit=2"
    assert lines[6].split()[1:3] == ["/v3/images?***", "400"]
    logged = "\n".join(lines)
    assert admin_token not in logged
    assert "body-marker-name" not in logged


def test_access_log_escapes_control_characters(client, admin_headers, caplog):
    caplog.set_level(logging.INFO, logger="images_api.access")
    client.get("/v3/image/a%0Ab", headers=admin_headers)
    (line,) = [record.getMessage() for record in caplog.records if record.name == "images_api.access"]
    assert "\n" not in line
    assert line.startswith("GET /v3/image/a\\nb 404 ")


def test_log_level_setting_silences_access_lines(config, admin_headers, caplog):
    caplog.set_level(logging.NOTSET)
    app = create_app({**config, "IMAGES_API_LOG_LEVEL": "warning"})
    app.test_client().get("/v3/images", headers=admin_headers)
    assert not [record for record in caplog.records if record.name == "images_api.access"]


def test_queue_depth_warnings_pass_once_a_minute():
    only_once = EveryMinute()
    records = [logging.LogRecord("waitress.queue", logging.WARNING, __file__, 1, "Task queue depth is 1", (), None) for _ in range(50)]
    assert sum(map(only_once.filter, records)) == 1


# -- lines written in batches (logs.BatchedStreamHandler) ------------------------------


def record(message):
    return logging.LogRecord("images_api.access", logging.INFO, __file__, 1, message, None, None)


def test_batched_lines_are_written_within_the_interval_in_order():
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, interval=0.01)
    for n in range(5):
        handler.handle(record(f"line {n}"))
    wait_until(lambda: stream.getvalue().count("\n") == 5)
    assert stream.getvalue() == "".join(f"line {n}\n" for n in range(5))


def test_lines_from_many_threads_are_each_written_once_in_their_order():
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, interval=0.001)

    def log(worker):
        for n in range(300):
            handler.handle(record(f"{worker} {n}"))

    threads = [threading.Thread(target=log, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    handler.flush()
    lines = stream.getvalue().splitlines()
    assert sorted(lines) == sorted(f"{worker} {n}" for worker in range(8) for n in range(300))
    for worker in range(8):
        assert [line for line in lines if line.startswith(f"{worker} ")] == [f"{worker} {n}" for n in range(300)]


def test_a_stream_that_fails_loses_its_batch_and_logging_goes_on(capsys):
    class Failing(io.StringIO):
        def write(self, text):
            raise OSError("disk full")

    handler = BatchedStreamHandler(Failing(), interval=3600)
    handler.handle(record("lost"))
    handler.flush()
    assert "1 log lines not written" in capsys.readouterr().err
    handler.stream = io.StringIO()
    handler.handle(record("kept"))
    handler.flush()
    assert handler.stream.getvalue() == "kept\n"


def test_flush_writes_what_is_pending():
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, interval=3600)
    handler.handle(record("pending"))
    handler.flush()
    assert stream.getvalue() == "pending\n"


def fork_between_writes(handler):
    """``os.fork()`` while this thread holds ``handler``'s lock, so that its writer thread is not inside
    the stream, whose lock the child would find held by no thread of its own."""
    handler.acquire()
    pid = -1
    try:
        with warnings.catch_warnings():  # Python 3.12+ warns of fork() beside threads, as gunicorn does it
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    finally:
        if pid != 0:  # in the child, logging's own hook at fork has made the lock anew, not held
            handler.release()
    return pid


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_writes_its_own_lines(tmp_path):
    # A server that loads the app and then forks workers (gunicorn --preload)
    # must not rely on the parent's writer thread, which the child lacks.
    path = tmp_path / "log"
    with open(path, "w") as stream:
        handler = BatchedStreamHandler(stream, interval=0.01)
        handler.handle(record("parent"))
        wait_until(lambda: path.read_text() == "parent\n")
        pid = fork_between_writes(handler)
        if pid == 0:  # the child: whatever happens, it leaves by os._exit, never through pytest
            status = 1
            try:
                handler.handle(record("child"))
                # Only the child's own writer thread can write the line (os._exit flushes nothing).
                # The file's size says when it has; stat opens no file in the child.
                wait_until(lambda: path.stat().st_size == len("parent\nchild\n"))
                status = 0
            finally:
                os._exit(status)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert path.read_text() == "parent\nchild\n"


def test_app_py_writes_access_lines_while_running_and_the_rest_at_sigterm(spawn, database_url, admin_token):
    process = spawn(database_url)
    assert call(process.port, "GET", "/v3/images", token=admin_token).status == 200
    wait_until(lambda: "GET /v3/images 200" in process.output())
    for n in range(20):
        assert call(process.port, "GET", f"/v3/image/ami-{n}", token=admin_token).status == 404
    assert process.stop() == 0  # SIGTERM
    lines = process.output().splitlines()
    assert [line.split("images_api.access: ")[1].split()[1] for line in lines if "images_api.access" in line] == [
        "/v3/images",
        *(f"/v3/image/ami-{n}" for n in range(20)),
    ]


def test_app_py_serves_on_when_its_standard_error_is_closed(spawn, database_url, admin_token, tmp_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # first, so that the server's end opens at once
    try:
        process = spawn(database_url, log=pipe)
        assert call(process.port, "GET", "/v3/image/ami-first", token=admin_token).status == 404
        read = bytearray()

        def logged():  # os.read raises BlockingIOError, an OSError: not yet
            read.extend(os.read(reader, 65536))
            return b"GET /v3/image/ami-first 404" in read

        wait_serving(process.popen, logged, read.decode)  # the writer thread writes to this pipe
    finally:
        os.close(reader)  # as when the reader of a pipe (| head -1) is gone
    # From here every write of the writer thread meets the broken pipe: at most its
    # interval after the first of these requests, and on through all of them.
    statuses = [call(process.port, "GET", f"/v3/image/ami-{n}", token=admin_token).status for n in range(1200)]
    assert set(statuses) == {404}


@pytest.mark.parametrize(
    "url, driver, extra",
    [("postgresql://u@127.0.0.1:1/db", "psycopg2", "postgresql"), ("mysql://u@127.0.0.1:1/db", "mysql", "mysql")],
)
def test_a_url_whose_driver_is_missing_names_the_extra(monkeypatch, url, driver, extra):
    monkeypatch.setattr(peewee, driver, None)  # as peewee finds it when the driver is not installed
    with pytest.raises(SettingError) as raised:
        create_app({"IMAGES_API_DATABASE_URL": url})
    assert str(raised.value) == (
        f"cannot use the database {url}: the driver for this database is not installed; "
        f"install the {extra!r} extra: pip install 'images-api[{extra}]' (from a checkout: pip install '.[{extra}]')"
    )


@pytest.mark.parametrize("url", ["postgresql://u@127.0.0.1:{port}/db", "mysql://u@127.0.0.1:{port}/db"])
def test_a_server_that_does_not_answer_at_start_is_one_line(url):
    with pytest.raises(SettingError) as raised:
        create_app({"IMAGES_API_DATABASE_URL": url.format(port=free_port())})
    assert str(raised.value).startswith("cannot use the database ")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "url, message",
    [
        ("sqlite://images.db", "a SQLite file takes three slashes (sqlite:///images.db)"),
        ("sqlite:///images.db?foo=1", "a parameter of the URL is not one the driver takes"),
        ("sqlite://", "in-memory SQLite cannot be shared between threads"),
    ],
)
def test_a_database_url_mistake_is_one_line_that_says_what_to_write(tmp_path, monkeypatch, url, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingError) as raised:
        create_app({"IMAGES_API_DATABASE_URL": url})
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_database_password_is_masked():
    assert masked_url("postgresql://images:s3cret@db.internal:5432/images") == "postgresql://images:***@db.internal:5432/images"
    assert masked_url("sqlite:///images.db") == "sqlite:///images.db"
    assert masked_url("postgresql://u@h/db?password=s3cret&sslmode=require") == "postgresql://u@h/db?password=***&sslmode=require"
    assert masked_url("mysql://u@h/db?passwd=a&sslpassword=b") == "mysql://u@h/db?passwd=***&sslpassword=***"


@pytest.mark.parametrize(
    "url", ["postgresql://u:s3cret/PW@h:5432/x", "postgresql://u:s3cret#PW@h/x", "postgresql://u:s3cret?PW@h/x", "postgresql://u:pa:s3cret/w@h/x", "postgresql://u:s3cret@[::1/x"]
)
def test_a_malformed_url_never_shows_its_password(url):
    assert "s3cret" not in masked_url(url)
    with pytest.raises(SettingError) as raised:
        create_app({"IMAGES_API_DATABASE_URL": url})
    assert "s3cret" not in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_a_percent_encoded_user_and_password_reach_the_driver_decoded(scheme):
    params = opening.open_database(f"{scheme}://us%40er:p%40ss%2Fw%23rd%21@h/db").connect_params
    assert (params["user"], params["password"]) == ("us@er", "p@ss/w#rd!")


@pytest.mark.parametrize(
    "url",
    ["postgresql://u@127.0.0.1:{port}/db?password=s3cret", "mysql://u:s3cret@127.0.0.1:{port}/", "mysql://u:s3cret@127.0.0.1:{port}/db?bogus=1"],
)
def test_a_start_up_error_never_shows_a_password(url):
    with pytest.raises(SettingError) as raised:
        create_app({"IMAGES_API_DATABASE_URL": url.format(port=free_port())})
    assert "s3cret" not in str(raised.value) and "\n" not in str(raised.value)


@pytest.fixture
def busy_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


START_MISTAKES = {
    "unknown database scheme": (["--database", "nosuchdb://x/y"], {}),
    "in-memory database": (["--database", "sqlite://"], {}),
    "explicit in-memory database": (["--database", "sqlite:///:memory:"], {}),
    "database directory missing": (["--database", "sqlite:////nonexistent-dir/images.db"], {}),
    "port not a number": (["--port", "http"], {}),
    "port from environment not a number": ([], {"IMAGES_API_PORT": "eighty"}),
    "port out of range": (["--port", "70000"], {}),
    "empty provider list entry": ([], {"IMAGES_API_PROVIDERS": ","}),
    "malformed provider": ([], {"IMAGES_API_PROVIDERS": "ec2,open stack"}),
    "malformed flag": ([], {"IMAGES_API_TRUST_REMOTE_USER": "maybe"}),
    "unknown log level": ([], {"IMAGES_API_LOG_LEVEL": "loud"}),
    "short admin token": ([], {"IMAGES_API_ADMIN_TOKEN": "secret"}),
    "malformed trusted proxy": ([], {"IMAGES_API_TRUSTED_PROXY": "proxy.example"}),
    "unknown flag": (["--colour"], {}),
    "host that is no address": (["--host", "999.1.1.1"], {}),
    "unreachable server database": (["--database", f"postgresql://images:{PASSWORD}@127.0.0.1:1/images"], {}),
}


def run_app_py(*args, cwd, **environ):
    """``python app.py ARGS`` to its end, in ``cwd`` (a start that fails, or --version)."""
    return run_process([sys.executable, REPO / "app.py", *args], cwd=cwd, **environ)


@pytest.mark.parametrize("case", START_MISTAKES)
def test_start_up_mistake_is_one_line_and_status_2(tmp_path, case):
    args, environ = START_MISTAKES[case]
    result = run_app_py("--database", f"sqlite:///{tmp_path / 'images.db'}", *args, cwd=tmp_path, **{"IMAGES_API_PORT": str(free_port()), **environ})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("images-api: "), result.stderr
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr


def test_port_in_use_stops_the_start_before_any_side_effect(tmp_path, busy_port):
    result = run_app_py("--port", str(busy_port), "--database", f"sqlite:///{tmp_path / 'i.db'}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"images-api: cannot listen on 127.0.0.1:{busy_port}: Address already in use"]
    assert not (tmp_path / "i.db").exists()  # no database, so no admin token spent


def test_wsgi_module_start_up_mistake_is_one_line_and_status_2():
    result = run_process([sys.executable, "-c", "import wsgi"], IMAGES_API_DATABASE_URL="sqlite:////nonexistent-dir/images.db")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("images-api: cannot use the database"), result.stderr


def test_waitress_serve_runs_wsgi_application_under_a_prefix(spawn, database_url, admin_token):
    process = spawn(database_url, [SCRIPTS / "waitress-serve", f"--listen=127.0.0.1:{PORT}", "--url-prefix=/catalogue", "wsgi:application"])
    port = process.port
    reply = call(port, "GET", "/catalogue/healthz")
    assert (reply.status, reply.json()) == (200, {"status": "ok"})
    reply = call(port, "POST", "/catalogue/v3/image", IMAGE, token=admin_token)
    assert (reply.status, reply.json()) == (200, {"id": "ami-1", "message": "Created"})
    assert reply.headers["Location"] == f"http://127.0.0.1:{port}/catalogue/v3/image/ami-1"
    reply = call(port, "GET", "/catalogue/v3/image/ami-1", token=admin_token)
    assert (reply.status, reply.json()) == (200, IMAGE)
    process.stop()
    assert "POST /catalogue/v3/image 200" in process.output()  # the path as the client sent it
    assert admin_token not in process.output()


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "images.example.com", "X-Forwarded-Port": "8443"}


@pytest.mark.parametrize(
    ("trusted", "location"),
    [
        ("127.0.0.1", "https://images.example.com:8443/v3/image/ami-1"),
        ("192.0.2.0/24", "http://127.0.0.1:{port}/v3/image/ami-1"),
    ],
)
def test_app_py_believes_forwarded_headers_only_from_the_trusted_proxy(spawn, database_url, admin_token, trusted, location):
    port = spawn(database_url, IMAGES_API_TRUSTED_PROXY=trusted).port
    reply = call(port, "POST", "/v3/image", IMAGE, token=admin_token, headers=FORWARDED)
    assert reply.status == 200
    assert reply.headers["Location"] == location.format(port=port)


def test_app_py_refuses_a_body_past_a_mebibyte_before_reading_it(spawn, database_url, admin_token):
    port = spawn(database_url).port
    # Headers alone: waitress answers from the Content-Length, before any
    # body byte (sending the body too races its close: a reset, not a reply).
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(
            b"POST /v3/image HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {admin_token}\r\nContent-Length: {2 * 1024 * 1024}\r\n\r\n".encode()
        )
        status_line = sock.makefile("rb").readline()
    assert status_line.split()[1] == b"413", status_line
    assert call(port, "GET", "/v3/images", token=admin_token).json() == []


# -- serving from the installed package ------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        [SCRIPTS / "images-api", "serve", "--port", PORT],
        [sys.executable, "-m", "images_api", "serve", "--port", PORT],
        [SCRIPTS / "waitress-serve", "--listen", f"127.0.0.1:{PORT}", "images_api.wsgi:application"],
    ],
    ids=["images-api serve", "python -m images_api serve", "waitress-serve images_api.wsgi"],
)
def test_the_installed_package_serves_outside_a_checkout(spawn, database_url, admin_token, tmp_path, command):
    process = spawn(database_url, command, cwd=tmp_path)
    assert call(process.port, "GET", "/v3/images", token=admin_token).json() == []


@pytest.mark.parametrize(
    "command",
    [[SCRIPTS / "images-api"], [sys.executable, "-m", "images_api"], [sys.executable, "app.py"], [sys.executable, "-m", "images_api", "serve"]],
)
def test_version(command):
    done = run_process([*command, "--version"])
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"images-api \d+\.\d+\.\d+\n", done.stdout)


@pytest.mark.parametrize(
    "args, environ, message",
    [
        ([], {"IMAGES_API_PORT": "abc"}, "IMAGES_API_PORT (from the environment)"),
        (["--port", "abc"], {}, "'--port'"),
        ([], {"IMAGES_API_THREADS": "0"}, "IMAGES_API_THREADS (from the environment)"),
        (["--database", "sqlite://images.db"], {}, "the database URL 'sqlite://images.db': it names no file"),
    ],
)
def test_a_bad_value_is_blamed_on_where_it_came_from(tmp_path, args, environ, message):
    # A free port, so that a bad database is blamed even while something holds 8080.
    done = run_app_py(*args, cwd=tmp_path, **{"IMAGES_API_PORT": str(free_port()), **environ})
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
