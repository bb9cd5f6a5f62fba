"""The ``xiaoche`` command (Flask's click integration; ``xiaoche db …`` comes from Flask-Migrate)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select

from backend import create_app

log = logging.getLogger("xiaoche")

SAMPLE_BUNDLE = Path(__file__).parent / "sample" / "lukou.json"


@click.group(
    cls=FlaskGroup, create_app=create_app, add_default_commands=False, add_version_option=False
)
def main() -> None:
    """xiaoche — school bus, itinerant-teacher and meal-truck tracking."""


def _load_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{path}: not JSON: {exc}") from exc


@main.command("import")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def import_command(bundle: Path) -> None:
    """Create or update everything in a district BUNDLE (JSON, SPEC §3). Idempotent."""
    from backend.bundle import BundleError, import_bundle
    from backend.database import upgrade_schema

    upgrade_schema(current_app)
    try:
        summary = import_bundle(_load_json(bundle))
    except BundleError as exc:
        for line in exc.lines():
            click.echo(line, err=True)
        raise click.ClickException(f"{exc}; nothing was written") from exc
    for verb, counts in summary.as_dict().items():
        if counts:
            click.echo(f"{verb}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


def _require_secret_key() -> None:
    if current_app.config.get("SECRET_KEY_GENERATED"):
        raise click.ClickException(
            "set XIAOCHE_SECRET_KEY: it signs user tokens "
            "(`xiaoche demo` makes one up; production must not)"
        )


def _prepare_database(with_sample: bool) -> None:
    from backend.bundle import import_bundle
    from backend.database import upgrade_schema
    from backend.extensions import db
    from backend.models import District

    upgrade_schema(current_app)
    if with_sample and db.session.scalars(select(District.id)).first() is None:
        summary = import_bundle(_load_json(SAMPLE_BUNDLE))
        click.echo(
            f"imported the sample district {SAMPLE_BUNDLE.name}: "
            f"{sum(summary.created.values())} objects"
        )


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--sample/--no-sample",
    default=None,
    help="import the sample district into an empty database "
    "[default: on for the embedded SQLite default, off otherwise]",
)
@with_appcontext
def serve_command(host: str, port: int, sample: bool | None) -> None:
    """One process: HTTP API + MQTT ingest + scheduler (embedded broker if no XIAOCHE_MQTT_URL)."""
    from backend.runtime import run_all_in_one

    embedded_default = not _database_url_given()
    if sample is None:
        sample = embedded_default
    if embedded_default:
        _use_instance_secret_key()
    _require_secret_key()
    _prepare_database(sample)
    run_all_in_one(current_app._get_current_object(), host, port)


@main.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@with_appcontext
def demo_command(host: str, port: int) -> None:
    """`serve` on the embedded default (SQLite in the instance folder, embedded broker, the
    sample district) with a simulated fleet driving it; prints the page URL and the logins."""
    from backend.demo import run_demo

    if _database_url_given():
        raise click.ClickException(
            "xiaoche demo runs on the embedded default only (SQLite in the instance folder): "
            "unset XIAOCHE_DATABASE_URL, or point XIAOCHE_INSTANCE_PATH at a folder of its own")
    # the secret key: random per start (SPEC §1), so a demo's tokens end with it
    _prepare_database(with_sample=True)
    run_demo(current_app._get_current_object(), host, port)


@main.command("ingest")
@with_appcontext
def ingest_command() -> None:
    """MQTT ingest alone (several may run with XIAOCHE_INGEST_SHARED_GROUP)."""
    from backend.runtime import run_ingest

    _prepare_database(with_sample=False)
    run_ingest(current_app._get_current_object())


@main.command("scheduler")
@with_appcontext
def scheduler_command() -> None:
    """The scheduled jobs alone (the nightly trip audit), for deployments that run the roles
    as separate processes; `serve` runs them itself."""
    from backend.runtime import run_scheduler

    _prepare_database(with_sample=False)
    run_scheduler(current_app._get_current_object())


STREAM_WORKER = "backend.streams.worker.StreamWorker"


@main.command("api")
@click.option("--bind", default="127.0.0.1:8000", show_default=True)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=64, show_default=True, type=int,
              help="per worker, for REST requests (streams take none)")
@click.option("--worker-class", default="stream", show_default=True,
              type=click.Choice(["stream", "gthread"]),
              help="stream: /stream on each worker's event loop, REST in --threads threads; "
                   "gthread: gunicorn's threads for everything, each open /stream holds one")
@with_appcontext
def api_command(bind: str, workers: int, threads: int, worker_class: str) -> None:
    """The HTTP API alone under gunicorn (WSGI entry backend.wsgi:app)."""
    _require_secret_key()
    from backend.database import upgrade_schema

    upgrade_schema(current_app)
    import os

    args = [
        "gunicorn",
        "--bind", bind,
        "--workers", str(workers),
        "--threads", str(threads),
        "--worker-class", STREAM_WORKER if worker_class == "stream" else worker_class,
        # several instances on one machine would share gunicorn's default control socket
        "--no-control-socket",
        "--access-logfile", "-",
        # the path without its query: /stream?access_token=… must not land in the log (the
        # stream worker writes its own lines, without the query too)
        "--access-logformat", '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s',
        "backend.wsgi:app",
    ]
    os.execvp(sys.executable, [sys.executable, "-m", *args])


def _use_instance_secret_key() -> None:
    """On the embedded default, keep a generated key in the instance folder so tokens survive a
    restart; a deployment with its own database sets XIAOCHE_SECRET_KEY instead."""
    if not current_app.config.get("SECRET_KEY_GENERATED"):
        return
    import os
    import secrets

    key_file = Path(current_app.instance_path) / "secret_key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    current_app.config["SECRET_KEY"] = key_file.read_text().strip()
    current_app.config["SECRET_KEY_GENERATED"] = False


def _database_url_given() -> bool:
    import os

    return bool(os.environ.get("XIAOCHE_DATABASE_URL"))


@main.command("broker-config")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="folder for passwd, acl and mosquitto.conf",
)
@click.option(
    "--service-user",
    default="xiaoche-service",
    show_default=True,
    help="the MQTT account of the ingest (reads every device topic)",
)
@click.option(
    "--service-password",
    envvar="XIAOCHE_MQTT_SERVICE_PASSWORD",
    required=True,
    help="its password [env XIAOCHE_MQTT_SERVICE_PASSWORD]",
)
@click.option("--port", default=1883, show_default=True, type=int)
@click.option(
    "--broker-dir",
    default=None,
    help="where the broker sees these files, if not --out (e.g. /mosquitto/config)",
)
@click.option("--data-dir", default=None, help="the broker's persistence folder")
@with_appcontext
def broker_config_command(
    out_dir: Path,
    service_user: str,
    service_password: str,
    port: int,
    broker_dir: str | None,
    data_dir: str | None,
) -> None:
    """Write a Mosquitto password file and ACL from the device registry."""
    from backend.broker_config import write_broker_config
    from backend.database import upgrade_schema

    upgrade_schema(current_app)
    try:
        paths = write_broker_config(
            out_dir, service_user, service_password, port, broker_dir, data_dir
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, path in paths.items():
        click.echo(f"{name}: {path}")


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

    _prepare_database(with_sample=False)
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
        summary = import_bundle(conversion.bundle)
    except BundleError as exc:
        for line in exc.lines()[:50]:
            click.echo(line, err=True)
        raise click.ClickException(f"{exc}; nothing was written") from exc
    for verb, counts in summary.as_dict().items():
        if counts:
            click.echo(f"{verb}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
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


@main.group("report")
def report_group() -> None:
    """Monthly reports for the finance office (CSV with a UTF-8 BOM, opens in Excel)."""


def _month(value: str) -> str:
    import re

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise click.BadParameter(f"{value!r} is not a month YYYY-MM")
    return value


def _write_report(text: str, out: Path | None, default_name: str, xlsx: bool) -> None:
    path = out or Path(default_name)
    path.write_text(text, encoding="utf-8", newline="")
    click.echo(f"wrote {path}")
    if xlsx:
        _write_xlsx(text, path.with_suffix(".xlsx"))


def _write_xlsx(text: str, path: Path) -> None:
    """The same rows as an .xlsx, only when openpyxl happens to be installed."""
    import csv
    import io

    try:
        from openpyxl import Workbook
    except ImportError as exc:
        raise click.ClickException("--xlsx needs openpyxl, which is not installed") from exc
    book = Workbook()
    sheet = book.active
    for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))):
        sheet.append(row)
    book.save(path)
    click.echo(f"wrote {path}")


def report_command(name: str) -> Callable[[Callable[..., None]], Any]:
    """``xiaoche report NAME --month YYYY-MM [--out F] [--xlsx]``, in the app context."""
    def decorate(fn: Callable[..., None]) -> Any:
        fn = with_appcontext(fn)
        fn = click.option("--xlsx", is_flag=True, help="also write an .xlsx (needs openpyxl)")(fn)
        fn = click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                          help=f"the CSV file [default: {name}-YYYY-MM.csv]")(fn)
        fn = click.option("--month", required=True, callback=lambda _c, _p, v: _month(v),
                          metavar="YYYY-MM")(fn)
        return report_group.command(name)(fn)
    return decorate


@report_command("meals")
def report_meals_command(month: str, out: Path | None, xlsx: bool) -> None:
    """Every school's meal audit of every day of the month: counts, delivery, flags."""
    from backend.meals_service import meals_csv, month_rows

    _write_report(meals_csv(month_rows(month)), out, f"meals-{month}.csv", xlsx)


@report_command("subsidies")
def report_subsidies_command(month: str, out: Path | None, xlsx: bool) -> None:
    """Every teacher's subsidy ledger rows of the month, as GET /subsidies lists them."""
    from backend.subsidy_service import month_statements, statements_csv

    _write_report(statements_csv(month_statements(month)), out, f"subsidies-{month}.csv", xlsx)


@report_command("eta")
def report_eta_command(month: str, out: Path | None, xlsx: bool) -> None:
    """ETA accuracy per route over the month's audited trips: MAE at 1, 3 and 5 stops ahead
    next to the timetable + current-delay baseline, so a district sees whether to trust them."""
    from backend.audit_service import eta_csv, eta_report

    rows = eta_report(month=month)
    for row in rows:
        cells = "  ".join(f"{c['stops']} ahead {_seconds(c['mae_s'])} "
                          f"(baseline {_seconds(c['baseline_mae_s'])})" for c in row["stops_ahead"])
        click.echo(f"{row['route_id']}: {row['trips']} trips; MAE {cells}")
    _write_report(eta_csv(month, rows), out, f"eta-{month}.csv", xlsx)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


@main.command("dispatch")
@click.option("--interval", default=2.0, show_default=True, type=float,
              help="seconds between looks at the outbox when it is empty")
@with_appcontext
def dispatch_command(interval: float) -> None:
    """Push notifications (MQTT, webhook) from the outbox until SIGTERM/SIGINT; several may run
    on PostgreSQL."""
    import signal
    import threading

    from backend.dispatch_service import ChannelConfigError, check_settings, run_dispatcher

    _prepare_database(with_sample=False)
    app = current_app._get_current_object()
    try:
        channels = check_settings(app)
    except ChannelConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"xiaoche: dispatcher running (channels: {', '.join(channels) or 'none'})")
    sys.stdout.flush()
    run_dispatcher(app, stop, interval)


if __name__ == "__main__":
    main()
