"""The draft bundle imports and the demo fleet can drive it (issue 21's Tests).

The sample district is planned, the draft imported, and the demo's own simulator
(``backend.demo``: its bus legs, its GPS noise, its devices' payloads) drives each planned run
on the bus the plan gave it, on a school-day morning at the run's planned time. Its messages go
through the real ingest pipeline with tracking, as the MQTT ingest would hand them over, and the
stored events must show the planned run started and every planned stop visited.
"""

from __future__ import annotations

import datetime as dt
import random
import time

from sqlalchemy import select

from backend.bundle import import_bundle
from backend.demo.fleet import Timeline, bus_legs, route_shape, sample_fleet
from backend.demo.simulator import FleetSimulator
from backend.extensions import db
from backend.ingest.pipeline import IngestPipeline
from backend.ingest.steps import tracking_step
from backend.models import Event
from backend.planning_service import plan_district
from gps_ingest.filters import FilterConfig
from gps_ingest.pipeline import Message
from tests.drives import local_ts

MONDAY = dt.date(2026, 11, 9)  # a school day in the past: old pings are let in (max_age_s=0)


class Outbox:
    """Where the simulator's devices publish: kept, to be handed to the ingest in order."""

    def __init__(self):
        self.sent: list[tuple[str, str, bytes]] = []  # (device, topic, payload)

    def connect(self, device):
        outbox = self

        class Device:
            def publish(self, topic, payload, qos=1):
                outbox.sent.append((device.device_id, topic, payload))

        return Device()


def test_the_demo_fleet_drives_the_planned_runs_and_the_tracker_follows_them(app, imported):
    draft, report = plan_district(imported, time_limit_s=2)
    with app.app_context():
        import_bundle(draft)
    planned = {r["id"]: r for r in draft["routes"]}
    assert len(planned) == report["routes"] >= 2
    # the demo's shapes read routes, stops, schools and riders from one bundle document
    district = {**imported, "routes": draft["routes"], "students": []}
    _, devices = sample_fleet(imported, local_ts(MONDAY, "06:00:00"))
    rng = random.Random(5)
    timelines, runs = [], {}
    for route_id, route in planned.items():
        run = route["runs"][0]
        assert run["vehicle_id"] in devices  # a bus of the demo fleet drives every planned run
        depart = local_ts(MONDAY, run["times"][0])
        shape = route_shape(district, route_id, with_riders=False)
        timelines.append(Timeline(run["vehicle_id"], bus_legs(
            run["vehicle_id"], [shape], depart, 120.0, rng)))
        runs[route_id] = run
    outbox = Outbox()
    simulator = FleetSimulator(app, "mqtt://unused", timelines, devices, every_s=5.0,
                               publisher=outbox.connect,
                               import_runs=lambda legs, now, fresh: 0)  # the plan's runs only
    first = min(local_ts(MONDAY, r["times"][0]) for r in runs.values()) - 180.0
    last = max(local_ts(MONDAY, r["times"][-1]) for r in runs.values()) + 600.0
    t = first
    while t <= last:
        simulator.tick(t)
        t += 5.0
    with app.app_context():
        pipeline = IngestPipeline(db.engine, FilterConfig(max_age_s=0),
                                  after_store=[tracking_step()])
    for device_id, topic, payload in outbox.sent:
        assert topic == f"xiaoche/v1/devices/{device_id}/pings"
        pipeline.process([Message(payload=payload, received_at=time.time(), kind="pings",
                                  device_id=device_id)])

    with app.app_context():
        events = db.session.execute(
            select(Event.kind, Event.vehicle_id, Event.route_id, Event.run_id, Event.stop_id)
            .order_by(Event.ts, Event.id)).all()
    for route_id, run in runs.items():
        mine = [e for e in events if e.route_id == route_id]
        kinds = [e.kind for e in mine]
        assert kinds and kinds[0] == "trip_started", (route_id, events)
        assert {e.run_id for e in mine} == {run["id"]}
        assert {e.vehicle_id for e in mine} == {run["vehicle_id"]}
        stops = [s["stop_id"] for s in planned[route_id]["stops"]]
        assert [e.stop_id for e in mine if e.kind == "stop_arrived"] == stops
        assert "stop_missed" not in kinds and "trip_completed" in kinds
    # (the buses keep today's runs next to the planned ones until the office retires them, so
    # this morning the tracker also follows each bus on its old run, missing its old stops)
