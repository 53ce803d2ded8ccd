"""Benchmark images-api under waitress with wrk, against bare Flask and a database driver's ceiling.

    python bench/run.py [--duration 2] [--rounds 9] [--connections 8] [--json PATH]
                        [--postgresql URL] [--mysql URL] [--sqlite-only]
                        [--service-env NAME=VALUE ...]

Serves ``app.py`` (waitress, 4 threads) on three databases: a SQLite file in a
temporary directory, and a scratch database of the bench's own on a
PostgreSQL and on a MariaDB/MySQL server, created from an admin URL and
dropped at the end (by default the local servers; ``--sqlite-only`` skips
them). Seeds 10,000 images on SQLite through ``POST /v3/image`` and copies
them to the servers with ``images-api export`` and ``import``. Then every
load takes one wrk turn of ``--duration`` seconds a round, ``--rounds``
rounds, in reverse order every other round: on each database GET one image,
``limit=100``, the full listing and POST; the ceilings of ``bench/bare.py``,
served by app.py's own waitress server (bare Flask; on each server database,
bare Flask running one SELECT through the same driver); GET one image on
SQLite without the ETag (``bench/no_etag.py``); two instances at once on
PostgreSQL. Every ratio is taken within each round and printed as the median
and the range over the rounds. Two budgets, on SQLite, set the exit status:
GET one image at least 0.8 of bare Flask, and the full listing's p50 at most
the in-process floor (``sqlite3`` fetch + ``json.dumps`` of the same rows).
Exit status 1 when one is missed, 2 when the benchmark could not run. Needs
``wrk`` on PATH. See bench/README.md.
"""

import argparse
import concurrent.futures
import contextlib
import importlib.metadata
import json
import os
import platform
import secrets
import signal
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

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))  # processes.py: standard library only, shared with the tests

import processes  # noqa: E402
from bare import connect, driver  # noqa: E402  (bench/bare.py: this script's directory is on the path)

LUA = BENCH / "load.lua"
HOST = processes.HOST
THREADS = 4  # app.py's default, for every server of the run

LISTING_SIZE = 10_000  # images seeded on each database: the full listing's size
SEED_PREFIX = "ami-"  # seeded images: ami-00000000, ami-00000001, ...
POST_PREFIX = "new-"  # images the POST turns create; deleted in the database after each turn
ONE = f"{SEED_PREFIX}{LISTING_SIZE // 2:08d}"  # the image every GET one image asks for
SEED_CONNECTIONS = 8
SEED_LIMIT_S = 300  # the most seconds seeding one database may take
WARMUP_S = 1  # an unrecorded turn of each load before the rounds
FLOOR_RUNS = 5  # in-process fetch + json.dumps runs just before each listing turn
SETTLE_POLLS = 20  # looks at the count of POSTed images, 10 ms apart, that must agree before they are deleted

TOKEN = secrets.token_urlsafe(32)  # the admin's, set through IMAGES_API_ADMIN_TOKEN

# A row's key: (backend, load). Budgets, goals and ratios find rows by key;
# the label shown is made from it.
BARE = "bare Flask"
SQLITE = "SQLite"
POSTGRESQL = "PostgreSQL"
MARIADB = "MariaDB"

GET_ONE = "GET /v3/image/<id>"
CEILING = "bare Flask + one SELECT by id (bench/bare.py)"
NO_ETAG = "GET /v3/image/<id> without the ETag (bench/no_etag.py)"
TWO_INSTANCES = "GET /v3/image/<id>, two instances at once"
LIMIT = "GET /v3/images?limit=100"
LISTING = f"GET /v3/images ({LISTING_SIZE:,})"
POST = "POST /v3/image"


@dataclass(frozen=True)
class Key:
    """Which row: a backend (a database, or bare Flask) and a load on it."""

    backend: str
    load: str

    @property
    def label(self):
        return f"{self.backend}: {self.load}"


BARE_GET = Key(BARE, GET_ONE)
FLOOR = "floor"  # a Goal's ``over`` for the in-process floor of its listing row


@dataclass(frozen=True)
class Goal:
    """``of`` over ``over`` (a row's throughput; with ``over=FLOOR``, a listing's p50 over its in-process floor), median of the rounds, against ``bound``."""

    name: str
    of: Key
    over: Key | str
    bound: float
    at_least: bool = True
    min_rounds: int = 1


#: Checked: a missed one is exit status 1 (bench/README.md, "Budgets").
BUDGETS = (
    Goal("SQLite: GET one image >= 0.8 x bare Flask", Key(SQLITE, GET_ONE), BARE_GET, 0.8, min_rounds=9),
    Goal(
        f"SQLite: full listing of {LISTING_SIZE:,}, p50 <= 1.0 x in-process sqlite3 fetch + json.dumps",
        Key(SQLITE, LISTING), FLOOR, 1.0, at_least=False,
    ),
)  # fmt: skip
#: Reported against, not budgeted.
GOALS = (
    Goal("PostgreSQL: GET one image >= 0.8 x bare Flask + one psycopg2 SELECT", Key(POSTGRESQL, GET_ONE), Key(POSTGRESQL, CEILING), 0.8),
    Goal("MariaDB: GET one image >= 0.8 x bare Flask + one PyMySQL SELECT", Key(MARIADB, GET_ONE), Key(MARIADB, CEILING), 0.8),
    Goal("PostgreSQL: two instances >= 1.6 x one, GET one image", Key(POSTGRESQL, TWO_INSTANCES), Key(POSTGRESQL, GET_ONE), 1.6),
    Goal("SQLite: GET one image with the ETag >= 0.95 x without", Key(SQLITE, GET_ONE), Key(SQLITE, NO_ETAG), 0.95),
)


@dataclass(frozen=True)
class ServerKind:
    """A kind of database server the bench can make a scratch database on."""

    backend: str
    option: str  # --OPTION URL
    variable: str  # ... or this variable
    default: str  # ... or this admin URL
    driver: str  # the driver's name, as pip knows it
    extra: str  # images-api's extra that installs it
    force: str  # DROP DATABASE's clause that closes the sessions still open


SERVER_KINDS = (
    ServerKind(
        POSTGRESQL, "postgresql", "IMAGES_API_BENCH_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/postgres",
        "psycopg2", "postgresql", " WITH (FORCE)",
    ),
    ServerKind(MARIADB, "mysql", "IMAGES_API_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test", "PyMySQL", "mysql", ""),
)  # fmt: skip


class BenchError(Exception):
    """The benchmark could not run (not a missed budget)."""


class Server:
    """A server process on 127.0.0.1: started, waited for, measured, stopped.

    ``argv`` is app.py's command line or one that passes app.py's options on
    (bench/bare.py, bench/no_etag.py); ``--port`` is added to it.
    """

    def __init__(self, name, argv, env, workdir):
        self.name, self.argv, self.env, self.workdir = name, argv, env, workdir
        self.port = None
        self.process = None
        self.log = None

    def start(self, timeout=processes.TIMEOUT):
        self.port = processes.free_port()
        self.log = open(self.workdir / f"{self.name}.log", "ab")
        argv = [*self.argv, "--port", str(self.port)]
        self.process = subprocess.Popen(argv, env=self.env, cwd=self.workdir, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            # Any HTTP answer, not just a listening port: app.py listens
            # before it opens the database and creates the tables.
            processes.wait_serving(self.process, lambda: http(self, "GET", "/", timeout=1), self.log_tail, timeout)
        except processes.NotServing as error:
            self.stop()
            raise BenchError(f"{self.name}: {error}") from None
        return self

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
            self.log = None
        self.process = None

    def restart(self):
        self.stop()
        return self.start()

    def memory_mb(self):
        """``(VmRSS, VmHWM)`` of the server process, in MB."""
        values = {}
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) / 1024
        return values["VmRSS"], values["VmHWM"]

    def cpu_seconds(self):
        """User + system CPU time the server process has used so far."""
        fields = open(f"/proc/{self.process.pid}/stat").read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_text(self):
        try:
            return (self.workdir / f"{self.name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=20):
        return "\n".join(self.log_text().splitlines()[-lines:])

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
    """Run wrk with ``bench/load.lua``; returns its result dict, with ``server_cpu_s``: the server's CPU time over the run.

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


def machine_busy_s():
    """CPU seconds this machine has been busy so far, all CPUs together (``/proc/stat``; time stolen by the host is not counted)."""
    user, nice, system, idle, iowait, irq, softirq = (int(value) for value in open("/proc/stat").readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


@dataclass
class Load:
    """What one turn runs: wrk on ``path`` of each of ``servers`` at once, ``connections`` each.

    ``before()`` runs just before each turn and returns figures kept with
    it; ``after()`` just after (cleanup, not measured).
    """

    key: Key
    servers: tuple
    path: str
    mode: str = "get"
    connections: int = 8
    env: dict = field(default_factory=dict)
    before: object = None
    after: object = None


def turn(load, seconds):
    """One turn of ``load``: a sample dict of requests, seconds, rate, p50/p99 ms, server CPU and how busy the machine was.

    With several servers, their wrks run together: requests are added up
    over the longer run, and the higher p50 and p99 kept.
    """
    figures = load.before() if load.before else {}
    threads = min(2, load.connections)

    def run(server):
        return wrk(server, load.path, load.mode, load.connections, threads, seconds, env=load.env)

    start, busy_before = time.monotonic(), machine_busy_s()
    if len(load.servers) == 1:
        results = [run(load.servers[0])]
    else:
        with concurrent.futures.ThreadPoolExecutor(len(load.servers)) as pool:
            results = list(pool.map(run, load.servers))
    machine_busy = (machine_busy_s() - busy_before) / (time.monotonic() - start) / os.cpu_count()
    if load.after:
        load.after()
    bad = sum(result["bad"] for result in results)
    if bad:
        raise BenchError(f"{load.key.label}: {bad} responses were neither 200 nor 503")
    # Throughput counts the 200s; 503s (busy, retry) are counted apart and reported.
    requests = sum(result["ok"] for result in results)
    seconds = max(result["duration_us"] for result in results) / 1e6
    return {
        "requests": requests,
        "busy": sum(result["busy"] for result in results),
        "seconds": seconds,
        "rate": requests / seconds,
        "p50_ms": max(result["p50_us"] for result in results) / 1e3,
        "p99_ms": max(result["p99_us"] for result in results) / 1e3,
        "cpu_s": sum(result["server_cpu_s"] for result in results),
        "machine_busy": machine_busy,
        **figures,
    }


def take_turns(loads, seconds, rounds, progress):
    """``{key: [sample of each round]}``: each of ``loads`` one turn a round, in order, then in reverse the next round.

    Taking turns spreads whatever else the machine does over every load
    alike, and reversing puts each load of a pair first as often as second,
    so the ratio of two loads within a round is fair even when the
    absolute figures drift. Each load has an unrecorded warm-up turn first.
    ``progress(round_index, samples, seconds_taken)`` is called after each round.
    """
    for load in loads:
        turn(load, WARMUP_S)
    samples = {load.key: [] for load in loads}
    for n in range(rounds):
        start = time.monotonic()
        for load in loads if n % 2 == 0 else loads[::-1]:
            samples[load.key].append(turn(load, seconds))
        progress(n, samples, time.monotonic() - start)
    return samples


@dataclass
class Row:
    """One line of the table: a load's samples over the rounds, and the server's memory for a listing."""

    key: Key
    connections: int
    samples: list
    peak_rss_mb: float | None = None
    idle_rss_mb: float | None = None
    body_bytes: int | None = None

    @property
    def requests(self):
        return sum(sample["requests"] for sample in self.samples)

    @property
    def busy(self):
        """Answers that were 503, not counted in ``requests``."""
        return sum(sample["busy"] for sample in self.samples)

    @property
    def rate(self):
        """All requests answered 200 over all seconds of the rounds."""
        return self.requests / sum(sample["seconds"] for sample in self.samples)

    @property
    def p50_ms(self):
        """The median of the rounds' p50s."""
        return statistics.median(sample["p50_ms"] for sample in self.samples)

    @property
    def p99_ms(self):
        """The highest of the rounds' p99s."""
        return max(sample["p99_ms"] for sample in self.samples)

    @property
    def cpu_us(self):
        """The servers' CPU time (user + system) per request, in microseconds."""
        return sum(sample["cpu_s"] for sample in self.samples) / self.requests * 1e6

    @property
    def floor_ms(self):
        """A listing row's in-process floor: the median of all its runs, in ms."""
        return statistics.median(run for sample in self.samples for run in sample["floor_s"]) * 1e3


def per_round(rows, of, over):
    """``of``'s throughput over ``over``'s in each round; with ``over=FLOOR``, ``of``'s p50 over the median of its floor runs in that round."""
    if over == FLOOR:
        return [sample["p50_ms"] / (statistics.median(sample["floor_s"]) * 1e3) for sample in rows[of].samples]
    return [a["rate"] / b["rate"] for a, b in zip(rows[of].samples, rows[over].samples)]


def spread(values):
    """``median (min-max)`` of a ratio's values over the rounds."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


class Catalogue:
    """The bench's own look at a service's database, through a DB-API ``connection`` in autocommit.

    ``placeholder`` is its driver's mark for a parameter: ``?`` for sqlite3,
    ``%s`` for psycopg2 and PyMySQL. Each database orders ids by code point.
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
        """The ids that start with ``prefix``, in order."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return [row[0] for row in self.query("SELECT id FROM images WHERE id >= ? AND id < ? ORDER BY id", (prefix, upper))]

    def remove(self, prefix):
        """Delete the images whose id starts with ``prefix``, in the database itself (cleaning up, not a measured request)."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        self.execute("DELETE FROM images WHERE id >= ? AND id < ?", (prefix, upper))

    def listing(self):
        """Every image as the API shows it, a list of dicts in id order."""
        rows = self.query("SELECT id, name, provider, remote_user FROM images ORDER BY id")
        return [{"id": i, "name": n, "provider": p, "remote_user": u} for i, n, p, u in rows]

    def listing_json(self):
        """The full listing built in-process: fetch, then ``json.dumps``. The floor a listing is held to."""
        return json.dumps(self.listing(), separators=(",", ":"))

    def time_listing(self, runs):
        """Seconds taken by each of ``runs`` runs of ``listing_json``."""
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            self.listing_json()
            samples.append(time.perf_counter() - start)
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


class ScratchDatabase:
    """A database of the bench's own, ``images_api_bench_<12 hex digits>``, on the server at ``admin_url``, until ``drop()``.

    ``url`` is the service's URL for it. Raises ``BenchError`` when the
    driver is missing, the server cannot be reached, or the database cannot
    be created, saying how to name another server or skip this one.
    """

    def __init__(self, kind, admin_url):
        self.kind = kind
        skip = f"name another server with --{kind.option} URL or ${kind.variable}, or skip it with --{kind.option} '' (all servers: --sqlite-only)"
        try:
            self.module = driver(admin_url)
        except ImportError:
            raise BenchError(f"{kind.backend}: {kind.driver} is not installed (pip install 'images-api[{kind.extra}]'); or {skip}") from None
        except ValueError as error:
            raise BenchError(f"{kind.backend}: {error}; {skip}") from None
        try:
            self.admin = connect(admin_url)
        except self.module.Error as error:
            raise BenchError(f"{kind.backend}: cannot reach {masked_url(admin_url)}: {one_line(error)}; or {skip}") from None
        self.name = f"images_api_bench_{secrets.token_hex(6)}"
        try:
            self.version = self.admin_execute("SELECT version()")[0][0].partition(" on ")[0]  # PostgreSQL's goes on with its compiler
            self.admin_execute(f"CREATE DATABASE {self.name}")
        except self.module.Error as error:
            self.admin.close()
            raise BenchError(f"{kind.backend}: cannot create a database on {masked_url(admin_url)}: {one_line(error)}") from None
        self.url = urlunsplit(urlsplit(admin_url)._replace(path="/" + self.name))
        self.connections = []

    def admin_execute(self, sql):
        cursor = self.admin.cursor()
        try:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []
        finally:
            cursor.close()

    def catalogue(self):
        """A ``Catalogue`` of the database on a connection of its own, closed by ``drop()``."""
        connection = connect(self.url)
        self.connections.append(connection)
        return Catalogue(connection, "%s")

    def drop(self):
        """Drop the database (after the servers on it have stopped); a failure is a warning only."""
        for connection in self.connections:
            with contextlib.suppress(self.module.Error):
                connection.close()
        try:
            self.admin_execute(f"DROP DATABASE IF EXISTS {self.name}{self.kind.force}")
        except self.module.Error as error:
            print(f"bench: could not drop the {self.kind.backend} database {self.name}; drop it by hand: {one_line(error)}", file=sys.stderr)
        finally:
            self.admin.close()


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


@dataclass
class Backend:
    """A database the service runs on in this run, and its servers."""

    name: str
    url: str  # the service's --database
    catalogue: Catalogue
    service: Server
    ceiling: Server | None = None  # bench/bare.py --select on it (server databases)
    second: Server | None = None  # a second app.py on it (PostgreSQL)
    idle_rss_mb: float = 0.0
    body_bytes: int = 0


def seed(server, catalogue, target, name):
    """Create images ``ami-<index>`` through ``POST /v3/image`` until there are ``target``.

    wrk sends them on ``SEED_CONNECTIONS`` connections, one image a request.
    A 503 (the service's "busy, retry") leaves a gap, which is then filled
    one request at a time, honouring ``Retry-After``, as a client would;
    any other failure stops the run.
    """
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
        server, "/v3/image", "post", connections, connections, SEED_LIMIT_S,
        env={"BENCH_PREFIX": SEED_PREFIX, "BENCH_FIRST": str(have), "BENCH_LAST": str(target), "BENCH_QUOTA": "1"},
        done_when=done,
    )  # fmt: skip
    if result["bad"]:
        # The log's lines but its 200s' access lines: the failures and why.
        unusual = [line for line in server.log_text().splitlines() if " 200 " not in line][-20:]
        raise BenchError(f"{name}: {result['bad']} requests of the seeding failed:\n" + "\n".join(unusual))
    present = set(catalogue.ids(SEED_PREFIX))
    gaps = [index for index in range(target) if f"{SEED_PREFIX}{index:08d}" not in present]
    for index in gaps:
        create_image(server, f"{SEED_PREFIX}{index:08d}", index)
    elapsed = time.monotonic() - start
    have = catalogue.count(SEED_PREFIX)
    if have != target:
        raise BenchError(f"{name}: seeding stopped at {have} of {target} images")
    print(
        f"  seeded {target:,} images through POST /v3/image on {name} in {elapsed:.0f} s ({target / elapsed:,.0f}/s)"
        + (f"; {result['busy']} answered 503, {len(gaps)} sent again one by one" if result["busy"] or gaps else ""),
        flush=True,
    )


def create_image(server, image_id, index, tries=10):
    """POST the image ``load.lua`` makes for ``index``; on a 503, again after its ``Retry-After``. A 409 means it is there."""
    body = json.dumps({"id": image_id, "provider": "ec2", "remote_user": "ubuntu", "name": f"Ubuntu 24.04 LTS build {index}"})
    for _ in range(tries):
        status, headers, answer = http(server, "POST", "/v3/image", TOKEN, body.encode())
        if status in (200, 409):
            return
        if status != 503:
            break
        time.sleep(min(5, int(headers.get("Retry-After") or 1)))
    raise BenchError(f"POST /v3/image of {image_id}: {status} {answer[:200]!r}")


def copy_catalogue(source_url, target_url, name, env, workdir):
    """Load the catalogue at ``source_url`` (images and users) into the new, empty database at ``target_url``: ``images-api export``, then ``import``.

    The README's way to load many images at once, as a user runs it.
    """
    start = time.monotonic()
    export = workdir / "catalogue.jsonl"
    if not export.exists():
        images_api_command(["export", "--output", str(export), "--database", source_url], env)
    images_api_command(["import", str(export), "--database", target_url], env)
    print(f"  copied the SQLite catalogue to {name} with images-api export and import in {time.monotonic() - start:.1f} s", flush=True)


def images_api_command(argv, env):
    """Run the ``images-api`` command of this checkout (``python -m images_api`` from its root, as app.py imports it) with ``argv``."""
    done = subprocess.run([sys.executable, "-m", "images_api", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise BenchError(f"images-api {' '.join(argv)}: exit status {done.returncode}: {(done.stderr or done.stdout).strip()}")


def app_py_options(database_url):
    """app.py's options for every server of the run but ``--port``: host, threads, database."""
    return ["--host", HOST, "--threads", str(THREADS), "--database", database_url]


def service_argv(database_url):
    """The command line of ``app.py`` serving ``database_url``."""
    return [sys.executable, str(ROOT / "app.py"), *app_py_options(database_url)]


def bare_argv(ceiling_option, workdir, name):
    """The command line of ``bench/bare.py`` with ``ceiling_option`` (``--image JSON`` or ``--select URL``).

    The app.py it runs opens a scratch SQLite file of its own, which no request reaches.
    """
    return [sys.executable, str(BENCH / "bare.py"), *ceiling_option, *app_py_options(f"sqlite:///{workdir / name}.db")]


def get_json(server, path, token=None):
    """``(status, parsed body or None, headers, body bytes)`` of a GET."""
    status, headers, body = http(server, "GET", path, token)
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    return status, parsed, headers, body


def check_image(server, image, label, token=None):
    """``server`` answers GET one image with ``image`` (compared as JSON), without credentials when ``token`` is None."""
    status, parsed, _, body = get_json(server, f"/v3/image/{ONE}", token)
    if status != 200 or parsed != image:
        how = "with credentials," if token else "without credentials,"
        raise BenchError(f"{label}: GET /v3/image/{ONE} {how} expected 200 and {image}, got {status}: {body[:200]!r}\n{server.log_tail()}")


def check_listing(backend):
    """The service's full listing on ``backend`` is every image of its database, in order (compared as JSON); notes its body's size."""
    status, parsed, _, body = get_json(backend.service, "/v3/images", TOKEN)
    expected = backend.catalogue.listing()
    if status != 200 or parsed != expected or len(expected) != LISTING_SIZE:
        raise BenchError(f"{backend.name}: the listing (status {status}) is not the {LISTING_SIZE:,} images of the database, in order")
    backend.body_bytes = len(body)


def waitress_options(server):
    """The arguments app.py gave ``waitress.create_server`` in ``server`` (a bench/bare.py), from its log, less host and port."""
    for line in server.log_text().splitlines():
        if line.startswith("bench/bare.py: waitress.create_server "):
            options = json.loads(line.partition(" waitress.create_server ")[2])
            return {key: value for key, value in options.items() if key not in ("host", "port")}
    raise BenchError(f"{server.name}: app.py did not build its server with waitress.create_server; update bench/bare.py\n{server.log_tail()}")


def version_of(package):
    """The installed version of ``package`` (a distribution name), or "not installed"."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def describe_machine(servers):
    """Lines about the machine and the software measured (``servers``: each database server's name and version), and the same as a dict for ``--json``."""
    model = ""
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    facts = {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "system": f"{platform.system()} {platform.release()}",
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "sqlite3": sqlite3.sqlite_version,
    }
    with contextlib.suppress(ImportError):
        import apsw

        facts["apsw"] = f"{apsw.apsw_version()} (SQLite {apsw.sqlite_lib_version()})"
    with contextlib.suppress(ImportError):
        import psycopg2

        libpq = psycopg2.__libpq_version__
        facts["psycopg2"] = f"{psycopg2.__version__.split()[0]} (libpq {libpq // 10000}.{libpq % 10000})"
    if version_of("PyMySQL") != "not installed":
        facts["PyMySQL"] = version_of("PyMySQL")  # not pymysql.__version__: that is the MySQLdb version it stands in for
    for package in ("Flask", "Werkzeug", "waitress", "peewee", "marshmallow"):
        facts[package] = version_of(package)
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    facts["wrk"] = (wrk_version.stdout or wrk_version.stderr).split("[")[0].strip()
    service = subprocess.run([sys.executable, str(ROOT / "app.py"), "--version"], capture_output=True, text=True)
    facts["service"] = (service.stdout or service.stderr).strip()
    checkout = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    facts["checkout"] = checkout.stdout.strip() or "not a git checkout"
    for name, version in servers:
        facts[f"{name} server"] = version
    drivers = ", ".join(f"{name} {facts[name]}" for name in ("apsw", "psycopg2", "PyMySQL") if name in facts)
    lines = [
        f"machine: {facts['cpus']} CPUs ({model or 'model unknown'}), {facts['system']},"
        f" load average {' '.join(f'{load:.2f}' for load in facts['load_average'])}",
        f"Python {facts['python']}; SQLite {facts['sqlite3']} (sqlite3); {drivers}",
        ", ".join(f"{package} {facts[package]}" for package in ("Flask", "Werkzeug", "waitress", "peewee", "marshmallow"))
        + f"; {facts['wrk']}",
        f"service: {facts['service']}, checkout {facts['checkout']}",
        *(f"{name}: {version}" for name, version in servers),
    ]
    return lines, facts


def main():
    parser = argparse.ArgumentParser(
        description="Benchmark images-api under waitress against bare Flask and a driver's ceiling (bench/README.md).",
    )
    parser.add_argument("--duration", type=int, default=2, help="seconds of each load's turn in a round (default 2)")
    parser.add_argument("--rounds", type=int, default=9, help="rounds of turns (default 9; the GET budget needs 9 or more)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections for every load but the full listing's 1 (default 8)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows, every round's figures, budgets and goals as JSON here")
    for kind in SERVER_KINDS:
        parser.add_argument(
            f"--{kind.option}", metavar="URL", default=os.environ.get(kind.variable, kind.default),
            help=f"a {kind.backend} server, as the URL of any database there for a user who may create databases"
            f" (default: ${kind.variable}, else {kind.default}); '' skips {kind.backend}",
        )  # fmt: skip
    parser.add_argument("--sqlite-only", action="store_true", help="measure SQLite alone: no server databases")
    parser.add_argument(
        "--service-env", metavar="NAME=VALUE", action="append", default=[],
        help="set this variable for every app.py the bench starts (the bench clears IMAGES_API_* otherwise); repeatable",
    )  # fmt: skip
    args = parser.parse_args()
    if args.duration < 1 or args.rounds < 1 or args.connections < 1:
        parser.error("--duration, --rounds and --connections must be 1 or more")
    for setting in args.service_env:
        if "=" not in setting:
            parser.error(f"--service-env {setting}: NAME=VALUE expected")
    # A SIGTERM (a timeout, a CI job cancelled) unwinds as Ctrl-C does, so
    # that the servers stop and the scratch databases are dropped.
    signal.signal(signal.SIGTERM, interrupt)
    started = time.monotonic()
    try:
        report = run(args)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; its servers are stopped and its databases dropped", file=sys.stderr)
        return 130
    elapsed = time.monotonic() - started
    print_report(report)
    print(f"\nrun took {elapsed // 60:.0f} min {elapsed % 60:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report | {"elapsed_s": elapsed}, indent=2, default=str))
    return 1 if any(budget["status"] == "missed" for budget in report["budgets"]) else 0


def interrupt(signum, frame):
    """Signal handler: raise ``KeyboardInterrupt``, as Ctrl-C does."""
    raise KeyboardInterrupt


def run(args):
    """Start, seed and check every server, take turns, and return the report (``print_report``'s)."""
    if subprocess.run(["which", "wrk"], capture_output=True).returncode:
        raise BenchError("wrk is not on PATH; on Debian: apt-get update && apt-get install -y wrk")
    env = {key: value for key, value in os.environ.items() if not key.startswith("IMAGES_API_")}
    env.update(setting.split("=", 1) for setting in args.service_env)
    env["IMAGES_API_ADMIN_TOKEN"] = TOKEN
    skipped = {}  # a key, or a backend's name -> why its rows are missing
    conns = args.connections
    with tempfile.TemporaryDirectory(prefix="images-api-bench-") as tmp, contextlib.ExitStack() as cleanup:
        workdir = Path(tmp)

        def server(name, argv):
            """A started server, stopped when the run ends."""
            started = Server(name, argv, env, workdir)
            cleanup.callback(started.stop)
            return started.start()

        # The scratch databases first: their drop runs last, once every
        # server on them has stopped.
        scratch = []
        for kind in SERVER_KINDS:
            url = getattr(args, kind.option)
            if args.sqlite_only or not url:
                skipped[kind.backend] = "--sqlite-only" if args.sqlite_only else f"no server named (--{kind.option} '' or ${kind.variable} empty)"
                continue
            database = ScratchDatabase(kind, url)
            cleanup.callback(database.drop)
            scratch.append(database)
        print(f"images-api bench: {args.rounds} rounds of {args.duration} s turns, {conns} connections, waitress threads {THREADS}", flush=True)

        lines, facts = describe_machine([(database.kind.backend, database.version) for database in scratch])
        for line in lines:
            print(f"  {line}", flush=True)
        for name, why in skipped.items():
            print(f"  {name} skipped: {why}", flush=True)

        sqlite_url = f"sqlite:///{workdir / 'images.db'}"
        service = server("sqlite", service_argv(sqlite_url))
        # Autocommit, so that every count sees the service's latest commits.
        connection = sqlite3.connect(workdir / "images.db", timeout=30, isolation_level=None)
        cleanup.callback(connection.close)
        backends = [Backend(SQLITE, sqlite_url, Catalogue(connection), service)]
        seed(service, backends[0].catalogue, LISTING_SIZE, SQLITE)
        # Afresh, so that its peak memory is the rounds', not the seeding's.
        service.restart()
        # The server databases get the same catalogue, users included, in
        # seconds rather than through 10,000 more POSTs each.
        for database in scratch:
            copy_catalogue(sqlite_url, database.url, database.kind.backend, env, workdir)
            slug = database.kind.backend.lower()
            backends.append(Backend(database.kind.backend, database.url, database.catalogue(), server(slug, service_argv(database.url))))
        for backend in backends:
            status, _, _, body = get_json(backend.service, f"/v3/image/{ONE}", TOKEN)
            if status != 200:
                raise BenchError(f"{backend.name}: GET /v3/image/{ONE}: {status} {body[:200]!r}")
            backend.idle_rss_mb = backend.service.memory_mb()[0]
            check_listing(backend)
        _, image, _, _ = get_json(backends[0].service, f"/v3/image/{ONE}", TOKEN)
        for backend in backends[1:]:
            check_image(backend.service, image, backend.name, TOKEN)
        if http(backends[0].service, "GET", f"/v3/image/{ONE}")[0] != 401:
            raise BenchError("app.py answered GET one image without credentials: the bench cannot tell it from bench/bare.py")

        bare = server("bare", bare_argv(["--image", json.dumps(image)], workdir, "bare"))
        check_image(bare, image, "bench/bare.py --image")
        waitress = waitress_options(bare)
        print(f"  waitress, as app.py builds it (bench/bare.py): {json.dumps(waitress, sort_keys=True)}", flush=True)
        for backend in backends[1:]:
            slug = backend.name.lower()
            backend.ceiling = server(f"{slug}-ceiling", bare_argv(["--select", backend.url], workdir, f"{slug}-ceiling"))
            check_image(backend.ceiling, image, f"bench/bare.py --select on {backend.name}")
            if backend.name == POSTGRESQL:
                backend.second = server(f"{slug}-2", service_argv(backend.url))
                check_image(backend.second, image, f"{backend.name}, second instance", TOKEN)
        no_etag = start_no_etag(server, backends[0], image, skipped)

        loads = make_loads(backends, bare, no_etag, conns)
        print(f"  {len(loads)} loads a round; first a warm-up turn of each", flush=True)

        def progress(n, samples, seconds):
            figures = [f"{n + 1} of {args.rounds} ({seconds:.0f} s):"]
            for of, over in ((Key(SQLITE, GET_ONE), BARE_GET), (Key(POSTGRESQL, GET_ONE), Key(POSTGRESQL, CEILING)), (Key(MARIADB, GET_ONE), Key(MARIADB, CEILING))):
                if of in samples and over in samples:
                    figures.append(f"{of.backend} GET one / {'bare' if over == BARE_GET else 'ceiling'} {samples[of][-1]['rate'] / samples[over][-1]['rate']:.2f},")
            listing = samples[Key(SQLITE, LISTING)][-1]
            figures.append(f"SQLite listing / floor {listing['p50_ms'] / (statistics.median(listing['floor_s']) * 1e3):.2f}")
            print("  round", " ".join(figures), flush=True)

        samples = take_turns(loads, args.duration, args.rounds, progress)
        rows = {load.key: Row(load.key, load.connections * len(load.servers), samples[load.key]) for load in loads}
        for backend in backends:
            if backend.catalogue.count(POST_PREFIX) or backend.catalogue.count(SEED_PREFIX) != LISTING_SIZE:
                raise BenchError(f"{backend.name}: the catalogue is not the {LISTING_SIZE:,} seeded images after the rounds")
            row = rows[Key(backend.name, LISTING)]
            row.idle_rss_mb, row.body_bytes = backend.idle_rss_mb, backend.body_bytes
            row.peak_rss_mb = backend.service.memory_mb()[1]
        round_trips = {backend.name: backend.catalogue.round_trip_s() for backend in backends[1:]}
        facts["load_average_after"] = os.getloadavg()
        return build_report(args, rows, skipped, facts, lines, waitress, round_trips)


def start_no_etag(server, backend, image, skipped):
    """bench/no_etag.py on SQLite, checked: app.py's 200 has an ETag, its none, same body. None (and why, in ``skipped``) when it cannot run.

    It leans on the views' internals: when they change, the report says so
    and every other row stands.
    """
    try:
        no_etag = server("no-etag", [sys.executable, str(BENCH / "no_etag.py"), *app_py_options(backend.url)])
    except BenchError as error:
        skipped[Key(SQLITE, NO_ETAG)] = one_line(error)
        return None
    (a_status, a_image, a_headers, _), (b_status, b_image, b_headers, _) = (
        get_json(candidate, f"/v3/image/{ONE}", TOKEN) for candidate in (backend.service, no_etag)
    )
    if a_status != 200 or not a_headers.get("ETag") or b_status != 200 or b_headers.get("ETag") or not a_image == b_image == image:
        skipped[Key(SQLITE, NO_ETAG)] = (
            f"app.py must answer 200 with an ETag, bench/no_etag.py 200 without one and the same image;"
            f" got {a_status} with ETag {a_headers.get('ETag')} and {b_status} with ETag {b_headers.get('ETag')}"
        )
        no_etag.stop()
        return None
    return no_etag


def make_loads(backends, bare, no_etag, conns):
    """The loads of one round, in order: each backend's together, GET one beside the load it is compared with."""
    post_env = {"BENCH_PREFIX": POST_PREFIX, "BENCH_FIRST": "0", "BENCH_LAST": str(10**8)}
    loads = []
    for backend in backends:
        name, service, catalogue = backend.name, backend.service, backend.catalogue
        get_one = f"/v3/image/{ONE}"
        if name == SQLITE:
            loads.append(Load(BARE_GET, (bare,), get_one, connections=conns))
        else:
            loads.append(Load(Key(name, CEILING), (backend.ceiling,), get_one, connections=conns))
        loads.append(Load(Key(name, GET_ONE), (service,), get_one, connections=conns))
        if name == SQLITE and no_etag:
            loads.append(Load(Key(name, NO_ETAG), (no_etag,), get_one, connections=conns))
        if backend.second:
            loads.append(Load(Key(name, TWO_INSTANCES), (service, backend.second), get_one, connections=conns))
        loads.append(Load(Key(name, LIMIT), (service,), "/v3/images?limit=100", connections=conns))
        # One connection: a listing's latency alone, and one listing's memory in flight.
        loads.append(
            Load(
                Key(name, LISTING), (service,), "/v3/images", connections=1,
                before=lambda catalogue=catalogue: {"floor_s": catalogue.time_listing(FLOOR_RUNS)},
            )
        )  # fmt: skip
        loads.append(Load(Key(name, POST), (service,), "/v3/image", "post", conns, post_env, after=lambda catalogue=catalogue: remove_posted(catalogue)))
    return loads


def remove_posted(catalogue):
    """After a POST turn: once the service has committed the requests wrk left in flight, delete every image the turn created.

    wrk stops with requests sent and unanswered, and the service still
    carries them out: the count must hold still for ``SETTLE_POLLS`` looks
    (10 ms apart) before the images are deleted.
    """
    counts = []

    def settled():
        counts.append(catalogue.count(POST_PREFIX))
        return len(counts) >= SETTLE_POLLS and len(set(counts[-SETTLE_POLLS:])) == 1

    try:
        processes.wait_until(settled)
    except processes.NotServing:
        raise BenchError(f"the POST turn's images kept coming for {processes.TIMEOUT} s after wrk stopped") from None
    catalogue.remove(POST_PREFIX)


def judge(goal, rows, skipped):
    """A goal's (or budget's) verdict: status met, missed, unchecked (too few rounds) or not measured, and its figures."""
    missing = [key for key in (goal.of, goal.over) if key != FLOOR and key not in rows]
    if missing:
        why = skipped.get(missing[0]) or skipped.get(missing[0].backend) or "not measured"
        return {"name": goal.name, "status": "not measured", "figures": why}
    values = per_round(rows, goal.of, goal.over)
    median = statistics.median(values)
    met = median >= goal.bound if goal.at_least else median <= goal.bound
    status = "met" if met else "missed"
    figures = f"{spread(values)} over {len(values)} round{'s' if len(values) > 1 else ''}"
    if len(values) < goal.min_rounds:
        status = "unchecked"
        figures += f" (needs {goal.min_rounds} rounds or more)"
    of = rows[goal.of]
    if goal.over == FLOOR:
        figures += f"; p50 {of.p50_ms:.1f} ms, floor {of.floor_ms:.1f} ms (medians of all rounds)"
    else:
        over = rows[goal.over]
        figures += f"; {of.rate:,.0f} / {over.rate:,.0f} req/s over all rounds"
        if goal.of.load == TWO_INSTANCES:
            busy_one = statistics.median(sample["machine_busy"] for sample in over.samples)
            busy_two = statistics.median(sample["machine_busy"] for sample in of.samples)
            figures += f"; all {os.cpu_count()} CPUs {busy_one:.0%} busy during one, {busy_two:.0%} during two (medians)"
    return {"name": goal.name, "status": status, "figures": figures, "per_round": values, "median": median, "bound": goal.bound}


def build_report(args, rows, skipped, facts, machine_lines, waitress, round_trips):
    """Everything ``print_report`` prints, as plain data (and ``--json`` writes)."""
    table = []
    for key, row in rows.items():
        ceiling = Key(key.backend, CEILING)
        entry = {
            "key": {"backend": key.backend, "load": key.load}, "label": key.label, "connections": row.connections,
            "requests": row.requests, "busy": row.busy, "rate": row.rate, "p50_ms": row.p50_ms, "p99_ms": row.p99_ms, "cpu_us": row.cpu_us,
            "peak_rss_mb": row.peak_rss_mb, "vs_bare": per_round(rows, key, BARE_GET),
            "vs_ceiling": per_round(rows, key, ceiling) if ceiling in rows and key.load not in (CEILING, TWO_INSTANCES) else None,
            "rounds": row.samples,
        }  # fmt: skip
        table.append(entry)
    notes = []
    for backend, driver_name in ((POSTGRESQL, "psycopg2"), (MARIADB, "PyMySQL")):
        listing = rows.get(Key(backend, LISTING))
        if listing is not None:
            notes.append(
                f"{backend}: full listing of {LISTING_SIZE:,}, p50 over the in-process {driver_name} fetch + json.dumps:"
                f" {spread(per_round(rows, listing.key, FLOOR))}; p50 {listing.p50_ms:.1f} ms, floor {listing.floor_ms:.1f} ms"
            )
    for backend in (SQLITE, POSTGRESQL, MARIADB):
        listing = rows.get(Key(backend, LISTING))
        if listing is not None:
            growth = listing.peak_rss_mb - listing.idle_rss_mb
            notes.append(
                f"{backend}: server's peak RSS over its idle RSS, {growth:+.1f} MB for a {listing.body_bytes / 2**20:.2f} MB"
                f" listing body ({growth * 2**20 / listing.body_bytes:.1f} bytes a byte)"
            )
    for key, row in rows.items():
        if row.busy:
            notes.append(
                f"{key.label}: {row.busy:,} answers were 503 (database busy or unavailable), beside {row.requests:,} 200s;"
                f" the throughput counts the 200s, the latencies all of them"
            )
    for backend, seconds in round_trips.items():
        notes.append(f"{backend}: one SELECT 1 from the bench, a round trip: {seconds * 1e6:.0f} us (p50 of 1,000)")
    for key, why in skipped.items():
        name = key.label if isinstance(key, Key) else key
        notes.append(f"{name}: not measured: {why}")
    return {
        "settings": {"duration_s": args.duration, "rounds": args.rounds, "connections": args.connections, "threads": THREADS, "service_env": args.service_env},
        "machine": facts,
        "machine_lines": machine_lines + [f"load average after: {' '.join(f'{load:.2f}' for load in facts['load_average_after'])}"],
        "waitress": waitress,
        "rows": table,
        "budgets": [judge(goal, rows, skipped) for goal in BUDGETS],
        "goals": [judge(goal, rows, skipped) for goal in GOALS],
        "notes": notes,
    }


def print_report(report):
    header = ("load", "conns", "requests", "req/s", "p50 ms", "p99 ms", "CPU us/req", "peak RSS MB", "vs bare", "vs ceiling")
    lines = [header]
    for row in report["rows"]:
        lines.append((
            row["label"], str(row["connections"]), f"{row['requests']:,}", f"{row['rate']:,.0f}", f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}", f"{row['cpu_us']:,.0f}", f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] is not None else "",
            spread(row["vs_bare"]), spread(row["vs_ceiling"]) if row["vs_ceiling"] else "",
        ))  # fmt: skip
    if not any(line[-1] for line in lines[1:]):  # no server database: no ceiling
        lines = [line[:-1] for line in lines]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    rounds = report["settings"]["rounds"]
    print()
    print(f"Throughput over all {rounds} rounds; p50 the median of the rounds', p99 the highest; vs bare and vs ceiling: median (min-max) of the rounds' ratios")
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(line[1:], widths[1:])]
        print("| " + " | ".join(cells) + " |")
        if n == 0:
            print("|" + "|".join("-" * (width + 2) if i == 0 else "-" * (width + 1) + ":" for i, width in enumerate(widths)) + "|")
    sections = {
        "Budgets (exit status 1 when one is missed); median (min-max) of the rounds' ratios:": [
            f"{budget['status'].replace('missed', 'MISSED'):12} {budget['name']}: {budget['figures']}" for budget in report["budgets"]
        ],
        "Goals (reported, not budgeted):": [f"{goal['status']:12} {goal['name']}: {goal['figures']}" for goal in report["goals"]],
        "Also:": report["notes"],
        "Machine:": [
            *report["machine_lines"],
            f"waitress, as app.py builds it (bench/bare.py): {json.dumps(report['waitress'], sort_keys=True)}",
        ],
    }
    for title, lines in sections.items():
        print(f"\n{title}")
        for line in lines:
            print(f"  {line}")


if __name__ == "__main__":
    sys.exit(main())
