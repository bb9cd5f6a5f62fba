"""The planning problem and its answer as plain frozen values.

Times are seconds after midnight, lengths are the instance's own unit (feet in the benchmark),
travel time is Manhattan distance over a constant speed, as the benchmark defines it (or a
district's straight line, or a table of road travel times, ``routing.planning.travel``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from routing.planning.travel import TravelMatrix


@dataclass(frozen=True, slots=True)
class Params:
    """The rules every route obeys; the defaults are the Park–Tae–Kim benchmark's."""

    capacity: int = 66
    speed_per_s: float = 29.333  # feet per second (20 mph)
    stop_fixed_s: float = 19.0  # opening the door, a child walking up
    stop_per_student_s: float = 2.6
    school_dwell_s: float = 154.4  # unloading before the bus may leave for its next route
    max_ride_s: float = 2700.0  # from the bus reaching a child's stop to reaching the school
    #: "manhattan" (the benchmark's |dx| + |dy|) or "straight" (a district's straight line, with
    #: the road factor folded into ``speed_per_s``)
    metric: str = "manhattan"
    #: driving times along roads between the instance's points (``routing.planning.travel``);
    #: pairs it does not hold are timed by ``metric``
    roads: TravelMatrix | None = field(default=None, compare=False)

    def travel_s(self, ax: float, ay: float, bx: float, by: float) -> float:
        if self.roads is not None:
            seconds = self.roads.lookup(ax, ay, bx, by)
            if seconds is not None:
                return seconds
        if self.metric == "straight":
            return math.hypot(ax - bx, ay - by) / self.speed_per_s
        return (abs(ax - bx) + abs(ay - by)) / self.speed_per_s

    def stop_s(self, students: int) -> float:
        return self.stop_fixed_s + self.stop_per_student_s * students


@dataclass(frozen=True, slots=True)
class School:
    id: str
    x: float
    y: float
    bell_s: float  # the buses arrive at or before this time (the benchmark's AMEARLY)


@dataclass(frozen=True, slots=True)
class Stop:
    id: str
    x: float
    y: float
    school_id: str  # the school all its students attend (single load)
    students: int


@dataclass(frozen=True, slots=True)
class Instance:
    name: str
    schools: tuple[School, ...]
    stops: tuple[Stop, ...]

    def school(self, school_id: str) -> School:
        return self._schools_by_id()[school_id]

    def _schools_by_id(self) -> dict[str, School]:
        return {s.id: s for s in self.schools}

    def stops_of(self, school_id: str) -> list[Stop]:
        return [s for s in self.stops if s.school_id == school_id]


@dataclass(frozen=True, slots=True)
class Visit:
    stop_id: str
    arrival_s: float
    students: int  # picked up here for this route's school


@dataclass(frozen=True, slots=True)
class Route:
    school_id: str
    visits: tuple[Visit, ...]
    school_arrival_s: float

    @property
    def load(self) -> int:
        return sum(v.students for v in self.visits)

    @property
    def start_s(self) -> float:
        return self.visits[0].arrival_s


@dataclass(frozen=True, slots=True)
class Plan:
    instance: str
    max_ride_s: float
    buses: tuple[tuple[Route, ...], ...]  # each bus's routes in driving order
    deadhead_s: float = 0.0  # empty driving between a bus's routes
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def routes(self) -> list[Route]:
        return [r for bus in self.buses for r in bus]

    def to_json(self) -> dict[str, Any]:
        """The SPEC's solution form (docs/SPEC.md, ``xiaoche plan --benchmark``)."""
        return {
            "instance": self.instance,
            "max_riding_time_s": self.max_ride_s,
            "buses": [
                {"bus": n, "routes": [
                    {"school": r.school_id,
                     "stops": [{"stop": v.stop_id, "arrival_s": round(v.arrival_s, 3),
                                "students": v.students} for v in r.visits],
                     "school_arrival_s": round(r.school_arrival_s, 3)}
                    for r in bus]}
                for n, bus in enumerate(self.buses, start=1)
            ],
        }


def schedule_route(school: School, stops: list[tuple[Stop, int]], params: Params,
                   school_arrival_s: float | None = None) -> Route:
    """Times a route that picks ``(stop, students)`` up in order and reaches ``school`` exactly
    at ``school_arrival_s`` (its bell time unless given), counting back from the school."""
    arrive = school.bell_s if school_arrival_s is None else school_arrival_s
    t = arrive
    nx, ny = school.x, school.y
    visits: list[Visit] = []
    for stop, students in reversed(stops):
        t -= params.travel_s(stop.x, stop.y, nx, ny) + params.stop_s(students)
        visits.append(Visit(stop.id, t, students))
        nx, ny = stop.x, stop.y
    return Route(school.id, tuple(reversed(visits)), arrive)
