"""What ``GET /stream`` sends: a caller's positions, ETAs and notifications as they are stored.

The ingest may run in another process (or on another machine), so a stream does not wait on an
in-process queue: every ``poll_s`` it reads, in one short read-only transaction, the
``live_positions`` rows that changed since its watermark and the caller's notifications since
the last id, and gives its database connection back before it sleeps. Any number of API workers
and ingest processes can therefore share the database.

:func:`live_stream` is a plain generator of :class:`Message` with an injected clock and sleep,
so it is tested without HTTP; the view only formats and sends what it yields.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select

from backend.api.common import out_point
from backend.api.me import notification_item
from backend.extensions import db
from backend.live_service import CONFIG as TRACKER_CONFIG
from backend.live_service import clock, current_trip, vehicle_context
from backend.models import LivePosition, Notification, TrackerState, User
from backend.scopes import LiveScope, live_scope
from backend.timefmt import iso
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

    def encode(self) -> str:
        lines = []
        if self.comment is not None:
            lines.append(f": {self.comment}")
        if self.retry_ms is not None:
            lines.append(f"retry: {self.retry_ms}")
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.data is not None:  # JSON without indent has no raw newline: one data line
            lines.append("data: " + json.dumps(self.data, ensure_ascii=False,
                                               separators=(",", ":")))
        return "\n".join(lines) + "\n\n"


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


def live_stream(user_id: int, token_version: int | None = None, *, resume: str | None = None,
                crs: str = "wgs84", config: StreamConfig | None = None,
                monotonic: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep) -> Iterator[Message]:
    """The messages of one ``/stream`` connection, until ``config.max_s`` has passed.

    Runs inside an app context. First ``retry`` and the resume point; then ``position``,
    ``eta`` and ``notification`` events, each carrying the new resume point as its ``id``, and a
    keep-alive comment whenever ``heartbeat_s`` passed without a write. ``resume`` is the
    client's ``Last-Event-ID``: missed notifications and the newest position of each vehicle
    since then are sent first; a value we did not give out means "from now". The database
    session is removed before every yield and every sleep. Ends early when the user is deleted
    or their token is revoked (``token_version`` changed).
    """
    config = config or StreamConfig()
    try:
        start = _resume_or_now(user_id, ResumePoint.parse(resume))
    finally:
        db.session.remove()
    positions = _LateCommitCursor(start.received_at, config.late_commit_grace_s)
    notifications = _LateCommitCursor(start.notification_id, config.late_commit_grace_s)
    yield Message(retry_ms=config.retry_ms, id=start.encode())

    began = last_write = monotonic()
    scope: LiveScope | None = None
    scope_read_at = -math.inf
    while True:
        now = monotonic()
        try:
            if now - scope_read_at >= config.scope_refresh_s:
                scope = _current_scope(user_id, token_version)
                scope_read_at = now
            if scope is None:
                return  # the user is gone or logged out everywhere
            events = _poll(user_id, scope, positions, notifications, crs, now)
        finally:
            db.session.remove()
        yield from events
        now = monotonic()
        if events:
            last_write = now
        if now - began >= config.max_s:
            return
        if now - last_write >= config.heartbeat_s:
            yield HEARTBEAT
            last_write = now
        sleep(config.poll_s)


def _resume_or_now(user_id: int, asked: ResumePoint | None) -> ResumePoint:
    """The client's resume point, but never ahead of what is stored (that one is not ours)."""
    newest_received = db.session.scalar(select(func.max(LivePosition.received_at))) or 0.0
    newest_notification = db.session.scalar(
        select(func.max(Notification.id)).where(Notification.user_id == user_id)) or 0
    if asked is None:
        return ResumePoint(newest_received, newest_notification)
    return ResumePoint(min(asked.received_at, newest_received),
                       min(asked.notification_id, newest_notification))


def _current_scope(user_id: int, token_version: int | None) -> LiveScope | None:
    user = db.session.get(User, user_id)
    if user is None or (token_version is not None and user.token_version != token_version):
        return None
    return live_scope(user)


def _poll(user_id: int, scope: LiveScope, positions: _LateCommitCursor,
          notifications: _LateCommitCursor, crs: str, now: float) -> list[Message]:
    """New events, each with the resume point just after it (a client may drop mid-poll)."""
    received_mark, notification_mark = positions.mark, notifications.mark
    messages = []
    for received_at, kind, data in _position_events(positions, scope, crs, now):
        received_mark = max(received_mark, received_at)
        point = ResumePoint(received_mark, notification_mark).encode()
        messages.append(Message(event=kind, data=data, id=point))
    rows = db.session.scalars(
        select(Notification)
        .where(Notification.user_id == user_id, Notification.id > notifications.floor(now))
        .order_by(Notification.id)
        .limit(NOTIFICATIONS_PER_POLL + notifications.remembered())).all()
    for n in notifications.take(rows, key=lambda n: n.id, ident=lambda n: n.id, now=now):
        notification_mark = max(notification_mark, n.id)
        point = ResumePoint(positions.mark, notification_mark).encode()
        messages.append(Message(event="notification", data=notification_item(n), id=point))
    return messages


def _position_events(cursor: _LateCommitCursor, scope: LiveScope, crs: str,
                     now: float) -> list[tuple[float, str, dict]]:
    """``(received_at, kind, data)`` of the position (and ETA) of each vehicle that moved."""
    if scope.candidate_vehicle_ids is not None and not scope.candidate_vehicle_ids:
        return []
    query = select(LivePosition).where(LivePosition.received_at > cursor.floor(now))
    if scope.candidate_vehicle_ids is not None:
        query = query.where(LivePosition.vehicle_id.in_(sorted(scope.candidate_vehicle_ids)))
    rows = cursor.take(db.session.scalars(query.order_by(LivePosition.received_at)).all(),
                       key=lambda p: p.received_at,
                       ident=lambda p: (p.vehicle_id, p.received_at, p.ts), now=now)
    if not rows:
        return []
    states = {vehicle_id: RoutingState.from_dict(raw) for vehicle_id, raw in db.session.execute(
        select(TrackerState.vehicle_id, TrackerState.state)
        .where(TrackerState.vehicle_id.in_([p.vehicle_id for p in rows]))) if raw}
    wall = clock()
    events: list[tuple[float, str, dict]] = []
    for p in rows:
        state = states.get(p.vehicle_id)
        trip = current_trip(state, wall)
        if not scope.may_follow(p.vehicle_id, trip.route_id if trip else None):
            continue
        lat, lon = out_point(p.lat, p.lon, crs)
        events.append((p.received_at, "position", {
            "vehicle_id": p.vehicle_id, "route_id": trip.route_id if trip else None,
            "trip_id": trip.trip_id if trip else None, "lat": lat, "lon": lon, "ts": iso(p.ts),
            "speed_kmh": p.speed_kmh, "heading_deg": p.heading_deg}))
        eta = _eta(p.vehicle_id, state) if trip is not None and state is not None else None
        if eta is not None:
            events.append((p.received_at, "eta", eta))
    return events


def _eta(vehicle_id: str, state: RoutingState) -> dict | None:
    ctx = vehicle_context(vehicle_id)
    view = live_view(ctx, state, TRACKER_CONFIG) if ctx is not None else None
    if view is None:
        return None
    return {"route_id": view.route_id, "trip_id": view.trip_id, "vehicle_id": view.vehicle_id,
            "as_of": iso(view.as_of),
            "stops": [{"stop_id": s.stop_id, "eta": iso(s.eta)} for s in view.stops]}
