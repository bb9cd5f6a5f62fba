"""What ``GET /stream`` sends: a caller's positions, ETAs and notifications as they are stored.

The ingest may run in another process (or on another machine), so streams do not wait on an
in-process queue of the ingest: one reader per serving process (``backend.streams.hub``) reads,
every ``poll_s`` and in one short read-only transaction, the ``live_positions`` rows that
changed since its watermark and the notifications written since the last id, builds each event
once and hands it to every open stream that may see it. Any number of API processes and ingest
processes can therefore share the database.

This module holds what one stream is made of: the wire format (:class:`Message`), the resume
point a client sends back as ``Last-Event-ID`` (:class:`ResumePoint`), the reads (the events of
the vehicles that moved, a stream's catch-up). :func:`backend.streams.live.live_stream` makes
them one stream.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import func, select

from backend.extensions import db
from backend.live_service import CONFIG as TRACKER_CONFIG
from backend.live_service import clock, current_trip, vehicle_context
from backend.models import LivePosition, Notification
from backend.presenters import notification_item, out_point
from backend.scopes import LiveScope
from backend.timefmt import iso
from backend.tracker_states import load_states
from routing.state import TrackerState as RoutingState
from routing.tracker import live_view

T = TypeVar("T")

NOTIFICATIONS_PER_POLL = 200  # a long-disconnected client catches up over a few polls


@dataclass(frozen=True)
class StreamConfig:
    poll_s: float = 0.25
    heartbeat_s: float = 15.0
    max_s: float = 3600.0
    retry_ms: int = 3000  # what EventSource waits before it reconnects
    # Writers stamp received_at (ingest clock) and notification ids before they commit, so with
    # several writers a row can become visible after a newer one: each poll reads this far back
    # and skips what it already sent.
    late_commit_grace_s: float = 2.0
    # scope (children's routes, a school's buses, substitutes) and token validity are re-read
    scope_refresh_s: float = 30.0
    # a stream refused because the process holds STREAM_MAX: when to try again (the app polls
    # /routes/{id}/live meanwhile)
    retry_after_s: int = 30

    @classmethod
    def from_app_config(cls, config: Mapping[str, Any]) -> StreamConfig:
        return cls(poll_s=config["STREAM_POLL_MS"] / 1000.0,
                   heartbeat_s=float(config["STREAM_HEARTBEAT_S"]),
                   max_s=float(config["STREAM_MAX_S"]))


@dataclass(frozen=True)
class Message:
    """One Server-Sent Events message (or a comment)."""

    event: str | None = None
    data: Mapping[str, Any] | None = None
    id: str | None = None
    retry_ms: int | None = None
    comment: str | None = None
    # "event: …\ndata: …\n\n" encoded once for every stream that gets the same event
    body: str | None = field(default=None, compare=False, repr=False)

    def encode(self) -> str:
        if self.body is not None:
            return self.body if self.id is None else f"id: {self.id}\n{self.body}"
        lines = []
        if self.comment is not None:
            lines.append(f": {self.comment}")
        if self.retry_ms is not None:
            lines.append(f"retry: {self.retry_ms}")
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.data is not None:
            lines.append(_data_line(self.data))
        return "\n".join(lines) + "\n\n"


def _data_line(data: Mapping[str, Any]) -> str:
    # JSON without indent has no raw newline: one data line
    return "data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def event_body(kind: str, data: Mapping[str, Any]) -> str:
    """An event's lines after its ``id:``, the same for every stream that gets it."""
    return f"event: {kind}\n{_data_line(data)}\n\n"


HEARTBEAT = Message(comment="keep-alive")


@dataclass(frozen=True)
class ResumePoint:
    """Where a stream stands: ``"<live_positions.received_at>:<notification id>"`` in ``id:``."""

    received_at: float
    notification_id: int

    def encode(self) -> str:
        return f"{self.received_at!r}:{self.notification_id}"

    @classmethod
    def parse(cls, text: str | None) -> ResumePoint | None:
        """The point a ``Last-Event-ID`` names, or ``None`` when it is not one we gave out."""
        if not text:
            return None
        received, sep, notification = text.strip().partition(":")
        try:
            point = cls(float(received), int(notification))
        except ValueError:
            return None
        if not sep or not math.isfinite(point.received_at) or point.notification_id < 0:
            return None
        return point


class _LateCommitCursor:
    """A high-water mark over a key that writers assign before they commit.

    :meth:`floor` is the mark as it stood ``grace_s`` ago: reading from there finds a row that
    committed after a newer one; what was already sent is remembered (by ``ident``) until the
    floor passes it. Nothing at or below ``start`` (the resume point) is ever sent.
    """

    def __init__(self, start: Any, grace_s: float):
        self.start = self.mark = start
        self.grace_s = grace_s
        self._marks: deque[tuple[float, Any]] = deque()  # (monotonic time, mark then)
        self._sent: dict[Hashable, Any] = {}  # ident → key, above the floor

    def floor(self, now: float) -> Any:
        while len(self._marks) > 1 and self._marks[1][0] <= now - self.grace_s:
            self._marks.popleft()
        if self._marks and self._marks[0][0] <= now - self.grace_s:
            return self._marks[0][1]
        return self.start

    def remembered(self) -> int:
        return len(self._sent)

    def take(self, rows: Iterable[T], key: Callable[[T], Any], ident: Callable[[T], Hashable],
             now: float) -> list[T]:
        floor = self.floor(now)
        self._sent = {i: k for i, k in self._sent.items() if k > floor}
        fresh = [r for r in rows if key(r) > self.start and ident(r) not in self._sent]
        for r in fresh:
            self._sent[ident(r)] = key(r)
        if fresh:
            self.mark = max(self.mark, *(key(r) for r in fresh))
            self._marks.append((now, self.mark))
        return fresh



def resume_or_now(user_id: int | None, asked: ResumePoint | None) -> ResumePoint:
    """The client's resume point, but never ahead of what is stored (that one is not ours);
    ``user_id`` None: the newest notification of anyone (the hub's watermark)."""
    newest_received = db.session.scalar(select(func.max(LivePosition.received_at))) or 0.0
    newest = select(func.max(Notification.id))
    if user_id is not None:
        newest = newest.where(Notification.user_id == user_id)
    newest_notification = db.session.scalar(newest) or 0
    if asked is None:
        return ResumePoint(newest_received, newest_notification)
    return ResumePoint(min(asked.received_at, newest_received),
                       min(asked.notification_id, newest_notification))


@dataclass
class VehicleEvent:
    """A vehicle's new position (and, on a trip, its ETAs), encoded at most once per crs."""

    received_at: float
    ident: tuple
    vehicle_id: str
    route_id: str | None  # of the trip in progress
    lat: float
    lon: float
    position: dict[str, Any]  # WGS-84
    eta: dict[str, Any] | None
    _encoded: dict[str, list[tuple[str, dict, str]]] = field(default_factory=dict)

    def encoded(self, crs: str) -> list[tuple[str, dict, str]]:
        """``(kind, data, body)`` of the ``position`` and ``eta`` events in this crs."""
        found = self._encoded.get(crs)
        if found is None:
            position = self.position
            if crs != "wgs84":
                lat, lon = out_point(self.lat, self.lon, crs)
                position = {**position, "lat": lat, "lon": lon}
            found = [("position", position, event_body("position", position))]
            if self.eta is not None:
                found.append(("eta", self.eta, event_body("eta", self.eta)))
            self._encoded[crs] = found
        return found


def read_position_events(cursor: _LateCommitCursor, now: float,
                         vehicle_ids: frozenset[str] | None = None) -> list[VehicleEvent]:
    """The event of each vehicle whose ``live_positions`` row changed past the cursor (only
    these vehicles when ``vehicle_ids`` is given), in ``received_at`` order, the ETA computed
    once for each vehicle on a trip."""
    if vehicle_ids is not None and not vehicle_ids:
        return []
    query = select(LivePosition).where(LivePosition.received_at > cursor.floor(now))
    if vehicle_ids is not None:
        query = query.where(LivePosition.vehicle_id.in_(sorted(vehicle_ids)))
    rows = cursor.take(db.session.scalars(query.order_by(LivePosition.received_at)).all(),
                       key=lambda p: p.received_at,
                       ident=lambda p: (p.vehicle_id, p.received_at, p.ts), now=now)
    if not rows:
        return []
    states = load_states(db.session.connection(), (p.vehicle_id for p in rows))
    wall = clock()
    events = []
    for p in rows:
        state = states.get(p.vehicle_id)
        trip = current_trip(state, wall)
        position = {
            "vehicle_id": p.vehicle_id, "route_id": trip.route_id if trip else None,
            "trip_id": trip.trip_id if trip else None, "lat": p.lat, "lon": p.lon,
            "ts": iso(p.ts), "speed_kmh": p.speed_kmh, "heading_deg": p.heading_deg}
        eta = _eta(p.vehicle_id, state) if trip is not None and state is not None else None
        events.append(VehicleEvent(p.received_at, (p.vehicle_id, p.received_at, p.ts),
                                   p.vehicle_id, trip.route_id if trip else None,
                                   p.lat, p.lon, position, eta))
    return events


def notification_message_body(n: Notification) -> tuple[dict, str]:
    data = notification_item(n)
    return data, event_body("notification", data)


def catch_up(user_id: int, scope: LiveScope, start: ResumePoint, crs: str, now: float
             ) -> list[tuple[str, Any, Hashable, dict, str]]:
    """What a stream opened at ``start`` has to send before the hub's deliveries: the newest
    position (and ETA) of each vehicle it may follow that moved after ``start``, then every
    notification of the user after it, as ``(kind, key, ident, data, body)``."""
    out: list[tuple[str, Any, Hashable, dict, str]] = []
    positions = _LateCommitCursor(start.received_at, 0.0)
    for event in read_position_events(positions, now, scope.candidate_vehicle_ids):
        if scope.may_follow(event.vehicle_id, event.route_id):
            for kind, data, body in event.encoded(crs):
                out.append((kind, event.received_at, event.ident, data, body))
    after = start.notification_id
    for _ in range(CATCH_UP_PAGES):
        rows = db.session.scalars(
            select(Notification)
            .where(Notification.user_id == user_id, Notification.id > after)
            .order_by(Notification.id).limit(NOTIFICATIONS_PER_POLL)).all()
        for n in rows:
            data, body = notification_message_body(n)
            out.append(("notification", n.id, n.id, data, body))
        if len(rows) < NOTIFICATIONS_PER_POLL:
            break
        after = rows[-1].id
    return out


CATCH_UP_PAGES = 25  # at most 5 000 missed notifications are sent on reconnect


def _eta(vehicle_id: str, state: RoutingState) -> dict | None:
    ctx = vehicle_context(vehicle_id)
    view = live_view(ctx, state, TRACKER_CONFIG) if ctx is not None else None
    if view is None:
        return None
    return {"route_id": view.route_id, "trip_id": view.trip_id, "vehicle_id": view.vehicle_id,
            "as_of": iso(view.as_of),
            "stops": [{"stop_id": s.stop_id, "eta": iso(s.eta)} for s in view.stops]}
