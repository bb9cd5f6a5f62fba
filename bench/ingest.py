"""End-to-end ingest throughput: ``xiaoche ingest`` from Mosquitto into PostgreSQL vs bare paho.

    .venv/bin/python bench/ingest.py [--quick] [--runs 3] [--vehicles 100]
                                     [--single 30000] [--arrays 3000] [--mqtt-url URL]
                                     [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Numbers only, no assertions (except that every published ping must be stored: a run that loses
pings is reported as LOST). Every measurement is a **backlog drain** (bench/mqtt_ceiling.py's
"backlog" mode), so the publisher's pace never caps the figure:

1. a persistent MQTT 5 session is created for the consumer (QoS 1 subscription, same topics);
2. the whole stream is published while the consumer is away (the broker queues it);
3. the consumer starts and drains the queue.

- **(a) bare paho**: mqtt_ceiling's ``BareSubscriber`` (automatic acks, a counter in
  ``on_message``), in this process; rate = messages / (connect .. last message). The ceiling.
- **(b)/(c) xiaoche ingest**: the real ``xiaoche ingest`` process (``.venv/bin/xiaoche ingest``,
  a subprocess with ``XIAOCHE_DATABASE_URL``/``XIAOCHE_MQTT_URL``/``XIAOCHE_INGEST_CLIENT_ID``,
  ``XIAOCHE_MAX_PING_AGE_S=0``) started after the publish, into a fresh database made from a
  template (migrated schema + the bench bundle). Rate = pings / (first ping received .. last
  batch stored), both stamped by the ingest itself in the database: ``min(pings.received_at)``
  (wall clock when paho handed the first message over) and ``max(live_positions.received_at)``
  (wall clock of the last batch, taken inside its transaction just before the commit). The
  process start-up (imports, app) is therefore not counted; the cold caches after a restart
  (device registry, last fixes, tracking contexts) are. "steady" leaves out the first 10 % of
  the pings (by receive time) to show the rate without that warm-up.
  Completion is detected by polling ``live_positions`` (one row per vehicle) for every vehicle's
  last ping, then ``count(*)`` of ``pings`` is compared with what was published.

Streams (``xiaoche/v1/devices/{device}/pings``, native JSON pings of ~140 bytes):

- **single**: one ping per message, the fleet's pings interleaved (tick by tick), 5 s apart;
- **arrays**: 100-ping backlog arrays (1 s apart), the fleet's arrays interleaved.

Fleets (one bundle, imported once into the template database):

- **routes**: ``--vehicles`` school buses, each assigned to its own generated route (6 stops,
  the last one a school near 27.43 N 113.20 E, a Monday-to-Sunday timetable that matches the
  drive) and driving it from its first stop to the school within the stream (GPS noise 4 m,
  dwells at stops): trips start, stops are reached, trips complete;
- **plain**: the same number of school buses without routes, sending the same positions.

Tracking ``on`` is ``xiaoche ingest`` as shipped (TrackingStep inside every ingest
transaction); ``off`` is the same command with the pipeline built with ``after_store=[]``
(this script re-runs itself as the ingest process with the steps after storage emptied).

Results: a table of medians (and the ratios to the bare-paho ceiling) on stdout, every run in
``bench/results/ingest-<timestamp>.json`` (with the 1-minute load average before each
measurement: the machine may be shared). ``--table FILE`` prints the table of a saved file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DB_NAME = "xiaoche_bench"
TEMPLATE_DB = "xiaoche_bench_tpl"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
TIMEZONE = "Asia/Shanghai"
SCHOOL = ("bench-school", 27.43, 113.20)  # id, lat, lon
STOPS_PER_ROUTE = 6  # including the school at the end
SPEED_MPS = 9.0  # moving speed on the road (32 km/h)
NOISE_M = 4.0
SINGLE_EVERY_S = 5
ARRAY_EVERY_S = 1
ARRAY_SIZE = 100
STEADY_SKIP = 0.10
CHILD_FLAG = "--run-ingest-without-tracking"


# -- the simulated fleet ------------------------------------------------------------------------


@dataclass
class Drive:
    device_id: str
    pings: list[str]  # compact JSON objects, in time order
    last_ts: int


@dataclass
class Fleet:
    """The bundle (routes + vehicles + devices) and the drives of each stream."""

    bundle: dict[str, Any]
    drives: dict[tuple[str, str], list[Drive]] = field(default_factory=dict)  # (stream, fleet)


def _lonlat(x: float, y: float) -> tuple[float, float]:
    from tests.unit.routing.simulate import to_lonlat

    return to_lonlat(x, y, (SCHOOL[1], SCHOOL[2]))


def _polyline(rng: random.Random, length_m: float) -> list[tuple[float, float]]:
    """A wiggly path of ``length_m`` metres from a random direction ending at the school (0, 0)."""
    bearing = rng.uniform(0, 2 * math.pi)
    n = 10
    raw = []
    for i in range(n + 1):  # along a unit chord, with sideways wiggle, start far, end at 0
        f = 1 - i / n
        wiggle = 0.0 if i in (0, n) else rng.uniform(-0.12, 0.12)
        raw.append((f, wiggle))
    pts = [(f * math.cos(bearing) - w * math.sin(bearing), f * math.sin(bearing) + w * math.cos(bearing))
           for f, w in raw]
    unit = sum(math.dist(pts[i], pts[i + 1]) for i in range(n))
    return [(x * length_m / unit, y * length_m / unit) for x, y in pts]


def _at(pts: list[tuple[float, float]], cum: list[float], along: float) -> tuple[float, float, float]:
    """(x, y, heading_deg) at ``along`` metres on the polyline."""
    k = 0
    while k < len(pts) - 2 and cum[k + 1] < along:
        k += 1
    seg = cum[k + 1] - cum[k]
    f = min(1.0, max(0.0, (along - cum[k]) / seg))
    (x0, y0), (x1, y1) = pts[k], pts[k + 1]
    heading = math.degrees(math.atan2(x1 - x0, y1 - y0)) % 360
    return x0 + f * (x1 - x0), y0 + f * (y1 - y0), heading


def _timeline(n: int, every_s: int) -> tuple[float, float, float, float]:
    """(total, dwell at the first stop, dwell at other stops, moving time) of an ``n``-ping drive."""
    total = (n - 1) * every_s
    first, other, end = 0.04 * total, 0.02 * total, 0.08 * total
    return total, first, other, total - first - other * (STOPS_PER_ROUTE - 2) - end


def _plan_route(rng: random.Random, route_id: str, n: int, every_s: int, start: float,
                day_start: float) -> tuple[dict, list[dict], Callable[[float], tuple]]:
    """A route whose timetable matches an ``n``-ping drive starting at epoch ``start``."""
    total, first, other, moving = _timeline(n, every_s)
    length = SPEED_MPS * moving
    pts = _polyline(rng, length)
    cum = [0.0]
    for i in range(len(pts) - 1):
        cum.append(cum[-1] + math.dist(pts[i], pts[i + 1]))
    gap = length / (STOPS_PER_ROUTE - 1)
    leg_s = gap / SPEED_MPS
    # stop k: arrive at start + first + k*leg + (k-1)*other, leave after its dwell
    arrive = [start] + [start + first + k * leg_s + (k - 1) * other
                        for k in range(1, STOPS_PER_ROUTE)]
    leave = [start + first] + [a + other for a in arrive[1:-1]] + [math.inf]
    stops, route_stops = [], []
    for k in range(STOPS_PER_ROUTE):
        sched = arrive[k] if k else leave[0]
        hms = time.strftime("%H:%M:%S", time.gmtime(round(sched - day_start)))
        if k == STOPS_PER_ROUTE - 1:
            route_stops.append({"stop_id": SCHOOL[0], "time": hms})
            continue
        x, y, _ = _at(pts, cum, k * gap)
        lon, lat = _lonlat(x, y)
        stop_id = f"{route_id}-s{k}"
        stops.append({"id": stop_id, "name": stop_id, "lat": round(lat, 6), "lon": round(lon, 6),
                      "radius_m": 60})
        route_stops.append({"stop_id": stop_id, "time": hms})
    route = {"id": route_id, "name": route_id, "school_id": SCHOOL[0],
             "path": {"type": "LineString",
                      "coordinates": [[round(c, 6) for c in _lonlat(x, y)] for x, y in pts]},
             "corridor_m": 80, "stops": route_stops, "days": [1, 2, 3, 4, 5, 6, 7]}

    def position(t: float) -> tuple[float, float, float, float]:
        """(x, y, heading, speed_kmh) at epoch ``t``."""
        for k in range(STOPS_PER_ROUTE):
            if t < leave[k] and (k == 0 or t >= arrive[k]):
                x, y, h = _at(pts, cum, k * gap)
                return x, y, h, 0.0
            if k + 1 < STOPS_PER_ROUTE and leave[k] <= t < arrive[k + 1]:
                along = k * gap + (t - leave[k]) * SPEED_MPS
                x, y, h = _at(pts, cum, along)
                return x, y, h, SPEED_MPS * 3.6
        x, y, h = _at(pts, cum, length)
        return x, y, h, 0.0

    return route, stops, position


def _ping(rng: random.Random, position: Callable, ts: int, seq: int) -> str:
    x, y, heading, speed = position(ts)
    lon, lat = _lonlat(x + rng.gauss(0, NOISE_M), y + rng.gauss(0, NOISE_M))
    speed = max(0.0, speed + rng.gauss(0, 1.0)) if speed else 0.0
    return (f'{{"ts":{ts},"lat":{lat:.6f},"lon":{lon:.6f},"speed_kmh":{speed:.1f},'
            f'"heading_deg":{heading:.0f},"accuracy_m":5.0,"battery_pct":80,"seq":{seq}}}')


def service_day() -> tuple[dt.date, float]:
    """Yesterday in the district's time zone and the epoch of its local midnight."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(TIMEZONE)
    day = (dt.datetime.now(zone) - dt.timedelta(days=1)).date()
    return day, dt.datetime.combine(day, dt.time(0), tzinfo=zone).timestamp()


def make_fleet(vehicles: int, single_per_vehicle: int, array_per_vehicle: int, seed: int = 7) -> Fleet:
    """The bench bundle and every drive; departures from 06:30 local, yesterday."""
    rng = random.Random(seed)
    _, day_start = service_day()
    bundle: dict[str, Any] = {
        "district": {"id": "bench", "name": "bench district", "timezone": TIMEZONE},
        "schools": [{"id": SCHOOL[0], "name": "bench school", "lat": SCHOOL[1], "lon": SCHOOL[2],
                     "radius_m": 150}],
        "stops": [], "routes": [], "vehicles": [], "devices": [],
    }
    fleet = Fleet(bundle)
    for stream, n, every in (("single", single_per_vehicle, SINGLE_EVERY_S),
                             ("arrays", array_per_vehicle, ARRAY_EVERY_S)):
        routed, plain = [], []
        for v in range(vehicles):
            start = int(day_start + 6.5 * 3600 + rng.randint(0, 600))
            vid = f"b{stream[0]}-{v:03d}"
            route, stops, position = _plan_route(rng, f"r{stream[0]}-{v:03d}", n, every, start,
                                                 day_start)
            bundle["stops"].extend(stops)
            bundle["routes"].append(route)
            bundle["vehicles"].append({"id": vid, "kind": "school_bus", "route_ids": [route["id"]],
                                       "speed_limit_kmh": 60})
            bundle["devices"].append({"id": f"dev-{vid}", "vehicle_id": vid, "token": f"tok-{vid}-bench"})
            pings = [_ping(rng, position, start + i * every, i) for i in range(n)]
            last = start + (n - 1) * every
            routed.append(Drive(f"dev-{vid}", pings, last))
            pid = f"p{stream[0]}-{v:03d}"
            bundle["vehicles"].append({"id": pid, "kind": "school_bus", "route_ids": [],
                                       "speed_limit_kmh": 60})
            bundle["devices"].append({"id": f"dev-{pid}", "vehicle_id": pid, "token": f"tok-{pid}-bench"})
            plain.append(Drive(f"dev-{pid}", pings, last))
        fleet.drives[(stream, "routes")] = routed
        fleet.drives[(stream, "plain")] = plain
    return fleet


def messages(drives: list[Drive], stream: str) -> list[tuple[str, bytes]]:
    """The MQTT messages of a stream, devices interleaved as a fleet's would be."""
    out = []
    size = 1 if stream == "single" else ARRAY_SIZE
    n = len(drives[0].pings)
    for k in range(0, n, size):
        for d in drives:
            topic = f"xiaoche/v1/devices/{d.device_id}/pings"
            if size == 1:
                out.append((topic, d.pings[k].encode()))
            else:
                out.append((topic, ("[" + ",".join(d.pings[k:k + size]) + "]").encode()))
    return out


# -- PostgreSQL ---------------------------------------------------------------------------------


def _with_db(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


def _sa_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1] if url.startswith("postgresql://") else url


def _admin(pg: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(pg.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as conn:
        for s in statements:
            conn.execute(s)


def build_template(pg: str, bundle: dict[str, Any]) -> None:
    """Migrated schema + the bench bundle, in a database the runs are copied from."""
    from backend import create_app
    from backend.bundle import import_bundle
    from backend.database import upgrade_schema
    from backend.extensions import db

    _admin(pg, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)",
           f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)", f"CREATE DATABASE {TEMPLATE_DB}")
    with tempfile.TemporaryDirectory() as instance:
        os.environ.setdefault("XIAOCHE_INSTANCE_PATH", instance)
        app = create_app({"SQLALCHEMY_DATABASE_URI": _sa_url(_with_db(pg, TEMPLATE_DB)),
                          "SECRET_KEY": "bench"})
        upgrade_schema(app)
        with app.app_context():
            import_bundle(bundle)
            db.session.remove()
            db.engine.dispose()


def fresh_database(pg: str) -> str:
    _admin(pg, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)",
           f"CREATE DATABASE {DB_NAME} TEMPLATE {TEMPLATE_DB}")
    return _with_db(pg, DB_NAME)


# -- MQTT helpers -------------------------------------------------------------------------------


def create_session(url: str, client_id: str, topics: tuple[str, ...]) -> None:
    """A persistent MQTT 5 session with QoS 1 subscriptions, left without a consumer."""
    _session(url, client_id, topics, expiry_s=600)


def drop_session(url: str, client_id: str) -> None:
    """Clean start with expiry 0: the broker forgets the session and what it queued."""
    _session(url, client_id, (), expiry_s=0)


def _session(url: str, client_id: str, topics: tuple[str, ...], expiry_s: int) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions

    from gps_ingest.mqtt_client import parse_mqtt_url

    host, port, username, password, _ = parse_mqtt_url(url)
    done = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    if username:
        client.username_pw_set(username, password)

    def on_connect(c, u, f, rc, p):
        if topics:
            c.subscribe([(t, SubscribeOptions(qos=1)) for t in topics])
        else:
            done.set()

    client.on_connect = on_connect
    client.on_subscribe = lambda *a: done.set()
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = expiry_s
    properties.ReceiveMaximum = 1000
    client.connect(host, port, 30, clean_start=True, properties=properties)
    client.loop_start()
    if not done.wait(10):
        raise RuntimeError(f"no CONNACK/SUBACK for session {client_id}")
    client.disconnect()
    client.loop_stop()


def publish(url: str, msgs: list[tuple[str, bytes]]) -> float:
    from gps_ingest.publisher import WindowedPublisher

    started = time.perf_counter()
    with WindowedPublisher(url) as publisher:
        for topic, payload in msgs:
            publisher.publish(topic, payload)
        publisher.flush(timeout=300)
    return len(msgs) / (time.perf_counter() - started)


# -- measurements -------------------------------------------------------------------------------


def bare_rate(url: str, msgs: list[tuple[str, bytes]], pings_per_msg: int,
              alive: Callable[[], bool]) -> dict[str, Any]:
    """(a): mqtt_ceiling's BareSubscriber draining the backlog of the same messages."""
    from mqtt_ceiling import BareSubscriber

    client_id = f"bench-bare-{uuid.uuid4().hex[:8]}"
    topic = "xiaoche/v1/devices/+/pings"
    create_session(url, client_id, (topic,))
    publisher_rate = publish(url, msgs)
    subscriber = BareSubscriber(url, client_id, topic)
    started = time.perf_counter()
    subscriber.start()
    deadline = time.monotonic() + 300
    while subscriber.count < len(msgs) and time.monotonic() < deadline and alive():
        time.sleep(0.005)
    subscriber.stop()
    if alive():
        drop_session(url, client_id)
    elapsed = subscriber.last_at - started
    return {"published": len(msgs), "stored": subscriber.count, "ok": subscriber.count == len(msgs),
            "seconds": elapsed, "msg_per_s": subscriber.count / elapsed,
            "pings_per_s": subscriber.count * pings_per_msg / elapsed,
            "publisher_msg_per_s": publisher_rate}


def ingest_command(tracking: bool) -> list[str]:
    if not tracking:
        return [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG]
    script = Path(sys.executable).parent / "xiaoche"
    return [str(script), "ingest"] if script.exists() else [sys.executable, "-m", "backend.cli",
                                                             "ingest"]


def ingest_rate(url: str, pg: str, drives: list[Drive], msgs: list[tuple[str, bytes]],
                tracking: bool, workdir: Path, timeout_s: float,
                alive: Callable[[], bool]) -> dict[str, Any]:
    """(b)/(c): the real ingest process draining the backlog into a fresh database."""
    import psycopg

    from backend.runtime import INGEST_TOPICS

    database = fresh_database(pg)
    client_id = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    create_session(url, client_id, INGEST_TOPICS)
    publisher_rate = publish(url, msgs)
    published = sum(len(d.pings) for d in drives)
    env = {**os.environ, "XIAOCHE_DATABASE_URL": database, "XIAOCHE_MQTT_URL": url,
           "XIAOCHE_SECRET_KEY": "bench", "XIAOCHE_INSTANCE_PATH": str(workdir),
           "XIAOCHE_INGEST_CLIENT_ID": client_id, "XIAOCHE_INGEST_SESSION_EXPIRY_S": "600",
           "XIAOCHE_MAX_PING_AGE_S": "0"}
    log_path = workdir / f"{client_id}.log"
    devices = [d.device_id for d in drives]
    last_ts = [float(d.last_ts) for d in drives]
    result: dict[str, Any] = {"published": published, "messages": len(msgs),
                              "publisher_msg_per_s": publisher_rate}
    with open(log_path, "wb") as log, psycopg.connect(database, autocommit=True) as conn:
        process = subprocess.Popen(ingest_command(tracking), env=env, cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout_s
            done = 0
            while time.monotonic() < deadline and process.poll() is None and alive():
                done = conn.execute(
                    "SELECT count(*) FROM live_positions lp JOIN unnest(%s::text[], %s::float8[])"
                    " AS f(d, t) ON lp.device_id = f.d AND lp.ts = f.t",
                    (devices, last_ts)).fetchone()[0]
                if done == len(devices):
                    break
                time.sleep(0.05)
            stored = conn.execute("SELECT count(*) FROM pings").fetchone()[0]
            settle = time.monotonic() + 10
            while (stored < published and time.monotonic() < settle and process.poll() is None
                   and alive()):
                time.sleep(0.2)
                stored = conn.execute("SELECT count(*) FROM pings").fetchone()[0]
            first, = conn.execute("SELECT min(received_at) FROM pings").fetchone()
            last, = conn.execute("SELECT max(received_at) FROM live_positions").fetchone()
            skip = int(stored * STEADY_SKIP)
            row = conn.execute("SELECT received_at FROM pings ORDER BY received_at OFFSET %s "
                               "LIMIT 1", (skip,)).fetchone()
            rejects = dict(conn.execute("SELECT reason, count(*) FROM rejects GROUP BY reason")
                           .fetchall())
            events = dict(conn.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
            states, = conn.execute("SELECT count(*) FROM tracker_states").fetchone()
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    if alive():
        drop_session(url, client_id)
    elapsed = (last - first) if first is not None and last is not None else float("nan")
    result.update(
        stored=stored, ok=stored == published and not rejects, rejects=rejects, events=events,
        tracker_states=states, seconds=elapsed, pings_per_s=stored / elapsed if elapsed else 0.0,
        msg_per_s=len(msgs) * stored / published / elapsed if elapsed else 0.0,
        steady_pings_per_s=(stored - skip) / (last - row[0]) if row and last > row[0] else 0.0)
    if not result["ok"]:
        result["log_tail"] = log_path.read_text(errors="replace")[-3000:]
    return result


class Broker:
    """The given broker URL, or an embedded Mosquitto that is restarted if it dies.

    Other work on the machine may kill every process named mosquitto (it happened while this
    bench was written): a measurement during which the broker died is repeated on a new one.
    """

    def __init__(self, url: str | None) -> None:
        self.external = url
        self.embedded: Any = None
        self.restarts = 0
        if url is None:
            self._start()

    def _start(self) -> None:
        from gps_ingest.broker import EmbeddedBroker

        self.embedded = EmbeddedBroker(host="127.0.0.1", port=0, prefer="mosquitto",
                                       data_dir=Path(tempfile.mkdtemp(prefix="bench-broker-")))
        self.embedded.start()

    @property
    def url(self) -> str:
        return self.external or self.embedded.url

    def alive(self) -> bool:
        return self.external is not None or self.embedded.running

    def restart(self) -> None:
        if self.external is not None:
            raise RuntimeError(f"the broker {self.external} is gone")
        self.stop()
        self.restarts += 1
        self._start()

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


# -- the run ------------------------------------------------------------------------------------


CONFIGS = (  # name, stream, fleet, tracking (None = bare paho)
    ("a  bare paho, single", "single", "routes", None),
    ("a' bare paho, arrays", "arrays", "routes", None),
    ("b  ingest single, tracking on, routes", "single", "routes", True),
    ("b  ingest single, tracking on, plain", "single", "plain", True),
    ("b  ingest single, tracking off", "single", "routes", False),
    ("c  ingest arrays, tracking on, routes", "arrays", "routes", True),
    ("c  ingest arrays, tracking on, plain", "arrays", "plain", True),
    ("c  ingest arrays, tracking off", "arrays", "routes", False),
)


def _describe(name: str, r: dict[str, Any]) -> str:
    check = "stored == published" if r["ok"] else "LOST/REJECTED"
    line = (f"  {name:40s} {r['pings_per_s']:9,.0f} pings/s {r['msg_per_s']:8,.0f} msg/s "
            f"{r['seconds']:6.2f} s  {r['stored']}/{r['published']} {check}")
    if "load_1min_before" in r:
        line += f", load {r['load_1min_before']:.1f}"
    if "events" in r:
        n_events = sum(r["events"].values())
        line += f", steady {r['steady_pings_per_s']:,.0f}/s, {n_events} events, " \
                f"{r['tracker_states']} states"
        if r["rejects"]:
            line += f", rejects {r['rejects']}"
    return line


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD_FLAG:
        run_ingest_without_tracking()
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--table":
        saved = json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
        report(saved["runs"], saved["settings"]["runs"], saved["settings"], save=False)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, 1 run (smoke test)")
    parser.add_argument("--runs", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--vehicles", type=int, default=None, help="default 100 (20 with --quick)")
    parser.add_argument("--single", type=int, default=None,
                        help="single-ping messages (default 30000; 2000 with --quick)")
    parser.add_argument("--arrays", type=int, default=None,
                        help="100-ping array messages (default 3000; 200 with --quick)")
    parser.add_argument("--mqtt-url", default=None,
                        help="broker to use (needs large queues: max_queued_messages); default: "
                             "an embedded Mosquitto on a free loopback port")
    parser.add_argument("--pg", default=DEFAULT_PG,
                        help=f"PostgreSQL server (any database); {DB_NAME} and {TEMPLATE_DB} are "
                             f"dropped and recreated there")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per drain at most")
    parser.add_argument("--only", default=None,
                        help="run only configs whose name contains one of these |-separated "
                             "substrings, e.g. 'a  bare|tracking off'")
    parser.add_argument("--table", metavar="JSON", default=None,
                        help="only print the table of a saved bench/results/ingest-*.json")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    vehicles = args.vehicles or (20 if args.quick else 100)
    single = args.single or (2000 if args.quick else 30000)
    arrays = args.arrays or (200 if args.quick else 3000)
    single_per_vehicle = max(2, single // vehicles)
    array_per_vehicle = max(1, arrays // vehicles) * ARRAY_SIZE

    fleet = make_fleet(vehicles, single_per_vehicle, array_per_vehicle)
    streams = {key: messages(drives, key[0]) for key, drives in fleet.drives.items()}
    started = time.perf_counter()
    build_template(args.pg, fleet.bundle)
    print(f"template database {TEMPLATE_DB}: {len(fleet.bundle['vehicles'])} vehicles, "
          f"{len(fleet.bundle['routes'])} routes, built in {time.perf_counter() - started:.1f} s")
    broker = Broker(args.mqtt_url)
    print(f"broker {broker.url}, PostgreSQL {args.pg.split('@')[-1]}, {vehicles} vehicles per fleet, "
          f"{os.cpu_count()} cores, median of {runs}")
    print(f"single: {single_per_vehicle * vehicles} messages of 1 ping, every "
          f"{SINGLE_EVERY_S} s per vehicle; arrays: {array_per_vehicle // ARRAY_SIZE * vehicles} "
          f"messages of {ARRAY_SIZE} pings ({array_per_vehicle * vehicles} pings), every "
          f"{ARRAY_EVERY_S} s per vehicle")
    only = None if args.only is None else [o for o in args.only.split("|") if o]
    configs = [c for c in CONFIGS if only is None or any(o in c[0] for o in only)]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in configs}
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        for run in range(runs):
            print(f"run {run + 1}/{runs}", flush=True)
            for name, stream, which, tracking in configs:
                msgs = streams[(stream, which)]
                for _attempt in range(3):
                    load = os.getloadavg()[0]
                    try:
                        if tracking is None:
                            r = bare_rate(broker.url, msgs, 1 if stream == "single" else ARRAY_SIZE,
                                          broker.alive)
                        else:
                            r = ingest_rate(broker.url, args.pg, fleet.drives[(stream, which)],
                                            msgs, tracking, workdir, args.timeout, broker.alive)
                    except OSError:
                        if broker.alive():
                            raise
                    if broker.alive():
                        break
                    print(f"  {name}: the broker died (killed from outside?); restarting it and "
                          f"repeating the measurement", file=sys.stderr, flush=True)
                    broker.restart()
                r["load_1min_before"] = load
                results[name].append(r)
                print(_describe(name, r), flush=True)
                if not r["ok"] and "log_tail" in r:
                    print(r["log_tail"], file=sys.stderr)
    finally:
        broker.stop()
        _admin(args.pg, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)",
               f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
    report(results, runs, vars(args) | {"runs": runs, "vehicles": vehicles,
                                        "single_messages": single_per_vehicle * vehicles,
                                        "array_messages": array_per_vehicle // ARRAY_SIZE * vehicles,
                                        "broker_restarts": broker.restarts})


def report(results: dict[str, list[dict[str, Any]]], runs: int, settings: dict[str, Any],
           save: bool = True) -> None:
    def med(name: str, key: str) -> float:
        values = [r[key] for r in results.get(name, [])]
        return statistics.median(values) if values else float("nan")

    ceiling = med(CONFIGS[0][0], "msg_per_s")
    print(f"\nmedians of {runs} run(s); ratio = pings/s ÷ bare paho msg/s on the single-ping "
          f"stream ({ceiling:,.0f})")
    print(f"| {'measurement':40s} | {'pings/s':>9s} | {'runs min-max':>19s} | {'msg/s':>8s} | "
          f"{'steady pings/s':>14s} | {'ratio to (a)':>12s} | stored == published |")
    print(f"|{'-' * 42}|{'-' * 11}|{'-' * 21}|{'-' * 10}|{'-' * 16}|{'-' * 14}|{'-' * 21}|")
    summary = {}
    for name, runs_of in results.items():
        if not runs_of:
            continue
        pings, msgs = med(name, "pings_per_s"), med(name, "msg_per_s")
        steady = med(name, "steady_pings_per_s") if "steady_pings_per_s" in runs_of[0] else None
        ratio = pings / ceiling if name.startswith("b") else None
        ok = sum(r["ok"] for r in runs_of)
        values = [r["pings_per_s"] for r in runs_of]
        spread = f"{min(values):,.0f}-{max(values):,.0f}"
        summary[name] = {"pings_per_s": pings, "msg_per_s": msgs, "steady_pings_per_s": steady,
                         "ratio_to_a": ratio, "runs_ok": ok, "runs": len(runs_of),
                         "min_pings_per_s": min(values), "max_pings_per_s": max(values)}
        print(f"| {name:40s} | {pings:9,.0f} | {spread:>19s} | {msgs:8,.0f} | "
              f"{'' if steady is None else f'{steady:,.0f}':>14s} | "
              f"{'' if ratio is None else f'{ratio:.2f}':>12s} | {f'{ok}/{len(runs_of)} runs':>19s} |")
    targets = []
    for name, s in summary.items():
        if s["ratio_to_a"] is not None:
            goal = 0.6 if "tracking on" in name else 0.7
            targets.append(f"{name.strip()}: (b)/(a) = {s['ratio_to_a']:.2f} "
                           f"(target ≥ {goal}) {'met' if s['ratio_to_a'] >= goal else 'NOT met'}")
        elif name.startswith("c"):
            targets.append(f"{name.strip()}: {s['pings_per_s']:,.0f} pings/s (target ≥ 50,000) "
                           f"{'met' if s['pings_per_s'] >= 50_000 else 'NOT met'}")
    print("\n".join(targets))
    if not save:
        return
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = out_dir / f"ingest-{stamp}.json"
    path.write_text(json.dumps({
        "date": dt.datetime.now().isoformat(timespec="seconds"), "machine": {
            "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()},
        "git_head": _git_head(), "settings": settings, "summary": summary, "runs": results},
        indent=1, default=str),
        encoding="utf-8")
    print(f"results: {path.relative_to(ROOT)}")


def _git_head() -> str:
    """The commit measured (the working tree may hold uncommitted changes on top of it)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, timeout=10).stdout.strip()
    except OSError:
        return ""


def pipeline_without_tracking(app):
    """The app's pipeline with no step after storage (no tracking, hence no notification rules).

    Module-level so the pipeline processes (``XIAOCHE_INGEST_PROCESSES``, started with
    ``spawn``) can build it too."""
    from backend.ingest.service import pipeline

    built = pipeline(app)
    built.after_store, built.after_scans = [], []
    return built


def run_ingest_without_tracking() -> None:
    """``xiaoche ingest`` with the pipeline built by :func:`pipeline_without_tracking`."""
    import backend.runtime
    from backend.cli import main as cli

    run_ingest = backend.runtime.run_ingest
    backend.runtime.run_ingest = lambda app: run_ingest(app, pipeline_without_tracking)
    cli(["ingest"], prog_name="xiaoche")


if __name__ == "__main__":
    main()
