"""Plain values in and out of the tracker: what a district defines, what a device reports, what
the tracker concludes. Frozen dataclasses only; no behaviour beyond trivial conveniences."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EVENT_KINDS = frozenset({
    "trip_started", "trip_completed", "stop_arrived", "stop_departed", "stop_missed",
    "route_deviation_started", "route_deviation_ended", "overspeed",
    "teacher_trip_completed", "meal_delivery_arrived", "school_leg_completed",
})
VEHICLE_KINDS = frozenset({"school_bus", "teacher_car", "meal_truck"})


@dataclass(frozen=True, slots=True)
class Ping:
    """One validated WGS-84 fix; ``ts`` is the device's own epoch time in seconds (UTC)."""

    ts: float
    lat: float
    lon: float
    speed_kmh: float | None = None
    heading_deg: float | None = None
    accuracy_m: float | None = None


@dataclass(frozen=True, slots=True)
class Place:
    """A stop or a school: a circle on the ground."""

    id: str
    name: str
    lat: float
    lon: float
    radius_m: float
    is_school: bool = False


@dataclass(frozen=True, slots=True)
class Run:
    """One departure of a route: a time per route stop, in seconds after local midnight of the
    service day (GTFS style, may exceed 86400), served on ``days`` (ISO weekdays, honouring the
    calendar) and/or on explicit ``dates`` (whatever the calendar says)."""

    id: str
    times_s: tuple[int, ...]
    days: frozenset[int] | None = None
    dates: frozenset[dt.date] | None = None
    #: service dates on which this vehicle does not drive the run (a substitute bus does)
    except_dates: frozenset[dt.date] = frozenset()
    #: the vehicle planned to drive it (its block of runs); ``None``: any vehicle of the route
    vehicle_id: str | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """One stop sequence along one path; ``path`` is ``(lon, lat)`` pairs like GeoJSON."""

    id: str
    name: str
    school_id: str | None
    path: tuple[tuple[float, float], ...]
    corridor_m: float
    stops: tuple[Place, ...]
    runs: tuple[Run, ...]


@dataclass(frozen=True)
class Calendar:
    """The district's calendar: holidays have no service, an extra school day (调休) runs the
    timetable of ``as_weekday``."""

    timezone: str = "Asia/Shanghai"
    holidays: frozenset[dt.date] = frozenset()
    extra_school_days: Mapping[dt.date, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Assignment:
    """An itinerant teacher is due at ``school_id`` on these ISO weekdays."""

    school_id: str
    weekdays: frozenset[int]


@dataclass(frozen=True, slots=True)
class RunClaim:
    """Another vehicle's hold on a run instance today (see :mod:`routing.trip_start`)."""

    vehicle_id: str
    trip_id: str
    progress_ts: float  # when that vehicle last made progress on the run
    done: bool = False  # its trip has ended


@dataclass(frozen=True, slots=True)
class SegmentObservation:
    """One drive over the stretch between two consecutive stops, seen by the tracker today (any
    run, any vehicle): what the ETA learns today's traffic from.

    ``ts`` is the event time of the arrival at the stretch's second stop (an observation counts
    only for predictions made after it), ``seg_s`` the seconds from the arrival at the first stop
    to the arrival at the second (dwell included, like ``trip_completed.segment_s``), ``dwell_s``
    the dwell at the first stop (departure - arrival) when it is known.
    """

    ts: float
    seg_s: float
    dwell_s: float | None = None
    trip_id: str | None = None


@dataclass(frozen=True)
class VehicleContext:
    """Everything the tracker needs to know about one vehicle besides its pings.

    ``segment_history`` maps a run id to recent completed trips' ``segment_s`` lists (seconds
    between consecutive stop arrivals, ``None`` where unknown), newest first or in any order.

    ``segment_observations`` maps a stretch ``(from_stop_id, to_stop_id)`` to today's recent
    drives over it by any vehicle (:class:`SegmentObservation`, any order); the ETA uses those
    older than its prediction time only, so a superset (a whole day, for the audit) is fine.
    """

    vehicle_id: str
    kind: str
    speed_limit_kmh: float | None
    routes: tuple[Route, ...]
    schools: tuple[Place, ...]
    calendar: Calendar = field(default_factory=Calendar)
    assignments: tuple[Assignment, ...] = ()
    teacher_id: str | None = None
    segment_history: Mapping[str, Sequence[Sequence[float | None]]] = field(default_factory=dict)
    #: routes this vehicle shares with others (a depot's pool): one vehicle per run and day
    pool_route_ids: frozenset[str] = frozenset()
    #: holds on runs of those routes, keyed ``"{service_date}/{run_id}"`` (any vehicle's)
    claims: Mapping[str, RunClaim] = field(default_factory=dict)
    segment_observations: Mapping[tuple[str, str], Sequence[SegmentObservation]] = field(
        default_factory=dict)


@dataclass(frozen=True)
class Event:
    """Something the tracker concluded. ``ts`` is when it happened in event time (an arrival
    interpolated between two pings has a ``ts`` between them); ``details`` is JSON-serialisable."""

    kind: str
    ts: float
    vehicle_id: str
    route_id: str | None = None
    trip_id: str | None = None
    run_id: str | None = None
    stop_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveStop:
    """One stop of the live view of a trip."""

    stop_id: str
    sequence: int
    scheduled_at: float
    status: str  # visited | missed | upcoming
    arrived_at: float | None
    departed_at: float | None
    eta: float | None
    eta_confidence: float | None
    eta_uncertainty_s: float | None = None


@dataclass(frozen=True)
class LiveView:
    """What ``GET /routes/{id}/live`` shows of a trip in progress."""

    route_id: str
    trip_id: str
    run_id: str
    vehicle_id: str
    position: Mapping[str, float | None]
    next_stop_id: str | None
    delay_s: float
    eta_source: str  # history | schedule
    as_of: float
    stops: tuple[LiveStop, ...]


@dataclass(frozen=True)
class TripAudit:
    """One trip recomputed from stored pings (what ``GET /audit/trips`` serves)."""

    trip_id: str
    run_id: str
    route_id: str
    vehicle_id: str
    service_date: dt.date
    started_at: float
    completed_at: float | None
    distance_km: float
    max_speed_kmh: float | None
    stops: tuple[Mapping[str, Any], ...]
    deviations: tuple[Mapping[str, Any], ...]
    events: tuple[Event, ...]
