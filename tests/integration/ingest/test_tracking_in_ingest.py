"""Tracking inside the ingest transaction: a bus driving its route over MQTT becomes events, and
tracker state kept in the database lets any ingest process take any vehicle's next batch."""

from __future__ import annotations

import datetime as dt
import time

import orjson
from sqlalchemy import delete, select

from backend.extensions import db
from backend.ingest.pipeline import IngestPipeline
from backend.ingest.steps import tracking_step
from backend.models import Event, LivePosition, Ping, TrackerState
from gps_ingest.filters import FilterConfig
from gps_ingest.pipeline import Message
from tests.drives import ZT_AM_1_STOPS, on_schedule_drive
from tests.integration.ingest.test_mqtt_ingest import publish_all

MONDAY = dt.date(2026, 11, 9)  # in the past: a drive "this morning" could be ahead of the clock
DEVICE, VEHICLE = "dev-bus-07", "bus-07"


def ping_objects(rows) -> list[dict]:
    return [{"ts": ts, "lat": lat, "lon": lon, "speed_kmh": v} for ts, lat, lon, v in rows]


def stored_events(app) -> list[tuple[str, float, str | None, str | None]]:
    with app.app_context():
        rows = db.session.execute(
            select(Event.kind, Event.ts, Event.route_id, Event.stop_id)
            .where(Event.vehicle_id == VEHICLE).order_by(Event.ts, Event.id)).all()
        db.session.rollback()
    return [tuple(r) for r in rows]


def wait_for_event(app, kind: str, timeout_s: float, process) -> list:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        events = stored_events(app)
        if any(e[0] == kind for e in events):
            return events
        if process.process.poll() is not None:
            raise AssertionError(f"ingest exited early:\n{process.output()}")
        time.sleep(0.2)
    raise AssertionError(f"no {kind} within {timeout_s} s; events: {stored_events(app)}\n"
                         f"{process.output()}")


def test_a_bus_driving_its_route_over_mqtt_becomes_trip_and_stop_events_in_order(
        app, imported, mqtt_url, ingest_process):
    ingest_process.start(XIAOCHE_MAX_PING_AGE_S="0")
    pings = ping_objects(on_schedule_drive(imported, MONDAY))
    topic = f"xiaoche/v1/devices/{DEVICE}/pings"
    # the first part live, one ping a message; the rest as a backlog array after a dead zone
    split = len(pings) // 2
    messages = [(topic, orjson.dumps(p)) for p in pings[:split]]
    messages.append((topic, orjson.dumps(pings[split:])))
    publish_all(mqtt_url, messages)

    events = wait_for_event(app, "trip_completed", 60, ingest_process)
    kinds = [e[0] for e in events]
    assert kinds[0] == "trip_started" and kinds[-1] == "trip_completed"
    assert [e[3] for e in events if e[0] == "stop_arrived"] == ZT_AM_1_STOPS
    assert {e[2] for e in events} == {"zt-am-1"}
    assert "stop_missed" not in kinds
    with app.app_context():
        assert db.session.get(LivePosition, VEHICLE).ts == pings[-1]["ts"]
        state = db.session.get(TrackerState, VEHICLE)
        assert state.last_ts == pings[-1]["ts"] and state.state["trip"] is None


def run_in_batches(app, pipelines, pings, size: int) -> None:
    """Feed ``pings`` in batches of ``size``, batch k through ``pipelines[k % len]``."""
    for k, start in enumerate(range(0, len(pings), size)):
        message = Message(payload=orjson.dumps(pings[start:start + size]), received_at=time.time(),
                          kind="pings", device_id=DEVICE)
        pipelines[k % len(pipelines)].process([message])


def fresh_pipeline(app) -> IngestPipeline:
    """A pipeline as a separate ingest process has one: its own caches, the shared database."""
    with app.app_context():
        return IngestPipeline(db.engine, FilterConfig(max_age_s=0), after_store=[tracking_step()])


def test_two_ingest_workers_taking_turns_on_one_bus_produce_the_events_of_one_worker(
        app, imported):
    pings = ping_objects(on_schedule_drive(imported, MONDAY))
    run_in_batches(app, [fresh_pipeline(app)], pings, size=7)
    one_worker = stored_events(app)
    assert [e[3] for e in one_worker if e[0] == "stop_arrived"] == ZT_AM_1_STOPS

    with app.app_context():
        for table in (Event, Ping, TrackerState, LivePosition):
            db.session.execute(delete(table))
        db.session.commit()
    run_in_batches(app, [fresh_pipeline(app), fresh_pipeline(app)], pings, size=7)
    assert stored_events(app) == one_worker
