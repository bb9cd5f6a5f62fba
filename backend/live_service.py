"""What the live endpoints read: which bus serves a route today, the trip it is on, its ETAs.

Everything comes from the tracker state that the ingest stores per vehicle (one small row) and
from the vehicle contexts cached per process, so a ``/routes/{id}/live`` answers from an indexed
lookup and the pure :func:`routing.tracker.live_view`, never from a scan of pings.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from backend.extensions import db
from backend.models import Event, Route, RouteSubstitution, vehicle_routes
from backend.scopes import STAFF
from backend.tracker_states import last_ping_marks, load_state, load_states
from backend.tracking_service import ContextCache, district_calendar, route_definition
from routing import model as rm
from routing.calendar import is_service_day, local_date, service_dates_for, service_day_start
from routing.config import TrackerConfig
from routing.state import TrackerState as RoutingState
from routing.state import TripState
from routing.tracker import live_view, route_of

CONFIG = TrackerConfig()
#: who may read a route's live view (``GET /routes/<id>/live``, served by the view or the
#: fast path), each within their scope
LIVE_ROLES = ("parent", *STAFF)


def clock() -> float:
    """The wall clock of the live views; tests give the app a fixed ``CLOCK``."""
    return current_app.config.get("CLOCK", time.time)()


def contexts() -> ContextCache:
    """This process's vehicle contexts (shared with its ingest pipeline when it has one)."""
    cache = current_app.extensions.get("xiaoche.contexts")
    if cache is None:
        cache = current_app.extensions["xiaoche.contexts"] = ContextCache()
    return cache


def vehicle_context(vehicle_id: str) -> rm.VehicleContext | None:
    return contexts().get(db.session.connection(), vehicle_id)


def tracker_state(vehicle_id: str) -> RoutingState | None:
    return load_state(db.session.connection(), vehicle_id)


def current_trip(state: RoutingState | None, now: float) -> TripState | None:
    """The trip the tracker state is on, unless its device fell silent past the trip timeout
    (the tracker only closes such a trip on the vehicle's next ping)."""
    trip = state.trip if state is not None else None
    if trip is None or now > trip.scheduled_at[-1] + CONFIG.trip_timeout_slack_s:
        return None
    return trip


def route_vehicle_ids(route_id: str, service_date: dt.date) -> list[str]:
    """Who drives the route on a date: the substitute when one is set, else its own buses."""
    substitute = db.session.scalar(select(RouteSubstitution.vehicle_id).where(
        RouteSubstitution.route_id == route_id,
        RouteSubstitution.service_date == service_date.isoformat()))
    if substitute is not None:
        return [substitute]
    return sorted(db.session.scalars(select(vehicle_routes.c.vehicle_id)
                                     .where(vehicle_routes.c.route_id == route_id)))


@dataclass(frozen=True)
class RouteLive:
    """A route right now: the trip in progress (``view``) or, when none, today's timetable."""

    route: rm.Route
    view: rm.LiveView | None
    vehicle_id: str | None
    scheduled_at: tuple[float, ...] | None  # the next (or last) run of today, when no trip
    eta_confidence: tuple[float | None, ...] | None = None
    #: when no trip: today's newest completed trip of the route (:func:`last_trip_today`)
    last_trip: LastTrip | None = None
    #: when no trip: the next run to depart, today or on a later service day (:func:`next_run`)
    next_run: NextRun | None = None


@dataclass(frozen=True)
class LastTrip:
    """The newest trip of the route completed today (local service day): what the parents'
    page says once the bus is at school ("今日已到校 07:28")."""

    trip_id: str
    completed_at: float
    arrived_at_last_stop: float | None  # the stop_arrived at the route's last stop, if seen


@dataclass(frozen=True)
class NextRun:
    """The next departure of the route after ``now``: the run, its service date and the time it
    leaves its first stop."""

    run_id: str
    service_date: dt.date
    departs_at: float


class TtlCache:
    """A small per-process cache whose entries live ``ttl_s`` seconds (monotonic clock).

    One load per key at a time: the callers that miss while a load of their key is in flight
    wait for it and take its value (``wait=True``), instead of each computing the same answer —
    with 50 clients polling ``/live``, every expiry or new ping would otherwise have some
    twenty threads of a worker compute and render the same answer at once, one after another
    under the interpreter lock. A caller that holds a database connection passes ``wait=False``
    when the load needs one (it loads itself rather than wait on a loader that might wait for
    its connection); a failed load is retried by each waiter itself.
    """

    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._items: dict[Any, tuple[float, Any]] = {}
        self._loading: dict[Any, _Load] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], Any], wait: bool = True) -> Any:
        now = time.monotonic()
        hit = self._items.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        with self._lock:
            running = self._loading.get(key)
            if running is None:
                running = self._loading[key] = _Load()
                leader = True
            else:
                leader = False
        if not leader:
            if wait:
                running.done.wait()
                if running.ok:
                    return running.value
            return load()  # not waiting, or the load in flight failed: load here
        try:
            value = load()
            running.value, running.ok = value, True
            with self._lock:
                if len(self._items) > 10_000:
                    self._items.clear()
                self._items[key] = (now, value)
            return value
        finally:
            with self._lock:
                self._loading.pop(key, None)
            running.done.set()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class _Load:
    """A load in flight: its waiters block on ``done``; ``ok`` says whether ``value`` is one."""

    __slots__ = ("done", "ok", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.value: Any = None


# What a route is changes only on an import (in-process: cleared at once; elsewhere within a
# minute); who drives it changes with a substitute bus. A finished answer is reused while its
# buses' tracker states are unchanged (a new ping shows at once) and for at most a few seconds
# (the time-dependent parts: a trip timing out, the next run of the day); so is its JSON body,
# per crs (``route_live_json``).
_ROUTES = TtlCache(60.0)
_DRIVERS = TtlCache(30.0)
_ANSWERS = TtlCache(5.0)
_BODIES = TtlCache(5.0)


def clear_caches() -> None:
    """After an import or a substitute bus: this process sees the change at once."""
    from backend.auth import forget_callers

    contexts().clear()
    for cache in (_ROUTES, _DRIVERS, _ANSWERS, _BODIES):
        cache.clear()
    forget_callers()  # a password changed by the import logs its old tokens out here at once


def route_live(route_id: str, now: float | None = None) -> RouteLive | None:
    """The live state of a route, or ``None`` when the route does not exist."""
    found = _route_answer(route_id, clock() if now is None else now)
    return None if found is None else found[1]


def route_live_json(route_id: str, crs: str, render: Callable[[RouteLive, str], bytes]
                    ) -> bytes | None:
    """``render(route_live(route_id), crs)``, rendered once per answer and crs in this process
    (the answer's signature: its buses' tracker states and the 5 s time bucket); ``None`` when
    the route does not exist. When cached, a call costs at most one indexed read of its buses'
    ``last_ts``, shared with the calls that arrived meanwhile (:class:`SharedRead`)."""
    found = _route_answer(route_id, clock())
    if found is None:
        return None
    signature, live = found
    return _BODIES.get((signature, crs), lambda: render(live, crs))  # no database: always wait


def _route_answer(route_id: str, now: float) -> tuple[tuple, RouteLive] | None:
    """(signature, answer): the answer is recomputed only when the signature changes."""
    # A request whose session already holds a connection reads itself on it and never waits
    # for another's read; the waiters hold none; so no request waits for a connection while
    # holding one (no deadlock on the pool however many threads wait)
    holds = _holds_connection()
    static = _ROUTES.get(route_id, lambda: _route_static(route_id), wait=not holds)
    if static is None:
        return None
    definition, calendar = static
    today = local_date(now, calendar)
    candidates = list(_DRIVERS.get((route_id, today), lambda: route_vehicle_ids(route_id, today),
                                   wait=not holds))
    # a trip started yesterday evening and still running keeps yesterday's substitute
    yesterday = today - dt.timedelta(days=1)
    candidates += [v for v in _DRIVERS.get((route_id, yesterday),
                                           lambda: route_vehicle_ids(route_id, yesterday),
                                           wait=not holds)
                   if v not in candidates]
    # only the newest-ping marks here (the state JSON is read when the answer changed), and one
    # read shared by the requests of this process that arrived before it started
    holds = _holds_connection()  # the loads above may have begun the session's transaction
    marks = _shared_reads().get((route_id, tuple(candidates)),
                                lambda: _newest_ping_marks(candidates, holds),
                                share=not holds,
                                max_age_s=current_app.config.get("LIVE_MARKS_MAX_AGE_S", 0.0))
    signature = (route_id, int(now // 5), marks)
    return signature, _ANSWERS.get(signature, lambda: _compute_route_live(
        route_id, definition, calendar, candidates,
        load_states(db.session.connection(), candidates), now),
        wait=not holds)


def _newest_ping_marks(vehicle_ids: list[str], on_session: bool) -> tuple[tuple[str, float], ...]:
    """(vehicle id, newest ping ts) of these vehicles' tracker states, sorted, through Core: on
    the session's connection when it holds one, else on a pooled connection in autocommit,
    given back at once (one statement, no BEGIN and ROLLBACK round trips around it)."""
    if on_session:
        return last_ping_marks(db.session.connection(), vehicle_ids)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return last_ping_marks(conn, vehicle_ids)


def _holds_connection() -> bool:
    """Whether this thread's session has begun a transaction (so holds a connection), without
    creating a session when it has none."""
    return db.session.registry.has() and db.session().in_transaction()


class SharedRead:
    """One read at a time per key, shared by the callers that arrived before it started.

    A caller only ever gets the result of a read that *began after it called* (a read started
    earlier may miss a commit the caller already knows of), so what it sees is as fresh as if it
    had read itself, and sequential callers each read. But while one thread's read is in
    flight, the callers arriving meanwhile wait for the next read and share it instead of each
    running their own. ``max_age_s`` > 0 relaxes "after it called" to "at most that long
    before" (a bounded staleness, for deployments that prefer fewer reads).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[Any, _Slot] = {}

    def get(self, key: Any, read: Callable[[], Any], share: bool = True,
            max_age_s: float = 0.0) -> Any:
        """``read()``, or the result of a read of ``key`` that began after this call (at most
        ``max_age_s`` before it). With ``share=False`` the caller never waits: it reads itself
        unless a fresh enough result is already there (and its result serves the waiters)."""
        called = time.monotonic()
        oldest = called - max_age_s  # a read that began at or after this will do
        slot = self._slots.get(key)
        if slot is None:
            with self._lock:
                if len(self._slots) > 10_000:
                    self._slots.clear()
                slot = self._slots.setdefault(key, _Slot())
        with slot.changed:
            while slot.done_started < oldest:  # no read fresh enough has finished
                if not share:
                    started = called
                    break
                if not slot.reading:
                    slot.reading = True
                    started = time.monotonic()
                    break
                slot.changed.wait()  # the read in flight (or the next one) will do
            else:
                return slot.value
        try:
            value = read()
        except BaseException:
            if share:
                with slot.changed:
                    slot.reading = False
                    slot.changed.notify_all()  # a waiter reads (and meets the error) itself
            raise
        with slot.changed:
            if started > slot.done_started:
                slot.value, slot.done_started = value, started
            if share:
                slot.reading = False
            slot.changed.notify_all()
        return value


class _Slot:
    def __init__(self) -> None:
        self.changed = threading.Condition(threading.Lock())
        self.reading = False
        self.done_started = float("-inf")  # when the newest finished read began
        self.value: Any = None


def _shared_reads() -> SharedRead:
    """This app's shared reads (per process; tests get a new app each)."""
    reads = current_app.extensions.get("xiaoche.shared_reads")
    if reads is None:
        reads = current_app.extensions.setdefault("xiaoche.shared_reads", SharedRead())
    return reads


def _compute_route_live(route_id: str, definition: rm.Route, calendar: rm.Calendar,
                        candidates: list[str], states: Mapping[str, RoutingState | None],
                        now: float) -> RouteLive:
    """``states``: the candidates' stored tracker states, read after the signature's marks (a
    state newer than its mark only makes the answer fresher, and the next call recomputes it)."""
    for vehicle_id in candidates:
        state = states.get(vehicle_id)
        trip = current_trip(state, now)
        if trip is None or trip.route_id != route_id:
            continue
        ctx = vehicle_context(vehicle_id)
        view = live_view(ctx, state, CONFIG) if ctx is not None else None
        if view is not None:
            return RouteLive(route=route_of(ctx, route_id) or definition, view=view,
                             vehicle_id=vehicle_id, scheduled_at=None)
    return RouteLive(route=definition, view=None, vehicle_id=None,
                     scheduled_at=todays_timetable(definition, calendar, now),
                     last_trip=last_trip_today(definition, calendar, now),
                     next_run=next_run(definition, calendar, now))


def last_trip_today(route: rm.Route, calendar: rm.Calendar, now: float) -> LastTrip | None:
    """Today's newest completed trip of ``route`` (its ``trip_completed`` event since the local
    midnight, up to ``now``) and when it reached the route's last stop (the school)."""
    since = service_day_start(local_date(now, calendar), calendar)
    done = db.session.execute(
        select(Event.trip_id, Event.ts)
        .where(Event.kind == "trip_completed", Event.ts >= since, Event.ts <= now,
               Event.route_id == route.id)
        .order_by(Event.ts.desc()).limit(1)).first()
    if done is None or done.trip_id is None:
        return None
    arrived = None
    if route.stops:
        arrived = db.session.scalar(
            select(func.min(Event.ts)).where(Event.trip_id == done.trip_id,
                                             Event.kind == "stop_arrived",
                                             Event.stop_id == route.stops[-1].id))
    return LastTrip(trip_id=done.trip_id, completed_at=done.ts, arrived_at_last_stop=arrived)


NEXT_RUN_HORIZON_DAYS = 21  # a winter holiday longer than this: no next run is named


def next_run(route: rm.Route, calendar: rm.Calendar, now: float) -> NextRun | None:
    """The first run of ``route`` leaving its first stop after ``now``: later today, else on
    the next service day that has one (within :data:`NEXT_RUN_HORIZON_DAYS`)."""
    today = local_date(now, calendar)
    for ahead in range(NEXT_RUN_HORIZON_DAYS + 1):
        day = today + dt.timedelta(days=ahead)
        day0 = service_day_start(day, calendar)
        found = [NextRun(run.id, day, day0 + run.times_s[0]) for run in route.runs
                 if run.times_s and is_service_day(run, calendar, day)
                 and day0 + run.times_s[0] > now]
        if found:
            return min(found, key=lambda r: (r.departs_at, r.run_id))
    return None


def _route_static(route_id: str) -> tuple[rm.Route, rm.Calendar] | None:
    row = db.session.get(Route, route_id)
    if row is None:
        return None
    return (route_definition(db.session, row),
            district_calendar(db.session.connection(), row.district_id))


def todays_timetable(route: rm.Route, calendar: rm.Calendar,
                     now: float) -> tuple[float, ...] | None:
    """Stop times of the run of today that has not ended yet (else today's last run)."""
    today = local_date(now, calendar)
    instances = []
    for run in route.runs:
        for day in service_dates_for(run, calendar, today):
            day0 = service_day_start(day, calendar)
            instances.append(tuple(day0 + t for t in run.times_s))
    if not instances:
        return None
    instances.sort()
    upcoming = [times for times in instances if times[-1] >= now]
    return upcoming[0] if upcoming else instances[-1]


def trip_bounds(trip_id: str) -> dict[str, Any] | None:
    """Vehicle, route and time span of a trip, from its events; ``None`` when unknown."""
    rows = db.session.execute(select(Event.kind, Event.ts, Event.vehicle_id, Event.route_id)
                              .where(Event.trip_id == trip_id,
                                     Event.kind.in_(("trip_started", "trip_completed")))
                              .order_by(Event.ts)).all()
    started = next((r for r in rows if r.kind == "trip_started"), None)
    if started is None:
        return None
    completed = next((r for r in rows if r.kind == "trip_completed"), None)
    in_progress = completed is None
    until = completed.ts if completed else None
    if in_progress:
        state = tracker_state(started.vehicle_id)
        live = state is not None and state.trip is not None and state.trip.trip_id == trip_id
        in_progress = live
        until = state.last_ts if live and state else started.ts
    return {"trip_id": trip_id, "vehicle_id": started.vehicle_id, "route_id": started.route_id,
            "started_at": started.ts, "until": until, "in_progress": in_progress}
