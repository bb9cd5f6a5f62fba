"""Per-vehicle tracker state, kept in the database between batches.

Everything here is plain JSON data (``to_dict``/``from_dict``) so that any process can continue
any vehicle; floats survive JSON exactly, so a continued vehicle produces the same events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from routing.episode import Episode

STATE_VERSION = 1


def _slots_dict(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


@dataclass(slots=True)
class StopState:
    """One stop of a trip in progress."""

    status: str = "upcoming"  # upcoming | visited | missed | unobserved (joined after it)
    arrived_at: float | None = None
    departed_at: float | None = None
    stopped: bool = False  # a slow ping was seen inside the circle
    exit_at: float | None = None  # left the radius, not yet the exit radius: departure candidate


@dataclass(slots=True)
class TripState:
    """A run being driven."""

    trip_id: str
    route_id: str
    run_id: str
    service_date: str  # ISO local date of the service day
    started_at: float
    scheduled_at: list[float]  # epoch seconds of every stop on this service day
    progress_m: float
    progress_ts: float  # when progress was last snapped onto the route
    stops: list[StopState]
    inside_stop: int | None = None
    last_on_route: bool = True  # was the previous ping of the trip inside the corridor
    deviation: Episode = field(default_factory=Episode)
    distance_m: float = 0.0
    max_speed_kmh: float | None = None
    ping_count: int = 0
    #: when progress last grew by a metre or more (a frozen device repeating one fix does not)
    moved_ts: float | None = None
    #: [first ts, closest distance, its ts] near the last stop without entering its circle
    end_near: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        # written per vehicle per ingest batch: a flat copy, not dataclasses.asdict's deep one
        raw = {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]
        raw["scheduled_at"] = list(self.scheduled_at)
        raw["stops"] = [_slots_dict(s) for s in self.stops]
        raw["deviation"] = self.deviation.to_dict()
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TripState:
        raw = dict(raw)
        raw["stops"] = [StopState(**s) for s in raw["stops"]]
        raw["deviation"] = Episode.from_dict(raw.get("deviation"))
        return cls(**raw)


@dataclass(slots=True)
class TerminalVisit:
    """The vehicle near the first stop of a route it may start (see :mod:`routing.trip_start`)."""

    zone_in: float  # first ping within the stop's radius + ``trip_start_margin_m``
    zone_last: float  # latest such ping
    circle_in: float | None = None  # entered the stop's own circle
    circle_out: float | None = None  # left it again (None while inside, or never entered)


@dataclass(slots=True)
class SchoolTrip:
    """A teacher's car on its way from one school to another."""

    from_school_id: str
    departed_at: float
    path_m: float
    ping_count: int


@dataclass(slots=True)
class GeofenceState:
    """Which school geofence a teacher car or meal truck is in, and the trip it is on."""

    inside: str | None = None
    trip: SchoolTrip | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> GeofenceState:
        if not raw:
            return cls()
        trip = raw.get("trip")
        return cls(inside=raw.get("inside"), trip=SchoolTrip(**trip) if trip else None)


@dataclass(slots=True)
class TrackerState:
    """Everything the tracker remembers about one vehicle."""

    last_ts: float | None = None
    last_lat: float | None = None
    last_lon: float | None = None
    last_speed_kmh: float | None = None
    last_heading_deg: float | None = None
    trip: TripState | None = None
    done_trips: list[str] = field(default_factory=list)
    overspeed: Episode = field(default_factory=Episode)
    overspeed_trip: list[str | None] = field(default_factory=lambda: [None, None, None])
    geofence: GeofenceState = field(default_factory=GeofenceState)
    #: recent visits to first stops, by stop id (where the next trip departs from)
    terminals: dict[str, TerminalVisit] = field(default_factory=dict)
    #: route id -> [when it set off, progress_m where the streak began, last ts, furthest
    #: progress_m, last progress_m] of a streak of pings on that route's path, moving forward
    #: (a departure or a mid-route join in the making)
    joining: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy of the state."""
        return {
            "version": STATE_VERSION,
            "last_ts": self.last_ts, "last_lat": self.last_lat, "last_lon": self.last_lon,
            "last_speed_kmh": self.last_speed_kmh, "last_heading_deg": self.last_heading_deg,
            "trip": self.trip.to_dict() if self.trip else None,
            "done_trips": list(self.done_trips),
            "overspeed": self.overspeed.to_dict(),
            "overspeed_trip": list(self.overspeed_trip),
            "geofence": {"inside": self.geofence.inside,
                         "trip": _slots_dict(self.geofence.trip) if self.geofence.trip else None},
            "terminals": {k: _slots_dict(v) for k, v in self.terminals.items()},
            "joining": {k: list(v) for k, v in self.joining.items()},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TrackerState:
        """The state back from :meth:`to_dict` (an empty or missing dict is a fresh state)."""
        if not raw:
            return cls()
        trip = raw.get("trip")
        return cls(
            last_ts=raw.get("last_ts"), last_lat=raw.get("last_lat"),
            last_lon=raw.get("last_lon"), last_speed_kmh=raw.get("last_speed_kmh"),
            last_heading_deg=raw.get("last_heading_deg"),
            trip=TripState.from_dict(trip) if trip else None,
            done_trips=list(raw.get("done_trips", [])),
            overspeed=Episode.from_dict(raw.get("overspeed")),
            overspeed_trip=list(raw.get("overspeed_trip") or [None, None, None]),
            geofence=GeofenceState.from_dict(raw.get("geofence")),
            terminals={k: TerminalVisit(**v) for k, v in (raw.get("terminals") or {}).items()},
            joining={k: list(v) for k, v in (raw.get("joining") or {}).items()},
        )


def moved_at(trip: TripState) -> float:
    """When the trip last made progress along its route (not just a fix on it)."""
    return trip.moved_ts if trip.moved_ts is not None else trip.progress_ts
