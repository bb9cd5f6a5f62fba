"""The daily trip audit: every trip of a local service day recomputed from the stored pings.

DESIGN decision 1 (event time): the live tracker sees pings in arrival order and never moves a
trip backwards, so a late backlog can leave the live record short of what happened. The audit
reads each vehicle's stored pings of the day in the devices' own time order and runs them
through the very same ``routing`` code (:func:`routing.audit.audit_trips`); its result is the
ground truth that ``GET /api/v1/audit/trips`` serves (SPEC §5) and ``xiaoche audit`` refreshes
(SPEC §2).

Rows of ``trip_audits`` are replaced per vehicle and day in one transaction, so running the audit
again (a late backlog arrived, the scheduler and an admin both ran it) converges on the same rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import starmap
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.engine import Engine

from backend.extensions import db
from backend.models import Ping, TripAudit, Vehicle
from backend.timefmt import iso
from backend.tracking_service import build_contexts
from routing import model as rm
from routing.audit import audit_fleet, audit_trips
from routing.calendar import DAY_S, service_day_start
from routing.config import DEFAULT, TrackerConfig
from routing.eta_audit import ETA_STOPS_AHEAD, EtaRecorder
from routing.tracker import track

log = logging.getLogger(__name__)

PINGS = Ping.__table__
TRIP_AUDITS = TripAudit.__table__
VEHICLES = Vehicle.__table__

Progress = Callable[[Sequence[str]], Iterable[str]]


class UnknownVehicle(LookupError):
    """A vehicle id asked for by name that the district does not have."""


@dataclass
class AuditSummary:
    """What one audit run did, for the CLI, the scheduler's log and tests."""

    service_date: dt.date
    vehicles: int = 0  # vehicles with routes and with pings in the day's window
    trips: int = 0
    stops_visited: int = 0
    stops_missed: int = 0
    stops_upcoming: int = 0  # stops of trips still running at their last ping
    stops_unobserved: int = 0  # passed before the device joined, or after it handed over
    teacher_trips_booked: int = 0  # subsidy ledger entries the live run had missed

    def add(self, audit: rm.TripAudit) -> None:
        self.trips += 1
        for stop in audit.stops:
            status = stop["status"]
            if status == "visited":
                self.stops_visited += 1
            elif status == "missed":
                self.stops_missed += 1
            elif status == "unobserved":
                self.stops_unobserved += 1
            else:
                self.stops_upcoming += 1

    def line(self) -> str:
        return (
            f"audited {self.service_date.isoformat()}: {self.vehicles} vehicles, "
            f"{self.trips} trips, stops {self.stops_visited} visited, "
            f"{self.stops_missed} missed, {self.stops_upcoming} upcoming"
            + (f", {self.stops_unobserved} unobserved" if self.stops_unobserved else "")
            + (f", {self.teacher_trips_booked} teacher trips booked"
               if self.teacher_trips_booked else "")
        )


@dataclass
class VehicleDay:
    """One vehicle's day as computed from its stored pings, before anything is written: what a
    worker process hands back to the process that writes."""

    vehicle_id: str
    had_pings: bool = False  # pings in the audit window (of a vehicle with routes)
    audits: list[rm.TripAudit] = field(default_factory=list)
    teacher_trips: list[rm.Event] = field(default_factory=list)  # teacher cars' trips of the day
    pings: list[rm.Ping] = field(default_factory=list)  # kept only until its pool is tracked
    #: trip id -> its ETAs replayed against its audited arrivals (:class:`EtaRecorder`)
    eta: dict[str, dict[str, Any]] = field(default_factory=dict)


def audit_date(
    date: dt.date,
    vehicle_ids: Sequence[str] | None = None,
    progress: Progress | None = None,
    config: TrackerConfig = DEFAULT,
    jobs: int = 1,
) -> AuditSummary:
    """Recompute and store every trip of the local service day ``date``.

    Parameters
    ----------
    date : datetime.date
        The service day, local to each vehicle's district.
    vehicle_ids : sequence of str, optional
        Only these vehicles (default: every vehicle of the district tables).
    progress : callable, optional
        Wraps the list of vehicle ids being audited (``tqdm`` in the CLI).
    config : TrackerConfig
        The tracker's tunables: the same as live tracking, or the audit would disagree with it.
    jobs : int
        Processes that read and track vehicles in parallel (``xiaoche audit --jobs``); this
        process writes every vehicle's result in vehicle order as they come, so the rows are the
        same whatever ``jobs`` is. 1 (the default, and what the scheduler's thread uses) runs
        everything here. More needs ``fork`` (Linux) and a database other processes can open
        (not SQLite ``:memory:``); otherwise the audit runs here, serially.

    Returns
    -------
    AuditSummary

    Raises
    ------
    UnknownVehicle
        When a requested vehicle id does not exist (nothing is written).
    """
    engine = db.engine
    ids = _vehicle_ids(engine, vehicle_ids)
    summary = AuditSummary(date)
    with engine.connect() as conn:  # every context at once: a dozen statements, not per vehicle
        contexts = day_contexts(conn, ids, date)
    units = audit_units(ids, contexts)
    ids = [v for unit in units for v in unit]  # the order the days come back in
    shown = progress(ids) if progress is not None else ids
    with _computed_days(engine, units, date, config, jobs, contexts) as days:
        for vehicle_id, day in zip(shown, days, strict=True):
            assert day.vehicle_id == vehicle_id
            if day.had_pings:
                summary.vehicles += 1
            for audit in day.audits:
                summary.add(audit)
            write_vehicle_day(engine, day, date)
            summary.teacher_trips_booked += _book(engine, vehicle_id, day.teacher_trips)
    log.info("%s", summary.line())
    return summary


def audit_units(ids: Sequence[str], contexts: dict[str, rm.VehicleContext]
                ) -> list[tuple[str, ...]]:
    """The vehicles audited together: those sharing pool routes (connected through any of them)
    in one unit, tracked in event time as live (:func:`routing.audit.audit_fleet`); every other
    vehicle alone. Units in the order of their first vehicle.

    >>> from routing.model import VehicleContext as C
    >>> c = lambda v, *p: C(v, "school_bus", None, (), (), pool_route_ids=frozenset(p))
    >>> audit_units(["a", "b", "c", "d"], {"a": c("a", "r1"), "b": c("b"), "c": c("c", "r1", "r2"),
    ...                                    "d": c("d", "r2")})
    [('a', 'c', 'd'), ('b',)]
    """
    parent = {v: v for v in ids}

    def root(v: str) -> str:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    first_of: dict[str, str] = {}
    for v in ids:
        ctx = contexts.get(v)
        for route_id in sorted(ctx.pool_route_ids) if ctx is not None else ():
            other = first_of.setdefault(route_id, v)
            a, b = sorted((root(v), root(other)))
            parent[b] = a
    groups: dict[str, list[str]] = {}
    for v in ids:
        groups.setdefault(root(v), []).append(v)
    return sorted((tuple(g) for g in groups.values()), key=lambda g: ids.index(g[0]))


@contextmanager
def _computed_days(engine: Engine, units: list[tuple[str, ...]], date: dt.date,
                   config: TrackerConfig, jobs: int, contexts: dict[str, rm.VehicleContext]
                   ) -> Iterator[Iterator[VehicleDay]]:
    """Every vehicle's computed day, unit by unit: here, or from ``jobs`` worker processes that
    are stopped when the block is left (normally or not)."""
    jobs = min(jobs, len(units))
    if jobs <= 1 or not _parallel_ok(engine):
        yield (day for unit in units
               for day in compute_unit_days(engine, unit, date, config, contexts))
        return
    # fork: the workers start in milliseconds with everything imported, and inherit the engine
    # with its options and event listeners (and a test's search_path), the date and the config
    # (the same object, as the tracker's caches keyed by it expect). The parent's pooled
    # connections are closed first, so that no worker inherits an open database connection.
    engine.dispose()
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"),
                               initializer=_init_worker,
                               initargs=(engine, date, config, contexts))
    try:
        yield (day for days in pool.map(_worker_unit_days, units) for day in days)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _parallel_ok(engine: Engine) -> bool:
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    url = engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        return database not in ("", ":memory:") and "mode=memory" not in str(url)
    return True


_worker_job: tuple[Engine, dt.date, TrackerConfig, dict[str, rm.VehicleContext]] | None = None


def _init_worker(engine: Engine, date: dt.date, config: TrackerConfig,
                 contexts: dict[str, rm.VehicleContext]) -> None:
    """In a forked worker: the parent's engine without the parent's connections (none are
    pooled at the fork; this only makes sure the worker never touches one)."""
    global _worker_job
    engine.dispose(close=False)
    _worker_job = (engine, date, config, contexts)


def _worker_unit_days(unit: tuple[str, ...]) -> list[VehicleDay]:
    assert _worker_job is not None
    engine, date, config, contexts = _worker_job
    return compute_unit_days(engine, unit, date, config, contexts)


def compute_unit_days(engine: Engine, unit: tuple[str, ...], date: dt.date,
                      config: TrackerConfig, contexts: dict[str, rm.VehicleContext]
                      ) -> list[VehicleDay]:
    """The days of one audit unit (:func:`audit_units`): a lone vehicle, or a pool tracked
    together so that each run goes to one vehicle as it did live."""
    if len(unit) == 1:
        return [compute_vehicle_day(engine, unit[0], date, config, contexts)]
    days = [compute_vehicle_day(engine, v, date, config, contexts, track_trips=False)
            for v in unit]
    pings = {d.vehicle_id: d.pings for d in days if d.pings}
    recorders = {v: EtaRecorder(contexts[v], config) for v in pings}
    audits = audit_fleet({v: contexts[v] for v in pings}, pings, config, service_date=date,
                         on_ping=recorders)
    for day in days:
        day.audits = audits.get(day.vehicle_id, [])
        if day.pings:
            day.eta = recorders[day.vehicle_id].scores(day.audits)
        day.pings = []
    return days


def _vehicle_ids(engine, vehicle_ids: Sequence[str] | None) -> list[str]:
    with engine.connect() as conn:
        known = list(conn.execute(select(VEHICLES.c.id).order_by(VEHICLES.c.id)).scalars())
    if vehicle_ids is None:
        return known
    missing = sorted(set(vehicle_ids) - set(known))
    if missing:
        raise UnknownVehicle(f"no such vehicle: {', '.join(missing)}")
    return sorted(set(vehicle_ids))


def compute_vehicle_day(engine: Engine, vehicle_id: str, date: dt.date, config: TrackerConfig,
                        contexts: dict[str, rm.VehicleContext],
                        track_trips: bool = True) -> VehicleDay:
    """Read a vehicle's pings and run them through the tracker with its context (read for the
    whole audit; a vehicle missing from ``contexts`` is unknown); writes nothing.

    A read-only connection of its own: holding a write transaction across the computation
    would block SQLite's single writer (the ingest) for its duration.
    """
    day = VehicleDay(vehicle_id)
    with engine.connect() as conn:
        ctx = contexts.get(vehicle_id)
        if ctx is None:
            return day
        pings: list[rm.Ping] = []
        if ctx.routes:  # a vehicle without routes has no trips to audit
            since, until = audit_window(ctx, date, config)
            pings = load_pings(conn, vehicle_id, since, until)
        teacher_pings: list[rm.Ping] = []
        if ctx.kind == "teacher_car" and ctx.teacher_id is not None:
            day0 = service_day_start(date, ctx.calendar)
            teacher_pings = load_pings(conn, vehicle_id, day0, day0 + DAY_S)
    day.had_pings = bool(pings)
    if pings and track_trips:  # one pass: the trips, and the ETAs predicted along them
        recorder = EtaRecorder(ctx, config)
        day.audits = audit_trips(ctx, pings, config, service_date=date, on_ping=recorder)
        day.eta = recorder.scores(day.audits)
    elif pings:
        day.pings = pings  # the caller tracks it with its pool
    if teacher_pings:
        day.teacher_trips = teacher_trips_of(ctx, teacher_pings, date, config)
    return day


def write_vehicle_day(engine: Engine, day: VehicleDay, date: dt.date) -> None:
    """Replace the vehicle's trip audits of ``date`` with ``day``'s, in one transaction."""
    now = time.time()
    rows = [
        {
            "trip_id": a.trip_id,
            "service_date": date.isoformat(),
            "route_id": a.route_id,
            "run_id": a.run_id,
            "vehicle_id": a.vehicle_id,
            "result": trip_body(a) | ({"eta": day.eta[a.trip_id]} if a.trip_id in day.eta
                                      else {}),
            "computed_at": now,
        }
        for a in day.audits
    ]
    with engine.begin() as conn:
        _lock_vehicle(conn, day.vehicle_id)
        conn.execute(
            delete(TRIP_AUDITS).where(
                TRIP_AUDITS.c.service_date == date.isoformat(),
                TRIP_AUDITS.c.vehicle_id == day.vehicle_id,
            )
        )
        if rows:
            conn.execute(TRIP_AUDITS.insert(), rows)


def teacher_trips_of(ctx: rm.VehicleContext, pings: Sequence[rm.Ping], date: dt.date,
                     config: TrackerConfig = DEFAULT) -> list[rm.Event]:
    """The ``teacher_trip_completed`` events of service day ``date`` in a teacher car's pings
    of that day."""
    _, events = track(ctx, None, pings, config)
    return [e for e in events if e.kind == "teacher_trip_completed"
            and e.details.get("service_date") == date.isoformat()]


def _book(engine, vehicle_id: str, trips: list[rm.Event]) -> int:
    if not trips:
        return 0
    from backend.subsidy_service import book_trips

    with engine.begin() as conn:
        _lock_vehicle(conn, vehicle_id)
        return len(book_trips(conn, trips, recorded_by="audit"))


def _lock_vehicle(conn: Connection, vehicle_id: str) -> None:
    """Serialise two audits of one vehicle on PostgreSQL (the scheduler's and an admin's), so the
    second one's delete sees the first one's rows instead of colliding on their keys. SQLite has
    a single writer anyway."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(VEHICLES.c.id).where(VEHICLES.c.id == vehicle_id).with_for_update())


def audit_window(
    ctx: rm.VehicleContext, date: dt.date, config: TrackerConfig = DEFAULT
) -> tuple[float, float]:
    """The epoch seconds ``[since, until)`` of pings that can belong to trips of ``date``.

    From local midnight (in the vehicle's district timezone) less the earliest a run may start
    before its first stop, to the end of the local day or, for runs whose timetable goes past
    24:00, the night after until such a trip would have timed out — the same bounds the tracker
    itself applies (``trip_start_before_s``, ``trip_timeout_slack_s``).

    Examples
    --------
    >>> from routing.model import VehicleContext
    >>> ctx = VehicleContext("bus-07", "school_bus", None, (), ())
    >>> since, until = audit_window(ctx, dt.date(2026, 11, 23))
    >>> until - since == 86400 + DEFAULT.trip_start_before_s
    True
    """
    day0 = service_day_start(date, ctx.calendar)
    last_s = max(
        (max(run.times_s, default=0) for route in ctx.routes for run in route.runs), default=0
    )
    since = day0 - config.trip_start_before_s
    until = day0 + max(float(DAY_S), last_s + config.trip_timeout_slack_s)
    return since, until


def load_pings(conn: Connection, vehicle_id: str, since: float, until: float) -> list[rm.Ping]:
    """A vehicle's stored pings in ``[since, until)`` in timestamp order, through Core (an ORM
    object per ping would cost more than the tracking itself, DESIGN's measurements)."""
    query = (
        select(
            PINGS.c.ts,
            PINGS.c.lat,
            PINGS.c.lon,
            PINGS.c.speed_kmh,
            PINGS.c.heading_deg,
            PINGS.c.accuracy_m,
        )
        .where(PINGS.c.vehicle_id == vehicle_id, PINGS.c.ts >= since, PINGS.c.ts < until)
        .order_by(PINGS.c.ts, PINGS.c.id)
    )
    # one vehicle-day is a few thousand rows: fetched at once as plain tuples by the driver and
    # built positionally, several times faster than SQLAlchemy rows from a server-side cursor.
    # psycopg fetches them in PostgreSQL's binary format: float8 as 8 bytes instead of text to
    # parse, 2.4 times faster for a 5 s bus's day (bench/audit.py), the same values bit for bit.
    compiled = query.compile(dialect=conn.dialect)
    dbapi = conn.connection.dbapi_connection
    postgres = conn.dialect.name == "postgresql"
    cursor = dbapi.cursor(binary=True) if postgres else dbapi.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), compiled.params if conn.dialect.paramstyle in (
            "pyformat", "named") else tuple(compiled.params[k] for k in compiled.positiontup))
        return list(starmap(rm.Ping, cursor.fetchall()))
    finally:
        cursor.close()


def trip_body(audit: rm.TripAudit) -> dict[str, Any]:
    """A trip audit in the shape of SPEC §5 ``GET /audit/trips`` (times ISO-8601 UTC ``Z``),
    plus ``service_date``: what ``trip_audits.result`` stores and the API returns as is."""
    return {
        "trip_id": audit.trip_id,
        "run_id": audit.run_id,
        "route_id": audit.route_id,
        "vehicle_id": audit.vehicle_id,
        "service_date": audit.service_date.isoformat(),
        "started_at": iso(audit.started_at),
        "completed_at": iso(audit.completed_at),
        "distance_km": _number(audit.distance_km),
        "max_speed_kmh": _number(audit.max_speed_kmh),
        "stops": [
            {
                "stop_id": s["stop_id"],
                "scheduled_at": iso(s["scheduled_at"]),
                "arrived_at": iso(s["arrived_at"]),
                "departed_at": iso(s["departed_at"]),
                "status": s["status"],
                "late_s": _number(s["late_s"]),
            }
            for s in audit.stops
        ],
        "deviations": [
            {
                "started_at": iso(d["started_at"]),
                "ended_at": iso(d["ended_at"]),
                "max_offset_m": _number(d["max_offset_m"]),
            }
            for d in audit.deviations
        ],
    }


def _number(value: Any) -> float | None:
    """Plain floats in the JSON column (the tracker may hand numpy scalars)."""
    return None if value is None else float(value)


def stored_audits(date: dt.date, route_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The stored audit results of a service day, oldest trip first; ``route_ids`` (None = all)
    limits them to routes the caller may see."""
    query = select(TripAudit.result, TripAudit.trip_id).where(
        TripAudit.service_date == date.isoformat()
    )
    if route_ids is not None:
        query = query.where(TripAudit.route_id.in_(sorted(route_ids)))
    rows = db.session.execute(query).all()
    # ISO strings do not sort as times ("…:00Z" after "…:00.500Z"): compare the parsed instants.
    rows.sort(key=lambda r: (dt.datetime.fromisoformat(r.result["started_at"]), r.trip_id))
    return [r.result for r in rows]


# -- ETA accuracy (issue #13): each trip's predictions replayed against its audited arrivals --------

#: How many stops ahead of the next one the accuracy is reported for (1 = the next stop).


def day_contexts(conn: Connection, vehicle_ids: Sequence[str],
                 date: dt.date) -> dict[str, rm.VehicleContext]:
    """The vehicles' contexts for auditing ``date``: today's stretch observations are the whole
    service day's stored stop events (the ETA uses only those before each prediction, as live
    did), and the run history that of the days before, of the same weekday type."""
    # noon UTC of the date is on that date in any district's timezone; the stop events read are
    # those of a day and a half either side, which covers the service day wherever it is
    noon = dt.datetime.combine(date, dt.time(12), tzinfo=dt.UTC).timestamp()
    return build_contexts(conn, vehicle_ids, as_of=noon,
                          observed=(noon - 1.5 * DAY_S, noon + 1.5 * DAY_S))


def eta_report(dates: Iterable[dt.date] | None = None, month: str | None = None,
               route_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """ETA accuracy per route over the stored trip audits of ``dates`` (or of ``month``,
    ``YYYY-MM``): trips scored, and per stops ahead the predictions, the learned MAE and the
    baseline's, in seconds (``None`` without predictions). ``route_ids`` (None = all) limits
    the routes to those a caller may see."""
    query = select(TripAudit.route_id, TripAudit.result)
    if dates is not None:
        query = query.where(TripAudit.service_date.in_(sorted(d.isoformat() for d in dates)))
    if month is not None:
        query = query.where(TripAudit.service_date.like(f"{month}-%"))
    if route_ids is not None:
        query = query.where(TripAudit.route_id.in_(sorted(route_ids)))
    totals: dict[str, dict[str, list[float]]] = {}
    trips: dict[str, int] = {}
    for route_id, result in db.session.execute(query.order_by(TripAudit.route_id)):
        eta = (result or {}).get("eta")
        if not eta:
            continue
        trips[route_id] = trips.get(route_id, 0) + 1
        route = totals.setdefault(route_id, {str(k): [0, 0.0, 0.0] for k in ETA_STOPS_AHEAD})
        for k, cell in eta.items():
            if k in route:
                route[k][0] += cell["n"]
                route[k][1] += cell["abs_error_s"]
                route[k][2] += cell["baseline_abs_error_s"]
    return [{"route_id": route_id, "trips": trips[route_id],
             "stops_ahead": [{"stops": int(k), "predictions": int(n),
                              "mae_s": round(e / n, 1) if n else None,
                              "baseline_mae_s": round(b / n, 1) if n else None}
                             for k, (n, e, b) in cells.items()]}
            for route_id, cells in totals.items()]


ETA_CSV_COLUMNS = ["month", "route_id", "trips"] + [
    f"{name}_{k}" for k in ETA_STOPS_AHEAD
    for name in ("predictions", "mae_s", "baseline_mae_s")]


def eta_csv(month: str, rows: Iterable[dict[str, Any]]) -> str:
    """``xiaoche report eta``: one line per route, MAE at 1, 3 and 5 stops ahead next to the
    baseline's (CSV with a UTF-8 BOM, like the other reports)."""
    from backend.csv_export import bom_csv

    flat = []
    for row in rows:
        line: dict[str, Any] = {"month": month, "route_id": row["route_id"], "trips": row["trips"]}
        for cell in row["stops_ahead"]:
            k = cell["stops"]
            line |= {f"predictions_{k}": cell["predictions"], f"mae_s_{k}": cell["mae_s"],
                     f"baseline_mae_s_{k}": cell["baseline_mae_s"]}
        flat.append(line)
    return bom_csv(ETA_CSV_COLUMNS, flat)
