"""Benchmark images-api under waitress with wrk, against bare Flask's ceiling.

    python bench/run.py [--duration 5] [--sizes 1000,10000,100000] [--connections 8]
                        [--postgresql postgresql://USER@HOST:PORT/DBNAME]

Starts ``app.py`` (waitress, 4 threads) on a temporary SQLite database, seeds
images through ``POST /v3/image``, drives each route with wrk and prints one
table: throughput, p50/p99 latency, the ratio to bare Flask, the server's peak
RSS per listing size; then the three budgets of issue 5. With a PostgreSQL
server named (``--postgresql`` or ``IMAGES_API_BENCH_POSTGRESQL_URL``), the
same reads and POST run on a database of the bench's own there, beside
SQLite's, and two instances of ``app.py`` on it against one; those rows are
reported, not budgeted. Conditional requests, reported too: the full listing
of 10,000 answered 304 to its own ETag, and GET one image on ``app.py``
against ``bench/no_etag.py`` (the same service with no ETag), taking turns.
Needs ``wrk`` on PATH (Debian: ``apt-get install wrk``). Exit status 1 when a
budget is missed, 2 when the benchmark itself could not run. See
bench/README.md.
"""

import argparse
import concurrent.futures
import json
import os
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

try:
    import psycopg2
except ImportError:  # the PostgreSQL rows are then skipped, with a note saying why
    psycopg2 = None

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LUA = BENCH / "load.lua"
HOST = "127.0.0.1"
WAITRESS_THREADS = 4  # app.py's default, used for both servers

SEED_PREFIX = "ami-"  # seeded images: ami-00000000, ami-00000001, ...
POST_PREFIX = "new-"  # images the POST row creates and the DELETE row removes
SEED_CONNECTIONS = 8
ROUNDS = 3  # turns taken by bare Flask and GET one image, each of --duration seconds

TOKEN = secrets.token_urlsafe(32)  # the admin's, set through IMAGES_API_ADMIN_TOKEN

# Budgets of issue 5.
MIN_GET_VS_BARE = 0.6
MAX_LISTING_VS_INPROCESS = 3.0
BUDGET_SIZE = 10_000  # the listing size the in-process comparison is made at

POSTGRESQL_VARIABLE = "IMAGES_API_BENCH_POSTGRESQL_URL"
POSTGRESQL = "PostgreSQL: "  # label of a PostgreSQL row: this, then the label of its SQLite row
POSTGRESQL_MAX_SIZE = 10_000  # listings of --sizes up to this one also run on PostgreSQL
CONNECT_TIMEOUT = 5  # seconds to reach the PostgreSQL server
INSTANCES = f"{POSTGRESQL}GET one image"  # label of the rows of one instance against two
INSTANCES_GOAL = 1.6  # two instances' GET throughput over one's: reported against, not budgeted

NOT_MODIFIED_SIZE = BUDGET_SIZE  # the full listing that also gets a row of 304s to its own ETag
NOT_MODIFIED = ", If-None-Match: 304"  # label of a 304 row: the label of its 200 row, then this
ETAG_AB = "GET /v3/image/<id>, ETag "  # label of the A/B rows: this, then the variant
ETAG_AB_ROUNDS = 10  # turns of each variant in the ETag A/B
ETAG_AB_ROUND_S = 3  # seconds of one turn (--duration when that is shorter)
ETAG_AB_GOAL = 0.95  # GET one image as shipped over without the ETag: reported against, not budgeted


class BenchError(Exception):
    """The benchmark could not run (not a missed budget)."""


@dataclass
class Row:
    """One line of the table: a load and what wrk measured."""

    label: str
    connections: int
    database: str | None = None  # "SQLite" or "PostgreSQL"; None for bare Flask
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    bad: int = 0
    cpu_s: float = 0.0
    peak_rss_mb: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def rate(self):
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self):
        """The server's CPU time (user + system) per request, in microseconds."""
        return self.cpu_s / self.requests * 1e6 if self.requests else 0.0


def free_port():
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """A server process on 127.0.0.1: started, waited for, measured, stopped.

    ``database`` names the database it serves from (``Row.database``).
    """

    def __init__(self, name, argv, env, workdir, database=None):
        self.name, self.argv, self.env, self.workdir, self.database = name, argv, env, workdir, database
        self.port = None
        self.process = None
        self.log = None

    def start(self, timeout=30):
        self.port = free_port()
        self.log = open(self.workdir / f"{self.name}.log", "ab")
        argv = [*self.argv, "--port", str(self.port)]
        self.process = subprocess.Popen(argv, env=self.env, cwd=self.workdir, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                # Any HTTP answer, not just a listening port: app.py listens
                # before it opens the database and creates the tables.
                http(self, "GET", "/", timeout=1)
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BenchError(f"{self.name} did not listen within {timeout}s:\n{self.log_tail()}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.log:
            self.log.close()
        self.process = None

    def restart(self):
        self.stop()
        return self.start()

    def memory_kb(self):
        """``(VmRSS, VmHWM)`` of the server process, in kB."""
        values = {}
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0])
        return values["VmRSS"], values["VmHWM"]

    def cpu_seconds(self):
        """User + system CPU time the server process has used so far."""
        fields = open(f"/proc/{self.process.pid}/stat").read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines=20):
        try:
            return "\n".join((self.workdir / f"{self.name}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def url(self, path):
        return f"http://{HOST}:{self.port}{path}"


def http(server, method, path, token=None, body=None, timeout=60, headers=None):
    """One request, with ``headers`` (a dict) besides its own; returns ``(status, headers, body bytes)``."""
    request = urllib.request.Request(server.url(path), method=method, data=body, headers=headers or {})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def wrk(server, path, mode, connections, threads, seconds, env=None, done_when=None, max_per_thread=10**6):
    """Run wrk with ``bench/load.lua``; returns its result dict.

    Bounded in time (``seconds``, then a hard timeout) and in count
    (``max_per_thread``, or the quota of ``env``). ``done_when``, polled every
    50 ms, ends the run early (SIGINT, after which wrk reports as usual).
    """
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s", "-s", str(LUA), server.url(path)]
    wrk_env = {**os.environ, "BENCH_MODE": mode, "BENCH_TOKEN": TOKEN, "BENCH_THREADS": str(threads), "BENCH_MAX": str(max_per_thread), **(env or {})}
    cpu_before = server.cpu_seconds()
    process = subprocess.Popen(argv, env=wrk_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done_when is not None:
        deadline = time.monotonic() + seconds + 5
        while process.poll() is None and time.monotonic() < deadline:
            if done_when():
                process.send_signal(signal.SIGINT)
                break
            time.sleep(0.05)
    try:
        out, err = process.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise BenchError(f"wrk did not finish: {' '.join(argv)}") from None
    for line in out.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line.removeprefix("BENCH_RESULT "))
            result["server_cpu_s"] = server.cpu_seconds() - cpu_before
            if result["socket_errors"] or result["timeouts"]:
                raise BenchError(f"wrk saw socket errors or timeouts on {mode} {path}: {result}\n{out}")
            return result
    raise BenchError(f"wrk gave no result ({' '.join(argv)}):\n{out}\n{err}")


def to_row(label, server, connections, results, status=200):
    """A table row from one or more wrk results of the same load on ``server``.

    Throughput is all requests over all seconds; with several runs, p50 is the
    median of their p50s and p99 the highest p99. Any answer but ``status``
    (as ``BENCH_STATUS`` told wrk) fails the benchmark.
    """
    row = Row(
        label,
        connections,
        database=server.database,
        requests=sum(result["requests"] for result in results),
        seconds=sum(result["duration_us"] for result in results) / 1e6,
        p50_ms=statistics.median(result["p50_us"] for result in results) / 1e3,
        p99_ms=max(result["p99_us"] for result in results) / 1e3,
        bad=sum(result["bad"] for result in results),
        cpu_s=sum(result["server_cpu_s"] for result in results),
    )
    if row.bad:
        raise BenchError(f"{label}: {row.bad} of {row.requests} responses were not {status}")
    print(f"  {label}: {row.rate:,.0f} req/s, p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms ({row.requests} requests)", flush=True)
    return row


def measure(label, server, path, mode, connections, seconds, threads=None, env=None, done_when=None, warmup=0):
    """A table row from one wrk run (after an unrecorded warm-up of ``warmup`` seconds)."""
    threads = threads or min(2, connections)
    if warmup:
        wrk(server, path, mode, connections, threads, warmup, env=env)
    return to_row(label, server, connections, [wrk(server, path, mode, connections, threads, seconds, env=env, done_when=done_when)])


def side_by_side(loads, connections, seconds, rounds):
    """Rows for ``loads`` (label, server, path) run in turn, ``rounds`` times, after a warm-up each.

    Taking turns spreads whatever else the machine is doing over every load,
    so their ratio is fair even when the absolute figures drift.
    """
    threads = min(2, connections)
    results = {label: [] for label, _, _ in loads}
    for _, server, path in loads:
        wrk(server, path, "get", connections, threads, 1)
    for _ in range(rounds):
        for label, server, path in loads:
            results[label].append(wrk(server, path, "get", connections, threads, seconds))
    return [to_row(label, server, connections, results[label]) for label, server, _ in loads]


def machine_busy_s():
    """CPU seconds this machine has been busy so far, all CPUs together (``/proc/stat``; time stolen by the host is not counted)."""
    user, nice, system, idle, iowait, irq, softirq = (int(value) for value in open("/proc/stat").readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def instances_rows(label, first, second, path, connections, seconds, rounds):
    """Rows for GET ``path`` on server ``first`` alone, then on ``first`` and ``second`` at once, each under a wrk of its own.

    The two loads take turns, ``rounds`` times, after a warm-up of each
    server. A run on both counts all their requests over the longer of their
    wrk runs, and the higher of their p50s and of their p99s. Each row's
    ``extra["machine_busy"]`` is the share of all CPUs busy during its runs,
    whoever used them: two processes take CPU from other work on the
    machine that one could not, which flatters the ratio.
    """
    threads = min(2, connections)
    for server in (first, second):
        wrk(server, path, "get", connections, threads, 1)
    alone, together = [], []
    busy = {"alone": [0.0, 0.0], "together": [0.0, 0.0]}  # busy CPU seconds, wall seconds

    def timed(load, run):
        start, busy_before = time.monotonic(), machine_busy_s()
        result = run()
        busy[load][0] += machine_busy_s() - busy_before
        busy[load][1] += time.monotonic() - start
        return result

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for _ in range(rounds):
            alone.append(timed("alone", lambda: wrk(first, path, "get", connections, threads, seconds)))
            both = timed("together", lambda: list(pool.map(lambda server: wrk(server, path, "get", connections, threads, seconds), (first, second))))
            together.append({
                "requests": sum(result["requests"] for result in both),
                "duration_us": max(result["duration_us"] for result in both),
                "p50_us": max(result["p50_us"] for result in both),
                "p99_us": max(result["p99_us"] for result in both),
                "bad": sum(result["bad"] for result in both),
                "server_cpu_s": sum(result["server_cpu_s"] for result in both),
            })  # fmt: skip
    rows = [
        to_row(f"{label}, one instance", first, connections, alone),
        to_row(f"{label}, two instances at once", first, connections * 2, together),
    ]
    for row, load in zip(rows, ("alone", "together")):
        row.extra["machine_busy"] = busy[load][0] / busy[load][1] / os.cpu_count()
    return rows


class Catalogue:
    """The bench's own look at the server's database, through a DB-API ``connection``.

    ``placeholder`` is its driver's mark for a parameter: ``?`` for sqlite3,
    ``%s`` for psycopg2. Both databases order ids by code point.
    """

    def __init__(self, connection, placeholder="?"):
        self.connection = connection
        self.placeholder = placeholder

    def execute(self, sql, params=()):
        """Run ``sql``, written with ``?`` for each of ``params``; returns the cursor."""
        cursor = self.connection.cursor()
        cursor.execute(sql.replace("?", self.placeholder), params)
        return cursor

    def query(self, sql, params=()):
        """All rows of ``sql``, written with ``?`` for each of ``params``."""
        return self.execute(sql, params).fetchall()

    def count(self, prefix=""):
        # A range on the primary key rather than LIKE, so the count uses the index.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"
        return self.query("SELECT count(*) FROM images WHERE id >= ? AND id < ?", (prefix, upper))[0][0]

    def ids(self, prefix):
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return [row[0] for row in self.query("SELECT id FROM images WHERE id >= ? AND id < ? ORDER BY id", (prefix, upper))]

    def remove(self, prefix):
        """Delete the images whose id starts with ``prefix``, in the database itself (cleaning up, not a measured request)."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        self.execute("DELETE FROM images WHERE id >= ? AND id < ?", (prefix, upper))

    def listing_json(self):
        """The full listing as the API should answer it, built in-process: fetch, then ``json.dumps``."""
        rows = self.query("SELECT id, name, provider, remote_user FROM images ORDER BY id")
        return json.dumps([{"id": i, "name": n, "provider": p, "remote_user": u} for i, n, p, u in rows], separators=(",", ":"))

    def time_listing(self, runs=11, limit=30):
        """Seconds taken by each of ``runs`` runs of ``listing_json`` (fewer if ``limit`` seconds pass)."""
        samples = []
        deadline = time.monotonic() + limit
        for _ in range(runs):
            start = time.perf_counter()
            self.listing_json()
            samples.append(time.perf_counter() - start)
            if time.monotonic() > deadline:
                break
        return samples

    def round_trip_s(self, runs=1000):
        """Median seconds of ``SELECT 1`` over ``runs`` runs from this process: one round trip to a server database."""
        cursor = self.connection.cursor()
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)


class PostgresDatabase:
    """The bench's own database on a PostgreSQL server, made by ``open_postgresql``, until ``drop()``.

    ``url`` is the service's URL for it; ``admin`` an open connection to the
    database the server was named by.
    """

    def __init__(self, admin, name, server_url):
        self.admin, self.name = admin, name
        self.url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
        self.connections = []

    def catalogue(self):
        """A ``Catalogue`` of the database on a connection of its own, closed by ``drop()``."""
        connection = psycopg2.connect(self.url, connect_timeout=CONNECT_TIMEOUT)
        # Each statement its own transaction: every count sees the service's
        # latest commits, and the bench never holds a transaction open.
        connection.autocommit = True
        self.connections.append(connection)
        return Catalogue(connection, "%s")

    def drop(self):
        """Drop the database, with the service's connections still open to it; a failure is a warning only."""
        for connection in self.connections:
            connection.close()
        try:
            with self.admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        except psycopg2.Error as error:
            print(f"bench: could not drop the PostgreSQL database {self.name}; drop it by hand: {one_line(error)}", file=sys.stderr)
        finally:
            self.admin.close()


def open_postgresql(server_url):
    """``(PostgresDatabase, None)``: a new database ``images_api_bench_<random>`` on the server at ``server_url``.

    ``(None, why)`` when there is no server to use: none named, no driver,
    or none reachable. Raises ``BenchError`` when the server answers but the
    database cannot be created.
    """
    if not server_url:
        return None, f"no server named (--postgresql URL or {POSTGRESQL_VARIABLE})"
    if psycopg2 is None:
        return None, "psycopg2 is not installed (pip install 'images-api[postgresql]')"
    try:
        admin = psycopg2.connect(server_url, connect_timeout=CONNECT_TIMEOUT)
    except psycopg2.Error as error:
        return None, f"cannot reach {masked_url(server_url)}: {one_line(error)}"
    admin.autocommit = True  # CREATE and DROP DATABASE cannot run in a transaction
    name = f"images_api_bench_{secrets.token_hex(6)}"
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
    except psycopg2.Error as error:
        admin.close()
        raise BenchError(f"cannot create a database on {masked_url(server_url)}: {one_line(error)}") from None
    return PostgresDatabase(admin, name, server_url), None


def masked_url(url):
    """``url`` with any password replaced by ``***``, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}"))


def one_line(error):
    """``error``'s message on one line (libpq's run over several)."""
    return " ".join(str(error).split())


def seed(server, catalogue, target, seconds_limit):
    """Create images ``ami-<index>`` through the API until there are ``target``."""
    have = catalogue.count(SEED_PREFIX)
    if have >= target:
        return
    connections = min(SEED_CONNECTIONS, target - have)
    start = time.monotonic()
    progress = {"count": have, "at": start}

    def done():
        # Finished, or stalled for 10 s (a failed request leaves a gap that no thread fills).
        count = catalogue.count(SEED_PREFIX)
        now = time.monotonic()
        if count != progress["count"]:
            progress.update(count=count, at=now)
        return count >= target or now - progress["at"] > 10

    result = wrk(
        server, "/v3/image", "post", connections, connections, seconds_limit,
        env={"BENCH_PREFIX": SEED_PREFIX, "BENCH_FIRST": str(have), "BENCH_LAST": str(target), "BENCH_QUOTA": "1"},
        done_when=done,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    have = catalogue.count(SEED_PREFIX)
    if have != target or result["bad"]:
        raise BenchError(f"seeding stopped at {have} of {target} images ({result['bad']} failed requests)")
    print(f"  seeded {target:,} images through POST /v3/image on {server.database} ({result['ok'] / elapsed:,.0f}/s)", flush=True)


def listing_row(server, catalogue, size, seconds, workdir, prefix=""):
    """Full listing at ``size`` images on a fresh server process: timing, peak RSS, body check.

    ``prefix`` comes before the row's label.
    """
    server.restart()
    http(server, "GET", f"/v3/image/{SEED_PREFIX}00000000", TOKEN)  # the connection and caches, not a listing
    idle_kb, _ = server.memory_kb()
    status, _, body = http(server, "GET", "/v3/images", TOKEN)
    expected = catalogue.listing_json().encode() + b"\n"
    if status != 200 or body != expected:
        (workdir / "listing.json").write_bytes(body)
        raise BenchError(f"the listing of {size} images differs from the in-process one (status {status})")
    before = catalogue.time_listing() if size == BUDGET_SIZE else []
    row = measure(f"{prefix}GET /v3/images ({size:,})", server, "/v3/images", "get", 1, seconds, threads=1)
    _, peak_kb = server.memory_kb()
    after = catalogue.time_listing() if size == BUDGET_SIZE else []
    row.peak_rss_mb = peak_kb / 1024
    row.extra = {"size": size, "body_bytes": len(body), "idle_rss_mb": idle_kb / 1024, "inprocess_s": before + after}
    return row


def not_modified_row(server, listing, seconds):
    """The row of 304s for ``listing``, the full listing's row just measured on ``server``.

    The same load (one connection, one wrk thread) with ``If-None-Match``
    set to the ETag of the listing's 200. Checked first: the 200 carries a
    strong ETag, and one conditional GET answers 304 with that ETag and no
    body. Under load every answer must be a 304. ``extra["of"]`` is the
    label of ``listing``.
    """
    status, headers, _ = http(server, "GET", "/v3/images", TOKEN)
    etag = headers.get("ETag")
    if status != 200 or not etag or etag.startswith("W/"):
        raise BenchError(f"{listing.label}: a 200 with a strong ETag expected, got {status} with ETag {etag}")
    status, headers, body = http(server, "GET", "/v3/images", TOKEN, headers={"If-None-Match": etag})
    if status != 304 or headers.get("ETag") != etag or body:
        raise BenchError(
            f"{listing.label} with If-None-Match: {etag}: a 304 with that ETag and no body expected,"
            f" got {status} with ETag {headers.get('ETag')} and {len(body)} bytes"
        )
    env = {"BENCH_IF_NONE_MATCH": etag, "BENCH_STATUS": "304"}
    row = to_row(listing.label + NOT_MODIFIED, server, 1, [wrk(server, "/v3/images", "get", 1, 1, seconds, env=env)], status=304)
    row.extra = {"size": listing.extra["size"], "etag": etag, "of": listing.label}
    return row


def etag_ab(shipped, without, path, connections, seconds, rounds):
    """The ETag's A/B on GET ``path``: ``shipped`` (A, ``app.py``, running) and ``without`` (B, ``bench/no_etag.py``) taking turns.

    Starts ``without`` on the same database and checks the two apart: A's
    200 has an ETag, B's none, with the same body. After a warm-up of each,
    ``rounds`` rounds of one wrk run each, A first in even rounds and B
    first in odd ones, so that a drift of the machine within a round
    favours neither. Returns ``(rows, per_round)``: a row for each variant
    over all rounds, and for each round a dict of both variants' req/s and
    server CPU us per request, and ``b_over_a``, B's req/s over A's. Raises
    ``BenchError`` when B does not start or the check fails.
    """
    without.start()
    (a_status, a_headers, a_body), (b_status, b_headers, b_body) = (http(server, "GET", path, TOKEN) for server in (shipped, without))
    if a_status != 200 or not a_headers.get("ETag") or b_status != 200 or b_headers.get("ETag") or b_body != a_body:
        raise BenchError(
            f"GET {path}: app.py must answer 200 with an ETag, bench/no_etag.py 200 without one and the same body;"
            f" got {a_status} with ETag {a_headers.get('ETag')} and {b_status} with ETag {b_headers.get('ETag')}"
        )
    threads = min(2, connections)
    variants = {"A": shipped, "B": without}
    for server in variants.values():
        wrk(server, path, "get", connections, threads, 1)
    results = {"A": [], "B": []}
    per_round = []
    for n in range(rounds):
        for variant in ("AB" if n % 2 == 0 else "BA"):
            results[variant].append(wrk(variants[variant], path, "get", connections, threads, seconds))
        figures = {}
        for variant in "AB":
            result = results[variant][-1]
            figures[f"{variant}_rate"] = result["requests"] / (result["duration_us"] / 1e6)
            figures[f"{variant}_cpu_us"] = result["server_cpu_s"] / result["requests"] * 1e6
        figures["b_over_a"] = figures["B_rate"] / figures["A_rate"]
        per_round.append(figures)
    rows = [
        to_row(f"{ETAG_AB}A: as shipped", shipped, connections, results["A"]),
        to_row(f"{ETAG_AB}B: off (bench/no_etag.py)", without, connections, results["B"]),
    ]
    return rows, per_round


def main():
    parser = argparse.ArgumentParser(description="Benchmark images-api against bare Flask under waitress (issue 5).")
    parser.add_argument("--duration", type=float, default=5, help="seconds of load per row (default 5)")
    parser.add_argument("--sizes", default="1000,10000,100000", help="listing sizes, comma-separated, ascending")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections for the single-image rows (default 8)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON here")
    parser.add_argument(
        "--postgresql", metavar="URL", default=os.environ.get(POSTGRESQL_VARIABLE),
        help=f"a PostgreSQL server for the PostgreSQL rows: the URL of any database there, as a user who may create "
        f"databases (default: ${POSTGRESQL_VARIABLE}; none: those rows are skipped)",
    )  # fmt: skip
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    # A SIGTERM (a timeout, a CI job cancelled) unwinds as Ctrl-C does, so
    # that the servers stop and the PostgreSQL database is dropped.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        rows, budgets, notes, conditional = run(args, sizes)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    print_report(rows, budgets, notes, conditional["notes"])
    if args.json:
        document = {
            "rows": [row.__dict__ | {"rate": row.rate} for row in rows], "budgets": budgets, "postgresql": notes,
            "conditional": conditional,
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(document, indent=2))
    return 0 if all(budget["met"] for budget in budgets) else 1


def interrupt(signum, frame):
    """Signal handler: raise ``KeyboardInterrupt``, as Ctrl-C does."""
    raise KeyboardInterrupt


def run(args, sizes):
    """Every row, on SQLite and, when a server is named and answers, on PostgreSQL.

    Returns ``(rows, budgets, notes, conditional)``: the notes are the
    PostgreSQL lines of the report (``postgresql_notes``), or the one line
    saying why there are none; ``conditional`` is ``conditional_report``'s.
    The ETag A/B runs last, so every other row is measured as before it.
    """
    if subprocess.run(["which", "wrk"], capture_output=True).returncode:
        raise BenchError("wrk is not on PATH; on Debian: apt-get update && apt-get install -y wrk")
    seconds = args.duration
    conns = args.connections
    env = {key: value for key, value in os.environ.items() if not key.startswith("IMAGES_API_")}
    env["IMAGES_API_ADMIN_TOKEN"] = TOKEN
    with tempfile.TemporaryDirectory(prefix="images-api-bench-") as tmp:
        workdir = Path(tmp)
        db_path = workdir / "images.db"
        service = Server("service", service_argv(f"sqlite:///{db_path}"), env, workdir, "SQLite")
        bare = None
        no_etag = None
        postgres = None
        instances = []  # app.py on the PostgreSQL database; the first is the one the rows beside SQLite use
        try:
            postgres, skipped = open_postgresql(args.postgresql)
            if postgres:
                instances = [Server(f"postgresql-{n}", service_argv(postgres.url), env, workdir, "PostgreSQL") for n in (1, 2)]
            service.start()
            catalogue = Catalogue(sqlite3.connect(db_path, timeout=30))
            rows = []
            print(f"images-api bench: database {db_path}, waitress threads {WAITRESS_THREADS}, {seconds:g} s per row", flush=True)
            if postgres:
                print(f"  and PostgreSQL database {masked_url(postgres.url)}", flush=True)
            else:
                print(f"  PostgreSQL rows skipped: {skipped}", flush=True)
            seed(service, catalogue, sizes[0], 300)
            if postgres:
                pg_catalogue = postgres.catalogue()
                instances[0].start()
                seed(instances[0], pg_catalogue, sizes[0], 300)

            one = f"{SEED_PREFIX}{sizes[0] // 2:08d}"
            status, _, image = http(service, "GET", f"/v3/image/{one}", TOKEN)
            if status != 200:
                raise BenchError(f"GET /v3/image/{one}: {status}")
            bare = Server("bare", [sys.executable, str(BENCH / "bare.py"), "--host", HOST, "--threads", str(WAITRESS_THREADS), "--image", image.decode()], env, workdir)
            bare.start()
            if http(bare, "GET", f"/v3/image/{one}")[2] != image:
                raise BenchError("the bare app's body differs from the service's")
            loads = [("bare Flask: GET one image", bare, f"/v3/image/{one}"), ("GET /v3/image/<id>", service, f"/v3/image/{one}")]
            if postgres:
                if http(instances[0], "GET", f"/v3/image/{one}", TOKEN)[2] != image:
                    raise BenchError("the service's body on PostgreSQL differs from the one on SQLite")
                loads.append((f"{POSTGRESQL}GET /v3/image/<id>", instances[0], f"/v3/image/{one}"))
            rows += side_by_side(loads, conns, seconds, ROUNDS)
            bare.stop()
            label = f"GET /v3/images?limit=100 ({sizes[0]:,})"
            rows.append(measure(label, service, "/v3/images?limit=100", "get", conns, seconds, warmup=1))
            if postgres:
                rows.append(measure(POSTGRESQL + label, instances[0], "/v3/images?limit=100", "get", conns, seconds, warmup=1))

            post_env = {"BENCH_PREFIX": POST_PREFIX, "BENCH_FIRST": "0", "BENCH_LAST": str(10**8)}
            rows.append(measure("POST /v3/image", service, "/v3/image", "post", conns, seconds, env=post_env))
            if postgres:
                rows.append(measure(f"{POSTGRESQL}POST /v3/image", instances[0], "/v3/image", "post", conns, seconds, env=post_env))
                pg_catalogue.remove(POST_PREFIX)
            put_env = {"BENCH_PREFIX": SEED_PREFIX, "BENCH_FIRST": "0", "BENCH_LAST": str(sizes[0])}
            rows.append(measure("PUT /v3/image/<id>", service, "/v3/image", "put", conns, seconds, env=put_env))
            created = catalogue.ids(POST_PREFIX)
            ids_file = workdir / "delete-ids.txt"
            ids_file.write_text("".join(f"{image_id}\n" for image_id in created))
            delete_env = {"BENCH_IDS": str(ids_file), "BENCH_FIRST": "0", "BENCH_LAST": str(len(created)), "BENCH_QUOTA": "1"}
            delete_conns = min(conns, len(created))
            rows.append(
                measure(
                    f"DELETE /v3/image/<id> ({len(created):,})", service, "/v3/image", "delete", delete_conns, seconds * 4,
                    threads=delete_conns, env=delete_env, done_when=lambda: catalogue.count(POST_PREFIX) == 0,
                )
            )  # fmt: skip
            if catalogue.count(POST_PREFIX):
                raise BenchError("the DELETE row left images behind")

            for size in sizes:
                seed(service, catalogue, size, max(60, size / 100))
                rows.append(listing_row(service, catalogue, size, seconds, workdir))
                if size == NOT_MODIFIED_SIZE:
                    rows.append(not_modified_row(service, rows[-1], seconds))
                if postgres and size <= POSTGRESQL_MAX_SIZE:
                    seed(instances[0], pg_catalogue, size, max(60, size / 100))
                    rows.append(listing_row(instances[0], pg_catalogue, size, seconds, workdir, prefix=POSTGRESQL))
                    if size == NOT_MODIFIED_SIZE:
                        rows.append(not_modified_row(instances[0], rows[-1], seconds))
            if postgres:
                instances[1].start()
                rows += instances_rows(INSTANCES, *instances, f"/v3/image/{one}", conns, seconds, ROUNDS)
                notes = postgresql_notes(rows, pg_catalogue.round_trip_s())
            else:
                notes = [f"PostgreSQL rows skipped: {skipped}"]
            budgets = check_budgets(rows)
            for instance in instances:
                instance.stop()

            # Both variants freshly started on the same database, so that
            # neither carries the memory of the listings before.
            service.restart()
            no_etag = Server("no-etag", [sys.executable, str(BENCH / "no_etag.py"), *service_argv(f"sqlite:///{db_path}")[2:]], env, workdir, "SQLite")
            round_s = min(seconds, ETAG_AB_ROUND_S)
            try:
                ab_rows, per_round = etag_ab(service, no_etag, f"/v3/image/{one}", conns, round_s, ETAG_AB_ROUNDS)
            except BenchError as error:
                # The diagnostic build leans on the views' internals: when they
                # change, the report says so and the budgets still stand.
                return rows, budgets, notes, conditional_report(rows, [], round_s, skipped=one_line(error))
            rows += ab_rows
            return rows, budgets, notes, conditional_report(rows, per_round, round_s)
        finally:
            service.stop()
            if bare:
                bare.stop()
            if no_etag:
                no_etag.stop()
            for instance in instances:
                instance.stop()
            if postgres:
                postgres.drop()


def service_argv(database_url):
    """The command line of ``app.py`` serving ``database_url``."""
    return [sys.executable, str(ROOT / "app.py"), "--host", HOST, "--threads", str(WAITRESS_THREADS), "--database", database_url]


def check_budgets(rows):
    by_label = {row.label: row for row in rows}
    bare = by_label["bare Flask: GET one image"]
    get_one = by_label["GET /v3/image/<id>"]
    budgets = []
    ratio = get_one.rate / bare.rate
    budgets.append({
        "name": f"GET one image >= {MIN_GET_VS_BARE} x bare Flask throughput",
        "figures": f"{get_one.rate:,.0f} / {bare.rate:,.0f} req/s = {ratio:.2f}",
        "met": ratio >= MIN_GET_VS_BARE,
    })  # fmt: skip
    listings = [row for row in rows if row.peak_rss_mb is not None and row.database == "SQLite"]
    ten_k = [row for row in listings if row.extra["size"] == BUDGET_SIZE]
    if ten_k:
        row = ten_k[0]
        samples = row.extra["inprocess_s"]
        baseline = statistics.median(samples)
        ratio = row.p50_ms / (baseline * 1e3)
        budgets.append({
            "name": f"full listing of {BUDGET_SIZE:,}: p50 <= {MAX_LISTING_VS_INPROCESS} x in-process sqlite3 fetch + json.dumps",
            "figures": f"{row.p50_ms:.1f} ms / {baseline * 1e3:.1f} ms (p50 of {len(samples)}, before and after) = {ratio:.2f}",
            "met": ratio <= MAX_LISTING_VS_INPROCESS,
        })  # fmt: skip
    # Memory: the server's peak RSS above its idle RSS, per byte of the listing's
    # body. It must not rise from one size to the next (growth at most linear).
    figures = []
    met = True
    previous = None
    for row in listings:
        growth = row.peak_rss_mb - row.extra["idle_rss_mb"]
        per_byte = growth * 2**20 / row.extra["body_bytes"]
        figures.append(f"{row.extra['size']:,}: +{growth:.1f} MB for a {row.extra['body_bytes'] / 2**20:.1f} MB body ({per_byte:.1f} B/B)")
        if previous is not None and per_byte > previous:
            met = False
        previous = per_byte
    budgets.append({"name": "listing memory grows no faster than the listing", "figures": "; ".join(figures), "met": met})
    return budgets


def postgresql_notes(rows, round_trip_s):
    """The report's lines on PostgreSQL, reported, not budgeted.

    Each PostgreSQL row against its SQLite row, the listing of
    ``BUDGET_SIZE`` against its in-process fetch, two instances against one,
    and ``round_trip_s``: what one ``SELECT 1`` from the bench took.
    """
    by_label = {row.label: row for row in rows}
    notes = ["PostgreSQL beside SQLite (reported, not budgeted):"]
    for row in rows:
        sqlite_row = by_label.get(row.label.removeprefix(POSTGRESQL)) if row.database == "PostgreSQL" else None
        if sqlite_row:
            notes.append(
                f"  {sqlite_row.label}: {row.rate:,.0f} / {sqlite_row.rate:,.0f} req/s = {row.rate / sqlite_row.rate:.2f} of SQLite's"
                f" throughput; p50 {row.p50_ms:.2f} / {sqlite_row.p50_ms:.2f} ms"
            )
        if row.database == "PostgreSQL" and row.peak_rss_mb is not None and row.extra["size"] == BUDGET_SIZE:
            samples = row.extra["inprocess_s"]
            baseline = statistics.median(samples)
            notes.append(
                f"  full listing of {BUDGET_SIZE:,}: p50 {row.p50_ms:.1f} ms / {baseline * 1e3:.1f} ms in-process psycopg2 fetch +"
                f" json.dumps (p50 of {len(samples)}, before and after) = {row.p50_ms / (baseline * 1e3):.2f}"
            )
    one, two = by_label[f"{INSTANCES}, one instance"], by_label[f"{INSTANCES}, two instances at once"]
    ratio = two.rate / one.rate
    notes.append(
        f"  two instances against one on one database, GET one image: {two.rate:,.0f} / {one.rate:,.0f} req/s = {ratio:.2f}"
        f" (goal >= {INSTANCES_GOAL}: {'met' if ratio >= INSTANCES_GOAL else 'missed'}); all {os.cpu_count()} CPUs"
        f" {one.extra['machine_busy']:.0%} busy during one, {two.extra['machine_busy']:.0%} during two"
    )
    notes.append(f"  one round trip, SELECT 1 from the bench (the pool's check at each checkout): {round_trip_s * 1e6:.0f} us, p50 of 1,000")
    return notes


def conditional_report(rows, per_round, round_s, skipped=None):
    """The report's lines on conditional requests, reported, not budgeted, and their figures for ``--json``.

    Each 304 row of ``rows`` against its 200 row, and the ETag A/B on GET
    one image from ``per_round`` (``etag_ab``'s, rounds of ``round_s``
    seconds), or ``skipped``, why there is none. Returns ``{"notes": lines,
    "etag_ab": {...}}`` (``{"skipped": why}`` then). B/A is the median of
    the rounds' ratios, which one slow round moves less than the pooled
    throughputs do.
    """
    by_label = {row.label: row for row in rows}
    notes = ["Conditional requests (reported, not budgeted):"]
    for row in rows:
        if row.label.endswith(NOT_MODIFIED):
            full = by_label[row.extra["of"]]
            prefix = POSTGRESQL if row.database == "PostgreSQL" else ""
            notes.append(
                f"  {prefix}304 for an unchanged listing of {row.extra['size']:,}: p50 {row.p50_ms:.2f} ms against"
                f" {full.p50_ms:.2f} ms for the 200 = {row.p50_ms / full.p50_ms:.3f}; server CPU {row.cpu_us:,.0f} /"
                f" {full.cpu_us:,.0f} us a request"
            )
    if skipped:
        notes.append(f"  ETag on GET one image, A/B not measured: {skipped}")
        return {"notes": notes, "etag_ab": {"skipped": skipped}}
    a, b = by_label[f"{ETAG_AB}A: as shipped"], by_label[f"{ETAG_AB}B: off (bench/no_etag.py)"]
    ratios = [figures["b_over_a"] for figures in per_round]
    b_over_a = statistics.median(ratios)
    met = 1 / b_over_a >= ETAG_AB_GOAL
    cpu_a = statistics.median(figures["A_cpu_us"] for figures in per_round)
    cpu_b = statistics.median(figures["B_cpu_us"] for figures in per_round)
    notes.append(
        f"  ETag on GET one image, A/B in {len(per_round)} rounds of {round_s:g} s at {a.connections} connections: as shipped (A) {a.rate:,.0f} req/s,"
        f" without the ETag (B) {b.rate:,.0f} req/s; B/A = {b_over_a:.3f} (median of the rounds; all requests {b.rate / a.rate:.3f});"
        f" A = {1 / b_over_a:.3f} of B (goal >= {ETAG_AB_GOAL}: {'met' if met else 'missed'})"
    )
    notes.append(f"  B/A by round: {', '.join(f'{ratio:.3f}' for ratio in ratios)} (from {min(ratios):.3f} to {max(ratios):.3f})")
    notes.append(f"  server CPU a request, median of the rounds: A {cpu_a:,.0f} us, B {cpu_b:,.0f} us (A - B = {cpu_a - cpu_b:+,.0f} us)")
    return {
        "notes": notes,
        "etag_ab": {"round_s": round_s, "rounds": per_round, "b_over_a": b_over_a, "goal_a_over_b": ETAG_AB_GOAL, "met": met},
    }


def print_report(rows, budgets, notes, conditional=()):
    bare_rate = rows[0].rate
    header = ("load", "conns", "requests", "req/s", "p50 ms", "p99 ms", "vs bare", "CPU us/req", "peak RSS MB")
    lines = [header]
    for row in rows:
        lines.append((
            row.label, str(row.connections), f"{row.requests:,}", f"{row.rate:,.0f}", f"{row.p50_ms:.2f}", f"{row.p99_ms:.2f}",
            f"{row.rate / bare_rate:.3f}", f"{row.cpu_us:,.0f}", f"{row.peak_rss_mb:.0f}" if row.peak_rss_mb is not None else "",
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    print()
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(line[1:], widths[1:])]
        print("| " + " | ".join(cells) + " |")
        if n == 0:
            print("|" + "|".join("-" * (width + 2) if i == 0 else "-" * (width + 1) + ":" for i, width in enumerate(widths)) + "|")
    print()
    for budget in budgets:
        print(f"{'met   ' if budget['met'] else 'MISSED'} {budget['name']}: {budget['figures']}")
    print()
    for note in notes:
        print(note)
    if conditional:
        print()
        for note in conditional:
            print(note)


if __name__ == "__main__":
    sys.exit(main())
