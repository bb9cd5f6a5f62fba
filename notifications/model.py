"""Plain values in and out of the notification rules: who is subscribed to what, with which
preferences, what the tracker said (``routing.model.Event``, an ETA snapshot) and the messages the
rules conclude. Frozen dataclasses only; no I/O, no clock, no environment.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from routing.model import LiveView, Route

#: What parents are told (SPEC §5 "Notification kinds").
PARENT_KINDS = frozenset({
    "bus_approaching", "bus_arrived_stop", "bus_arrived_school", "rider_boarded",
    "rider_alighted", "trip_delayed", "staff_message",
})
#: What staff are told (SPEC §5); the last two come from other jobs (meals, subsidies).
STAFF_KINDS = frozenset({
    "route_deviation", "overspeed", "stop_missed", "rider_wrong_bus", "device_offline",
    "device_online", "meal_report_missing", "subsidy_pending", "terminal_alarm",
})
NOTIFICATION_KINDS = PARENT_KINDS | STAFF_KINDS

#: Tracker/scheduler event kinds this package adds to ``routing.model.EVENT_KINDS`` (SPEC §5).
RIDER_EVENT_KINDS = frozenset({"rider_boarded", "rider_alighted", "rider_wrong_bus"})
DEVICE_EVENT_KINDS = frozenset({"device_offline", "device_online"})

CHANNELS = ("app", "mqtt", "webhook")
LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"

#: Users who get operational alerts (deviation, overspeed, missed stops, offline devices):
#: the same roles as ``backend.scopes.STAFF``. Drivers get ``rider_wrong_bus`` for their own bus.
STAFF_ROLES = frozenset({"logistics", "admin"})

UserId = int | str


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A local-time window in which pushes wait; ``start == end`` is an empty window.

    >>> QuietHours.from_json({"from": "22:00", "to": "06:00"})
    QuietHours(start=datetime.time(22, 0), end=datetime.time(6, 0))
    """

    start: dt.time
    end: dt.time

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QuietHours:
        return cls(dt.time.fromisoformat(str(data["from"])), dt.time.fromisoformat(str(data["to"])))

    def to_json(self) -> dict[str, str]:
        return {"from": self.start.strftime("%H:%M"), "to": self.end.strftime("%H:%M")}

    def contains(self, local: dt.time) -> bool:
        """Whether a local wall-clock time falls in the window (start inclusive, end exclusive;
        a window whose start is after its end wraps midnight).

        >>> q = QuietHours(dt.time(22), dt.time(6))
        >>> q.contains(dt.time(23, 30)), q.contains(dt.time(5, 59)), q.contains(dt.time(6, 0))
        (True, True, False)
        """
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


DEFAULT_QUIET_HOURS = QuietHours(dt.time(22, 0), dt.time(6, 0))


@dataclass(frozen=True, slots=True)
class Preferences:
    """``GET``/``PUT /me/preferences`` (SPEC §5), with the SPEC's defaults.

    >>> p = Preferences.from_json({"notify_before_min": 8, "quiet_hours": None})
    >>> p.notify_before_min, p.quiet_hours, p.language
    (8.0, None, 'zh-CN')
    >>> Preferences.from_json(None) == Preferences()
    True
    """

    notify_before_min: float = 5.0
    notify_within_m: float | None = None
    quiet_hours: QuietHours | None = DEFAULT_QUIET_HOURS
    channels: tuple[str, ...] = CHANNELS
    language: str = DEFAULT_LANGUAGE

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Preferences:
        """Stored preferences to a value; a missing key takes its default, an explicit
        ``"quiet_hours": null`` means none. Validation belongs to the API schema."""
        data = data or {}
        base = cls()
        quiet = data.get("quiet_hours", base.to_json()["quiet_hours"])
        within = data.get("notify_within_m")
        return cls(
            notify_before_min=float(data.get("notify_before_min", base.notify_before_min)),
            notify_within_m=None if within is None else float(within),
            quiet_hours=None if quiet is None else QuietHours.from_json(quiet),
            channels=tuple(data.get("channels", base.channels)),
            language=str(data.get("language", base.language)),
        )

    def to_json(self) -> dict[str, Any]:
        return {"notify_before_min": self.notify_before_min,
                "notify_within_m": self.notify_within_m,
                "quiet_hours": None if self.quiet_hours is None else self.quiet_hours.to_json(),
                "channels": list(self.channels), "language": self.language}


@dataclass(frozen=True, slots=True)
class Child:
    """A parent's child as the rules need it (from ``students`` + ``user_students``)."""

    student_id: str
    name: str
    route_id: str | None
    stop_id: str | None
    card_id: str | None = None


@dataclass(frozen=True)
class Subscriber:
    """One user and what they follow.

    A parent follows their ``children``; staff follow ``route_ids`` and ``vehicle_ids`` (a
    logistics user's schools resolved to their routes and vehicles by the caller), or
    everything when ``all_in_scope`` (admin). A driver follows its ``vehicle_ids``.
    """

    user_id: UserId
    role: str
    preferences: Preferences = field(default_factory=Preferences)
    children: tuple[Child, ...] = ()
    route_ids: frozenset[str] = frozenset()
    vehicle_ids: frozenset[str] = frozenset()
    all_in_scope: bool = False

    @property
    def language(self) -> str:
        return self.preferences.language

    def children_on(self, route_id: str | None) -> tuple[Child, ...]:
        return tuple(c for c in self.children if route_id is not None and c.route_id == route_id)

    def sees(self, vehicle_id: str | None, route_id: str | None) -> bool:
        """Whether a vehicle or route is in this user's scope."""
        return self.all_in_scope or (vehicle_id is not None and vehicle_id in self.vehicle_ids) \
            or (route_id is not None and route_id in self.route_ids)


@dataclass(frozen=True)
class EtaSnapshot:
    """The ETA prediction of one trip at one moment: what ``event: eta`` streams.

    ``etas`` maps stop id to predicted arrival (epoch s; ``None`` for stops done), ``as_of`` is the
    ``ts`` of the ping the prediction was made from, ``distances_m`` optionally the metres left to
    each stop (along the route) for the ``notify_within_m`` preference.
    """

    route_id: str
    trip_id: str
    vehicle_id: str
    as_of: float
    etas: Mapping[str, float | None]
    delay_s: float | None = None
    distances_m: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_live_view(cls, view: LiveView,
                       distances_m: Mapping[str, float] | None = None) -> EtaSnapshot:
        """The snapshot of a tracker live view (``routing.tracker`` → ``GET /routes/{id}/live``)."""
        return cls(route_id=view.route_id, trip_id=view.trip_id, vehicle_id=view.vehicle_id,
                   as_of=view.as_of, etas={s.stop_id: s.eta for s in view.stops},
                   delay_s=view.delay_s, distances_m=dict(distances_m or {}))


@dataclass(frozen=True)
class NotifyContext:
    """Names the texts need and the district's timezone; looked up once by the caller.

    ``routes`` are the tracker's own ``routing.model.Route`` values (stop names, which stop is a
    school, the last stop); ``stop_names`` adds names of places not on those routes.
    """

    plates: Mapping[str, str] = field(default_factory=dict)
    routes: Mapping[str, Route] = field(default_factory=dict)
    stop_names: Mapping[str, str] = field(default_factory=dict)
    timezone: str = "Asia/Shanghai"

    def plate(self, vehicle_id: str | None) -> str:
        if vehicle_id is None:
            return ""
        return self.plates.get(vehicle_id, vehicle_id)

    def stop_name(self, stop_id: str | None) -> str:
        if stop_id is None:
            return ""
        if stop_id in self.stop_names:
            return self.stop_names[stop_id]
        for route in self.routes.values():
            for place in route.stops:
                if place.id == stop_id:
                    return place.name
        return stop_id

    def route_name(self, route_id: str | None) -> str:
        if route_id is None:
            return ""
        route = self.routes.get(route_id)
        return route.name if route is not None else route_id


@dataclass(frozen=True, slots=True)
class Message:
    """One notification for one user: an outbox row / an item of ``/me/notifications``.

    ``created_at`` is the time of its cause in event time (never the wall clock), so a replay
    makes the same messages; ``dedupe_key`` is equal for messages with the same cause.
    """

    user_id: UserId
    kind: str
    title: str
    body: str
    created_at: float
    dedupe_key: str
    route_id: str | None = None
    stop_id: str | None = None
    trip_id: str | None = None
    vehicle_id: str | None = None
    language: str = DEFAULT_LANGUAGE
    channels: tuple[str, ...] = CHANNELS

    def as_row(self) -> dict[str, Any]:
        """The columns of the ``notifications`` table (``backend.messages_service.notify``)."""
        return {"user_id": self.user_id, "kind": self.kind, "title": self.title,
                "body": self.body, "created_at": self.created_at, "route_id": self.route_id,
                "stop_id": self.stop_id, "trip_id": self.trip_id, "dedupe_key": self.dedupe_key}


def first_per_key(messages: Sequence[Message],
                  seen: frozenset[str] = frozenset()) -> tuple[list[Message], frozenset[str]]:
    """Keep the first message of each ``dedupe_key`` not in ``seen``: what the outbox's unique
    key does, as a pure function (for tests and for a caller batching before insert).

    >>> m = Message(1, "trip_delayed", "t", "b", 0.0, "k")
    >>> kept, seen = first_per_key([m, m])
    >>> len(kept), sorted(seen)
    (1, ['k'])
    >>> first_per_key([m], seen)[0]
    []
    """
    out: list[Message] = []
    keys = set(seen)
    for m in messages:
        if m.dedupe_key not in keys:
            keys.add(m.dedupe_key)
            out.append(m)
    return out, frozenset(keys)
