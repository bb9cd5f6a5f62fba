"""The HTTP API under gunicorn: ``/routes/{id}/live`` throughput and publish → visible latency.

    .venv/bin/python bench/api.py [--quick] [--runs 3] [--duration 15] [--connections 50]
                                  [--bg-rate 1000] [--bg-devices 1000] [--samples 50]
                                  [--mqtt-url URL] [--pg postgresql://postgres@127.0.0.1:5432/postgres]
                                  [--api-env XIAOCHE_LIVE_FASTPATH=0]

Numbers only, no assertions. Everything runs on this machine, on loopback:

- **PostgreSQL**: a database ``xiaoche_bench_api`` (dropped and recreated, dropped at the end),
  migrated, with the sample district (``backend/sample/lukou.json``) plus ``--bg-devices`` extra
  school buses without routes (the background fleet). In this copy route ``zt-am-1`` runs every
  day, without holidays, and its timetable is shifted so that the on-schedule drive of bus-07
  (``tests/drives.py``) is in progress *now*: the wall clock of the start stands for 06:56 of the
  original drive (the bus left 龙凤村 at 06:50 and is on its way to 石塘村).
- **Broker**: an embedded Mosquitto on a free loopback port (``--mqtt-url`` selects another).
- **Ingest**: the real ``.venv/bin/xiaoche ingest`` process (``XIAOCHE_MAX_PING_AGE_S=0``).
- **API**: ``gunicorn -w 2 -k gthread --threads 64 --no-control-socket backend.wsgi:app``
  (``--workers``, ``--threads``, ``--worker-class`` to compare other settings)
  (what ``xiaoche api`` runs, without its access log unless ``--access-log``).
- **bus-07**: a thread publishes the drive's first part (06:40 → now) at once, then one ping every
  10 s with the current time as ``ts`` (the drive's position at that moment). From 石塘村 on the
  bus would reach 东安村 and wait there: the drive is clamped at its arrival at 东安村, so the
  trip stays in progress however long the bench runs (the route's last stop is never reached).
- **Background ingest** (``--bg-rate`` pings/s): a separate process (this script) publishing
  single-ping messages for the background fleet, round robin, paced in 5 ms steps, with
  ``ts`` = now; each bus moves slowly around its own spot near the school.

Measurements:

1. **/live throughput**: ``wrk -t2 -c50 -d15s --latency`` on
   ``GET /api/v1/routes/zt-am-1/live`` as the parent ``zhang.lanlan`` (bearer token via a Lua
   script whose ``done()`` prints the figures as JSON). wrk is a closed loop (each of the 50
   connections sends its next request when the answer arrives), without coordinated-omission
   correction. Each run, without and with the background ingest, interleaved; ``--runs`` runs,
   medians. With the background load, wrk starts after ``--settle`` s (3) and once the ingest
   is less than 1 s behind (after a pause its vehicle contexts, cached 60 s, are cold: 1 000 to
   rebuild; at most 90 s). Before and after each run a request checks ``active: true``.
   During each run the CPU time of gunicorn (master + workers), the ingest (with its pipeline
   processes), the background publisher, wrk and every ``postgres`` process is read from ``/proc`` (cores = CPU seconds /
   wall seconds; the PostgreSQL server is shared with other work on the machine), and with the
   background load: pings stored per second during the run and the ingest's lag at its end
   (now − newest stored ``ts`` of the background fleet).
2. **Latency**: ``--samples`` pings of bus-07 with a fresh ``ts`` (epoch with milliseconds),
   0.3–0.7 s apart. For each: (a) publish → the first ``GET /live`` (polled every 10 ms on a
   keep-alive connection) whose ``position.ts`` is that ping; (b) publish → the ``position`` event
   with that ``ts`` on a ``GET /api/v1/stream`` opened before (same parent, Authorization header).
   The clock starts just before the MQTT publish (QoS 1). Once without and once with the
   background ingest. Timeouts (5 s) are counted, not included. The 10 s feed of bus-07 is
   paused meanwhile: ``live_positions`` keeps only the newest ping of a vehicle, and a feed ping
   right after a probe would replace it before a ``/stream`` poll could read it.

Results: tables on stdout, everything in ``bench/results/api-<timestamp>.json``.
``--table FILE`` prints the tables of a saved file.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import http.client
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import Broker, _admin, _git_head, _sa_url, _with_db, create_session  # noqa: E402

DB_NAME = "xiaoche_bench_api"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
SAMPLE = ROOT / "backend" / "sample" / "lukou.json"
ROUTE = "zt-am-1"
VEHICLE = "bus-07"
DEVICE = "dev-bus-07"
PARENT = ("zhang.lanlan", "demo-parent-1")
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW_IN_DRIVE = "06:56:00"  # the moment of the original drive the bench starts at
CLAMP_AT_KNOT = 4  # drive_knots index: arrival at dongan-cun (the bus then waits there)
FEED_EVERY_S = 10.0
BG_CENTRE = (27.43, 113.20)
BG_FLAG = "--background-publisher"
LIVE_PATH = f"/api/v1/routes/{ROUTE}/live"
PROBE_TIMEOUT_S = 5.0
SETTLE_MAX_S = 90.0

LUA = """\
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Accept"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%%d,"duration_us":%%d,"bytes":%%d,"connect_errors":%%d,' ..
    '"read_errors":%%d,"write_errors":%%d,"non_2xx":%%d,"timeouts":%%d,"p50_us":%%d,' ..
    '"p90_us":%%d,"p99_us":%%d,"p999_us":%%d,"mean_us":%%.1f,"max_us":%%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
"""


# -- the bundle and bus-07's drive ---------------------------------------------------------------


class Drive:
    """bus-07 on zt-am-1 (``tests/drives.py``), shifted so that NOW_IN_DRIVE is ``now``."""

    def __init__(self, bundle: dict[str, Any], now: float) -> None:
        from tests.drives import drive_knots, local_ts, route_path

        date = dt.datetime.fromtimestamp(now, SHANGHAI).date()
        self.shift = round(now - local_ts(date, NOW_IN_DRIVE))
        knots, self.cum = drive_knots(bundle, date)
        self.knots = [(t + self.shift, a) for t, a in knots]
        self.path = route_path(bundle, ROUTE)
        self.date = date
        self.start = self.knots[0][0]
        self.clamp = self.knots[CLAMP_AT_KNOT][0]

    def shifted_timetable(self, route: dict[str, Any]) -> None:
        """Shift the route's stop times by ``shift`` (GTFS style hours past 24 if need be)."""
        from tests.drives import local_ts

        def hms(text: str) -> str:
            return text if text.count(":") == 2 else text + ":00"

        first = local_ts(self.date, hms(route["stops"][0]["time"])) + self.shift
        service = dt.datetime.fromtimestamp(first, SHANGHAI).date()
        midnight = dt.datetime.combine(service, dt.time(0), tzinfo=SHANGHAI).timestamp()
        for stop in route["stops"]:
            seconds = round(local_ts(self.date, hms(stop["time"])) + self.shift - midnight)
            stop["time"] = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        route["days"] = [1, 2, 3, 4, 5, 6, 7]

    def at(self, t: float) -> tuple[float, float, float]:
        """(lat, lon, speed_kmh) at epoch ``t`` (before the start: the start; after the clamp:
        waiting at 东安村)."""
        from tests.drives import DRIVE_KMH, point_along

        t = min(max(t, self.start), self.clamp)
        k = max(i for i in range(len(self.knots) - 1) if self.knots[i][0] <= t)
        (t0, a0), (t1, a1) = self.knots[k], self.knots[k + 1]
        along = a0 + (a1 - a0) * (t - t0) / (t1 - t0) if t1 > t0 else a1
        moving = a1 > a0 and t < self.clamp
        lat, lon = point_along(self.path, self.cum, along)
        return lat, lon, DRIVE_KMH if moving else 0.0


def make_bundle(now: float, bg_devices: int) -> tuple[dict[str, Any], Drive]:
    bundle = json.loads(SAMPLE.read_text(encoding="utf-8"))
    drive = Drive(bundle, now)
    bundle = copy.deepcopy(bundle)
    bundle["district"]["calendar"] = {"holidays": [], "extra_school_days": []}
    drive.shifted_timetable(next(r for r in bundle["routes"] if r["id"] == ROUTE))
    for i in range(bg_devices):
        vid = f"bg-{i:04d}"
        bundle["vehicles"].append({"id": vid, "kind": "school_bus", "route_ids": [],
                                   "speed_limit_kmh": 60})
        bundle["devices"].append({"id": f"dev-{vid}", "vehicle_id": vid,
                                  "token": f"tok-{vid}-bench"})
    return bundle, drive


def build_database(pg: str, bundle: dict[str, Any], instance: Path) -> str:
    from backend import create_app
    from backend.bundle import import_bundle
    from backend.database import upgrade_schema
    from backend.extensions import db

    _admin(pg, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)", f"CREATE DATABASE {DB_NAME}")
    url = _with_db(pg, DB_NAME)
    os.environ.setdefault("XIAOCHE_INSTANCE_PATH", str(instance))
    app = create_app({"SQLALCHEMY_DATABASE_URI": _sa_url(url), "SECRET_KEY": "bench"})
    upgrade_schema(app)
    with app.app_context():
        import_bundle(bundle)
        db.session.remove()
        db.engine.dispose()
    return url


# -- publishers ----------------------------------------------------------------------------------


def _payload(ts: float, lat: float, lon: float, speed: float, seq: int) -> bytes:
    return (f'{{"ts":{ts!r},"lat":{lat:.7f},"lon":{lon:.7f},"speed_kmh":{speed:.1f},'
            f'"accuracy_m":5.0,"battery_pct":80,"seq":{seq}}}').encode()


class Bus07:
    """Publishes bus-07's pings (thread-safe: one lock around one publisher); ``ts`` only grows."""

    def __init__(self, url: str, drive: Drive) -> None:
        from gps_ingest.publisher import WindowedPublisher

        self.drive = drive
        self.topic = f"xiaoche/v1/devices/{DEVICE}/pings"
        self.publisher = WindowedPublisher(url, client_id=f"bench-api-bus07-{uuid.uuid4().hex[:6]}")
        self.lock = threading.Lock()
        self.last_ts = 0.0
        self.seq = 0
        self.stop = threading.Event()
        self.paused = threading.Event()  # the latency probes move the bus meanwhile
        self.thread: threading.Thread | None = None

    def backfill(self, until: float) -> int:
        """The drive from its start to ``until``, every 10 s, as fast as the broker takes it."""
        t, n = self.drive.start, 0
        while t <= until:
            self.publish(t, flush=False)
            t += FEED_EVERY_S
            n += 1
        with self.lock:
            self.publisher.flush(30)
        return n

    def publish(self, ts: float | None = None, flush: bool = True) -> float:
        """A ping at ``ts`` (default: now, in milliseconds); returns the ``ts`` sent."""
        with self.lock:
            ts = round(time.time(), 3) if ts is None else ts
            ts = max(ts, round(self.last_ts + 0.001, 3))
            lat, lon, speed = self.drive.at(ts)
            self.publisher.publish(self.topic, _payload(ts, lat, lon, speed, self.seq))
            if flush:
                self.publisher.flush(10)
            self.last_ts = ts
            self.seq += 1
            return ts

    def start_feed(self) -> None:
        def feed() -> None:
            while not self.stop.wait(FEED_EVERY_S):
                if not self.paused.is_set():
                    self.publish()

        self.thread = threading.Thread(target=feed, name="bus07-feed", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(FEED_EVERY_S + 5)
        with self.lock:
            self.publisher.close()


def background_publisher(settings: dict[str, Any]) -> None:
    """The child process: ``rate`` single-ping messages/s over ``devices`` buses for ``seconds``."""
    from gps_ingest.publisher import WindowedPublisher

    rng = random.Random(settings.get("seed", 11))
    devices, rate, seconds = settings["devices"], settings["rate"], settings["seconds"]
    spots = [(BG_CENTRE[0] + rng.uniform(-0.03, 0.03), BG_CENTRE[1] + rng.uniform(-0.03, 0.03))
             for _ in range(devices)]
    topics = [f"xiaoche/v1/devices/dev-bg-{i:04d}/pings" for i in range(devices)]
    total = int(rate * seconds)
    sent = 0
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with WindowedPublisher(settings["url"], client_id=f"bench-api-bg-{uuid.uuid4().hex[:6]}") as pub:
        started = time.monotonic()
        deadline = started + seconds
        while sent < total and not stopping.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            due = min(total, int((now - started) * rate) + 1)
            wall = round(time.time(), 3)
            while sent < due:
                i = sent % devices
                lap = sent // devices  # drifts ~1 m per ping, a slow crawl around its spot
                lat = spots[i][0] + 0.00001 * (lap % 50)
                pub.publish(topics[i], _payload(wall, lat, spots[i][1], 3.6, lap))
                sent += 1
            time.sleep(0.005)
        elapsed = time.monotonic() - started
        pub.flush(30)
    print("BG_JSON " + json.dumps({"published": sent, "seconds": elapsed,
                                   "rate": sent / elapsed if elapsed else 0.0}), flush=True)


class Background:
    """The background publisher process (bounded by its own ``seconds``)."""

    def __init__(self, url: str, devices: int, rate: float, seconds: float, workdir: Path):
        self.log_path = workdir / f"bg-{uuid.uuid4().hex[:6]}.log"
        settings = {"url": url, "devices": devices, "rate": rate, "seconds": seconds}
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), BG_FLAG,
                                         json.dumps(settings)], cwd=ROOT, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        self.seconds = seconds

    def finish(self, stop: bool = False) -> dict[str, Any]:
        if stop and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(self.seconds + 60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        text = self.log_path.read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith("BG_JSON "):
                return json.loads(line[8:])
        return {"published": 0, "seconds": 0.0, "rate": 0.0, "error": text[-2000:]}


# -- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen, timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_ingest(database: str, mqtt_url: str, workdir: Path) -> subprocess.Popen:
    from backend.runtime import INGEST_TOPICS

    client_id = f"bench-api-ingest-{uuid.uuid4().hex[:8]}"
    create_session(mqtt_url, client_id, INGEST_TOPICS)  # nothing published before it runs is lost
    env = {**os.environ, "XIAOCHE_DATABASE_URL": database, "XIAOCHE_MQTT_URL": mqtt_url,
           "XIAOCHE_SECRET_KEY": "bench", "XIAOCHE_INSTANCE_PATH": str(workdir),
           "XIAOCHE_INGEST_CLIENT_ID": client_id, "XIAOCHE_INGEST_SESSION_EXPIRY_S": "300",
           "XIAOCHE_MAX_PING_AGE_S": "0"}
    script = Path(sys.executable).parent / "xiaoche"
    command = [str(script), "ingest"] if script.exists() else [sys.executable, "-m",
                                                               "backend.cli", "ingest"]
    log = open(workdir / "ingest.log", "wb")  # noqa: SIM115
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def start_api(database: str, port: int, workdir: Path, workers: int, threads: int,
              access_log: bool, worker_class: str = "gthread",
              extra_env: list[str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "XIAOCHE_DATABASE_URL": database, "XIAOCHE_SECRET_KEY": "bench",
           "XIAOCHE_INSTANCE_PATH": str(workdir), "XIAOCHE_LOG_LEVEL": "WARNING"}
    env.update(item.split("=", 1) for item in extra_env or ())
    gunicorn = Path(sys.executable).parent / "gunicorn"
    command = [str(gunicorn) if gunicorn.exists() else shutil.which("gunicorn") or "gunicorn",
               "-w", str(workers), "-k", worker_class, "--threads", str(threads),
               "--no-control-socket", "-b", f"127.0.0.1:{port}"]
    if access_log:  # as `xiaoche api` does (to a file here rather than stdout)
        command += ["--access-logfile", str(workdir / "access.log"), "--access-logformat",
                    '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s']
    # as `xiaoche api` runs it: with the stream worker, its stream processes (XIAOCHE_STREAM_PROCESSES)
    command += ["--config", "python:backend.streams.gunicorn_conf", "backend.wsgi:app"]
    log = open(workdir / "gunicorn.log", "wb")  # noqa: SIM115
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


class Http:
    """One keep-alive connection to the API."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
                break
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                if attempt:
                    raise
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode(errors="replace")

    def close(self) -> None:
        self.conn.close()


def wait_for_api(port: int, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if Http(port).request("GET", "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("gunicorn did not answer /healthz")


# -- CPU accounting from /proc -------------------------------------------------------------------


TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")
    return [head.partition("(")[2], *rest.split()]  # [comm, state, ppid, …]


def _cpu_s(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[12]) + int(fields[13])) / TICK if fields else 0.0


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def cpu_snapshot(groups: dict[str, list[int]], with_children: tuple[str, ...] = ()) -> dict:
    """CPU seconds per group (a group's listed pids, plus their children for ``with_children``),
    of all ``postgres`` processes, of reaped children of this process, and of the machine."""
    out: dict[str, float] = {}
    stats = {pid: _stat(pid) for pid in _pids()}
    for name, pids in groups.items():
        members = set(pids)
        if name in with_children:
            members |= {pid for pid, f in stats.items() if f and int(f[2]) in pids}
        out[name] = sum(_cpu_s(pid) for pid in members)
    out["postgres"] = sum((int(f[12]) + int(f[13])) / TICK for f in stats.values()
                          if f and f[0] == "postgres")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["reaped_children"] = usage.ru_utime + usage.ru_stime
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    out["machine_busy"] = (sum(values) - values[3] - values[4]) / TICK
    out["wall"] = time.monotonic()
    return out


def cpu_delta(before: dict, after: dict) -> dict[str, float]:
    wall = after["wall"] - before["wall"]
    return {k: round((after[k] - before[k]) / wall, 3) for k in before if k != "wall"}


# -- measurements --------------------------------------------------------------------------------


def live_check(client: Http) -> dict[str, Any]:
    status, body = client.request("GET", LIVE_PATH)
    active = status == 200 and isinstance(body, dict) and body.get("active") is True
    return {"status": status, "active": active,
            "position_ts": body.get("position", {}).get("ts")
            if active and body.get("position") else None}


def run_wrk(port: int, lua: Path, connections: int, threads: int, seconds: float) -> dict:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency",
               "--timeout", "10s", "-s", str(lua), f"http://127.0.0.1:{port}{LIVE_PATH}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            r = json.loads(line[9:])
            break
    else:
        raise RuntimeError(f"wrk printed no result: {done.stdout}\n{done.stderr}")
    seconds_run = r["duration_us"] / 1e6
    r.update(req_per_s=r["requests"] / seconds_run, p50_ms=r["p50_us"] / 1000,
             p90_ms=r["p90_us"] / 1000, p99_ms=r["p99_us"] / 1000, p999_ms=r["p999_us"] / 1000,
             max_ms=r["max_us"] / 1000, mean_ms=r["mean_us"] / 1000,
             wrk_cores=(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
             / seconds_run)
    return r


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.database = ""
        self.mqtt_url = ""
        self.port = 0
        self.ingest: subprocess.Popen | None = None
        self.api: subprocess.Popen | None = None
        self.bus: Bus07 | None = None
        self.token = ""
        self.lua = workdir / "live.lua"

    # -- plumbing --

    def db_scalar(self, sql: str, params: tuple = ()) -> Any:
        import psycopg

        with psycopg.connect(self.database, autocommit=True) as conn:
            return conn.execute(sql, params).fetchone()[0]

    def pings(self) -> int:
        return self.db_scalar("SELECT count(*) FROM pings")

    def bg_lag_s(self) -> float | None:
        newest = self.db_scalar("SELECT max(ts) FROM live_positions WHERE device_id LIKE "
                                "'dev-bg-%%'")
        return None if newest is None else time.time() - newest

    def groups(self, bg: Background | None = None) -> dict[str, list[int]]:
        groups = {"gunicorn": [self.api.pid], "ingest": [self.ingest.pid]}
        if bg is not None:
            groups["bg_publisher"] = [bg.process.pid]
        return groups

    def wait_drained(self, timeout_s: float = 120) -> float:
        """Until the ingest stored what was published (the count stops growing)."""
        started = time.monotonic()
        last = self.pings()
        while time.monotonic() - started < timeout_s:
            time.sleep(1.0)
            now = self.pings()
            if now == last:
                break
            last = now
        return time.monotonic() - started

    def settle(self, bg: Background) -> float:
        """At least ``--settle`` s of background load, then until the ingest is less than 1 s
        behind it (after a pause its 60 s vehicle-context cache is cold: 1 000 contexts to
        rebuild); at most SETTLE_MAX_S. Returns the seconds waited."""
        started = time.monotonic()
        time.sleep(self.args.settle)
        while time.monotonic() - started < SETTLE_MAX_S and bg.process.poll() is None:
            lag = self.bg_lag_s()
            if lag is not None and lag < 1.0:
                break
            time.sleep(0.5)
        return time.monotonic() - started

    def background(self, seconds: float) -> Background:
        return Background(self.mqtt_url, self.args.bg_devices, self.args.bg_rate, seconds,
                          self.workdir)

    # -- set-up --

    def setup(self, broker_url: str) -> dict[str, Any]:
        a = self.args
        self.mqtt_url = broker_url
        started = time.perf_counter()
        bundle, drive = make_bundle(time.time(), a.bg_devices)
        self.database = build_database(a.pg, bundle, self.workdir)
        built = time.perf_counter() - started
        timetable = [s["time"] for s in next(r for r in bundle["routes"]
                                             if r["id"] == ROUTE)["stops"]]
        print(f"database {DB_NAME}: sample district + {a.bg_devices} background buses, built in "
              f"{built:.1f} s; {ROUTE} timetable shifted to {timetable} (local)", flush=True)
        self.ingest = start_ingest(self.database, self.mqtt_url, self.workdir)
        self.port = free_port()
        self.api = start_api(self.database, self.port, self.workdir, a.workers, a.threads,
                             a.access_log, a.worker_class, a.api_env)
        self.bus = Bus07(self.mqtt_url, drive)
        backfilled = self.bus.backfill(time.time())
        self.bus.start_feed()
        wait_for_api(self.port, self.api)
        status, body = Http(self.port).request("POST", "/api/v1/auth/token",
                                               {"username": PARENT[0], "password": PARENT[1]})
        if status != 200:
            raise RuntimeError(f"login failed: {status} {body}")
        self.token = body["access_token"]
        self.lua.write_text(LUA % {"token": self.token}, encoding="utf-8")
        client = Http(self.port, self.token)
        deadline = time.monotonic() + 60
        check = live_check(client)
        while not check["active"] and time.monotonic() < deadline and self.ingest.poll() is None:
            time.sleep(0.5)
            check = live_check(client)
        client.close()
        if not check["active"]:
            raise RuntimeError(f"/live never became active: {check}; ingest log: "
                               f"{(self.workdir / 'ingest.log').read_text(errors='replace')[-2000:]}")
        print(f"bus-07: {backfilled} pings backfilled, then one every {FEED_EVERY_S:g} s; "
              f"/live active (position {check['position_ts']})", flush=True)
        return {"timetable": timetable, "backfilled": backfilled, "build_s": built,
                "drive_shift_s": drive.shift}

    def teardown(self) -> None:
        if self.bus is not None:
            self.bus.close()
        for process in (self.api, self.ingest):
            if process is not None:
                _stop(process)

    # -- /live throughput --

    def http_run(self, loaded: bool, seconds: float) -> dict[str, Any]:
        a = self.args
        client = Http(self.port, self.token)
        bg = None
        pre: dict[str, Any] = {}
        if loaded:
            bg = self.background(SETTLE_MAX_S + seconds + 5)
            settled = self.settle(bg)
            pre = {"pings": self.pings(), "at": time.monotonic(), "settle_s": settled}
        before_check = live_check(client)
        groups = self.groups(bg)
        snap = cpu_snapshot(groups, with_children=("gunicorn", "ingest"))
        r = run_wrk(self.port, self.lua, a.connections, a.wrk_threads, seconds)
        cpu = cpu_delta(snap, cpu_snapshot(groups, with_children=("gunicorn", "ingest")))
        cpu.pop("reaped_children")
        cpu["wrk"] = round(r.pop("wrk_cores"), 3)
        r["cpu_cores"] = cpu
        if loaded:
            r["bg_lag_end_s"] = self.bg_lag_s()
            r["bg_stored_per_s"] = (self.pings() - pre["pings"]) / (time.monotonic() - pre["at"])
            r["bg_publisher"] = bg.finish(stop=True)
            r["drain_s"] = self.wait_drained()
            r["settle_s"] = pre["settle_s"]
        r["live_before"] = before_check
        r["live_after"] = live_check(client)
        client.close()
        r["loaded"] = loaded
        r["load_1min"] = os.getloadavg()[0]
        return r

    # -- latency --

    def latency(self, loaded: bool, samples: int) -> dict[str, Any]:
        from backend.timefmt import iso

        stream = StreamReader(self.port, self.token)
        stream.start()
        bg = None
        if loaded:
            bg = self.background(SETTLE_MAX_S + samples * (0.5 + 2 * PROBE_TIMEOUT_S) + 5)
            settled = self.settle(bg)
        client = Http(self.port, self.token)
        live, sse, live_timeouts, sse_timeouts, polls = [], [], 0, 0, 0
        # live_positions keeps the newest ping per vehicle: a feed ping right after a probe
        # would replace it before a /stream poll reads it
        self.bus.paused.set()
        try:
            if not stream.ready.wait(10):
                raise RuntimeError("GET /stream sent nothing within 10 s")
            for _ in range(samples):
                if bg is not None and bg.process.poll() is not None:
                    break
                t0 = time.monotonic()
                ts = self.bus.publish()
                want = iso(ts)
                seen = None
                while time.monotonic() - t0 < PROBE_TIMEOUT_S:
                    status, body = client.request("GET", LIVE_PATH)
                    polls += 1
                    position = body.get("position") if isinstance(body, dict) else None
                    if status == 200 and position and position.get("ts") == want:
                        seen = time.monotonic()
                        break
                    time.sleep(0.01)
                if seen is None:
                    live_timeouts += 1
                else:
                    live.append(seen - t0)
                arrived = stream.wait_for(want, t0 + PROBE_TIMEOUT_S)
                if arrived is None:
                    sse_timeouts += 1
                else:
                    sse.append(arrived - t0)
                time.sleep(random.uniform(0.3, 0.7))
        finally:
            self.bus.paused.clear()
            client.close()
            stream.close()
            bg_report = bg.finish(stop=True) if bg is not None else None
        if loaded:
            self.wait_drained()
        return {"loaded": loaded, "settle_s": settled if loaded else None,
                "live_s": live, "stream_s": sse, "live_timeouts": live_timeouts,
                "stream_timeouts": sse_timeouts, "live_polls": polls, "bg_publisher": bg_report,
                "stream_events": stream.events, "load_1min": os.getloadavg()[0]}


class StreamReader:
    """GET /api/v1/stream in a thread: monotonic arrival time of each bus-07 ``position`` by ts."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.arrivals: dict[str, float] = {}
        self.cond = threading.Condition()
        self.ready = threading.Event()
        self.closing = False
        self.events = 0
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.thread = threading.Thread(target=self._read, name="sse", daemon=True)

    def start(self) -> None:
        self.conn.request("GET", "/api/v1/stream", headers={
            "Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"})
        self.response = self.conn.getresponse()
        if self.response.status != 200:
            raise RuntimeError(f"/stream answered {self.response.status}")
        self.thread.start()

    def _read(self) -> None:
        event = None
        try:
            while not self.closing:
                line = self.response.readline()
                if not line:
                    break
                now = time.monotonic()
                self.ready.set()
                text = line.decode().rstrip("\n")
                if text.startswith("event: "):
                    event = text[7:]
                elif text.startswith("data: ") and event == "position":
                    data = json.loads(text[6:])
                    if data.get("vehicle_id") == VEHICLE:
                        with self.cond:
                            self.arrivals.setdefault(data["ts"], now)
                            self.events += 1
                            self.cond.notify_all()
                elif not text:
                    event = None
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            if not self.closing:  # AttributeError: http.client after close() from this side
                raise

    def wait_for(self, ts: str, deadline: float) -> float | None:
        with self.cond:
            while ts not in self.arrivals:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.arrivals[ts]

    def close(self) -> None:
        self.closing = True
        with contextlib.suppress(OSError, AttributeError):
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()
        self.thread.join(5)


# -- report --------------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def report(saved: dict[str, Any]) -> dict[str, Any]:
    s = saved["settings"]
    summary: dict[str, Any] = {"http": {}, "latency": {}}
    print(f"\n/live throughput: wrk -t{s['wrk_threads']} -c{s['connections']} "
          f"-d{s['duration']:g}s, gunicorn -w {s['workers']} {s.get('worker_class', 'gthread')} "
          f"--threads {s['threads']}; "
          f"medians of {s['runs']} run(s)")
    print("| background ingest | req/s | runs min–max | p50 ms | p90 ms | p99 ms | p99.9 ms | "
          "errors | bg pings/s stored | ingest lag at end | cores: gunicorn / ingest / "
          "postgres / wrk / bg pub / machine |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for loaded in (False, True):
        runs = [r for r in saved["http"] if r["loaded"] == loaded]
        if not runs:
            continue

        def med(key: str, runs: list[dict] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        def cores(key: str, runs: list[dict] = runs) -> float:
            return statistics.median(r["cpu_cores"].get(key, 0.0) for r in runs)

        rps = [r["req_per_s"] for r in runs]
        errors = sum(r["non_2xx"] + r["connect_errors"] + r["read_errors"] + r["write_errors"]
                     + r["timeouts"] for r in runs)
        inactive = sum(not r["live_before"]["active"] or not r["live_after"]["active"]
                       for r in runs)
        row = {"req_per_s": med("req_per_s"), "min": min(rps), "max": max(rps),
               "p50_ms": med("p50_ms"), "p90_ms": med("p90_ms"), "p99_ms": med("p99_ms"),
               "p999_ms": med("p999_ms"), "errors": errors, "inactive_checks": inactive,
               "cores": {k: cores(k) for k in ("gunicorn", "ingest", "postgres", "wrk",
                                               "bg_publisher", "machine_busy")}}
        name = f"{s['bg_rate']:,.0f} pings/s" if loaded else "none"
        bg = ""
        lag = ""
        if loaded:
            row["bg_stored_per_s"] = med("bg_stored_per_s")
            row["bg_lag_end_s"] = statistics.median(r["bg_lag_end_s"] or 0 for r in runs)
            bg = f"{row['bg_stored_per_s']:,.0f}"
            lag = f"{row['bg_lag_end_s']:.2f} s"
        c = row["cores"]
        print(f"| {name} | {row['req_per_s']:,.0f} | {row['min']:,.0f}–{row['max']:,.0f} | "
              f"{row['p50_ms']:.1f} | {row['p90_ms']:.1f} | {row['p99_ms']:.1f} | "
              f"{row['p999_ms']:.1f} | {errors}{f', {inactive} inactive' if inactive else ''} | "
              f"{bg} | {lag} | {c['gunicorn']:.2f} / {c['ingest']:.2f} / {c['postgres']:.2f} / "
              f"{c['wrk']:.2f} / {c['bg_publisher']:.2f} / {c['machine_busy']:.2f} |")
        summary["http"]["loaded" if loaded else "idle"] = row
    print(f"\nlatency: {s['samples']} pings of bus-07 per row, publish → seen; ms")
    print("| path | background ingest | samples | p50 | p90 | p99 | max | timeouts (5 s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in saved["latency"]:
        name = f"{s['bg_rate']:,.0f} pings/s" if r["loaded"] else "none"
        for path, key in (("publish → GET /live", "live"), ("publish → /stream event", "stream")):
            values = [v * 1000 for v in r[f"{key}_s"]]
            row = {"n": len(values), "p50_ms": _pct(values, 50), "p90_ms": _pct(values, 90),
                   "p99_ms": _pct(values, 99), "max_ms": max(values, default=float("nan")),
                   "timeouts": r[f"{key}_timeouts"]}
            summary["latency"][f"{key}, {'loaded' if r['loaded'] else 'idle'}"] = row
            print(f"| {path} | {name} | {row['n']} | {row['p50_ms']:.0f} | {row['p90_ms']:.0f} | "
                  f"{row['p99_ms']:.0f} | {row['max_ms']:.0f} | {row['timeouts']} |")
    loaded_http = summary["http"].get("loaded")
    if loaded_http:
        ok_rps = loaded_http["req_per_s"] >= 2000
        ok_p99 = loaded_http["p99_ms"] < 50
        print(f"\ntarget ≥ 2,000 req/s with ingest at {s['bg_rate']:,.0f} pings/s: "
              f"{loaded_http['req_per_s']:,.0f} — {'met' if ok_rps else 'NOT met'}; "
              f"p99 < 50 ms: {loaded_http['p99_ms']:.1f} ms — {'met' if ok_p99 else 'NOT met'}")
    for name, row in summary["latency"].items():
        print(f"target p99 < 1 s, {name}: {row['p99_ms']:.0f} ms — "
              f"{'met' if row['p99_ms'] < 1000 and not row['timeouts'] else 'NOT met'}")
    return summary


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == BG_FLAG:
        background_publisher(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 run of 5 s, 10 samples (smoke)")
    parser.add_argument("--runs", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds per wrk run (default 15; 5 with --quick)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=64, help="gthread threads per worker")
    parser.add_argument("--worker-class", default="gthread",
                        help="gunicorn worker class (gthread as `xiaoche api`; sync, gevent, …)")
    parser.add_argument("--access-log", action="store_true",
                        help="gunicorn access log as `xiaoche api` writes it (to a file)")
    parser.add_argument("--api-env", action="append", default=[], metavar="XIAOCHE_X=VALUE",
                        help="a setting for gunicorn's environment, e.g. XIAOCHE_LIVE_FASTPATH=0 "
                             "(repeatable)")
    parser.add_argument("--bg-rate", type=float, default=1000.0, help="background pings/s")
    parser.add_argument("--bg-devices", type=int, default=1000,
                        help="background buses (each pings every bg-devices/bg-rate s)")
    parser.add_argument("--samples", type=int, default=None,
                        help="latency samples per row (default 50; 10 with --quick)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds of background load before a measurement starts")
    parser.add_argument("--mqtt-url", default=None,
                        help="broker (default: an embedded Mosquitto on a free loopback port)")
    parser.add_argument("--pg", default=DEFAULT_PG,
                        help=f"PostgreSQL server; {DB_NAME} is dropped, created and dropped there")
    parser.add_argument("--skip-http", action="store_true", help="latency only")
    parser.add_argument("--skip-latency", action="store_true", help="/live throughput only")
    parser.add_argument("--keep", type=float, default=0,
                        help="after the measurements keep everything running this many seconds "
                             "(to attach a profiler), at most 600")
    parser.add_argument("--table", metavar="JSON", default=None,
                        help="only print the tables of a saved bench/results/api-*.json")
    args = parser.parse_args()
    if args.table:
        report(json.loads(Path(args.table).read_text(encoding="utf-8")))
        return
    if shutil.which("wrk") is None and not args.skip_http:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    args.runs = args.runs or (1 if args.quick else 3)
    args.duration = args.duration or (5.0 if args.quick else 15.0)
    args.samples = args.samples or (10 if args.quick else 50)
    for host in (args.pg.split("@")[-1], args.mqtt_url or "127.0.0.1"):
        if "127.0.0.1" not in host and "localhost" not in host:
            sys.exit(f"{host}: this bench only runs against loopback")

    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    broker = Broker(args.mqtt_url)
    bench = Bench(args, workdir)
    settings = {k: v for k, v in vars(args).items() if k not in ("table",)}
    saved: dict[str, Any] = {"settings": settings, "http": [], "latency": []}
    try:
        saved["setup"] = bench.setup(broker.url)
        print(f"gunicorn on 127.0.0.1:{bench.port} ({args.workers} {args.worker_class} workers × "
              f"{args.threads} threads), broker {broker.url}, PostgreSQL {args.pg.split('@')[-1]}, "
              f"{os.cpu_count()} cores; logs in {workdir}", flush=True)
        if not args.skip_http:
            warm = run_wrk(bench.port, bench.lua, args.connections, args.wrk_threads, 3)
            print(f"  warm-up: {warm['req_per_s']:,.0f} req/s", flush=True)
            for run in range(args.runs):
                for loaded in (False, True):
                    r = bench.http_run(loaded, args.duration)
                    saved["http"].append(r)
                    extra = (f", bg stored {r['bg_stored_per_s']:,.0f}/s, lag "
                             f"{r['bg_lag_end_s'] or 0:.2f} s" if loaded else "")
                    print(f"  run {run + 1} {'loaded' if loaded else 'idle  '}: "
                          f"{r['req_per_s']:8,.0f} req/s  p50 {r['p50_ms']:6.1f} ms  "
                          f"p99 {r['p99_ms']:6.1f} ms  non-2xx {r['non_2xx']}  active "
                          f"{r['live_before']['active']}/{r['live_after']['active']}{extra}  "
                          f"cores {r['cpu_cores']}", flush=True)
        if not args.skip_latency:
            for loaded in (False, True):
                r = bench.latency(loaded, args.samples)
                saved["latency"].append(r)
                print(f"  latency {'loaded' if loaded else 'idle  '}: /live "
                      f"p50 {_pct(r['live_s'], 50) * 1000:.0f} ms p99 "
                      f"{_pct(r['live_s'], 99) * 1000:.0f} ms, /stream p50 "
                      f"{_pct(r['stream_s'], 50) * 1000:.0f} ms p99 "
                      f"{_pct(r['stream_s'], 99) * 1000:.0f} ms, timeouts "
                      f"{r['live_timeouts']}/{r['stream_timeouts']}", flush=True)
        if args.keep:
            workers = [pid for pid in _pids() if (_stat(pid) or [0, 0, -1])[2] == str(bench.api.pid)]
            print(f"KEEP gunicorn master {bench.api.pid} workers {workers} port {bench.port} "
                  f"token file {bench.lua}; {min(args.keep, 600):g} s", flush=True)
            time.sleep(min(args.keep, 600))
    finally:
        bench.teardown()
        broker.stop()
        _admin(args.pg, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    saved.update(date=dt.datetime.now().isoformat(timespec="seconds"), git_head=_git_head(),
                 machine={"cores": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(),
                          "wrk": subprocess.run(["wrk", "--version"], capture_output=True,
                                                text=True).stdout.split("[")[0].strip()
                          if shutil.which("wrk") else None})
    saved["summary"] = report(saved)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"api-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(saved, indent=1, default=str), encoding="utf-8")
    print(f"results: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
