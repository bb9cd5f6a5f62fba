"""`audit_date`: a day's trips recomputed from the stored pings with the live tracker's code."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from backend.audit_service import UnknownVehicle, audit_date
from backend.bundle import import_bundle
from backend.extensions import db
from backend.models import TripAudit
from tests.conftest import route_copies
from tests.integration.audit.conftest import MONDAY, ingest, path_length_m

TRIP_ID = "20261123-zt-am-1-bus-07"
SPEC_KEYS = {
    "trip_id",
    "run_id",
    "route_id",
    "vehicle_id",
    "started_at",
    "completed_at",
    "distance_km",
    "max_speed_kmh",
    "stops",
    "deviations",
}


def audit_rows(app) -> list[tuple]:
    with app.app_context():
        rows = db.session.scalars(select(TripAudit).order_by(TripAudit.trip_id)).all()
        out = [
            (r.trip_id, r.service_date, r.route_id, r.run_id, r.vehicle_id, r.result) for r in rows
        ]
        db.session.rollback()
        return out


def test_an_on_time_run_is_audited_as_one_trip_with_every_stop_visited(app, imported, monday_drive):
    with app.app_context():
        summary = audit_date(MONDAY)
    assert (summary.vehicles, summary.trips) == (1, 1)
    assert (summary.stops_visited, summary.stops_missed, summary.stops_upcoming) == (4, 0, 0)
    [(trip_id, service_date, route_id, run_id, vehicle_id, result)] = audit_rows(app)
    assert (trip_id, service_date, route_id, vehicle_id) == (
        TRIP_ID,
        "2026-11-23",
        "zt-am-1",
        "bus-07",
    )
    assert run_id == result["run_id"]
    assert set(result) >= SPEC_KEYS
    assert [s["stop_id"] for s in result["stops"]] == [
        "longfeng-cun",
        "shitang-cun",
        "dongan-cun",
        "zhuting",
    ]
    assert all(s["status"] == "visited" for s in result["stops"])
    # on time: every stop after the first reached within two minutes of its schedule
    assert all(-120 <= s["late_s"] <= 0 for s in result["stops"][1:])
    assert result["started_at"].endswith("Z") and result["completed_at"].endswith("Z")
    assert result["stops"][1]["scheduled_at"] == "2026-11-22T22:58:00Z"  # 06:58 local
    assert result["deviations"] == []
    # the path is 3.5 km; fixes jittering while the bus waits at stops add a little
    path_km = path_length_m(imported, "zt-am-1") / 1000
    assert path_km * 0.95 <= result["distance_km"] <= path_km * 1.5
    assert result["max_speed_kmh"] == 30.0


def test_the_same_pings_arriving_shuffled_give_the_same_audit(app, imported, monday_drive):
    """A second bus with copies of the same routes receives the Monday drive as shuffled
    backlogs: its live tracker sees them out of order, the audit recomputes them in timestamp
    order."""
    with app.app_context():
        import_bundle(
            {
                "routes": route_copies(imported, ["zt-am-1", "zt-pm-1"], "-x"),
                "vehicles": [
                    {
                        "id": "bus-07x",
                        "kind": "school_bus",
                        "route_ids": ["zt-am-1-x", "zt-pm-1-x"],
                        "speed_limit_kmh": 60,
                    }
                ],
                "devices": [
                    {"id": "dev-bus-07x", "vehicle_id": "bus-07x", "token": "token-bus-07x"}
                ],
            }
        )
    shuffled = list(monday_drive)
    random.Random(3).shuffle(shuffled)
    assert ingest(app, shuffled, device_id="dev-bus-07x", chunk=25) == len(shuffled)
    with app.app_context():
        summary = audit_date(MONDAY)
    assert (summary.vehicles, summary.trips) == (2, 2)
    by_vehicle = {row[4]: row for row in audit_rows(app)}
    in_order, out_of_order = by_vehicle["bus-07"], by_vehicle["bus-07x"]
    assert out_of_order[0] == "20261123-zt-am-1-x-bus-07x"
    renamed = {**out_of_order[5], "trip_id": TRIP_ID, "vehicle_id": "bus-07",
               "route_id": in_order[5]["route_id"], "run_id": in_order[5]["run_id"]}
    assert renamed == in_order[5]


def test_auditing_a_day_twice_gives_the_same_rows(app, monday_drive):
    with app.app_context():
        first = audit_date(MONDAY)
    rows = audit_rows(app)
    with app.app_context():
        second = audit_date(MONDAY)
    assert audit_rows(app) == rows and len(rows) == 1
    assert first == second


def test_a_rerun_replaces_what_an_earlier_audit_stored_for_that_day(app, monday_drive):
    with app.app_context():
        db.session.add(
            TripAudit(
                trip_id="20261123-gone-bus-07",
                service_date="2026-11-23",
                route_id="zt-am-1",
                run_id="gone",
                vehicle_id="bus-07",
                result={},
                computed_at=0.0,
            )
        )
        db.session.add(
            TripAudit(
                trip_id="20261120-zt-am-1-bus-07",
                service_date="2026-11-20",
                route_id="zt-am-1",
                run_id="zt-am-1",
                vehicle_id="bus-07",
                result={},
                computed_at=0.0,
            )
        )
        db.session.commit()
        audit_date(MONDAY)
    assert [row[0] for row in audit_rows(app)] == ["20261120-zt-am-1-bus-07", TRIP_ID]


def test_a_day_without_service_audits_no_trips(app, monday_drive):
    with app.app_context():
        summary = audit_date(MONDAY.replace(day=22))  # the Sunday before: no pings, no runs
    assert (summary.vehicles, summary.trips) == (0, 0)
    assert audit_rows(app) == []


def test_only_the_vehicles_asked_for_are_audited(app, monday_drive):
    with app.app_context():
        assert audit_date(MONDAY, vehicle_ids=["bus-12"]).trips == 0
        assert audit_rows(app) == []
        assert audit_date(MONDAY, vehicle_ids=["bus-07"]).trips == 1
        with pytest.raises(UnknownVehicle, match="no-such-bus"):
            audit_date(MONDAY, vehicle_ids=["no-such-bus"])
