"""The notification rules wired into the ingest transaction.

After tracking, :class:`NotifyStep` turns the batch's events and the ETA of every trip in
progress into messages (``notifications.rules``) and writes them as ``notifications`` rows in the
same transaction: pings, events and the notifications they cause commit together, and the
dispatcher pushes them afterwards (the outbox). :class:`ScanStep` does the same for rider card
scans (``rider_boarded`` / ``rider_alighted`` / ``rider_wrong_bus`` events first, then their
messages). Who is told what comes from :class:`Audience`, a per-process snapshot of the users
and their scopes rebuilt every ``ttl_s``: the rules never query.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, selectinload

from backend.messages_service import insert_notifications
from backend.models import District, Route, School, Stop, User, Vehicle
from backend.scopes import visible_route_ids, visible_vehicle_ids
from backend.tracker_states import load_states
from backend.tracking_service import (
    EVENTS,
    ContextCache,
    PingEta,
    PingEtas,
    Tracked,
    event_row,
    route_definition,
)
from gps_ingest.pipeline import StoredScan
from notifications.config import DEFAULT, NotifyConfig
from notifications.model import Child, EtaSnapshot, Message, NotifyContext, Preferences, Subscriber
from notifications.rules import messages_for
from notifications.scans import ActiveTrip, scan_events, stop_at
from routing import model as rm
from routing.geometry import route_geometry
from routing.tracker import TrackerState as RoutingState
from routing.tracker import live_view, route_of

#: Roles told anything by the rules (teachers get nothing pushed yet).
NOTIFIED_ROLES = ("parent", "driver", "logistics", "admin")


@dataclass
class AudienceSnapshot:
    """Users indexed the way the rules are asked: by route, by child, by card."""

    parents_by_route: dict[str, list[Subscriber]] = field(default_factory=dict)
    parents_by_student: dict[str, list[Subscriber]] = field(default_factory=dict)
    children_by_card: dict[str, Child] = field(default_factory=dict)
    staff: list[Subscriber] = field(default_factory=list)
    drivers_by_vehicle: dict[str, list[Subscriber]] = field(default_factory=dict)
    context: NotifyContext = field(default_factory=NotifyContext)

    def for_event(self, event: rm.Event) -> list[Subscriber]:
        """Everyone a rule might tell about ``event`` (the rules pick among them)."""
        subs: dict[object, Subscriber] = {}
        for sub in self.parents_by_route.get(event.route_id or "", ()):
            subs[sub.user_id] = sub
        student_id = event.details.get("student_id") if event.details else None
        for sub in self.parents_by_student.get(str(student_id), ()) if student_id else ():
            subs[sub.user_id] = sub
        for sub in self.staff:
            subs[sub.user_id] = sub
        for sub in self.drivers_by_vehicle.get(event.vehicle_id, ()):
            subs[sub.user_id] = sub
        return list(subs.values())


def load_audience(conn: Connection) -> AudienceSnapshot:
    """Read every notified user with their children, preferences and scope (a few queries)."""
    snap = AudienceSnapshot()
    parents_by_route: dict[str, list[Subscriber]] = defaultdict(list)
    parents_by_student: dict[str, list[Subscriber]] = defaultdict(list)
    drivers: dict[str, list[Subscriber]] = defaultdict(list)
    with Session(bind=conn) as session:
        users = session.scalars(
            select(User).where(User.role.in_(NOTIFIED_ROLES)).order_by(User.id)
            .options(selectinload(User.students), selectinload(User.schools),
                     selectinload(User.vehicles))).all()
        for user in users:
            prefs = Preferences.from_json(user.preferences)
            if user.role == "parent":
                children = tuple(Child(s.id, s.name, s.route_id, s.stop_id, s.card_id)
                                 for s in user.students)
                sub = Subscriber(user.id, "parent", prefs, children=children)
                for child in children:
                    parents_by_student[child.student_id].append(sub)
                    if child.card_id:
                        snap.children_by_card[child.card_id] = child
                for route_id in {c.route_id for c in children if c.route_id}:
                    parents_by_route[route_id].append(sub)
            elif user.role == "driver":
                sub = Subscriber(user.id, "driver", prefs,
                                 vehicle_ids=frozenset(v.id for v in user.vehicles))
                for vehicle_id in sub.vehicle_ids:
                    drivers[vehicle_id].append(sub)
            elif user.role == "admin":
                snap.staff.append(Subscriber(user.id, "admin", prefs, all_in_scope=True))
            else:
                snap.staff.append(Subscriber(
                    user.id, user.role, prefs,
                    route_ids=frozenset(visible_route_ids(user, session) or ()),
                    vehicle_ids=frozenset(visible_vehicle_ids(user, session) or ())))
        snap.context = _context(session)
    # a child without parents in the app still has a card: the driver hears of a wrong bus
    with Session(bind=conn) as session:
        from backend.models import Student

        for s in session.scalars(select(Student).where(Student.card_id.is_not(None))):
            snap.children_by_card.setdefault(
                s.card_id, Child(s.id, s.name, s.route_id, s.stop_id, s.card_id))  # type: ignore[arg-type]
    snap.parents_by_route = dict(parents_by_route)
    snap.parents_by_student = dict(parents_by_student)
    snap.drivers_by_vehicle = dict(drivers)
    return snap


def _context(session: Session) -> NotifyContext:
    plates = {v.id: v.plate or v.id for v in session.scalars(select(Vehicle))}
    names = {s.id: s.name for s in session.scalars(select(Stop))}
    names.update({s.id: s.name for s in session.scalars(select(School))})
    routes = {r.id: route_definition(session, r) for r in session.scalars(select(Route))}
    timezone = session.scalars(select(District.timezone).order_by(District.id)).first()
    return NotifyContext(plates=plates, routes=routes, stop_names=names,
                         timezone=timezone or "Asia/Shanghai")


class Audience:
    """:func:`load_audience`, cached for ``ttl_s`` (a parent who changes preferences or a new
    student's card is seen within that time)."""

    def __init__(self, ttl_s: float = 30.0):
        self.ttl_s = ttl_s
        self._snapshot: AudienceSnapshot | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def get(self, conn: Connection) -> AudienceSnapshot:
        with self._lock:
            now = time.monotonic()
            if self._snapshot is None or now - self._loaded_at >= self.ttl_s:
                self._snapshot = load_audience(conn)
                self._loaded_at = now
            return self._snapshot

    def clear(self) -> None:
        with self._lock:
            self._snapshot = None


def eta_snapshot(ctx: rm.VehicleContext, state: RoutingState) -> EtaSnapshot | None:
    """The trip's ETA prediction after this batch, with the metres left to each stop ahead."""
    view = live_view(ctx, state)
    if view is None or state.trip is None:
        return None
    route = route_of(ctx, view.route_id)
    distances: dict[str, float] = {}
    if route is not None:
        geom = route_geometry(route)
        for place, along, stop in zip(route.stops, geom.stop_along, view.stops, strict=True):
            if stop.eta is not None:
                distances[place.id] = max(0.0, along - state.trip.progress_m)
    return EtaSnapshot.from_live_view(view, distances)


def snapshot_of(eta: PingEta) -> EtaSnapshot:
    """A per-ping ETA (:class:`backend.tracking_service.PingEta`) as the rules' snapshot."""
    return EtaSnapshot(
        route_id=eta.route_id, trip_id=eta.trip_id, vehicle_id=eta.vehicle_id, as_of=eta.as_of,
        etas=dict(zip(eta.stop_ids, eta.etas, strict=True)), delay_s=eta.delay_s,
        distances_m={s: d for s, d in zip(eta.stop_ids, eta.distances_m, strict=True)
                     if d is not None})


def write_messages(conn: Connection, messages: Iterable[Message]) -> int:
    """Insert messages as outbox rows (one per dedupe key; earlier keys are skipped)."""
    rows, seen = [], set()
    for m in messages:
        if m.dedupe_key not in seen:
            seen.add(m.dedupe_key)
            rows.append(m.as_row())
    return insert_notifications(conn, rows)


class NotifyStep:
    """A ``TrackingStep`` batch step: the batch's events and trips in progress → messages.

    ETAs are taken after every ping (``etas``, in event time), not only after the batch's last:
    a trip whose pings arrive as one backlog array is told about like one sent ping by ping.
    """

    def __init__(self, audience: Audience | None = None, cfg: NotifyConfig = DEFAULT):
        self.audience = audience or Audience()
        self.cfg = cfg
        # the trip's previous snapshot per vehicle, so a stop already within the threshold is
        # not announced again each ping (the dedupe key is the guarantee; this saves the work)
        self._previous: dict[str, EtaSnapshot] = {}

    def eta_routes(self, conn: Connection) -> set[str]:
        """The routes whose ETAs may tell anyone anything: those with parents."""
        return set(self.audience.get(conn).parents_by_route)

    def __call__(self, conn: Connection, events: Sequence[rm.Event], tracked: Tracked,
                 etas: PingEtas | None = None) -> int:
        """Write the messages; returns how many notifications are new."""
        if not events and not any(state.trip is not None for _, state in tracked.values()):
            return 0
        audience = self.audience.get(conn)
        messages: list[Message] = []
        for event in events:
            messages.extend(messages_for(event, audience.for_event(event), audience.context,
                                         self.cfg))
        for vehicle_id, (ctx, state) in tracked.items():
            per_ping = etas.get(vehicle_id) if etas is not None else None
            if per_ping is None:
                if state.trip is None:
                    continue
                last = eta_snapshot(ctx, state)
                snapshots = [] if last is None else [last]
            else:
                snapshots = [snapshot_of(e) for e in per_ping]
            for snapshot in snapshots:
                parents = audience.parents_by_route.get(snapshot.route_id)
                if not parents:
                    continue
                messages.extend(messages_for(snapshot, parents, audience.context, self.cfg,
                                             previous=self._previous.get(vehicle_id)))
                self._previous[vehicle_id] = snapshot
            if state.trip is None:
                self._previous.pop(vehicle_id, None)
        return write_messages(conn, messages) if messages else 0


class ScanStep:
    """An ingest ``after_scans`` step: rider card scans → rider events and their messages.

    The trip a scan belongs to is the vehicle's trip in progress after this batch's pings (its
    stored tracker state); the stop is the one of that route nearest the scan, when the scan has
    a position. An unknown card makes no event (its scan stays stored for staff).
    """

    def __init__(self, audience: Audience, contexts: ContextCache,
                 notify: NotifyStep | None = None):
        self.audience = audience
        self.contexts = contexts
        self.notify = notify or NotifyStep(audience)

    def __call__(self, conn: Connection, scans: Sequence[StoredScan]) -> None:
        audience = self.audience.get(conn)
        vehicle_ids = sorted({s.vehicle_id for s in scans if s.vehicle_id})
        states = load_states(conn, vehicle_ids)
        events: list[rm.Event] = []
        for stored in sorted(scans, key=lambda s: (s.scan.ts, s.scan.card_id)):
            scan, vehicle_id = stored.scan, stored.vehicle_id
            rider = audience.children_by_card.get(scan.card_id)
            if vehicle_id is None or rider is None:
                continue
            ctx = self.contexts.get(conn, vehicle_id)
            state = states.get(vehicle_id)
            trip = state.trip if state is not None else None
            active = ActiveTrip(trip.route_id, trip.trip_id, trip.run_id) if trip else None
            # before a trip starts (a bus waiting at its first stop: trips start on departure)
            # the scan is placed on the rider's own route, when the bus serves it
            route = None if ctx is None else route_of(ctx, trip.route_id) if trip else \
                route_of(ctx, rider.route_id or "")
            stop_id = stop_at(scan.lat, scan.lon, route) \
                if route is not None and scan.lat is not None and scan.lon is not None else None
            route_ids = [r.id for r in ctx.routes] if ctx is not None else []
            events.extend(scan_events(scan.ts, scan.card_id, scan.action, vehicle_id, rider,
                                      active, route_ids, stop_id))
        if events:
            now = time.time()
            conn.execute(EVENTS.insert(), [event_row(e, now) for e in events])
            self.notify(conn, events, {})


def notification_steps(contexts: ContextCache) -> tuple[NotifyStep, ScanStep]:
    """The two steps with one shared audience cache (for ``backend.ingest.steps``)."""
    audience = Audience()
    notify = NotifyStep(audience)
    return notify, ScanStep(audience, contexts, notify)
