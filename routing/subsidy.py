"""Itinerant teachers' transport subsidy (黄冈's 三级九等 style): a per-trip amount by distance
tier, capped per month.

Tier boundaries are half-open: a trip of ``d`` km falls in the tier with
``min_km <= d < max_km`` (``max_km`` ``None`` = no upper bound). So exactly 5.0 km with tiers
0-5 / 5-15 / 15+ is in the 5-15 tier: a boundary distance earns the higher tier, and every
distance belongs to exactly one tier when the tiers tile the line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def tier_index(distance_km: float, policy_tiers: Sequence[Mapping[str, Any]]) -> int | None:
    """Index of the tier with ``min_km <= distance_km < max_km``; ``None`` when none has it.

    Examples
    --------
    >>> tiers = [{"min_km": 0, "max_km": 5, "per_trip": 0},
    ...          {"min_km": 5, "max_km": 15, "per_trip": 10},
    ...          {"min_km": 15, "max_km": None, "per_trip": 20}]
    >>> tier_index(4.999, tiers), tier_index(5.0, tiers), tier_index(15.0, tiers)
    (0, 1, 2)
    """
    for index, tier in enumerate(policy_tiers):
        upper = tier.get("max_km")
        if float(tier["min_km"]) <= distance_km and (upper is None or distance_km < float(upper)):
            return index
    return None


def price_trip(distance_km: float, policy_tiers: Sequence[Mapping[str, Any]],
               per_month_total_so_far: float,
               monthly_cap: float | None) -> tuple[int | None, float, bool]:
    """The subsidy of one trip.

    Parameters
    ----------
    distance_km : float
        The trip's verified distance.
    policy_tiers : sequence of mappings
        ``[{min_km, max_km | None, per_trip}]``; boundaries half-open (see the module doc).
    per_month_total_so_far : float
        What the teacher has already been granted this month, before this trip.
    monthly_cap : float or None
        The most a teacher can be granted in a month; ``None`` for no cap.

    Returns
    -------
    tuple
        ``(tier_index, amount, cap_applied)``: the tier (``None`` when no tier covers the
        distance, amount 0), the amount granted for this trip after the cap, and whether the cap
        reduced it.

    Examples
    --------
    >>> tiers = [{"min_km": 0, "max_km": 5, "per_trip": 0},
    ...          {"min_km": 5, "max_km": 15, "per_trip": 10},
    ...          {"min_km": 15, "max_km": None, "per_trip": 20}]
    >>> price_trip(5.0, tiers, 0, 600)
    (1, 10.0, False)
    >>> price_trip(22.4, tiers, 590, 600)
    (2, 10.0, True)
    """
    if distance_km < 0:
        raise ValueError("distance_km must not be negative")
    index = tier_index(distance_km, policy_tiers)
    if index is None:
        return None, 0.0, False
    amount = float(policy_tiers[index]["per_trip"])
    if monthly_cap is None:
        return index, amount, False
    room = max(float(monthly_cap) - float(per_month_total_so_far), 0.0)
    if amount > room:
        return index, room, True
    return index, amount, False


#: Why a trip waits for a person's approval instead of being paid as it is booked.
OFF_TIMETABLE = "off_timetable"  # on no weekday of the teacher's assignments (or a holiday)
FILTERED_FIXES = "filtered_fixes"  # fixes of the car during the trip were filtered out
SPARSE_FIXES = "sparse_fixes"  # too few fixes for the distance to be trusted
MOCK_LOCATION = "mock_location"  # the phone reported simulated fixes during the trip
IMPLAUSIBLE_SPEED = "implausible_speed"  # faster on average than a car on county roads
MAX_AVERAGE_KMH = 100.0  # county roads: a school-to-school average above this is not a drive


def review_reasons(details: Mapping[str, Any], filtered_fixes: int,
                   max_s_per_fix: float = 180.0, mock_fixes: int = 0,
                   max_average_kmh: float = MAX_AVERAGE_KMH) -> list[str]:
    """The reasons a ``teacher_trip_completed`` needs a person's review; empty when none.

    Parameters
    ----------
    details : mapping
        The event's details (:func:`routing.teacher_trips.detect_teacher_trip`):
        ``matches_assignment``, ``duration_s``, ``ping_count``.
    filtered_fixes : int
        Fixes of the car inside the trip's time window that the ingest filters refused
        (inaccurate, a jump): the path between the kept ones is a guess.
    max_s_per_fix : float
        Longest average time between the trip's fixes before its path is not trusted.
    mock_fixes : int
        Fixes of the car inside the trip's window refused as simulated (anti-mock).
    max_average_kmh : float
        Highest plausible average speed of the trip (``path_km`` over ``duration_s``).

    Examples
    --------
    >>> review_reasons({"matches_assignment": True, "duration_s": 900, "ping_count": 30}, 0)
    []
    >>> review_reasons({"matches_assignment": False, "duration_s": 900, "ping_count": 3}, 1)
    ['off_timetable', 'filtered_fixes', 'sparse_fixes']
    """
    reasons = []
    if not details.get("matches_assignment", False):
        reasons.append(OFF_TIMETABLE)
    if filtered_fixes > 0:
        reasons.append(FILTERED_FIXES)
    count = int(details.get("ping_count") or 0)
    duration_s = float(details.get("duration_s") or 0.0)
    if count == 0 or duration_s / count > max_s_per_fix:
        reasons.append(SPARSE_FIXES)
    if mock_fixes > 0:
        reasons.append(MOCK_LOCATION)
    path_km = float(details.get("path_km") or 0.0)
    if path_km > 0 and (duration_s <= 0 or path_km / (duration_s / 3600.0) > max_average_kmh):
        reasons.append(IMPLAUSIBLE_SPEED)
    return reasons
