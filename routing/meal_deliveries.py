"""Meal deliveries (营养加餐): a ``meal_truck`` entering a school's geofence.

One ``meal_delivery_arrived`` per entry; the geofence hysteresis of
:func:`routing.teacher_trips.step_geofence` keeps a truck parked on the edge from counting twice.
"""

from __future__ import annotations

from typing import Any

from routing.teacher_trips import Crossing


def detect_meal_delivery(entered: Crossing | None) -> list[tuple[float, str, dict[str, Any]]]:
    """``(ts, school_id, details)`` when the truck just entered a school."""
    if entered is None:
        return []
    school = entered.school
    return [(entered.at, school.id, {"school_id": school.id, "school_name": school.name})]
