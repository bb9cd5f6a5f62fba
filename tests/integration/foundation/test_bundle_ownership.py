"""An import deletes only what imports own: never the demo's generated runs, runs made by a
substitute, or history; the summary says what it left alone (issue 15, item 2)."""

import datetime as dt
import json

import pytest
from sqlalchemy import select

from backend.bundle import import_bundle
from backend.demo.fleet import sample_fleet
from backend.demo.simulator import FleetSimulator
from backend.extensions import db
from backend.models import (
    Event,
    Ping,
    Route,
    RouteRun,
    RouteSubstitution,
    SubsidyEntry,
    TripAudit,
)
from tests.integration.foundation.test_bundle_import import snapshot

# Monday 23 November 2026, 06:30 in Lukou: the morning runs ahead
NOW = dt.datetime(2026, 11, 23, 6, 30, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()


def _demo_runs() -> dict[str, tuple]:
    rows = db.session.scalars(select(RouteRun).where(RouteRun.source == "demo"))
    return {r.id: (r.route_id, r.times_s, r.dates) for r in rows}


def _start_demo(app, bundle) -> int:
    """What `xiaoche demo` does before its buses drive: plan the fleet, import its runs."""
    timelines, devices = sample_fleet(bundle, NOW)
    simulator = FleetSimulator(app, "mqtt://unused", timelines, devices, clock=lambda: NOW)
    return simulator.plan(NOW)


def test_importing_the_sample_bundle_while_the_demo_runs_keeps_the_demos_runs(
    app, imported, sample_bundle
):
    generated = _start_demo(app, sample_bundle)
    with app.app_context():
        demo = _demo_runs()
        assert generated > 0 and len(demo) == generated
        assert all(run_id.startswith("demo-") for run_id in demo)
        summary = import_bundle(sample_bundle)
        assert _demo_runs() == demo
        assert {r.id for r in db.session.scalars(select(RouteRun).where(
            RouteRun.source == "bundle"))} == {"zt-am-1", "zt-pm-1", "lf-am-1"}
    assert summary.kept["runs"] == generated
    assert summary.kept_sources == {"runs": {"demo": generated}}
    assert not summary.deleted and not summary.updated


def test_the_bundle_replaces_its_own_runs_around_the_demos(app, imported, sample_bundle):
    generated = _start_demo(app, sample_bundle)
    route = sample_bundle["routes"][0]
    times = [s.pop("time") for s in route["stops"]]
    route["runs"] = [{"id": "zt-am-1-b", "times": times, "days": route.pop("days")}]
    with app.app_context():
        demo = _demo_runs()
        summary = import_bundle(sample_bundle)
        runs = {r.id: r.source for r in db.session.get(Route, "zt-am-1").runs}
        assert _demo_runs() == demo
    assert "zt-am-1" not in runs and runs["zt-am-1-b"] == "bundle"
    assert summary.deleted["runs"] == 1 and summary.created["runs"] == 1
    on_route = sum(1 for route_id, *_ in demo.values() if route_id == "zt-am-1")
    assert on_route > 0 and summary.kept["runs"] == generated


def test_a_demo_starting_again_replaces_its_own_runs_and_keeps_the_bundles(
    app, imported, sample_bundle
):
    _start_demo(app, sample_bundle)
    _start_demo(app, sample_bundle)
    with app.app_context():
        sources = dict(db.session.execute(select(RouteRun.id, RouteRun.source)).all())
    assert {i for i, s in sources.items() if s == "bundle"} == {"zt-am-1", "zt-pm-1", "lf-am-1"}
    assert {s for s in sources.values()} == {"bundle", "demo"}


def test_a_substitutes_run_and_the_history_survive_an_import(app, imported, sample_bundle):
    _start_demo(app, sample_bundle)
    with app.app_context():
        run_id = min(i for i, (route_id, *_) in _demo_runs().items() if route_id == "zt-am-1")
        db.session.add(RouteRun(id="sub-zt-am-1-20261123", route_id="zt-am-1",
                                times_s=[25000, 25500, 26000, 27000], dates=["2026-11-23"],
                                source="substitute"))
        db.session.add(RouteSubstitution(route_id="zt-am-1", service_date="2026-11-23",
                                         vehicle_id="bus-spare", set_by="houqin.wang",
                                         set_at=NOW))
        trip_id = f"bus-07/{run_id}/2026-11-23"
        db.session.add(Ping(device_id="dev-bus-07", vehicle_id="bus-07", ts=NOW, lat=27.45,
                            lon=113.23, received_at=NOW))
        db.session.add(Event(kind="trip_started", ts=NOW, vehicle_id="bus-07",
                             route_id="zt-am-1", trip_id=trip_id, run_id=run_id, created_at=NOW))
        db.session.add(TripAudit(trip_id=trip_id, service_date="2026-11-23", route_id="zt-am-1",
                                 run_id=run_id, vehicle_id="bus-07", result={}, computed_at=NOW))
        db.session.add(SubsidyEntry(
            trip_id="car-liu/t/2026-11-23", kind="trip", status="approved", teacher_id="t-liu",
            month="2026-11", service_date="2026-11-23", from_school_id="zhuting",
            to_school_id="longfeng", departed_at=NOW, arrived_at=NOW + 900, distance_km=9.0,
            tier=2, per_trip=10.0, amount=10.0, recorded_by="tracker", recorded_at=NOW))
        db.session.commit()
        history = {name: rows for name, rows in snapshot().items() if name not in BUNDLE_TABLES}
        assert all(history[t] for t in ("pings", "events", "trip_audits", "subsidy_entries",
                                         "route_substitutions"))
        sample_bundle["routes"][0]["stops"][1]["time"] = "07:00"
        summary = import_bundle(sample_bundle)
        run = db.session.get(RouteRun, "sub-zt-am-1-20261123")
        assert run is not None and run.source == "substitute"
        assert {n: r for n, r in snapshot().items() if n not in BUNDLE_TABLES} == history
    assert summary.kept_sources["runs"]["substitute"] == 1
    assert summary.updated["runs"] == 1


# what an import writes; every other table is history or state it never touches
BUNDLE_TABLES = {
    "districts", "calendar_days", "schools", "stops", "routes", "route_stops", "route_runs",
    "vehicles", "vehicle_routes", "devices", "students", "teachers", "teacher_assignments",
    "users", "user_students", "user_vehicles", "user_schools", "subsidy_policies",
}


def test_a_bundle_may_not_take_over_a_run_it_did_not_make(app, imported, sample_bundle):
    from backend.bundle import BundleError

    _start_demo(app, sample_bundle)
    with app.app_context():
        run_id, (route_id, times, dates) = sorted(_demo_runs().items())[0]
    route_index = next(i for i, r in enumerate(sample_bundle["routes"]) if r["id"] == route_id)
    route = sample_bundle["routes"][route_index]
    for s in route["stops"]:
        s.pop("time")
    route.pop("days")
    route["runs"] = [{"id": run_id, "times": [f"{t // 3600:02d}:{t // 60 % 60:02d}"
                                               for t in times], "dates": dates}]
    with app.app_context():
        try:
            import_bundle(sample_bundle)
        except BundleError as exc:
            errors = exc.errors
        else:
            raise AssertionError("a bundle took over a demo run")
    assert list(errors) == [f"routes[{route_index}].runs[0].id"]
    assert "demo" in errors[f"routes[{route_index}].runs[0].id"][0]


def test_the_cli_says_what_it_left_alone_and_why(app, imported, sample_bundle, tmp_path):
    from backend.cli.data import import_command

    generated = _start_demo(app, sample_bundle)
    path = tmp_path / "lukou.json"
    path.write_text(json.dumps(sample_bundle, ensure_ascii=False), encoding="utf-8")
    result = app.test_cli_runner().invoke(import_command, [str(path)])
    assert result.exit_code == 0, result.output
    assert (f"kept (not this import's to change or delete): runs {generated} (demo {generated})"
            in result.output.splitlines())


def test_a_route_cannot_lose_a_stop_under_a_run_it_does_not_own(app, imported, sample_bundle):
    from backend.bundle import BundleError

    _start_demo(app, sample_bundle)
    route = sample_bundle["routes"][0]
    del route["stops"][2]
    with app.app_context():
        before = snapshot()
        with pytest.raises(BundleError) as caught:
            import_bundle(sample_bundle)
        assert snapshot() == before
    assert list(caught.value.errors) == ["routes[0].stops"]
    assert "the demo's simulated buses" in caught.value.errors["routes[0].stops"][0]


def test_runs_stored_before_sources_existed_are_told_apart_by_the_demos_id_prefix(tmp_path):
    """Migration 0007 on a database at 0006 holding a bundle run and a demo run."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from backend.database import upgrade_schema
    from tests.conftest import make_test_app

    app = make_test_app(f"sqlite:///{tmp_path / 'old.sqlite3'}", tmp_path / "instance")
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory, revision="0006")
        db.session.execute(text(
            "INSERT INTO districts (id, name, timezone) VALUES ('lukou', 'L', 'Asia/Shanghai');"))
        db.session.execute(text(
            "INSERT INTO routes (id, district_id, name, path, corridor_m) "
            "VALUES ('r', 'lukou', 'R', '{}', 80)"))
        for run_id in ("r-0650", "demo-r-20261123-063000"):
            db.session.execute(text(
                "INSERT INTO route_runs (id, route_id, times_s, days, dates) "
                "VALUES (:id, 'r', '[1, 2]', NULL, '[\"2026-11-23\"]')"), {"id": run_id})
        db.session.commit()
    upgrade_schema(app)
    with app.app_context():
        sources = dict(db.session.execute(select(RouteRun.id, RouteRun.source)).all())
        db.session.remove()
        db.engine.dispose()
    assert sources == {"r-0650": "bundle", "demo-r-20261123-063000": "demo"}
