"""The 07:00 rush: parents opening ``GET /api/v1/stream`` while buses publish through the ingest.

    .venv/bin/python bench/parents.py [--parents 100,1000,10000] [--ramp-s 60] [--hold-s 30]
                                      [--workers 2] [--threads 64] [--stream-max 0]
                                      [--stream-processes 1] [--client-processes 2]
                                      [--worker-class backend.streams.worker.StreamWorker]
                                      [--mqtt-url URL] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Numbers only, no assertions. Everything runs on this machine, on loopback, bounded in count and
time (each level: the ramp, the hold, then every connection closed; the whole run under
``--timeout-s``):

- **PostgreSQL**: a database ``xiaoche_bench_parents`` (dropped and recreated, dropped at the
  end): the sample district, ``zt-am-1`` shifted so that bus-07's on-schedule drive
  (``tests/drives.py``) is in progress now (as ``bench/api.py`` does), plus two copies of that
  route (``zt-am-1-b``, ``-c``) with a bus each driving the same drive: **three buses on trips**.
  The largest level's parents are added as users (``bench-p00001`` …), each with one child on
  one of the three routes (round robin); their tokens are signed here with the bench's secret.
- **Broker**: an embedded Mosquitto on a free port (``--mqtt-url`` for another); the real
  ``xiaoche ingest``; the API as ``xiaoche api`` runs it: ``gunicorn -w 2 -k
  backend.streams.worker.StreamWorker --threads 64 -c python:backend.streams.gunicorn_conf
  backend.wsgi:app`` (``--stream-processes`` stream processes, counted with gunicorn), with
  ``XIAOCHE_STREAM_MAX=--stream-max`` (0: no limit; the limit is per worker, and the kernel does
  not share connections evenly between workers, so the bench lifts it unless asked).
- **Buses**: each of the three publishes a ping every 5 s (``ts`` = now, in ms) through MQTT,
  the three 1.67 s apart (real devices are not in step).
- **Parents**: asyncio clients spread over ``--client-processes`` processes (2 by default;
  uvloop when installed; the open-files limit raised to the hard limit), opened at an even pace
  over ``--ramp-s``, each reading its stream until the end of the level. A client does not parse
  SSE or JSON: it finds each ``position`` event's ``vehicle_id`` and ``ts`` by a byte search and
  notes when it read them; the publish times are matched here (``time.monotonic`` is one clock
  for all processes on Linux).

Per level it prints: streams connected (and refused / failed), time to the stream's first
bytes and to its first ``position`` event, push latency (publish → ``position`` event with that
``ts`` at the client; this process holds both clocks) p50/p99/max during the hold, CPU in cores
per process group (gunicorn master + workers, ingest, postgres, this bench, each client
process), the server's own fan-out latency (``xiaoche_stream_fanout_seconds`` from ``/metrics``:
the store's notice, or the poll that read the change, to the last recipient's frame written;
p50/p99 over the hold, interpolated in its buckets as Prometheus does), the workers' RSS
growth per stream, and meanwhile: a login every second (p50/p99/max) and ``/live`` with
``wrk -c50`` for 10 s (req/s, p50, p99). Results also in ``bench/results/parents-<ts>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime as dt
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import api as bench_api  # noqa: E402  (bench/api.py: the drive, the processes, wrk, /proc CPU)
from ingest import Broker, _admin, _sa_url, _with_db  # noqa: E402
from parents_clients import Parents, raise_nofile  # noqa: E402  (the parents: stream clients)

DB_NAME = "xiaoche_bench_parents"
SECRET = "bench"
ROUTES = ("zt-am-1", "zt-am-1-b", "zt-am-1-c")
BUSES = {"zt-am-1": ("bus-07", "dev-bus-07"), "zt-am-1-b": ("bench-b", "dev-bench-b"),
         "zt-am-1-c": ("bench-c", "dev-bench-c")}
PING_EVERY_S = 5.0
STREAM_WORKER = "backend.streams.worker.StreamWorker"


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:,.0f} ms"


# -- the database ----------------------------------------------------------------------------------


def make_bundle(now: float) -> tuple[dict[str, Any], bench_api.Drive]:
    bundle, drive = bench_api.make_bundle(now, 0)
    base = next(r for r in bundle["routes"] if r["id"] == "zt-am-1")
    for route_id in ROUTES[1:]:
        route = copy.deepcopy(base)
        route["id"] = route_id
        route["name"] = f"{base.get('name', route_id)} {route_id[-1]}"
        bundle["routes"].append(route)
        vehicle_id, device_id = BUSES[route_id]
        bundle["vehicles"].append({"id": vehicle_id, "kind": "school_bus",
                                   "route_ids": [route_id], "speed_limit_kmh": 60})
        bundle["devices"].append({"id": device_id, "vehicle_id": vehicle_id,
                                  "token": f"tok-{vehicle_id}-bench"})
    return bundle, drive


def build_database(pg: str, bundle: dict[str, Any], parents: int, instance: Path) -> str:
    """The bundle imported, then the parents and their children inserted in bulk (importing
    10 000 users through the bundle would take minutes)."""
    from sqlalchemy import insert

    from backend import create_app
    from backend.bundle import import_bundle
    from backend.database import upgrade_schema
    from backend.extensions import db
    from backend.models import User
    from backend.models.people import Student, user_students
    from backend.security import hash_password

    _admin(pg, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)", f"CREATE DATABASE {DB_NAME}")
    url = _with_db(pg, DB_NAME)
    os.environ.setdefault("XIAOCHE_INSTANCE_PATH", str(instance))
    app = create_app({"SQLALCHEMY_DATABASE_URI": _sa_url(url), "SECRET_KEY": SECRET})
    upgrade_schema(app)
    base = next(r for r in bundle["routes"] if r["id"] == "zt-am-1")
    stop, school = base["stops"][0]["stop_id"], base["school_id"]
    password = hash_password("bench-parent")  # one hash for all: logins are not measured here
    with app.app_context():
        import_bundle(bundle)
        first_id = (db.session.query(db.func.max(User.id)).scalar() or 0) + 1
        db.session.execute(insert(Student), [
            {"id": f"bench-s{i:05d}", "name": f"学生{i}", "school_id": school, "boarder": False,
             "route_id": ROUTES[i % len(ROUTES)], "stop_id": stop, "card_id": f"BENCH{i:07d}"}
            for i in range(parents)])
        db.session.execute(insert(User), [
            {"id": first_id + i, "username": f"bench-p{i:05d}", "password_hash": password,
             "role": "parent", "token_version": 0} for i in range(parents)])
        db.session.execute(insert(user_students), [
            {"user_id": first_id + i, "student_id": f"bench-s{i:05d}"} for i in range(parents)])
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return url


def tokens(count: int) -> list[str]:
    from backend.security import issue_user_token

    return [issue_user_token(SECRET, f"bench-p{i:05d}", 0) for i in range(count)]


# -- the buses -------------------------------------------------------------------------------------


class Buses:
    """The three buses, each a ping every 5 s with ``ts`` = now; remembers when each was sent."""

    def __init__(self, url: str, drive: bench_api.Drive) -> None:
        from gps_ingest.publisher import WindowedPublisher

        self.drive = drive
        self.publisher = WindowedPublisher(url, client_id=f"bench-parents-{uuid.uuid4().hex[:6]}")
        self.sent: dict[tuple[str, str], float] = {}  # (vehicle_id, iso ts) → monotonic
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.seq = 0

    def publish_all(self, ts: float, routes: tuple[str, ...] = ROUTES) -> None:
        from backend.timefmt import iso

        lat, lon, speed = self.drive.at(ts)
        for route_id in routes:
            vehicle_id, device_id = BUSES[route_id]
            self.sent[(vehicle_id, iso(ts))] = time.monotonic()
            self.publisher.publish(f"xiaoche/v1/devices/{device_id}/pings",
                                   bench_api._payload(ts, lat, lon, speed, self.seq))
        self.seq += 1
        self.publisher.flush(10)

    def backfill(self, until: float) -> None:
        t = self.drive.start
        while t <= until - PING_EVERY_S:
            self.publish_all(t)
            t += 10.0

    def start(self) -> None:
        def feed() -> None:  # each bus every 5 s, the three a third of that apart (devices
            # are not in step)
            step = PING_EVERY_S / len(ROUTES)
            turn = 0
            while not self.stop.wait(step - (time.time() % step)):
                self.publish_all(round(time.time(), 3), (ROUTES[turn % len(ROUTES)],))
                turn += 1

        self.thread = threading.Thread(target=feed, name="buses", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(PING_EVERY_S + 5)
        self.publisher.close()


# -- meanwhile: logins and /live -------------------------------------------------------------------


class Logins:
    """A login every second on a new connection (as an app that was just opened)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.samples: list[tuple[float, float, int]] = []  # (at, seconds, status)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="logins", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            began = time.monotonic()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                connection.request("POST", "/api/v1/auth/token", body=json.dumps(
                    {"username": bench_api.PARENT[0], "password": bench_api.PARENT[1]}),
                    headers={"Content-Type": "application/json"})
                status = connection.getresponse().status
                connection.close()
            except OSError:
                status = 0
            self.samples.append((began, time.monotonic() - began, status))


def fanout_buckets(port: int) -> dict[float, float]:
    """The server's ``xiaoche_stream_fanout_seconds`` histogram from ``/metrics`` (cumulative
    count per upper bound, summed over the serving processes); empty when it has none."""
    out: dict[float, float] = {}
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
        connection.close()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith("xiaoche_stream_fanout_seconds_bucket{"):
            labels, value = line[line.index("{") + 1:].split("} ")
            le = dict(p.split("=", 1) for p in labels.split(","))["le"].strip('"')
            bound = float("inf") if le == "+Inf" else float(le)
            out[bound] = out.get(bound, 0.0) + float(value)
    return out


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """As Prometheus's ``histogram_quantile``: linear within the bucket that holds it."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for bound, n in buckets:
        if n >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(n - below, 1e-9)
        lower, below = bound, n
    return lower


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def workers_of(pid: int) -> list[int]:
    return [p for p in bench_api._pids() if (bench_api._stat(p) or [0, 0, -1])[2] == str(pid)]


# -- one level -------------------------------------------------------------------------------------


async def level(args: argparse.Namespace, count: int, port: int, token_list: list[str],
                buses: Buses, groups: dict[str, list[int]], api_pid: int, lua: Path
                ) -> dict[str, Any]:
    parents = Parents(port, buses, token_list[:count], args.ramp_s, args.client_processes)
    groups = {**groups, **{f"client-{n}": [pid] for n, pid in enumerate(parents.pids)}}
    logins = Logins(port)
    workers = workers_of(api_pid)
    rss_before = rss_kb(workers)
    cpu_before = bench_api.cpu_snapshot(groups, with_children=("gunicorn", "ingest"))
    logins.thread.start()
    ramp_began = time.monotonic()
    parents.go(ramp_began)
    await asyncio.sleep(args.ramp_s)
    # wait until every stream answered (or the ramp's end + 30 s)
    deadline = time.monotonic() + 30
    while parents.answered < count and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    ramp_s = time.monotonic() - ramp_began
    hold_began = time.monotonic()
    cpu_hold = bench_api.cpu_snapshot(groups, with_children=("gunicorn", "ingest"))
    fanout_before = fanout_buckets(port)
    rss_after = rss_kb(workers)
    loop = asyncio.get_running_loop()
    wrk = None
    wrk_window = (0.0, 0.0)
    if args.wrk_s > 0:
        await asyncio.sleep(2)
        wrk_began = time.monotonic()
        wrk = await loop.run_in_executor(None, bench_api.run_wrk, port, lua, 50, 2, args.wrk_s)
        wrk_window = (wrk_began, time.monotonic() + 1.0)
    rest = args.hold_s - (time.monotonic() - hold_began)
    if rest > 0:
        await asyncio.sleep(rest)
    hold_s = time.monotonic() - hold_began
    cpu_end = bench_api.cpu_snapshot(groups, with_children=("gunicorn", "ingest"))
    open_at_end = parents.open_now
    logins.stop.set()
    await loop.run_in_executor(None, parents.stop)
    logins.thread.join(35)
    await asyncio.sleep(3)  # the server notices the closed streams (and writes its status)
    fanout_after = fanout_buckets(port)
    fanout = [(le, n - fanout_before.get(le, 0)) for le, n in sorted(fanout_after.items())]
    held = [lat for at, lat in parents.latencies if at >= hold_began]
    # per ping: its first stream's latency is the way to the hub (ingest, commit, the poll);
    # its last stream's minus the first is the fan-out
    firsts = [min(v) for v in parents.by_ping.values()]
    spreads = [max(v) - min(v) for v in parents.by_ping.values()]
    quiet = [lat for at, lat in parents.latencies
             if at >= hold_began and not wrk_window[0] <= at <= wrk_window[1]]
    login_s = [s for _, s, status in logins.samples if status == 200]
    return {
        "parents": count, "ramp_s": round(ramp_s, 1), "hold_s": round(hold_s, 1),
        "connected": parents.connected, "open_at_end": open_at_end,
        "refused": parents.refused, "failed": parents.failed,
        "first_bytes_p50_s": pct(parents.first_bytes_s, 50),
        "first_bytes_p99_s": pct(parents.first_bytes_s, 99),
        "first_event_p50_s": pct(parents.first_event_s, 50),
        "first_event_p99_s": pct(parents.first_event_s, 99),
        "first_event_n": len(parents.first_event_s),
        "push_n": len(held), "push_p50_s": pct(held, 50), "push_p99_s": pct(held, 99),
        "push_max_s": max(held) if held else None,
        "pings": len(firsts), "ping_first_p50_s": pct(firsts, 50),
        "ping_first_max_s": max(firsts) if firsts else None,
        "fanout_spread_p50_s": pct(spreads, 50),
        "fanout_spread_max_s": max(spreads) if spreads else None,
        "push_without_wrk_n": len(quiet), "push_without_wrk_p50_s": pct(quiet, 50),
        "push_without_wrk_p99_s": pct(quiet, 99),
        "push_all_p99_s": pct([lat for _, lat in parents.latencies], 99),
        "cores_ramp": bench_api.cpu_delta(cpu_before, cpu_hold),
        "cores_hold": bench_api.cpu_delta(cpu_hold, cpu_end),
        "rss_workers_kb": [rss_before, rss_after],
        "rss_per_stream_kb": (rss_after - rss_before) / max(1, parents.connected),
        "logins": len(logins.samples), "logins_ok": len(login_s),
        "login_p50_s": pct(login_s, 50), "login_p99_s": pct(login_s, 99),
        "login_max_s": max(login_s) if login_s else None,
        "fanout_n": fanout[-1][1] if fanout else 0,
        "fanout_p50_s": bucket_quantile(fanout, 0.50),
        "fanout_p99_s": bucket_quantile(fanout, 0.99),
        "client_processes": len(parents.pids),
        "cores_clients": [bench_api.cpu_delta(cpu_hold, cpu_end).get(f"client-{n}", 0)
                          for n in range(len(parents.pids))],
        "cores_clients_ramp": [bench_api.cpu_delta(cpu_before, cpu_hold).get(f"client-{n}", 0)
                               for n in range(len(parents.pids))],
        "live": None if wrk is None else {k: wrk[k] for k in (
            "req_per_s", "p50_ms", "p99_ms", "max_ms", "non_2xx", "timeouts")},
    }


def print_level(r: dict[str, Any]) -> None:
    c = r["cores_hold"]
    live = r["live"]
    print(f"\n== {r['parents']:,} parents (opened over {r['ramp_s']:g} s, held {r['hold_s']:g} s)\n"
          f"  streams connected {r['connected']:,} (open at the end {r['open_at_end']:,}), "
          f"refused {r['refused'] or 0}, failed {r['failed'] or 0}\n"
          f"  first bytes p50 {ms(r['first_bytes_p50_s'])} p99 {ms(r['first_bytes_p99_s'])}; "
          f"first position p50 {ms(r['first_event_p50_s'])} p99 {ms(r['first_event_p99_s'])} "
          f"({r['first_event_n']:,} streams)\n"
          f"  push latency (hold, n={r['push_n']:,}) p50 {ms(r['push_p50_s'])} "
          f"p99 {ms(r['push_p99_s'])} max {ms(r['push_max_s'])}; outside wrk's 10 s "
          f"(n={r['push_without_wrk_n']:,}) p50 {ms(r['push_without_wrk_p50_s'])} "
          f"p99 {ms(r['push_without_wrk_p99_s'])}\n"
          f"  per ping ({r['pings']}): first stream p50 {ms(r['ping_first_p50_s'])} max "
          f"{ms(r['ping_first_max_s'])} (ingest + commit + poll); first → last stream p50 "
          f"{ms(r['fanout_spread_p50_s'])} max {ms(r['fanout_spread_max_s'])} (fan-out)\n"
          f"  cores during the hold: gunicorn {c.get('gunicorn', 0):.2f}, ingest "
          f"{c.get('ingest', 0):.2f}, postgres {c.get('postgres', 0):.2f}, clients "
          f"{sum(r['cores_clients']):.2f} (bench {c.get('bench', 0):.2f}), machine "
          f"{c.get('machine_busy', 0):.2f}; during the ramp: "
          f"gunicorn {r['cores_ramp'].get('gunicorn', 0):.2f}\n"
          f"  client processes ({r['client_processes']}) cores, hold: "
          f"{', '.join(f'{x:.2f}' for x in r['cores_clients'])}; ramp: "
          f"{', '.join(f'{x:.2f}' for x in r['cores_clients_ramp'])}\n"
          f"  server fan-out (notice or poll → last frame written, /metrics, n="
          f"{r['fanout_n']:,.0f}) p50 {ms(r['fanout_p50_s'])} p99 {ms(r['fanout_p99_s'])}\n"
          f"  workers' RSS {r['rss_workers_kb'][0] / 1024:,.0f} → "
          f"{r['rss_workers_kb'][1] / 1024:,.0f} MB: {r['rss_per_stream_kb']:.1f} kB per stream\n"
          f"  logins meanwhile: {r['logins_ok']}/{r['logins']} ok, p50 {ms(r['login_p50_s'])} "
          f"p99 {ms(r['login_p99_s'])} max {ms(r['login_max_s'])}\n"
          + (f"  /live meanwhile (wrk -c50): {live['req_per_s']:,.0f} req/s, p50 "
             f"{live['p50_ms']:.1f} ms, p99 {live['p99_ms']:.1f} ms, non-2xx {live['non_2xx']}"
             if live else "  /live: not measured"), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parents", default="100,1000,10000")
    parser.add_argument("--ramp-s", type=float, default=60.0)
    parser.add_argument("--hold-s", type=float, default=30.0)
    parser.add_argument("--wrk-s", type=float, default=10.0, help="0: no /live measurement")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--worker-class", default=STREAM_WORKER)
    parser.add_argument("--stream-max", type=int, default=0, help="XIAOCHE_STREAM_MAX")
    parser.add_argument("--stream-processes", type=int, default=1,
                        help="XIAOCHE_STREAM_PROCESSES (0: streams on the workers, as before)")
    parser.add_argument("--client-processes", type=int, default=2,
                        help="processes the parents' clients are spread over")
    parser.add_argument("--mqtt-url", default=None)
    parser.add_argument("--pg", default=bench_api.DEFAULT_PG)
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    args = parser.parse_args()
    levels = [int(n) for n in args.parents.split(",")]
    nofile = raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    workdir = Path(tempfile_dir())
    broker = Broker(args.mqtt_url)
    processes: list[subprocess.Popen] = []
    buses = None
    saved: dict[str, Any] = {"args": vars(args), "levels": [], "open_files_limit": nofile}
    started = time.monotonic()
    try:
        build_began = time.monotonic()
        bundle, drive = make_bundle(time.time())
        database = build_database(args.pg, bundle, max(levels), workdir)
        print(f"database {DB_NAME}: 3 buses on {', '.join(ROUTES)}, {max(levels):,} parents, "
              f"built in {time.monotonic() - build_began:.0f} s; open files limit {nofile}",
              flush=True)
        ingest = bench_api.start_ingest(database, broker.url, workdir)
        processes.append(ingest)
        port = bench_api.free_port()
        api = bench_api.start_api(database, port, workdir, args.workers, args.threads, False,
                                  args.worker_class,
                                  [f"XIAOCHE_STREAM_MAX={args.stream_max}",
                                   f"XIAOCHE_STREAM_PROCESSES={args.stream_processes}"])
        processes.append(api)
        buses = Buses(broker.url, drive)
        buses.backfill(time.time())
        buses.start()
        bench_api.wait_for_api(port, api)
        status, body = bench_api.Http(port).request(
            "POST", "/api/v1/auth/token",
            {"username": bench_api.PARENT[0], "password": bench_api.PARENT[1]})
        lua = workdir / "live.lua"
        lua.write_text(bench_api.LUA % {"token": body["access_token"]}, encoding="utf-8")
        client = bench_api.Http(port, body["access_token"])
        deadline = time.monotonic() + 60
        while not bench_api.live_check(client)["active"] and time.monotonic() < deadline:
            time.sleep(0.5)
        print(f"gunicorn -w {args.workers} -k {args.worker_class} --threads {args.threads} "
              f"(+{args.stream_processes} stream processes) on "
              f"127.0.0.1:{port}; /live active: {bench_api.live_check(client)['active']}",
              flush=True)
        client.close()
        token_list = tokens(max(levels))
        groups = {"gunicorn": [api.pid], "ingest": [ingest.pid], "bench": [os.getpid()]}
        for count in levels:
            if time.monotonic() - started > args.timeout_s:
                print(f"stopping: past --timeout-s {args.timeout_s:g}")
                break
            r = asyncio.run(level(args, count, port, token_list, buses, groups, api.pid, lua))
            saved["levels"].append(r)
            print_level(r)
    finally:
        if buses is not None:
            buses.close()
        for process in reversed(processes):
            bench_api._stop(process)
        broker.stop()
        _admin(args.pg, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    saved["date"] = dt.datetime.now().isoformat(timespec="seconds")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"parents-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(saved, indent=1, default=str), encoding="utf-8")
    print(f"\nresults: {path.relative_to(ROOT)}")
    if saved["levels"]:
        print("\n| parents | connected | first position p50 / p99 | push p50 / p99 | server "
              "fan-out p50 / p99 | gunicorn cores | login p99 | /live req/s (p99) |\n"
              "|---:|---:|---|---|---|---:|---|---|")
        for r in saved["levels"]:
            live = r["live"]
            print(f"| {r['parents']:,} | {r['connected']:,} | {ms(r['first_event_p50_s'])} / "
                  f"{ms(r['first_event_p99_s'])} | {ms(r['push_p50_s'])} / "
                  f"{ms(r['push_p99_s'])} | {ms(r['fanout_p50_s'])} / {ms(r['fanout_p99_s'])} | "
                  f"{r['cores_hold'].get('gunicorn', 0):.2f} | "
                  f"{ms(r['login_p99_s'])} | "
                  + (f"{live['req_per_s']:,.0f} ({live['p99_ms']:.0f} ms) |" if live else "— |"))


def tempfile_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="bench-parents-")


if __name__ == "__main__":
    main()
