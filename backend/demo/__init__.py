"""``xiaoche demo``: ``serve`` on the embedded defaults plus a simulated fleet driving the sample
district, so the parents' and staff pages have something to show at any hour.

- :mod:`backend.demo.geometry`, :mod:`backend.demo.plan` — pure: where a vehicle is at a time;
- :mod:`backend.demo.fleet` — the sample district's vehicles as endless timelines of legs;
- :mod:`backend.demo.runs` — each simulated bus run imported as a run of its route dated that day;
- :mod:`backend.demo.simulator` — the thread that publishes positions and scans over MQTT.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask

SAMPLE_BUNDLE = Path(__file__).resolve().parents[1] / "sample" / "lukou.json"
DEMO_ROUTES = ("zt-am-1", "zt-pm-1", "lf-am-1")
LOGIN_ROLES = ("parent", "logistics", "admin")


def load_sample() -> dict[str, Any]:
    return json.loads(SAMPLE_BUNDLE.read_text(encoding="utf-8"))


def check_sample_district(bundle: dict[str, Any]) -> None:
    """Refuse to start (SystemExit with the reason) unless the sample district is in the
    database (the demo drives its routes with its devices)."""
    from backend.extensions import db
    from backend.models import Device, Route

    missing = [f"route {r}" for r in DEMO_ROUTES if db.session.get(Route, r) is None]
    missing += [f"device {d['id']}" for d in bundle["devices"]
                if db.session.get(Device, d["id"]) is None]
    if missing:
        raise SystemExit(
            "xiaoche demo: the database does not hold the sample district "
            f"({', '.join(missing)} missing); start it on an empty instance folder, e.g. "
            "XIAOCHE_INSTANCE_PATH=/tmp/xiaoche-demo xiaoche demo")


def banner(bundle: dict[str, Any], base_url: str, first_runs: list[tuple[str, str, float]]
           ) -> list[str]:
    """What the demo prints: where to look, who to log in as, when the first buses leave."""
    tz = ZoneInfo(bundle["district"].get("timezone") or "Asia/Shanghai")
    names = {p["id"]: p["name"] for p in bundle["stops"] + bundle["schools"]}
    routes = {r["id"]: r for r in bundle["routes"]}
    students = {s["id"]: s for s in bundle["students"]}
    lines = [f"xiaoche demo: {bundle['district']['name']} with a simulated fleet "
             "(bus-07, bus-12, car-liu, truck-01; a ping every 5 s)"]
    for vehicle_id, route_id, at in first_runs:
        first_stop = names.get(routes[route_id]["stops"][0]["stop_id"], "?")
        local = dt.datetime.fromtimestamp(at, tz).strftime("%H:%M:%S")
        lines.append(f"  {vehicle_id} leaves {first_stop} at {local} ({tz.key}) on "
                     f"{routes[route_id]['name']} ({route_id})")
    lines.append(f"  open {base_url}/ and log in as:")
    for user in bundle["users"]:
        if user["role"] not in LOGIN_ROLES:
            continue
        about = ""
        if user["role"] == "parent":
            kids = [students[s] for s in user.get("student_ids", [])]
            about = ", ".join(f"{k['name']} at {names.get(k.get('stop_id'), '-')}" for k in kids)
        elif user["role"] == "logistics":
            about = ", ".join(names.get(s, s) for s in user.get("school_ids", []))
        lines.append(f"    {user['role']:<9} {user['username']} / {user['password']}"
                     + (f"  ({about})" if about else ""))
    lines.append("  stop with Ctrl-C")
    return lines


def run_demo(app: Flask, host: str, port: int) -> None:
    """Run broker + ingest + scheduler + API + the simulated fleet until SIGTERM / Ctrl-C."""
    from backend.demo.fleet import sample_fleet
    from backend.demo.simulator import FleetSimulator
    from backend.runtime import mqtt_url_or_embedded, run_all_in_one
    from backend.streams.serve import HttpServer

    server = HttpServer(app, host, port)  # a port in use stops here, before any "open …" line
    bundle = load_sample()
    with app.app_context():
        check_sample_district(bundle)
    start = time.time()
    timelines, devices = sample_fleet(bundle, start)
    # The broker is started here rather than by run_all_in_one so the simulator knows where
    # it is (the embedded one moves to a free port when 1883 is taken).
    url, broker = mqtt_url_or_embedded(app)
    app.config["MQTT_URL"] = url
    simulator = None
    try:
        def ingest_connected() -> bool:
            runner = app.extensions.get("xiaoche.ingest")
            return runner is not None and runner.connected

        simulator = FleetSimulator(app, url, timelines, devices, ready=ingest_connected)
        simulator.plan(start)  # the first runs are in the timetable before the ingest starts
        first = [(t.vehicle_id, leg.route_id, leg.stop_times[0]) for t in timelines
                 for leg in t.planned[:1] if leg.route_id]
        for line in banner(bundle, f"http://{host}:{server.port}", first):
            print(line, flush=True)
        simulator.start()
        run_all_in_one(app, host, port, server)
    finally:
        if simulator is not None:
            simulator.stop()
        if broker is not None:
            broker.stop()
