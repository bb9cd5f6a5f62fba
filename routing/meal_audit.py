"""The daily meal edit check (营养加餐), in the manner of the USDA's school-meal edit checks.

Meals served may not exceed boarders present, nor — when a report gives no attendance —
boarders enrolled times an attendance factor; boarders present may not exceed enrolled; meals
served may not exceed meals received from the kitchen; and on a school day a report is expected
and a meal truck must have arrived.
"""

from __future__ import annotations

import math

NO_REPORT = "no_report"
SERVED_EXCEEDS_PRESENT = "served_exceeds_present"
PRESENT_EXCEEDS_ENROLLED = "present_exceeds_enrolled"
SERVED_EXCEEDS_RECEIVED = "served_exceeds_received"
NO_DELIVERY = "no_delivery"


def meal_flags(school_day: bool, enrolled: int, present: int | None, served: int | None,
               received: int | None, delivered: bool, has_report: bool,
               attendance_factor: float = 0.95) -> list[str]:
    """The flags of one school's day, in the SPEC's order.

    ``school_day`` says whether the district calendar expects meals that day: on other days a
    missing report or delivery is no anomaly, but a report of meals served with no truck is.

    Examples
    --------
    >>> meal_flags(True, 420, 400, 400, 410, True, True)
    []
    >>> meal_flags(True, 420, 400, 405, 400, False, True)
    ['served_exceeds_present', 'served_exceeds_received', 'no_delivery']
    >>> meal_flags(True, 100, None, 96, 100, True, True)  # 96 > floor(100 x 0.95)
    ['served_exceeds_present']
    >>> meal_flags(False, 420, None, None, None, False, False)
    []
    """
    flags = []
    if not has_report:
        if school_day:
            flags.append(NO_REPORT)
    else:
        ceiling = present if present is not None else math.floor(round(enrolled * attendance_factor, 6))
        if served is not None and served > ceiling:
            flags.append(SERVED_EXCEEDS_PRESENT)
        if present is not None and present > enrolled:
            flags.append(PRESENT_EXCEEDS_ENROLLED)
        if served is not None and received is not None and served > received:
            flags.append(SERVED_EXCEEDS_RECEIVED)
    if not delivered and (school_day or (has_report and (served or 0) > 0)):
        flags.append(NO_DELIVERY)
    return flags
