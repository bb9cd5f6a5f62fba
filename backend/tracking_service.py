"""Tracking wired into ingest and into the audit.

Inside each ingest transaction, after the pings are stored, every vehicle with new pings has its
stored tracker state locked, advanced by ``routing.track`` and written back, and the events are
inserted — so pings, state and events commit together (STYLE: persist first, deliver later), and
any ingest process can take any vehicle's next batch (DESIGN decision 4).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from flask import Flask
from sqlalchemy import Connection, bindparam, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from backend.extensions import db
from backend.models import (
    CalendarDay,
    District,
    Event,
    Route,
    RouteSubstitution,
    School,
    Stop,
    Teacher,
    TeacherAssignment,
    TrackerState,
    Vehicle,
    vehicle_routes,
)
from backend.run_claims import claim_book, pooled_routes
from gps_ingest.pipeline import AfterStore, StoredPing
from routing import model as rm
from routing.calendar import is_service_day
from routing.config import TrackerConfig
from routing.tracker import TrackerState as RoutingState
from routing.tracker import track_owned

EVENTS = Event.__table__
STATES = TrackerState.__table__
ETA_HISTORY_RUNS = 10  # recent completed runs per run id whose segment times feed the ETA


class ContextCache:
    """Vehicle contexts built from the district tables, rebuilt after ``ttl_s`` or on demand.

    :meth:`get_many` builds every missing or expired context of a batch together
    (:func:`build_contexts`: a dozen statements for the lot, not a dozen per vehicle), so neither
    a cold start nor the expiry of many contexts at once costs a round of queries per vehicle.
    """

    def __init__(self, ttl_s: float = 60.0):
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, rm.VehicleContext]] = {}
        self._lock = threading.Lock()

    def _fresh(self, vehicle_id: str, now: float) -> rm.VehicleContext | None:
        with self._lock:
            hit = self._cache.get(vehicle_id)
        # each vehicle's entry lives 80-120 % of ttl_s, so a large fleet's contexts are not all
        # rebuilt in the same batch once a minute (bench/api.py saw the ingest fall 2-4 s behind)
        ttl_s = self.ttl_s * (0.8 + 0.4 * (zlib.crc32(vehicle_id.encode()) % 1000) / 1000)
        if hit is not None and now - hit[0] < ttl_s:
            return hit[1]
        return None

    def get(self, conn: Connection, vehicle_id: str) -> rm.VehicleContext | None:
        return self.get_many(conn, [vehicle_id])[vehicle_id]

    def get_many(self, conn: Connection,
                 vehicle_ids: Sequence[str]) -> dict[str, rm.VehicleContext | None]:
        """Each vehicle's context (``None`` for an unknown vehicle), the stale ones rebuilt."""
        now = time.monotonic()
        out: dict[str, rm.VehicleContext | None] = {v: self._fresh(v, now) for v in vehicle_ids}
        missing = [v for v, ctx in out.items() if ctx is None]
        if missing:
            built = build_contexts(conn, missing)
            with self._lock:
                for vehicle_id, ctx in built.items():
                    self._cache[vehicle_id] = (now, ctx)
            for vehicle_id in missing:
                out[vehicle_id] = built.get(vehicle_id)
        return out

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def district_calendar(conn: Connection, district_id: str) -> rm.Calendar:
    district = conn.execute(select(District.timezone).where(District.id == district_id)).first()
    days = conn.execute(select(CalendarDay.date, CalendarDay.kind, CalendarDay.as_weekday)
                        .where(CalendarDay.district_id == district_id)).all()
    return rm.Calendar(
        timezone=district[0] if district else "Asia/Shanghai",
        holidays=frozenset(dt.date.fromisoformat(d) for d, kind, _ in days if kind == "holiday"),
        extra_school_days={dt.date.fromisoformat(d): w for d, kind, w in days
                           if kind == "school_day"},
    )


def _place_of(session, place_id: str) -> rm.Place:
    stop = session.get(Stop, place_id)
    if stop is not None:
        return rm.Place(stop.id, stop.name, stop.lat, stop.lon, stop.radius_m, False)
    school = session.get(School, place_id)
    return rm.Place(school.id, school.name, school.lat, school.lon, school.radius_m, True)


def route_definition(session, route: Route,
                     places: dict[str, rm.Place] | None = None) -> rm.Route:
    """The tracker's view of a route; ``places`` (id → place) spares a lookup per stop."""
    def place(place_id: str) -> rm.Place:
        known = places.get(place_id) if places is not None else None
        return known if known is not None else _place_of(session, place_id)

    return rm.Route(
        id=route.id, name=route.name, school_id=route.school_id,
        path=tuple((float(c[0]), float(c[1])) for c in route.path["coordinates"]),
        corridor_m=route.corridor_m,
        stops=tuple(place(s.place_id) for s in route.stops),
        runs=tuple(rm.Run(
            id=run.id, times_s=tuple(int(t) for t in run.times_s),
            days=frozenset(run.days) if run.days is not None else None,
            dates=frozenset(dt.date.fromisoformat(d) for d in run.dates)
            if run.dates is not None else None) for run in route.runs),
    )


def build_contexts(conn: Connection,
                   vehicle_ids: Sequence[str]) -> dict[str, rm.VehicleContext]:
    """The tracking context of each known vehicle of ``vehicle_ids`` (unknown ones are left out),
    read with a fixed number of statements whatever the number of vehicles."""
    from sqlalchemy.orm import Session, selectinload

    ids = sorted(set(vehicle_ids))
    if not ids:
        return {}
    with Session(bind=conn) as session:
        vehicles = session.scalars(select(Vehicle).where(Vehicle.id.in_(ids))).all()
        if not vehicles:
            return {}
        ids = sorted(v.id for v in vehicles)
        own: dict[str, list[str]] = defaultdict(list)
        for vehicle_id, route_id in conn.execute(
                select(vehicle_routes.c.vehicle_id, vehicle_routes.c.route_id)
                .where(vehicle_routes.c.vehicle_id.in_(ids))):
            own[vehicle_id].append(route_id)
        owned = {r for rs in own.values() for r in rs}
        subs = conn.execute(select(RouteSubstitution.route_id, RouteSubstitution.service_date,
                                   RouteSubstitution.vehicle_id).where(or_(
            RouteSubstitution.vehicle_id.in_(ids), RouteSubstitution.route_id.in_(owned)))).all()
        route_ids = owned | {r for r, _, v in subs if v in ids}
        schools = tuple(rm.Place(s.id, s.name, s.lat, s.lon, s.radius_m, True)
                        for s in session.scalars(select(School).order_by(School.id)))
        definitions: dict[str, rm.Route] = {}
        if route_ids:
            loaded = session.scalars(
                select(Route).where(Route.id.in_(route_ids))
                .options(selectinload(Route.stops), selectinload(Route.runs))).all()
            places = {p.id: p for p in schools}  # a stop of the same id wins, as in _place_of
            wanted = {s.place_id for route in loaded for s in route.stops}
            if wanted:  # every stop the routes name, in one statement
                places.update((s.id, rm.Place(s.id, s.name, s.lat, s.lon, s.radius_m, False))
                              for s in session.scalars(select(Stop).where(Stop.id.in_(wanted))))
            for route in loaded:
                definitions[route.id] = route_definition(session, route, places)
        calendars = {d: district_calendar(conn, d) for d in {v.district_id for v in vehicles}}
        teachers: dict[str, Teacher] = {}
        for t in session.scalars(select(Teacher).where(Teacher.vehicle_id.in_(ids))
                                 .order_by(Teacher.id)):
            teachers.setdefault(t.vehicle_id, t)
        assignments: dict[str, list[rm.Assignment]] = defaultdict(list)
        if teachers:
            for a in session.scalars(select(TeacherAssignment).where(
                    TeacherAssignment.teacher_id.in_([t.id for t in teachers.values()]))
                    .order_by(TeacherAssignment.teacher_id, TeacherAssignment.school_id)):
                assignments[a.teacher_id].append(rm.Assignment(a.school_id, frozenset(a.weekdays)))
        out: dict[str, rm.VehicleContext] = {}
        routes_of: dict[str, tuple[rm.Route, ...]] = {}
        for vehicle in vehicles:
            calendar = calendars[vehicle.district_id]
            routes_of[vehicle.id] = _with_substitutions(
                vehicle.id, calendar, [definitions[r] for r in sorted(own[vehicle.id])
                                       if r in definitions], subs, definitions)
        pooled = pooled_routes(conn, sorted({r.id for rs in routes_of.values() for r in rs}))
        history = _segment_history(conn, sorted({run.id for routes in routes_of.values()
                                                 for route in routes for run in route.runs}))
        for vehicle in vehicles:
            routes = routes_of[vehicle.id]
            runs = {run.id for route in routes for run in route.runs}
            teacher = teachers.get(vehicle.id)
            out[vehicle.id] = rm.VehicleContext(
                vehicle_id=vehicle.id, kind=vehicle.kind, speed_limit_kmh=vehicle.speed_limit_kmh,
                routes=routes, schools=schools, calendar=calendars[vehicle.district_id],
                assignments=tuple(assignments[teacher.id]) if teacher else (),
                teacher_id=teacher.id if teacher else None,
                segment_history={r: h for r, h in history.items() if r in runs},
                pool_route_ids=frozenset(r.id for r in routes if r.id in pooled))
        return out


def _with_substitutions(vehicle_id: str, calendar: rm.Calendar, routes: list[rm.Route],
                        subs: Sequence[Any], definitions: dict[str, rm.Route]
                        ) -> tuple[rm.Route, ...]:
    """The vehicle's own routes minus the dates a substitute drives them, plus the routes it
    drives as a substitute on exactly those dates (``PUT /routes/{id}/vehicle``)."""
    own = {r.id for r in routes}
    replaced: dict[str, set[dt.date]] = defaultdict(set)
    substitute: dict[str, set[dt.date]] = defaultdict(set)
    for route_id, date, driver in subs:
        day = dt.date.fromisoformat(date)
        if driver == vehicle_id:
            substitute[route_id].add(day)
        elif route_id in own:
            replaced[route_id].add(day)
    out = [dataclasses.replace(r, runs=tuple(
        dataclasses.replace(run, except_dates=frozenset(replaced[r.id])) for run in r.runs))
        if r.id in replaced else r for r in routes]
    for route_id in sorted(set(substitute) - own):
        route = definitions.get(route_id)
        if route is None:
            continue
        runs = []
        for run in route.runs:
            dates = frozenset(d for d in substitute[route_id] if is_service_day(run, calendar, d))
            if dates:
                runs.append(rm.Run(id=run.id, times_s=run.times_s, dates=dates))
        if runs:
            out.append(dataclasses.replace(route, runs=tuple(runs)))
    return tuple(out)


def _segment_history(conn: Connection, run_ids: list[str]) -> dict[str, list[list[float]]]:
    """The segment times of each run's last ``ETA_HISTORY_RUNS`` completed trips, newest first:
    one statement for all the runs (a window per run)."""
    if not run_ids:
        return {}
    recent = (select(EVENTS.c.run_id, EVENTS.c.details, func.row_number().over(
        partition_by=EVENTS.c.run_id, order_by=(EVENTS.c.ts.desc(), EVENTS.c.id.desc()))
        .label("n")).where(EVENTS.c.kind == "trip_completed", EVENTS.c.run_id.in_(run_ids))
        .subquery())
    history: dict[str, list[list[float]]] = {}
    for run_id, details in conn.execute(
            select(recent.c.run_id, recent.c.details).where(recent.c.n <= ETA_HISTORY_RUNS)
            .order_by(recent.c.run_id, recent.c.n)):
        if details and details.get("segment_s"):
            history.setdefault(run_id, []).append(list(details["segment_s"]))
    return history


def event_row(event: rm.Event, created_at: float) -> dict[str, Any]:
    return {"kind": event.kind, "ts": event.ts, "vehicle_id": event.vehicle_id,
            "route_id": event.route_id, "trip_id": event.trip_id, "run_id": event.run_id,
            "stop_id": event.stop_id, "details": dict(event.details), "created_at": created_at}


EventStep = Callable[[Connection, list[rm.Event]], Any]
#: Tracked = vehicle id -> (its context, its tracker state after this batch), for every vehicle
#: the batch moved: what a step needs to see trips in progress (ETAs) without reading them back.
Tracked = dict[str, tuple[rm.VehicleContext, RoutingState]]
BatchStep = Callable[[Connection, list[rm.Event], Tracked], Any]


def default_event_steps() -> list[EventStep]:
    from backend.subsidy_service import book_trips

    return [book_trips]


class TrackingStep:
    """The after-store step of the ingest pipeline.

    ``event_steps`` get the events this batch produced, in the same transaction, once they are
    inserted (the subsidy ledger books completed teacher trips there): no step has to read back
    what tracking just wrote, and a batch without events costs them nothing.
    """

    def __init__(self, config: TrackerConfig | None = None, contexts: ContextCache | None = None,
                 event_steps: Sequence[EventStep] | None = None,
                 batch_steps: Sequence[BatchStep] = ()):
        self.config = config or TrackerConfig()
        self.contexts = contexts or ContextCache()
        self.event_steps = list(default_event_steps() if event_steps is None else event_steps)
        # called for every batch, events or not (an ETA moves with every ping): notifications
        self.batch_steps = list(batch_steps)

    def __call__(self, conn: Connection, stored: list[StoredPing]) -> None:
        by_vehicle: dict[str, list[rm.Ping]] = defaultdict(list)
        for s in stored:
            p = s.ping
            by_vehicle[s.vehicle_id].append(rm.Ping(ts=p.ts, lat=p.lat, lon=p.lon,
                                                    speed_kmh=p.speed_kmh,
                                                    heading_deg=p.heading_deg,
                                                    accuracy_m=p.accuracy_m))
        contexts = self.contexts.get_many(conn, sorted(by_vehicle))
        vehicle_ids = [v for v, ctx in contexts.items() if ctx is not None]
        if not vehicle_ids:
            return
        now = time.time()
        states = lock_states(conn, vehicle_ids, now)
        saved: list[dict[str, Any]] = []
        produced: list[rm.Event] = []
        tracked: Tracked = {}
        # pool routes: one vehicle per run, each seeing the holds as the batch advances them
        book = claim_book(conn, {v: contexts[v] for v in vehicle_ids}, states, self.config)
        for vehicle_id in vehicle_ids:
            ctx = contexts[vehicle_id]
            if book is not None and ctx.pool_route_ids:
                ctx = dataclasses.replace(ctx, claims=book.claims)
            # the state was read for this call alone: advanced in place, not copied
            new_state, new_events = track_owned(ctx, states.get(vehicle_id),
                                                by_vehicle[vehicle_id], self.config)
            if book is not None:
                book.update(vehicle_id, new_state)
            tracked[vehicle_id] = (contexts[vehicle_id], new_state)  # type: ignore[assignment]
            saved.append({"vid": vehicle_id, "state": new_state.to_dict(),
                          "last_ts": new_state.last_ts, "updated_at": now})
            produced.extend(new_events)
        save_states(conn, saved)
        if produced:
            conn.execute(EVENTS.insert(), [event_row(e, now) for e in produced])
            for step in self.event_steps:
                step(conn, produced)
        for batch_step in self.batch_steps:
            batch_step(conn, produced, tracked)


def lock_states(conn: Connection, vehicle_ids: list[str],
                now: float) -> dict[str, RoutingState | None]:
    """Read the vehicles' tracker states, locking their rows on PostgreSQL until commit.

    One statement for the whole batch (rows locked in vehicle-id order, the same in every
    worker, so two workers never deadlock), plus one insert for vehicles seen for the first time.
    """
    query = (select(STATES.c.vehicle_id, STATES.c.state)
             .where(STATES.c.vehicle_id.in_(vehicle_ids)).order_by(STATES.c.vehicle_id))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    raw = dict(conn.execute(query).all())
    missing = [v for v in vehicle_ids if v not in raw]
    if missing:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(dialect.insert(STATES).on_conflict_do_nothing(index_elements=["vehicle_id"]),
                     [{"vehicle_id": v, "state": {}, "last_ts": None, "updated_at": now}
                      for v in missing])
        raw.update(conn.execute(query.where(STATES.c.vehicle_id.in_(missing))).all())
    return {v: RoutingState.from_dict(state) if state else None for v, state in raw.items()}


_SAVE_STATE = (STATES.update().where(STATES.c.vehicle_id == bindparam("vid"))
               .values(state=bindparam("state", type_=STATES.c.state.type),
                       last_ts=bindparam("last_ts"), updated_at=bindparam("updated_at")))


def save_states(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Write the batch's states back (``vid``, ``state`` dict, ``last_ts``, ``updated_at``)."""
    if rows:
        conn.execute(_SAVE_STATE, rows)


def tracking_steps(app: Flask) -> list[AfterStore]:
    step = TrackingStep()
    app.extensions["xiaoche.contexts"] = step.contexts
    return [step]


def live_trip(vehicle_id: str) -> dict | None:
    """The trip the vehicle is on now, from its stored tracker state (None when on none)."""
    raw = db.session.scalar(select(TrackerState.state).where(TrackerState.vehicle_id == vehicle_id))
    if not raw:
        return None
    state = RoutingState.from_dict(raw)
    trip = getattr(state, "trip", None)
    if trip is None:
        return None
    return {"trip_id": getattr(trip, "trip_id", None), "route_id": getattr(trip, "route_id", None),
            "run_id": getattr(trip, "run_id", None)}
