"""三级九等: exchange teachers' allowance (交流补贴) and transport subsidy (交通补助) by the
distance of a member school from its cluster's core school.

A policy's ``levels`` are three levels of three grades each, read in order as nine contiguous
distance bands (the first starts at 0 km, only the last is open-ended). Boundaries are
half-open as for the per-trip tiers (:mod:`routing.subsidy`): a school ``d`` km from the core
school is in the band with ``min_km <= d < max_km``.

Pure: distances, dates and amounts in, values out.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from routing.subsidy import tier_index

DEFAULT_ROAD_FACTOR = 1.3  # county roads wind: driven ≈ 1.3 × straight line (see README)
GRID_SOURCES = ("override", "driven", "straight_line")


@dataclass(frozen=True, slots=True)
class Band:
    """One of the nine cells: ``level`` and ``grade`` are 1-based."""

    level: int
    grade: int
    min_km: float
    max_km: float | None
    per_month: float
    per_trip: float


@dataclass(frozen=True, slots=True)
class GridDistance:
    """A school's distance from the core school and where the number comes from."""

    distance_km: float
    source: str  # one of GRID_SOURCES
    samples: int  # driven trips the median rests on (0 unless source is "driven")


def bands(levels: Sequence[Mapping[str, Any]]) -> list[Band]:
    """The policy's levels as a flat list of bands, nearest first.

    Examples
    --------
    >>> levels = [{"grades": [{"min_km": 0, "max_km": 5, "per_month": 100, "per_trip": 0}]},
    ...           {"grades": [{"min_km": 5, "max_km": None, "per_month": 300, "per_trip": 10}]}]
    >>> [(b.level, b.grade, b.per_month) for b in bands(levels)]
    [(1, 1, 100.0), (2, 1, 300.0)]
    """
    out = []
    for li, level in enumerate(levels):
        for gi, grade in enumerate(level["grades"]):
            upper = grade.get("max_km")
            out.append(Band(li + 1, gi + 1, float(grade["min_km"]),
                            None if upper is None else float(upper),
                            float(grade.get("per_month", 0.0)), float(grade.get("per_trip", 0.0))))
    return out


def band_of(distance_km: float, levels: Sequence[Mapping[str, Any]]) -> Band | None:
    """The band of a distance; ``None`` when no band covers it (or there are no levels).

    Examples
    --------
    >>> levels = [{"grades": [{"min_km": 0, "max_km": 5, "per_month": 100, "per_trip": 0},
    ...                       {"min_km": 5, "max_km": None, "per_month": 300, "per_trip": 10}]}]
    >>> band_of(5.0, levels).grade, band_of(4.99, levels).grade
    (2, 1)
    """
    if distance_km < 0:
        raise ValueError("distance_km must not be negative")
    for band in bands(levels):
        if band.min_km <= distance_km and (band.max_km is None or distance_km < band.max_km):
            return band
    return None


def check_levels(levels: Sequence[Mapping[str, Any]]) -> list[str]:
    """What is wrong with a policy's levels (empty when nothing): 3 levels × 3 grades, the
    bands contiguous from 0 km, only the last open-ended."""
    problems = []
    if len(levels) != 3 or any(len(level.get("grades", [])) != 3 for level in levels):
        problems.append("levels: 3 levels of 3 grades each (三级九等)")
        return problems
    flat = bands(levels)
    if flat[0].min_km != 0:
        problems.append("the first grade of level 1 starts at 0 km")
    for i, band in enumerate(flat):
        name = f"level {band.level} grade {band.grade}"
        last = i == len(flat) - 1
        if band.max_km is None and not last:
            problems.append(f"{name}: only the last grade of level 3 may be open-ended")
        elif band.max_km is not None and band.max_km <= band.min_km:
            problems.append(f"{name}: max_km must exceed min_km")
        elif not last and flat[i + 1].min_km != band.max_km:
            problems.append(f"the grade after {name} must start where it ends")
    return problems


def grid_distance(driven_km: Iterable[float], straight_km: float, road_factor: float,
                  override_km: float | None = None) -> GridDistance:
    """A member school's distance from the core school: finance's override if there is one,
    else the median of recent verified driven distances between the two schools, else the
    straight line × the road factor.

    Examples
    --------
    >>> grid_distance([6.2, 9.9, 6.0], 5.5, 1.3)
    GridDistance(distance_km=6.2, source='driven', samples=3)
    >>> grid_distance([], 5.5, 1.3)
    GridDistance(distance_km=7.15, source='straight_line', samples=0)
    >>> grid_distance([6.2], 5.5, 1.3, override_km=12.0).source
    'override'
    """
    if override_km is not None:
        return GridDistance(round(float(override_km), 3), "override", 0)
    samples = [float(d) for d in driven_km if d is not None and d > 0]
    if samples:
        return GridDistance(round(statistics.median(samples), 3), "driven", len(samples))
    return GridDistance(round(float(straight_km) * float(road_factor), 3), "straight_line", 0)


def priced_km(driven_km: float, grid_km: float | None) -> float:
    """The distance a trip is paid on: what was driven, but never more than the grid distance
    between its two schools, so a detour never pays more.

    >>> priced_km(9.4, 6.2), priced_km(5.8, 6.2), priced_km(5.8, None)
    (6.2, 5.8, 5.8)
    """
    return float(driven_km) if grid_km is None else min(float(driven_km), float(grid_km))


def trip_price(distance_km: float, tiers: Sequence[Mapping[str, Any]],
               levels: Sequence[Mapping[str, Any]]) -> tuple[int | None, Band | None, float]:
    """``(tier_index, band, per_trip)`` of a trip paid on ``distance_km``: the band's
    ``per_trip`` when the policy has levels, else the per-trip tier's (the old policies).

    >>> tiers = [{"min_km": 0, "max_km": 5, "per_trip": 0},
    ...          {"min_km": 5, "max_km": None, "per_trip": 10}]
    >>> trip_price(6.0, tiers, [])
    (1, None, 10.0)
    """
    index = tier_index(distance_km, tiers) if tiers else None
    band = band_of(distance_km, levels) if levels else None
    if levels:
        return index, band, band.per_trip if band else 0.0
    return index, None, float(tiers[index]["per_trip"]) if index is not None else 0.0


def cap_amount(amount: float, month_total_so_far: float,
               monthly_cap: float | None) -> tuple[float, bool]:
    """``(amount granted, whether the monthly cap cut it)``.

    >>> cap_amount(20.0, 590.0, 600), cap_amount(20.0, 0.0, None)
    ((10.0, True), (20.0, False))
    """
    if monthly_cap is None:
        return float(amount), False
    room = max(float(monthly_cap) - float(month_total_so_far), 0.0)
    return (room, True) if amount > room else (float(amount), False)


@dataclass(frozen=True, slots=True)
class DueDay:
    """A day the teacher is due at a member school, at that day's band; ``present``: verified
    there (a trip arriving, a scan, a staff confirmation)."""

    date: dt.date
    school_id: str
    band: Band
    present: bool


@dataclass(frozen=True, slots=True)
class AllowanceLine:
    """The month's allowance earned at one school in one band."""

    school_id: str
    level: int
    grade: int
    per_month: float
    days_present: int
    days_due: int  # the teacher's due days at this school in this band
    amount: float


def monthly_allowance(days: Sequence[DueDay]) -> list[AllowanceLine]:
    """The month's allowance: each due day is worth ``per_month / (all due days of the month)``
    at its own school's band, paid when the teacher was verifiably there. Lines per (school,
    band), in order of first due day; amounts in yuan, rounded to the fen per line.

    Examples
    --------
    >>> near = Band(1, 2, 3, 5, 200.0, 0.0)
    >>> far = Band(2, 1, 5, 8, 400.0, 10.0)
    >>> d = dt.date(2026, 10, 1)
    >>> lines = monthly_allowance([DueDay(d, "a", near, True), DueDay(d, "b", far, True),
    ...                            DueDay(d, "b", far, False), DueDay(d, "a", near, True)])
    >>> [(x.school_id, x.days_present, x.days_due, x.amount) for x in lines]
    [('a', 2, 2, 100.0), ('b', 1, 2, 100.0)]
    """
    if not days:
        return []
    total_due = len(days)
    groups: dict[tuple[str, int, int], list[DueDay]] = {}
    for day in sorted(days, key=lambda d: d.date):
        groups.setdefault((day.school_id, day.band.level, day.band.grade), []).append(day)
    lines = []
    for (school_id, level, grade), group in groups.items():
        present = sum(1 for d in group if d.present)
        per_month = group[0].band.per_month
        lines.append(AllowanceLine(school_id, level, grade, per_month, present, len(group),
                                   round(per_month * present / total_due, 2)))
    return lines


def due_dates(month_days: Iterable[dt.date], weekdays: Iterable[int],
              timetable_weekday: Mapping[dt.date, int | None]) -> list[dt.date]:
    """The dates of a month a teacher assigned on ``weekdays`` is due: the school days whose
    timetable weekday (holidays ``None``, an extra school day its ``as_weekday``) is one of
    them.

    >>> d = [dt.date(2026, 10, 13), dt.date(2026, 10, 14)]
    >>> due_dates(d, [2], {d[0]: 2, d[1]: 3})
    [datetime.date(2026, 10, 13)]
    """
    wanted = set(weekdays)
    return [d for d in month_days if timetable_weekday.get(d) in wanted]
