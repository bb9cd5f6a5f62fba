"""`audit_date(jobs=N)` and `xiaoche audit --jobs N`: vehicles read and tracked in worker
processes, while this process writes their results in vehicle order — the same rows, the same
summary and the same ledger bookings as one process."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

import backend.audit_service as audit_service
from backend.audit_service import UnknownVehicle, audit_date
from backend.bundle import import_bundle
from backend.extensions import db
from backend.models import SubsidyEntry, TripAudit
from backend.tracking_service import TrackingStep
from tests.conftest import route_copies
from tests.integration.audit.test_audit_cli import run_cli
from tests.integration.finance import month as m

TUESDAY = dt.date(2026, 10, 27)  # a school day, and one of 刘胜's days at 龙凤
EXTRA_BUSES = [f"bus-07{c}" for c in "abcde"]


@pytest.fixture
def busy_day(app, imported):
    """bus-07 and five buses with copies of its routes (each its own: a route several buses
    list is driven by one of them per run) drive Tuesday's zt-am-1 (the extra buses' pings
    arriving shuffled in small backlogs), the meal truck does its round, and 刘胜's car drives
    both ways with its pings stored without the ledger step: the audit has trips to find on
    seven vehicles and two teacher trips to book."""
    copies = [r for bus in EXTRA_BUSES
              for r in route_copies(imported, ["zt-am-1", "zt-pm-1"], f"-{bus}")]
    with app.app_context():
        import_bundle({
            "routes": copies,
            "vehicles": [{"id": bus, "kind": "school_bus",
                          "route_ids": [f"zt-am-1-{bus}", f"zt-pm-1-{bus}"],
                          "speed_limit_kmh": 60} for bus in EXTRA_BUSES],
            "devices": [{"id": f"dev-{bus}", "vehicle_id": bus, "token": f"token-{bus}"}
                        for bus in EXTRA_BUSES],
        })
    drive = m.bus_day(imported, TUESDAY)
    m.feed(app, "dev-bus-07", drive)
    for k, bus in enumerate(EXTRA_BUSES):
        shuffled = list(drive)
        random.Random(k).shuffle(shuffled)
        m.feed(app, f"dev-{bus}", shuffled)
    m.feed(app, "dev-truck-01", m.truck_day(TUESDAY))
    m.feed(app, "dev-car-liu", m.teacher_day(TUESDAY), TrackingStep(event_steps=[]))
    return app


def stored(app) -> tuple[list[tuple], list[tuple]]:
    """The trip audits (without when they were computed) and the ledger entries of the day."""
    with app.app_context():
        audits = [(r.trip_id, r.service_date, r.route_id, r.run_id, r.vehicle_id, r.result)
                  for r in db.session.scalars(select(TripAudit).order_by(TripAudit.trip_id))]
        ledger = sorted((e.teacher_id, e.from_school_id, e.to_school_id, e.status, e.recorded_by)
                        for e in db.session.scalars(select(SubsidyEntry).filter_by(
                            service_date=TUESDAY.isoformat())))
        db.session.rollback()
    return audits, ledger


def test_two_workers_write_what_one_process_writes(busy_day, monkeypatch, tmp_path):
    pids = tmp_path / "pids"
    compute = audit_service.compute_vehicle_day

    def recording(*args, **kwargs):
        with open(pids, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
        return compute(*args, **kwargs)

    monkeypatch.setattr(audit_service, "compute_vehicle_day", recording)
    with busy_day.app_context():
        parallel = audit_date(TUESDAY, jobs=2)
    workers = set(pids.read_text(encoding="utf-8").split())
    pids.unlink()
    in_parallel = stored(busy_day)
    with busy_day.app_context():
        serial = audit_date(TUESDAY, jobs=1)
    assert set(pids.read_text(encoding="utf-8").split()) == {str(os.getpid())}
    assert str(os.getpid()) not in workers and 1 <= len(workers) <= 2

    # what the two runs wrote is the same; the ledger was booked once, by the first run
    assert stored(busy_day) == in_parallel
    audits, ledger = in_parallel
    assert sorted({row[4] for row in audits}) == ["bus-07", *EXTRA_BUSES]
    assert len(audits) == 6
    assert len(ledger) == 2 and {entry[-1] for entry in ledger} == {"audit"}
    assert (parallel.trips, parallel.vehicles, parallel.teacher_trips_booked) == (6, 6, 2)
    assert dataclasses.replace(parallel, teacher_trips_booked=0) == serial
    # and a serial audit from scratch agrees with both
    with busy_day.app_context():
        db.session.query(TripAudit).delete()
        db.session.commit()
        assert audit_date(TUESDAY) == serial
    assert stored(busy_day) == in_parallel


def test_more_workers_than_vehicles_and_one_vehicle(busy_day):
    with busy_day.app_context():
        whole = audit_date(TUESDAY, jobs=8)
        one = audit_date(TUESDAY, vehicle_ids=["bus-07c"], jobs=2)
        with pytest.raises(UnknownVehicle, match="no-such-bus"):
            audit_date(TUESDAY, vehicle_ids=["no-such-bus"], jobs=2)
    assert (whole.trips, one.trips, one.vehicles) == (6, 1, 1)


def test_a_worker_failing_fails_the_audit_and_what_was_written_stays_consistent(busy_day,
                                                                               monkeypatch):
    compute = audit_service.compute_vehicle_day

    def failing(engine, vehicle_id, *args, **kwargs):
        if vehicle_id == "bus-07c":
            raise RuntimeError("worker lost its database")
        return compute(engine, vehicle_id, *args, **kwargs)

    monkeypatch.setattr(audit_service, "compute_vehicle_day", failing)
    with busy_day.app_context(), pytest.raises(RuntimeError, match="worker lost its database"):
        audit_date(TUESDAY, jobs=2)
    audits, _ = stored(busy_day)
    # vehicles are written in id order as their results come: those before bus-07c only
    assert sorted({row[4] for row in audits}) == ["bus-07", "bus-07a", "bus-07b"]
    monkeypatch.setattr(audit_service, "compute_vehicle_day", compute)
    with busy_day.app_context():  # the process's own database connections still work
        assert audit_date(TUESDAY, jobs=2).trips == 6


def test_the_audit_command_takes_jobs(busy_day, tmp_path):
    url = busy_day.config["SQLALCHEMY_DATABASE_URI"]
    done = run_cli(url, tmp_path, "--date", TUESDAY.isoformat(), "--jobs", "2")
    assert done.returncode == 0, done.stderr
    assert f"audited {TUESDAY.isoformat()}: 6 vehicles, 6 trips" in done.stdout
    assert "2 teacher trips booked" in done.stdout
    bad = run_cli(url, tmp_path, "--date", TUESDAY.isoformat(), "--jobs", "0")
    assert bad.returncode == 2 and "--jobs" in bad.stderr


@pytest.mark.parametrize(("url", "parallel"), [
    ("sqlite://", False),
    ("sqlite:///:memory:", False),
    ("sqlite:///file:audit?mode=memory&cache=shared&uri=true", False),
    ("sqlite:////var/lib/xiaoche/xiaoche.sqlite3", True),
    ("postgresql+psycopg://xiaoche@db/xiaoche", True),
])
def test_workers_only_where_they_can_open_the_database(url, parallel):
    engine = create_engine(url, poolclass=NullPool)
    try:
        assert audit_service._parallel_ok(engine) is parallel
    finally:
        engine.dispose()
