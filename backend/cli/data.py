"""Data in and out: import a bundle or a GTFS feed, replay a trace, audit a day."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from backend.cli.common import load_json, prepare_database
from backend.cli.group import main


@main.command("import")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def import_command(bundle: Path) -> None:
    """Create or update everything in a district BUNDLE (JSON, SPEC §3). Idempotent."""
    from backend.bundle import BundleError, import_bundle
    from backend.database import upgrade_schema

    upgrade_schema(current_app)
    try:
        summary = import_bundle(load_json(bundle))
    except BundleError as exc:
        for line in exc.lines():
            click.echo(line, err=True)
        raise click.ClickException(f"{exc}; nothing was written") from exc
    for line in summary.lines():
        click.echo(line)


@main.command("replay")
@click.argument("trace", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--device", "device_id", default=None,
              help="the registered device that recorded it [not for a CSV with a device_id "
                   "column: a fleet's day, every device of the file together]")
@click.option("--skip-bad", is_flag=True, help="read past bad trace lines (counted and listed)")
@click.option("--etas", is_flag=True,
              help="also print every ETA prediction (per ping and stop ahead) as a JSON line: "
                   "as_of, trip_id, run_id, vehicle_id, stop_id, eta, uncertainty_s")
@with_appcontext
def replay_command(trace: Path, device_id: str | None, skip_bad: bool, etas: bool) -> None:
    """Feed a recorded TRACE (GPX, CSV, OwnTracks .rec / JSON lines) through the ingest
    pipeline in event time and print the events it produced."""
    from backend.replay import ReplayError, eta_lines, replay_trace, report_lines
    from gps_ingest.traces import TraceError

    prepare_database(with_sample=False)
    try:
        result = replay_trace(current_app._get_current_object(), trace, device_id, skip_bad,
                              etas=etas)
    except TraceError as exc:
        raise click.ClickException(
            f"{exc}; nothing was replayed (--skip-bad reads past bad lines)"
        ) from exc
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in eta_lines(result):
        click.echo(line)
    for line in report_lines(result):
        click.echo(line)


@main.command("import-gtfs")
@click.argument("feed", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--route", "route_ids", multiple=True, help="a GTFS route_id to take (repeatable)")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write the bundle to this JSON file instead of importing it",
)
@click.option("--district-id", default=None, help="the district's id [default: from FEED's name]")
@with_appcontext
def import_gtfs_command(
    feed: Path, route_ids: tuple[str, ...], out: Path | None, district_id: str | None
) -> None:
    """Convert a GTFS static FEED (zip) to a district bundle and import it (or write it to --out).

    One bundle route per GTFS route and (shape, stop pattern), one run per trip; see
    backend/gtfs_import.py for how calendars, missing times and ids are translated."""
    import time

    from backend.bundle import BundleError, import_bundle
    from backend.database import upgrade_schema
    from backend.gtfs_import import GtfsError, convert_gtfs

    started = time.monotonic()
    try:
        conversion = convert_gtfs(feed, route_ids or None, district_id, progress=True)
    except GtfsError as exc:
        raise click.ClickException(str(exc)) from exc
    s = conversion.summary()
    click.echo(
        f"{feed.name}: {s['gtfs_routes']} GTFS routes -> {s['routes']} routes, "
        f"{s['runs']} runs, {s['stops']} stops (district {s['district']}, {s['timezone']}) "
        f"in {time.monotonic() - started:.1f} s"
    )
    if s["skipped_trips"]:
        click.echo("skipped trips: " + ", ".join(f"{k} {v}" for k, v in s["skipped_trips"].items()))
    if out is not None:
        out.write_text(json.dumps(conversion.bundle, ensure_ascii=False), encoding="utf-8")
        click.echo(f"wrote {out}")
        return
    upgrade_schema(current_app)
    started = time.monotonic()
    try:
        summary = import_bundle(conversion.bundle, source="gtfs")
    except BundleError as exc:
        for line in exc.lines()[:50]:
            click.echo(line, err=True)
        raise click.ClickException(f"{exc}; nothing was written") from exc
    for line in summary.lines():
        click.echo(line)
    click.echo(f"imported in {time.monotonic() - started:.1f} s")


@main.command("audit")
@click.option("--date", "day", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              metavar="YYYY-MM-DD", help="the local service date (district timezone)")
@click.option("--vehicle", "vehicle_ids", multiple=True, metavar="ID",
              help="only this vehicle (repeatable) [default: every vehicle]")
@click.option("--jobs", type=click.IntRange(min=1), default=None, metavar="N",
              help="worker processes reading and tracking vehicles in parallel; the trip audits "
                   "written are the same whatever N [default: the CPUs this process may use, "
                   "at most 8]")
@with_appcontext
def audit_command(day, vehicle_ids: tuple[str, ...], jobs: int | None) -> None:
    """Recompute every trip of local date D from the stored pings (what GET /audit/trips serves)."""
    import os
    from functools import partial

    from tqdm import tqdm

    from backend.audit_service import UnknownVehicle, audit_date
    from backend.database import upgrade_schema

    upgrade_schema(current_app)
    if jobs is None:  # each worker holds a database connection: 8 at most unless asked
        usable = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else os.cpu_count() or 1)  # what a container or taskset leaves this process
        jobs = max(1, min(usable, 8))
    bar = partial(tqdm, desc=f"audit {day:%Y-%m-%d}", unit="vehicle", leave=False)
    try:
        summary = audit_date(day.date(), list(vehicle_ids) or None, progress=bar,
                             jobs=jobs)
    except UnknownVehicle as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(summary.line())
