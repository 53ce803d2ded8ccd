"""Benchmark images-api under waitress with wrk, against bare Flask's ceiling.

    python bench/run.py [--duration 5] [--sizes 1000,10000,100000] [--connections 8]

Starts ``app.py`` (waitress, 4 threads) on a temporary SQLite database, seeds
images through ``POST /v3/image``, drives each route with wrk and prints one
table: throughput, p50/p99 latency, the ratio to bare Flask, the server's peak
RSS per listing size; then the three budgets of issue 5. Needs ``wrk`` on
PATH (Debian: ``apt-get install wrk``). Exit status 1 when a budget is missed,
2 when the benchmark itself could not run. See bench/README.md.
"""

import argparse
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


class BenchError(Exception):
    """The benchmark could not run (not a missed budget)."""


@dataclass
class Row:
    """One line of the table: a load and what wrk measured."""

    label: str
    connections: int
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
    """A server process on 127.0.0.1: started, waited for, measured, stopped."""

    def __init__(self, name, argv, env, workdir):
        self.name, self.argv, self.env, self.workdir = name, argv, env, workdir
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
                socket.create_connection((HOST, self.port), timeout=1).close()
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


def http(server, method, path, token=None, body=None, timeout=60):
    """One request; returns ``(status, headers, body bytes)``."""
    request = urllib.request.Request(server.url(path), method=method, data=body)
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


def to_row(label, connections, results):
    """A table row from one or more wrk results of the same load.

    Throughput is all requests over all seconds; with several runs, p50 is the
    median of their p50s and p99 the highest p99.
    """
    row = Row(
        label,
        connections,
        requests=sum(result["requests"] for result in results),
        seconds=sum(result["duration_us"] for result in results) / 1e6,
        p50_ms=statistics.median(result["p50_us"] for result in results) / 1e3,
        p99_ms=max(result["p99_us"] for result in results) / 1e3,
        bad=sum(result["bad"] for result in results),
        cpu_s=sum(result["server_cpu_s"] for result in results),
    )
    if row.bad:
        raise BenchError(f"{label}: {row.bad} of {row.requests} responses were not 200")
    print(f"  {label}: {row.rate:,.0f} req/s, p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms ({row.requests} requests)", flush=True)
    return row


def measure(label, server, path, mode, connections, seconds, threads=None, env=None, done_when=None, warmup=0):
    """A table row from one wrk run (after an unrecorded warm-up of ``warmup`` seconds)."""
    threads = threads or min(2, connections)
    if warmup:
        wrk(server, path, mode, connections, threads, warmup, env=env)
    return to_row(label, connections, [wrk(server, path, mode, connections, threads, seconds, env=env, done_when=done_when)])


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
    return [to_row(label, connections, results[label]) for label, _, _ in loads]


class Catalogue:
    """The bench's own read-only look at the server's SQLite file."""

    def __init__(self, path):
        self.connection = sqlite3.connect(path, timeout=30)

    def count(self, prefix=""):
        # A range on the primary key rather than LIKE, so the count uses the index.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"
        return self.connection.execute("SELECT count(*) FROM images WHERE id >= ? AND id < ?", (prefix, upper)).fetchone()[0]

    def ids(self, prefix):
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return [row[0] for row in self.connection.execute("SELECT id FROM images WHERE id >= ? AND id < ? ORDER BY id", (prefix, upper))]

    def listing_json(self):
        """The full listing as the API should answer it, built in-process: fetch, then ``json.dumps``."""
        rows = self.connection.execute("SELECT id, name, provider, remote_user FROM images ORDER BY id").fetchall()
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
    print(f"  seeded {target:,} images through POST /v3/image ({result['ok'] / elapsed:,.0f}/s)", flush=True)


def listing_row(server, catalogue, size, seconds, workdir):
    """Full listing at ``size`` images on a fresh server process: timing, peak RSS, body check."""
    server.restart()
    http(server, "GET", f"/v3/image/{SEED_PREFIX}00000000", TOKEN)  # the connection and caches, not a listing
    idle_kb, _ = server.memory_kb()
    status, _, body = http(server, "GET", "/v3/images", TOKEN)
    expected = catalogue.listing_json().encode() + b"\n"
    if status != 200 or body != expected:
        (workdir / "listing.json").write_bytes(body)
        raise BenchError(f"the listing of {size} images differs from the in-process one (status {status})")
    before = catalogue.time_listing() if size == BUDGET_SIZE else []
    row = measure(f"GET /v3/images ({size:,})", server, "/v3/images", "get", 1, seconds, threads=1)
    _, peak_kb = server.memory_kb()
    after = catalogue.time_listing() if size == BUDGET_SIZE else []
    row.peak_rss_mb = peak_kb / 1024
    row.extra = {"size": size, "body_bytes": len(body), "idle_rss_mb": idle_kb / 1024, "inprocess_s": before + after}
    return row


def main():
    parser = argparse.ArgumentParser(description="Benchmark images-api against bare Flask under waitress (issue 5).")
    parser.add_argument("--duration", type=float, default=5, help="seconds of load per row (default 5)")
    parser.add_argument("--sizes", default="1000,10000,100000", help="listing sizes, comma-separated, ascending")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections for the single-image rows (default 8)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON here")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    try:
        rows, budgets = run(args, sizes)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    print_report(rows, budgets, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": [row.__dict__ | {"rate": row.rate} for row in rows], "budgets": budgets}, indent=2))
    return 0 if all(budget["met"] for budget in budgets) else 1


def run(args, sizes):
    if subprocess.run(["which", "wrk"], capture_output=True).returncode:
        raise BenchError("wrk is not on PATH; on Debian: apt-get update && apt-get install -y wrk")
    seconds = args.duration
    conns = args.connections
    env = {key: value for key, value in os.environ.items() if not key.startswith("IMAGES_API_")}
    env["IMAGES_API_ADMIN_TOKEN"] = TOKEN
    with tempfile.TemporaryDirectory(prefix="images-api-bench-") as tmp:
        workdir = Path(tmp)
        db_path = workdir / "images.db"
        service = Server("service", [sys.executable, str(ROOT / "app.py"), "--host", HOST, "--threads", str(WAITRESS_THREADS), "--database", f"sqlite:///{db_path}"], env, workdir)
        bare = None
        try:
            service.start()
            catalogue = Catalogue(db_path)
            rows = []
            print(f"images-api bench: database {db_path}, waitress threads {WAITRESS_THREADS}, {seconds:g} s per row", flush=True)
            seed(service, catalogue, sizes[0], 300)

            one = f"{SEED_PREFIX}{sizes[0] // 2:08d}"
            status, _, image = http(service, "GET", f"/v3/image/{one}", TOKEN)
            if status != 200:
                raise BenchError(f"GET /v3/image/{one}: {status}")
            bare = Server("bare", [sys.executable, str(BENCH / "bare.py"), "--host", HOST, "--threads", str(WAITRESS_THREADS), "--image", image.decode()], env, workdir)
            bare.start()
            if http(bare, "GET", f"/v3/image/{one}")[2] != image:
                raise BenchError("the bare app's body differs from the service's")
            rows += side_by_side(
                [("bare Flask: GET one image", bare, f"/v3/image/{one}"), ("GET /v3/image/<id>", service, f"/v3/image/{one}")],
                conns, seconds, ROUNDS,
            )  # fmt: skip
            bare.stop()
            rows.append(measure(f"GET /v3/images?limit=100 ({sizes[0]:,})", service, "/v3/images?limit=100", "get", conns, seconds, warmup=1))

            post_env = {"BENCH_PREFIX": POST_PREFIX, "BENCH_FIRST": "0", "BENCH_LAST": str(10**8)}
            rows.append(measure("POST /v3/image", service, "/v3/image", "post", conns, seconds, env=post_env))
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
            return rows, check_budgets(rows)
        finally:
            service.stop()
            if bare:
                bare.stop()


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
    listings = [row for row in rows if row.peak_rss_mb is not None]
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


def print_report(rows, budgets, args):
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


if __name__ == "__main__":
    sys.exit(main())
