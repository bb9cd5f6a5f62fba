"""The real Cairns GTFS feed, imported into the real database and driven by a synthetic bus.

The bus keeps to one trip's published stop times along its published shape, both read straight
from the zip (not from the import), pinging every 10 s with a few metres of noise; the tracker,
reading the imported route as ingest does (``route_definition``), must arrive at every stop, in
order, within one sampling interval of the published time.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import random
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from pyproj import Transformer
from sqlalchemy import func, select

from backend.bundle import import_bundle
from backend.extensions import db
from backend.gtfs_import import bundle_from_gtfs
from backend.models import District, Route, RouteRun, Stop
from backend.tracking_service import route_definition
from routing import model as rm
from routing.tracker import track
from tests.conftest import FIXTURES

CAIRNS = FIXTURES / "gtfs" / "cairns_gtfs.zip"
CAIRNS_TZ = ZoneInfo("Australia/Brisbane")  # agency.txt; written here, not read back, on purpose
A_SCHOOL_TUESDAY = dt.date(2014, 9, 9)  # inside the weekday service's range, no exception
QUEENS_BIRTHDAY = dt.date(2014, 6, 9)  # a Monday calendar_dates.txt removes from weekday service
EVERY_S = 10.0
TOLERANCE_S = 5.0
REPO = Path(__file__).resolve().parents[3]


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _epoch(service_date: dt.date, seconds: int) -> float:
    midnight = dt.datetime.combine(service_date, dt.time(0), tzinfo=CAIRNS_TZ)
    return midnight.timestamp() + seconds


def _strictly_increasing(run: rm.Run) -> bool:
    return all(b > a for a, b in zip(run.times_s, run.times_s[1:], strict=False))


def _gtfs(name: str) -> list[dict[str, str]]:
    with zipfile.ZipFile(CAIRNS) as feed, feed.open(name) as raw:
        return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig")))


@dataclass
class PublishedTrip:
    """One trip as the feed publishes it: shape (lon, lat), stops (id, lat, lon), times (s)."""

    shape: list[tuple[float, float]]
    stops: list[tuple[str, float, float]]
    times_s: list[int]


def _published(trip_id: str) -> PublishedTrip:
    shape_id = next(t["shape_id"] for t in _gtfs("trips.txt") if t["trip_id"] == trip_id)
    points = sorted(
        (int(p["shape_pt_sequence"]), float(p["shape_pt_lon"]), float(p["shape_pt_lat"]))
        for p in _gtfs("shapes.txt")
        if p["shape_id"] == shape_id
    )
    where = {s["stop_id"]: (float(s["stop_lat"]), float(s["stop_lon"])) for s in _gtfs("stops.txt")}
    rows = sorted(
        (int(r["stop_sequence"]), r["stop_id"], r["arrival_time"])
        for r in _gtfs("stop_times.txt")
        if r["trip_id"] == trip_id
    )
    assert all(t for _, _, t in rows), "the drive needs a published time at every stop"
    seconds = [
        sum(int(v) * f for v, f in zip(t.split(":"), (3600, 60, 1), strict=True))
        for _, _, t in rows
    ]
    return PublishedTrip(
        shape=[(lon, lat) for _, lon, lat in points],
        stops=[(s, *where[s]) for _, s, _ in rows],
        times_s=seconds,
    )


def _drive(trip: PublishedTrip, service_date: dt.date, seed: int) -> list[rm.Ping]:
    """Pings of a bus that waits at the first stop, then is at every stop at its published time,
    moving along the shape at constant speed between stops; every ``EVERY_S``, ~3 m of noise.

    Independent of the tracker's geometry, with its own projection and its own reading of "at
    the stop": the bus is at it where the shape, after the previous stop, comes nearest to it
    (not where it first enters the stop's circle: route 133 passes stop 750255 30 m away on a
    parallel street, inside the circle, 350 m before it comes within 10 m).
    """
    lons, lats = zip(*trip.shape, strict=True)
    proj = Transformer.from_crs(
        "EPSG:4326",
        f"+proj=tmerc +lat_0={np.mean(lats)} +lon_0={np.mean(lons)} +k=1 +datum=WGS84 +units=m",
        always_xy=True,
    )
    back = Transformer.from_crs(proj.target_crs, "EPSG:4326", always_xy=True)
    line = shapely.LineString(np.column_stack(proj.transform(lons, lats)))
    along, previous = [], 0.0
    for _, lat, lon in trip.stops:
        rest = np.arange(previous, line.length, 1.0)
        gap = shapely.distance(
            shapely.line_interpolate_point(line, rest), shapely.Point(proj.transform(lon, lat))
        )
        previous = float(rest[int(np.argmin(gap))])
        along.append(previous)
    times = [_epoch(service_date, t) for t in trip.times_s]
    knots_t = [times[0] - EVERY_S / 2, *times]
    knots_a = [along[0], *along]
    rng = random.Random(seed)
    pings = []
    t = knots_t[0] + rng.uniform(0, EVERY_S / 2)
    while t <= knots_t[-1] + EVERY_S:
        a = float(np.interp(t, knots_t, knots_a))
        ahead = float(np.interp(t + 1.0, knots_t, knots_a))
        point = line.interpolate(a)
        lon, lat = back.transform(point.x + rng.gauss(0, 3.0), point.y + rng.gauss(0, 3.0))
        pings.append(
            rm.Ping(ts=round(t, 3), lat=lat, lon=lon, speed_kmh=(ahead - a) * 3.6, accuracy_m=5.0)
        )
        t += EVERY_S
    return pings


def _replay(ctx: rm.VehicleContext, pings: list[rm.Ping]) -> list[rm.Event]:
    """Feed the pings as ingest would: small batches, the state carried between them."""
    state, events = None, []
    for i in range(0, len(pings), 6):
        state, new = track(ctx, state, pings[i : i + 6])
        events.extend(new)
    return events


def _imported_route(app) -> tuple[rm.Route, rm.VehicleContext]:
    """Import the feed; take the route with the most runs whose times strictly increase (a bus
    can keep to those exactly: this minute-rounded feed often gives neighbouring stops one time)
    and a vehicle context with just that route, read back as ingest reads it."""
    with app.app_context():
        import_bundle(bundle_from_gtfs(CAIRNS))
        routes = [route_definition(db.session, r) for r in db.session.scalars(select(Route))]
        timezone = db.session.scalar(select(District.timezone))
    route = max(routes, key=lambda r: (sum(map(_strictly_increasing, r.runs)), r.id))
    ctx = rm.VehicleContext(
        vehicle_id="sim-bus",
        kind="school_bus",
        speed_limit_kmh=None,
        routes=(route,),
        schools=(),
        calendar=rm.Calendar(timezone=timezone),
    )
    return route, ctx


def _a_weekday_run(route: rm.Route) -> rm.Run:
    return next(r for r in route.runs if _strictly_increasing(r) and "Weekday" in r.id)


def test_the_cairns_feed_imports_every_route_pattern_stop_and_trip(app):
    bundle = bundle_from_gtfs(CAIRNS)
    with app.app_context():
        summary = import_bundle(bundle)
        stops_of_routes = sum(len(r["stops"]) for r in bundle["routes"])
        assert summary.created == {"district": 1, "routes": 54, "stops": 416, "runs": 1339,
                                   "route_stops": stops_of_routes}
        assert (_count(District), _count(Route), _count(Stop), _count(RouteRun)) == (
            1,
            54,
            416,
            1339,
        )  # trips.txt has 1339 trips, each a run
        district = db.session.get(District, "cairns_gtfs")
        assert district.timezone == "Australia/Brisbane"
        run = db.session.get(RouteRun, "CNS2014-CNS_MUL-Weekday-00-4165878")
        assert run.route_id.startswith("110-423") and run.times_s[0] == 5 * 3600 + 50 * 60
        assert run.days is None and "2014-06-09" not in run.dates and "2014-06-10" in run.dates


def test_importing_the_cairns_feed_twice_changes_nothing_the_second_time(app):
    with app.app_context():
        import_bundle(bundle_from_gtfs(CAIRNS))
        before = sorted(
            db.session.execute(
                select(RouteRun.id, RouteRun.route_id, RouteRun.times_s, RouteRun.dates)
            ).all()
        )
        bundle = bundle_from_gtfs(CAIRNS)
        summary = import_bundle(bundle)
        assert not summary.created and not summary.updated and not summary.deleted
        stops_of_routes = sum(len(r["stops"]) for r in bundle["routes"])
        assert summary.unchanged == {"district": 1, "routes": 54, "stops": 416, "runs": 1339,
                                     "route_stops": stops_of_routes}
        after = sorted(
            db.session.execute(
                select(RouteRun.id, RouteRun.route_id, RouteRun.times_s, RouteRun.dates)
            ).all()
        )
        assert after == before


def test_a_bus_keeping_to_a_real_cairns_timetable_arrives_at_every_stop_on_time(app):
    route, ctx = _imported_route(app)
    run = _a_weekday_run(route)
    published = _published(run.id)  # GTFS trip ids are safe bundle ids: kept as they are
    events = _replay(ctx, _drive(published, A_SCHOOL_TUESDAY, seed=7))

    started = [e for e in events if e.kind == "trip_started"]
    assert [(e.run_id, e.route_id) for e in started] == [(run.id, route.id)]
    arrivals = [e for e in events if e.kind == "stop_arrived"]
    assert [e.stop_id for e in arrivals] == [stop_id for stop_id, _, _ in published.stops]
    assert not [e for e in events if e.kind == "stop_missed"]
    scheduled = [_epoch(A_SCHOOL_TUESDAY, t) for t in published.times_s]
    late = [round(e.ts - at, 1) for e, at in zip(arrivals, scheduled, strict=True)]
    assert max(abs(s) for s in late) <= EVERY_S + TOLERANCE_S, late
    # ... and the tracker measured them against the same times, read from the import
    assert [e.details["scheduled_at"] for e in arrivals] == scheduled
    assert [e.details["late_s"] for e in arrivals] == late
    done = [e for e in events if e.kind == "trip_completed"]
    assert len(done) == 1 and done[0].details["reason"] == "last_stop"
    assert done[0].details["stops_visited"] == len(published.stops)


def test_the_same_drive_on_a_date_the_feed_removes_from_the_service_matches_no_run(app):
    route, ctx = _imported_route(app)
    run = _a_weekday_run(route)
    assert A_SCHOOL_TUESDAY in run.dates and QUEENS_BIRTHDAY not in run.dates
    events = _replay(ctx, _drive(_published(run.id), QUEENS_BIRTHDAY, seed=8))
    assert not [e for e in events if e.run_id == run.id]


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "XIAOCHE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "XIAOCHE_INSTANCE_PATH": str(tmp_path / "instance"),
    }
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "import-gtfs", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_writes_the_bundle_of_the_chosen_routes_with_out(tmp_path):
    out = tmp_path / "cairns-110.json"
    done = _cli(
        tmp_path, str(CAIRNS), "--route", "110-423", "--out", str(out), "--district-id", "cairns"
    )
    assert done.returncode == 0, done.stderr
    assert "4 routes, 125 runs, 66 stops" in done.stdout
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written == bundle_from_gtfs(CAIRNS, ["110-423"], "cairns")
    assert not (tmp_path / "cli.sqlite3").exists()  # written, not imported


def test_the_command_imports_into_the_database_and_a_second_run_changes_nothing(tmp_path):
    first = _cli(tmp_path, str(CAIRNS))
    assert first.returncode == 0, first.stderr
    stops_of_routes = sum(len(r["stops"]) for r in bundle_from_gtfs(CAIRNS)["routes"])
    counts = f"district 1, route_stops {stops_of_routes}, routes 54, runs 1339, stops 416"
    assert f"created: {counts}" in first.stdout.splitlines()
    second = _cli(tmp_path, str(CAIRNS))
    assert second.returncode == 0, second.stderr
    assert f"unchanged: {counts}" in second.stdout.splitlines()
    assert "created" not in second.stdout and "updated" not in second.stdout
    assert "deleted" not in second.stdout


def test_the_command_refuses_a_file_that_is_not_a_feed_or_an_unknown_route_without_a_traceback(
    tmp_path,
):
    not_a_zip = tmp_path / "feed.zip"
    not_a_zip.write_text("route_id,route_short_name\n", encoding="utf-8")
    bad = _cli(tmp_path, str(not_a_zip))
    assert bad.returncode == 1
    assert "not a GTFS zip" in bad.stderr and "Traceback" not in bad.stderr
    unknown = _cli(tmp_path, str(CAIRNS), "--route", "999-nope", "--out", str(tmp_path / "x"))
    assert unknown.returncode == 1
    assert "no route '999-nope'" in unknown.stderr and "Traceback" not in unknown.stderr
    assert not (tmp_path / "x").exists()
