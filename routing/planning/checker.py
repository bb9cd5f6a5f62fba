"""An independent check of a plan in the SPEC's JSON form against an instance.

It shares nothing with the solver but the problem's parameters (``Params``): it recomputes every
time from the positions, so a plan made by any program can be verified. Each violation has a
``kind``:

``bad_plan``       the JSON is not a plan (missing or wrong-typed fields)
``unknown_stop``   a stop or school id the instance does not have
``wrong_school``   a stop's students carried to another school than theirs
``capacity``       a route's load above the bus capacity
``travel_time``    a time earlier than the previous stop's departure plus the drive allows
``late_arrival``   a school reached after its bell time (AMEARLY)
``ride_time``      a child on the bus longer than the maximum ride time
``students``       a stop's children not picked up exactly once in all (missed, twice, or a
                   different count than the instance's)
``bus_overlap``    a bus starting a route before it can have left the previous school and
                   driven there empty
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from routing.planning.model import Instance, Params

#: Plans print times to the millisecond; half a hundredth of a second absorbs that rounding.
TOLERANCE_S = 0.01


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str
    where: str
    detail: str


def check_plan(instance: Instance, plan: Any, params: Params) -> list[Violation]:
    """Every violation of ``params`` (capacity, ride time, windows, …) in ``plan``; empty when the
    plan is feasible."""
    try:
        buses = _parse(plan)
    except (KeyError, TypeError, ValueError) as e:
        return [Violation("bad_plan", "plan", f"not a plan: {e!r}")]
    stops = {s.id: s for s in instance.stops}
    schools = {s.id: s for s in instance.schools}
    out: list[Violation] = []
    picked: dict[str, int] = defaultdict(int)
    for b, routes in enumerate(buses, start=1):
        prev_end: tuple[float, float, float] | None = None  # (free at, x, y)
        for r, (school_id, visits, school_arrival) in enumerate(routes, start=1):
            where = f"bus {b} route {r}"
            school = schools.get(school_id)
            if school is None:
                out.append(Violation("unknown_stop", where, f"no school {school_id!r}"))
                continue
            known = []
            for stop_id, arrival, students in visits:
                stop = stops.get(stop_id)
                if stop is None:
                    out.append(Violation("unknown_stop", where, f"no stop {stop_id!r}"))
                    continue
                if stop.school_id != school_id:
                    out.append(Violation("wrong_school", where,
                                         f"stop {stop_id} attends {stop.school_id}"))
                picked[stop_id] += students
                known.append((stop, arrival, students))
            if not known:
                continue
            load = sum(n for _, _, n in known)
            if load > params.capacity:
                out.append(Violation("capacity", where, f"{load} > {params.capacity}"))
            first, first_arrival, _ = known[0]
            if prev_end is not None:
                free_at, px, py = prev_end
                can = free_at + params.travel_s(px, py, first.x, first.y)
                if first_arrival < can - TOLERANCE_S:
                    out.append(Violation("bus_overlap", where,
                                         f"reaches {first.id} at {first_arrival:.1f}, "
                                         f"cannot before {can:.1f}"))
            for (a, ta, na), (nxt, tn, _) in zip(known, known[1:], strict=False):
                earliest = ta + params.stop_s(na) + params.travel_s(a.x, a.y, nxt.x, nxt.y)
                if tn < earliest - TOLERANCE_S:
                    out.append(Violation("travel_time", where,
                                         f"{nxt.id} at {tn:.1f}, cannot before {earliest:.1f}"))
            last, tl, nl = known[-1]
            earliest = tl + params.stop_s(nl) + params.travel_s(last.x, last.y, school.x, school.y)
            if school_arrival < earliest - TOLERANCE_S:
                out.append(Violation("travel_time", where,
                                     f"school at {school_arrival:.1f}, "
                                     f"cannot before {earliest:.1f}"))
            if school_arrival > school.bell_s + TOLERANCE_S:
                out.append(Violation("late_arrival", where,
                                     f"school {school_id} at {school_arrival:.1f} > "
                                     f"{school.bell_s:.0f}"))
            for stop, arrival, _ in known:
                ride = school_arrival - arrival
                if ride > params.max_ride_s + TOLERANCE_S:
                    out.append(Violation("ride_time", where,
                                         f"stop {stop.id} rides {ride:.1f} s > "
                                         f"{params.max_ride_s:.0f}"))
            prev_end = (school_arrival + params.school_dwell_s, school.x, school.y)
    for stop in instance.stops:
        if picked.get(stop.id, 0) != stop.students:
            out.append(Violation("students", f"stop {stop.id}",
                                 f"{picked.get(stop.id, 0)} picked up of {stop.students}"))
    return out


def _parse(plan: Any) -> list[list[tuple[str, list[tuple[str, float, int]], float]]]:
    buses = []
    for bus in plan["buses"]:
        routes = []
        for route in bus["routes"]:
            visits = [(str(v["stop"]), _num(v["arrival_s"]), _count(v["students"]))
                      for v in route["stops"]]
            routes.append((str(route["school"]), visits, _num(route["school_arrival_s"])))
        buses.append(routes)
    return buses


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{value!r} is not a positive whole number of students")
    return value
