"""How long the daily audit of a county takes: ``xiaoche audit --date D`` on PostgreSQL.

    .venv/bin/python bench/audit.py [--vehicles 300] [--hours 10] [--every 5] [--runs 3] [--quick]
                                    [--jobs N[,M…]] [--keep] [--reuse]

A county-day: ``--vehicles`` school buses, each on its own generated route near 朱亭, drive
their morning run at 06:45 and then stand at the school reporting every ``--every`` seconds until
``--hours`` after 06:45 (300 × 10 h at 5 s ≈ 2.2 M pings). The pings are bulk-loaded into a
fresh database (not timed), then ``audit_date`` — what the CLI and the nightly job run — is timed
end to end: reading every vehicle's pings, tracking them, writing the trip audits. Medians of
``--runs``; numbers only, no assertions. The database ``xiaoche_bench_audit`` on
127.0.0.1:5432 is dropped and recreated at the start and dropped at the end (``--keep`` leaves it;
``--reuse`` audits a kept one as it is, skipping the two minutes of generating and loading).

``--jobs`` is ``audit_date``'s worker processes (``xiaoche audit --jobs``; default the CPU count,
which is ``xiaoche audit``'s default up to 8 CPUs);
a comma-separated list (``--jobs 1,2``) times each setting in every run, interleaved, and checks
that they wrote the same trip audits.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402

from routing.calendar import format_hms  # noqa: E402
from tests.unit.routing.simulate import (  # noqa: E402
    MONDAY,
    at,
    drive,
    make_route,
    path_length,
    random_polyline,
    to_lonlat,
)

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
DATABASE = "xiaoche_bench_audit"
SAMPLE = Path(__file__).resolve().parents[1] / "backend" / "sample" / "lukou.json"
T0 = at(MONDAY, "06:45")
LOAD_BATCH = 20_000


def existing_pings() -> int | None:
    """Pings of a kept bench database, or None when there is none."""
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"),
                             {"d": DATABASE}).first()
    admin.dispose()
    if found is None:
        return None
    engine = create_engine(f"{SERVER}/{DATABASE}")
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM pings")).scalar()
    finally:
        engine.dispose()


def stored_audits(app) -> list[tuple]:
    """The trip audits written, minus their computation time: what two settings must agree on."""
    from backend.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT trip_id, service_date, route_id, run_id, vehicle_id, result::text "
            "FROM trip_audits ORDER BY trip_id"))]


def recreate_database() -> str:
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}"'))
        conn.execute(text(f'CREATE DATABASE "{DATABASE}"'))
    admin.dispose()
    return f"{SERVER}/{DATABASE}"


def drop_database() -> None:
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    admin.dispose()


def county(vehicles: int, hours: float, every_s: float):
    """(bundle, pings per vehicle id) of a county-day."""
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
    bundle = {"district": sample["district"], "schools": sample["schools"], "stops": [],
              "routes": [], "vehicles": [], "devices": []}
    pings: dict[str, list] = {}
    end = T0 + hours * 3600
    for i in range(vehicles):
        rng = random.Random(i)
        xy = random_polyline(rng, 8)
        length = path_length(xy)
        along = [length * k / 7 for k in range(8)]
        times, t = [], T0
        for k, a in enumerate(along):
            t = T0 if k == 0 else t + (a - along[k - 1]) / 10.0 + 30
            times.append(int(t - at(MONDAY, "00:00")))
        route = make_route(f"b{i:03d}", xy, along, times, radius_m=60, school_last=False)
        run = drive(route, xy, along, T0, [rng.uniform(8, 12)] * 8,
                    [rng.uniform(10, 40) for _ in along[:-1]] + [0.0], every_s, 8.0, i)
        last = run.pings[-1]
        rows = [(p.ts, p.lat, p.lon, p.speed_kmh) for p in run.pings]
        t = last.ts + every_s
        while t < end:  # parked at the school, still reporting
            lon, lat = to_lonlat(*xy[-1])
            rows.append((t, lat + rng.gauss(0, 3e-5), lon + rng.gauss(0, 3e-5), 0.0))
            t += every_s
        vid = f"bus-b{i:03d}"
        pings[vid] = rows
        for j, place in enumerate(route.stops):
            bundle["stops"].append({"id": place.id, "name": f"站{i}-{j}", "lat": place.lat,
                                    "lon": place.lon, "radius_m": place.radius_m})
        bundle["routes"].append({
            "id": route.id, "name": f"线路{i}", "school_id": None, "corridor_m": 80,
            "path": {"type": "LineString", "coordinates": [list(c) for c in route.path]},
            "stops": [{"stop_id": s.id, "time": format_hms(ts)}
                      for s, ts in zip(route.stops, times, strict=True)],
            "days": [1, 2, 3, 4, 5]})
        bundle["vehicles"].append({"id": vid, "kind": "school_bus", "route_ids": [route.id],
                                   "speed_limit_kmh": 60})
        bundle["devices"].append({"id": f"dev-b{i:03d}", "vehicle_id": vid,
                                  "token": f"bench-token-{i:04d}"})
    return bundle, pings


def load(app, pings: dict[str, list]) -> int:
    from backend.extensions import db
    from backend.ingest.store import insert_pings

    rows = [{"device_id": "dev-" + vid[4:], "vehicle_id": vid, "ts": ts, "lat": lat, "lon": lon,
             "speed_kmh": v, "heading_deg": None, "accuracy_m": None, "alt_m": None,
             "battery_pct": None, "seq": None, "received_at": ts}
            for vid, vehicle_rows in pings.items() for ts, lat, lon, v in vehicle_rows]
    with app.app_context():
        for k in range(0, len(rows), LOAD_BATCH):
            with db.engine.begin() as conn:
                insert_pings(conn, rows[k:k + LOAD_BATCH])
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE pings"))
    return len(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=300)
    parser.add_argument("--hours", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", default=str(os.cpu_count() or 1),
                        help="worker processes (default: the CPU count, as xiaoche audit up to 8); "
                             "a comma-separated list times each, interleaved")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--reuse", action="store_true",
                        help="audit the kept database as it is (no generating, no loading)")
    parser.add_argument("--quick", action="store_true", help="30 vehicles × 2 h, one run")
    args = parser.parse_args(argv)
    if args.quick:
        args.vehicles, args.hours, args.runs = 30, 2.0, 1
    jobs = [int(j) for j in args.jobs.split(",")]

    import backend.security
    from backend import create_app
    from backend.audit_service import audit_date
    from backend.bundle import import_bundle
    from backend.database import upgrade_schema

    backend.security.PASSWORD_METHOD = "pbkdf2:sha256:1000"  # the bench times the audit, not hashing
    total = existing_pings() if args.reuse else None
    url = f"{SERVER}/{DATABASE}" if total else recreate_database()
    try:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
        upgrade_schema(app)
        if total:
            print(f"county-day: the kept database, {total:,} pings")
        else:
            started = time.perf_counter()
            bundle, pings = county(args.vehicles, args.hours, args.every)
            with app.app_context():
                import_bundle(bundle)
            total = load(app, pings)
            print(f"county-day: {args.vehicles} buses × {args.hours:g} h every {args.every:g} s = "
                  f"{total:,} pings (generated and loaded in {time.perf_counter() - started:.0f} s)")
        print(f"{os.cpu_count()} cores, 1-minute load average {os.getloadavg()[0]:.1f}")
        seconds: dict[int, list[float]] = {j: [] for j in jobs}
        written: dict[int, list[tuple]] = {}
        trips = 0
        for run in range(args.runs):
            for j in jobs:
                load_before = os.getloadavg()[0]
                with app.app_context():
                    start = time.perf_counter()
                    summary = audit_date(MONDAY, jobs=j)
                    seconds[j].append(time.perf_counter() - start)
                trips = summary.trips
                print(f"  run {run + 1}/{args.runs}, jobs {j}: {seconds[j][-1]:.1f} s, "
                      f"{summary.trips} trips, {summary.vehicles} vehicles, stops visited "
                      f"{summary.stops_visited}, missed {summary.stops_missed}, "
                      f"load {load_before:.1f}", flush=True)
                if len(jobs) > 1 and run == 0:
                    written[j] = stored_audits(app)
        for j in (j for j in jobs if seconds[j]):  # --runs 0 --keep: only load
            median = statistics.median(seconds[j])
            print(f"audit of {total:,} pings, jobs {j}: median {median:.1f} s over {args.runs} "
                  f"run(s) ({' / '.join(f'{s:.1f}' for s in seconds[j])}), "
                  f"{total / median:,.0f} pings/s, {trips} trips (target < 30 s for 300 × 10 h)")
        if written:
            same = all(rows == written[jobs[0]] for rows in written.values())
            print(f"trip audits written identical across jobs {args.jobs}: {same}")
    finally:
        if not args.keep:
            drop_database()


if __name__ == "__main__":
    main()
