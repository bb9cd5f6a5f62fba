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
from collections.abc import Callable, Container, Sequence
from typing import Any

from sqlalchemy import Connection, func, or_, select

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
    Vehicle,
    vehicle_routes,
)
from backend.run_claims import claim_book, pooled_routes
from backend.tracker_states import load_state, lock_states, save_states, state_row
from gps_ingest.pipeline import StoredPing
from routing import model as rm
from routing.calendar import is_service_day, local_date
from routing.config import TrackerConfig
from routing.eta import TODAY_WINDOW_S, StretchLog
from routing.live import TripPredictor
from routing.tracker import OnPing, track_owned
from routing.tracker import TrackerState as RoutingState

EVENTS = Event.__table__
#: a stretch's arrival is an observation only with the arrival before it: read this far back
TODAY_STRETCH_MAX_S = 3600.0
ETA_HISTORY_RUNS = 10  # recent completed runs per run id whose segment times feed the ETA
#: completed runs read per run id, of which the ETA_HISTORY_RUNS latest of the same weekday type
#: (Monday-Friday, Saturday, Sunday) as the prediction are kept when there are enough of them
ETA_HISTORY_READ = 2 * ETA_HISTORY_RUNS
ETA_HISTORY_SAME_DAY_TYPE_MIN = 3


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

    def get_many(self, conn: Connection, vehicle_ids: Sequence[str],
                 as_of: float | None = None) -> dict[str, rm.VehicleContext | None]:
        """Each vehicle's context (``None`` for an unknown vehicle), the stale ones rebuilt;
        ``as_of`` (event time, default now) is when today's stretch observations end."""
        now = time.monotonic()
        out: dict[str, rm.VehicleContext | None] = {v: self._fresh(v, now) for v in vehicle_ids}
        missing = [v for v, ctx in out.items() if ctx is None]
        if missing:
            built = build_contexts(conn, missing) if as_of is None else \
                build_contexts(conn, missing, as_of=as_of)
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
            if run.dates is not None else None, vehicle_id=run.vehicle_id)
            for run in route.runs),
    )


def build_contexts(conn: Connection, vehicle_ids: Sequence[str], as_of: float | None = None,
                   observed: tuple[float, float] | None = None) -> dict[str, rm.VehicleContext]:
    """The tracking context of each known vehicle of ``vehicle_ids`` (unknown ones are left out),
    read with a fixed number of statements whatever the number of vehicles.

    Today's stretch observations for the ETA (``segment_observations``) are the stop events in
    ``observed`` (``(since, until)`` in event time; default: the ETA's window up to ``as_of``,
    itself by default now), and the run history is of the service days before ``as_of``'s, of
    its weekday type where there is enough of it."""
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
        as_of = time.time() if as_of is None else as_of
        since, until = (as_of - TODAY_WINDOW_S, as_of) if observed is None else observed
        observations = today_observations(conn, sorted({
            place.id for routes in routes_of.values() for route in routes
            for place in route.stops}), since, until)
        for vehicle in vehicles:
            routes = routes_of[vehicle.id]
            runs = {run.id for route in routes for run in route.runs}
            teacher = teachers.get(vehicle.id)
            out[vehicle.id] = rm.VehicleContext(
                vehicle_id=vehicle.id, kind=vehicle.kind, speed_limit_kmh=vehicle.speed_limit_kmh,
                routes=routes, schools=schools, calendar=calendars[vehicle.district_id],
                assignments=tuple(assignments[teacher.id]) if teacher else (),
                teacher_id=teacher.id if teacher else None,
                segment_history={r: _same_day_type(h, calendars[vehicle.district_id], as_of)
                                 for r, h in history.items() if r in runs},
                segment_observations=_observations_of(routes, observations),
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


class _History(list):
    """A run's ``segment_s`` list that remembers its trip's service date (for the day type)."""

    service_date: str | None = None


def _segment_history(conn: Connection, run_ids: list[str]) -> dict[str, list[list[float]]]:
    """The segment times of each run's last ``ETA_HISTORY_READ`` completed trips, newest first:
    one statement for all the runs (a window per run)."""
    if not run_ids:
        return {}
    recent = (select(EVENTS.c.run_id, EVENTS.c.details, func.row_number().over(
        partition_by=EVENTS.c.run_id, order_by=(EVENTS.c.ts.desc(), EVENTS.c.id.desc()))
        .label("n")).where(EVENTS.c.kind == "trip_completed", EVENTS.c.run_id.in_(run_ids))
        .subquery())
    history: dict[str, list[list[float]]] = {}
    for run_id, details in conn.execute(
            select(recent.c.run_id, recent.c.details).where(recent.c.n <= ETA_HISTORY_READ)
            .order_by(recent.c.run_id, recent.c.n)):
        if details and details.get("segment_s"):
            entry = _History(details["segment_s"])
            entry.service_date = details.get("service_date")
            history.setdefault(run_id, []).append(entry)
    return history


def _day_type(day: dt.date) -> int:
    """0 Monday-Friday, 1 Saturday, 2 Sunday: traffic differs between them, not within."""
    return max(day.weekday() - 4, 0)


def _same_day_type(history: list[list[float]], calendar: rm.Calendar,
                   as_of: float) -> list[list[float]]:
    """The latest ``ETA_HISTORY_RUNS`` of the run's history of ``as_of``'s weekday type, when
    there are at least ``ETA_HISTORY_SAME_DAY_TYPE_MIN``; else the latest of any day. Trips of
    ``as_of``'s service day or later are left out (an audit replays a day's ETAs as they were)."""
    day = local_date(as_of, calendar)
    dated = [(h, dt.date.fromisoformat(h.service_date) if getattr(h, "service_date", None)
              else None) for h in history]
    before = [(h, d) for h, d in dated if d is None or d < day]
    same = [h for h, d in before if d is not None and _day_type(d) == _day_type(day)]
    chosen = same if len(same) >= ETA_HISTORY_SAME_DAY_TYPE_MIN else [h for h, _ in before]
    return [list(h) for h in chosen[:ETA_HISTORY_RUNS]]


Observations = dict[tuple[str, str], tuple[rm.SegmentObservation, ...]]


def today_observations(conn: Connection, stop_ids: Sequence[str], since: float,
                       until: float) -> Observations:
    """Every drive between two consecutive stops of a trip (any run, any vehicle) that arrived in
    ``[since, until]``, from the stored ``stop_arrived``/``stop_departed`` events: one statement
    (the ``kind, ts`` index) for every stretch of every route asked for."""
    if not stop_ids:
        return {}
    rows = conn.execute(
        select(EVENTS.c.trip_id, EVENTS.c.kind, EVENTS.c.stop_id, EVENTS.c.ts)
        .where(EVENTS.c.kind.in_(("stop_arrived", "stop_departed")),
               EVENTS.c.ts >= since - TODAY_STRETCH_MAX_S, EVENTS.c.ts <= until,
               EVENTS.c.stop_id.in_(stop_ids), EVENTS.c.trip_id.is_not(None))
        .order_by(EVENTS.c.trip_id, EVENTS.c.ts, EVENTS.c.id)).all()
    log = StretchLog()
    for trip_id, kind, stop_id, ts in rows:
        log.add(trip_id, kind, stop_id, ts, since)
    return log.observations()


def _observations_of(routes: Sequence[rm.Route], observations: Observations) -> Observations:
    """The stretches of these routes only (a context stays small)."""
    out: Observations = {}
    for route in routes:
        for a, b in zip(route.stops, route.stops[1:], strict=False):
            seen = observations.get((a.id, b.id))
            if seen:
                out[(a.id, b.id)] = seen
    return out


def event_row(event: rm.Event, created_at: float) -> dict[str, Any]:
    return {"kind": event.kind, "ts": event.ts, "vehicle_id": event.vehicle_id,
            "route_id": event.route_id, "trip_id": event.trip_id, "run_id": event.run_id,
            "stop_id": event.stop_id, "details": dict(event.details), "created_at": created_at}


EventStep = Callable[[Connection, list[rm.Event]], Any]
#: Tracked = vehicle id -> (its context, its tracker state after this batch), for every vehicle
#: the batch moved: what a step needs to see trips in progress (ETAs) without reading them back.
Tracked = dict[str, tuple[rm.VehicleContext, RoutingState]]
BatchStep = Callable[[Connection, list[rm.Event], Tracked], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class PingEta:
    """A trip's ETAs as of one ping (``as_of`` is its ``ts``), per stop of the route in order
    (``None`` for stops done), with their uncertainties and the metres then left to each."""

    route_id: str
    trip_id: str
    run_id: str
    vehicle_id: str
    as_of: float
    delay_s: float
    stop_ids: tuple[str, ...]
    etas: tuple[float | None, ...]
    uncertainties: tuple[float | None, ...]
    distances_m: tuple[float | None, ...]


#: vehicle id -> its trip's ETAs after each ping of this batch, in event time
PingEtas = dict[str, list[PingEta]]


def ping_eta_recorder(ctx: rm.VehicleContext, config: TrackerConfig, out: list[PingEta],
                      route_ids: Container[str] | None = None) -> OnPing:
    """A tracker ``on_ping`` callback appending the trip's ETAs after every ping to ``out``
    (only for trips of ``route_ids``, when given): the predictions of
    :func:`routing.tracker.live_view`, without building a live view per ping (the route's
    geometry is looked up once per batch, not hashed per ping)."""
    predictor = TripPredictor(ctx, config)

    def record(state: RoutingState) -> None:
        if route_ids is not None and (state.trip is None or state.trip.route_id not in route_ids):
            return
        made = predictor(state)
        if made is None:
            return
        trip, geom, pred = made.trip, made.geom, made.pred
        progress = trip.progress_m
        out.append(PingEta(
            trip.route_id, trip.trip_id, trip.run_id, ctx.vehicle_id, state.last_ts,
            round(pred.delay_s, 1), made.stop_ids, pred.etas, pred.uncertainties,
            tuple(None if e is None else max(0.0, a - progress)
                  for e, a in zip(pred.etas, geom.stop_along, strict=True))))
    return record


class TrackingStep:
    """The after-store step of the ingest pipeline (built with its steps in
    ``backend.ingest.steps``, the one list).

    ``event_steps`` get the events this batch produced, in the same transaction, once they are
    inserted (the subsidy ledger books completed teacher trips there): no step has to read back
    what tracking just wrote, and a batch without events costs them nothing.

    A batch step with an ``eta_routes(conn)`` method (the routes it wants ETAs of, ``None`` for
    all) is also handed ``etas=``: the ETAs after every ping of the batch, in event time, not only
    after its last one (a backlog array is a trip's pings all the same).
    """

    def __init__(self, config: TrackerConfig | None = None, contexts: ContextCache | None = None,
                 event_steps: Sequence[EventStep] = (),
                 batch_steps: Sequence[BatchStep] = ()):
        self.config = config or TrackerConfig()
        self.contexts = contexts or ContextCache()
        self.event_steps = list(event_steps)  # the ingest's: backend.ingest.steps.event_steps
        # called for every batch, events or not (an ETA moves with every ping): notifications
        self.batch_steps = list(batch_steps)

    def _eta_routes(self, conn: Connection) -> tuple[bool, set[str] | None]:
        """Whether any step wants per-ping ETAs, and of which routes (None: all)."""
        wanted: set[str] | None = set()
        asked = False
        for step in self.batch_steps:
            routes = getattr(step, "eta_routes", None)
            if routes is None:
                continue
            asked = True
            these = routes(conn)
            wanted = None if these is None or wanted is None else wanted | set(these)
        return asked, wanted

    def __call__(self, conn: Connection, stored: list[StoredPing]) -> None:
        by_vehicle: dict[str, list[rm.Ping]] = defaultdict(list)
        for s in stored:
            p = s.ping
            by_vehicle[s.vehicle_id].append(rm.Ping(ts=p.ts, lat=p.lat, lon=p.lon,
                                                    speed_kmh=p.speed_kmh,
                                                    heading_deg=p.heading_deg,
                                                    accuracy_m=p.accuracy_m))
        latest = max((s.ping.ts for s in stored), default=None)
        contexts = self.contexts.get_many(conn, sorted(by_vehicle), as_of=latest)
        vehicle_ids = [v for v, ctx in contexts.items() if ctx is not None]
        if not vehicle_ids:
            return
        now = time.time()
        states = lock_states(conn, vehicle_ids, now)
        saved: list[dict[str, Any]] = []
        produced: list[rm.Event] = []
        tracked: Tracked = {}
        per_ping, routes = self._eta_routes(conn)
        etas: PingEtas = {}
        # pool routes: one vehicle per run, each seeing the holds as the batch advances them
        book = claim_book(conn, {v: contexts[v] for v in vehicle_ids}, states, self.config)
        for vehicle_id in vehicle_ids:
            ctx = contexts[vehicle_id]
            assert ctx is not None
            on_ping = None
            if per_ping and (routes is None or any(r.id in routes for r in ctx.routes)):
                on_ping = ping_eta_recorder(ctx, self.config, etas.setdefault(vehicle_id, []),
                                            routes)
            tracking = dataclasses.replace(ctx, claims=book.claims) \
                if book is not None and ctx.pool_route_ids else ctx
            # the state was read for this call alone: advanced in place, not copied
            new_state, new_events = track_owned(tracking, states.get(vehicle_id),
                                                by_vehicle[vehicle_id], self.config, on_ping)
            if book is not None:
                book.update(vehicle_id, new_state)
            tracked[vehicle_id] = (ctx, new_state)
            saved.append(state_row(vehicle_id, new_state, now))
            produced.extend(new_events)
        save_states(conn, saved)
        if produced:
            conn.execute(EVENTS.insert(), [event_row(e, now) for e in produced])
            for step in self.event_steps:
                step(conn, produced)
        for batch_step in self.batch_steps:
            if getattr(batch_step, "eta_routes", None) is not None:
                batch_step(conn, produced, tracked, etas=etas)  # type: ignore[call-arg]
            else:
                batch_step(conn, produced, tracked)




def live_trip(vehicle_id: str) -> dict | None:
    """The trip the vehicle is on now, from its stored tracker state (None when on none)."""
    state = load_state(db.session.connection(), vehicle_id)
    trip = getattr(state, "trip", None)
    if trip is None:
        return None
    return {"trip_id": getattr(trip, "trip_id", None), "route_id": getattr(trip, "route_id", None),
            "run_id": getattr(trip, "run_id", None)}
