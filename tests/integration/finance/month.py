"""October 2026 in the sample district, as devices and school staff would have lived it.

Bus-07 drives zt-am-1 every school day; 刘胜 (t-liu, car-liu) drives 朱亭 → 龙凤 in the morning
and back in the afternoon on his timetable (Tuesdays and Thursdays), once on a Wednesday he was
not due, and once with a fix his phone got wrong; the meal truck leaves the central kitchen,
delivers to 朱亭 then 龙凤 and returns, except one day it skips 龙凤. Both schools report their
meals every school day, with a few planted anomalies (:data:`PLANTED`).
"""

from __future__ import annotations

import datetime as dt
import math
import time

import orjson

from backend.extensions import db
from backend.ingest.pipeline import IngestPipeline
from backend.ingest.steps import tracking_step
from backend.tracking_service import TrackingStep
from gps_ingest.filters import FilterConfig
from gps_ingest.pipeline import Message
from tests.drives import local_ts, on_schedule_drive

ZHUTING = (27.4301, 113.2052)
LONGFENG = (27.462, 113.248)
BEND = (27.4401, 113.2400)  # the county road bends here between the two schools
KITCHEN = (27.4460, 113.2266)  # the central kitchen, outside both schools' geofences
MONTH = [dt.date(2026, 10, d) for d in range(1, 32)]
HOLIDAYS = {dt.date(2026, 10, d) for d in (1, 2, 5, 6, 7)}
EXTRA_SCHOOL_DAY = dt.date(2026, 10, 10)  # a Saturday worked as a Friday (调休)
SCHOOL_DAYS = [d for d in MONTH if d == EXTRA_SCHOOL_DAY
               or (d.isoweekday() <= 5 and d not in HOLIDAYS)]
TEACHING_DAYS = [d for d in SCHOOL_DAYS if d.isoweekday() in (2, 4)]  # t-liu's 龙凤 days
OFF_TIMETABLE_DAY = dt.date(2026, 10, 14)  # a Wednesday: he drove, but was not due
BAD_FIX_DAY = dt.date(2026, 10, 22)  # the morning drive has a 2 km-accuracy fix in it
NO_TRUCK_AT_LONGFENG = dt.date(2026, 10, 20)

NORMAL = {"zhuting": (400, 400, 405), "longfeng": (150, 150, 150)}  # present, served, received
# (date, school) → the reports sent that day, in order; None: no report
PLANTED_REPORTS = {
    (dt.date(2026, 10, 9), "zhuting"): None,
    (EXTRA_SCHOOL_DAY, "longfeng"): None,
    (dt.date(2026, 10, 12), "longfeng"): [(150, 155, 160)],
    (dt.date(2026, 10, 13), "zhuting"): [(430, 425, 430)],
    (dt.date(2026, 10, 15), "longfeng"): [(150, 150, 140)],
    (dt.date(2026, 10, 21), "zhuting"): [(400, 410, 420), (400, 400, 420)],  # corrected
    (dt.date(2026, 10, 23), "longfeng"): [(None, 155, 160)],  # no attendance: 155 > 160 x 0.95
}
PLANTED = {
    (dt.date(2026, 10, 9), "zhuting"): ["no_report"],
    (EXTRA_SCHOOL_DAY, "longfeng"): ["no_report"],
    (dt.date(2026, 10, 12), "longfeng"): ["served_exceeds_present"],
    (dt.date(2026, 10, 13), "zhuting"): ["present_exceeds_enrolled"],
    (dt.date(2026, 10, 15), "longfeng"): ["served_exceeds_received"],
    (NO_TRUCK_AT_LONGFENG, "longfeng"): ["no_delivery"],
    (dt.date(2026, 10, 23), "longfeng"): ["served_exceeds_present"],
}


def _hop_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = (b[0] - a[0]) * 111_195.0
    dx = (b[1] - a[1]) * 111_195.0 * math.cos(math.radians((a[0] + b[0]) / 2))
    return math.hypot(dx, dy)


def drive_along(points: list[tuple[float, float]], start: float, kmh: float = 36.0,
                every_s: float = 30.0) -> list[dict]:
    """Pings every ``every_s`` along the polyline at ``kmh``, the last one on its end."""
    pings = []
    t = start
    for a, b in zip(points, points[1:], strict=False):
        leg_s = _hop_m(a, b) / (kmh / 3.6)
        steps = max(1, math.ceil(leg_s / every_s))
        for k in range(steps):
            f = k / steps
            pings.append({"ts": t + f * leg_s, "lat": a[0] + f * (b[0] - a[0]),
                          "lon": a[1] + f * (b[1] - a[1]), "speed_kmh": kmh})
        t += leg_s
    pings.append({"ts": t, "lat": points[-1][0], "lon": points[-1][1], "speed_kmh": 0.0})
    return pings


def park(at: tuple[float, float], start: float, minutes: int) -> list[dict]:
    return [{"ts": start + 60.0 * k, "lat": at[0], "lon": at[1], "speed_kmh": 0.0}
            for k in range(minutes + 1)]


def teacher_day(day: dt.date, bad_fix: bool = False) -> list[dict]:
    morning = local_ts(day, "07:30:00")
    pings = park(ZHUTING, morning - 300, 4)
    drive = drive_along([ZHUTING, BEND, LONGFENG], morning)
    if bad_fix:  # a Wi-Fi fix 2 km off, mid-drive: the filters drop it
        mid = drive[len(drive) // 2]
        drive.insert(len(drive) // 2, {**mid, "ts": mid["ts"] + 1, "lat": mid["lat"] + 0.02,
                                        "accuracy_m": 2000.0})
    pings += drive + park(LONGFENG, drive[-1]["ts"] + 60, 5)
    afternoon = local_ts(day, "15:30:00")
    back = drive_along([LONGFENG, BEND, ZHUTING], afternoon)
    return pings + park(LONGFENG, afternoon - 300, 4) + back + park(ZHUTING, back[-1]["ts"] + 60, 3)


def truck_day(day: dt.date, skip_longfeng: bool = False) -> list[dict]:
    stops = [KITCHEN, ZHUTING] + ([] if skip_longfeng else [LONGFENG]) + [KITCHEN]
    t = local_ts(day, "06:00:00")
    pings = park(KITCHEN, t - 120, 1)
    for a, b in zip(stops, stops[1:], strict=False):
        leg = drive_along([a, b], t, kmh=30.0)
        pings += leg
        pings += park(b, leg[-1]["ts"] + 60, 5)
        t = pings[-1]["ts"] + 60
    return pings


def bus_day(bundle: dict, day: dt.date) -> list[dict]:
    rows = on_schedule_drive(bundle, day)[::3]  # every 30 s
    return [{"ts": ts, "lat": lat, "lon": lon, "speed_kmh": v} for ts, lat, lon, v in rows]


def feed(app, device: str, pings: list[dict], step: TrackingStep | None = None) -> None:
    """Store ``pings`` through the ingest pipeline (tracking + ledger), 50 a message."""
    with app.app_context():
        pipeline = IngestPipeline(db.engine, FilterConfig(max_age_s=0),
                                  after_store=[step or tracking_step()])
    for k in range(0, len(pings), 50):
        pipeline.process([Message(payload=orjson.dumps(pings[k:k + 50]), received_at=time.time(),
                                  kind="pings", device_id=device)])


def replay_devices(app, bundle: dict) -> None:
    bus, car, truck = [], [], []
    for day in SCHOOL_DAYS:
        bus += bus_day(bundle, day)
        truck += truck_day(day, skip_longfeng=day == NO_TRUCK_AT_LONGFENG)
        if day in TEACHING_DAYS or day == OFF_TIMETABLE_DAY:
            car += teacher_day(day, bad_fix=day == BAD_FIX_DAY)
    feed(app, "dev-bus-07", bus)
    feed(app, "dev-car-liu", car)
    feed(app, "dev-truck-01", truck)


def reports_of(day: dt.date, school: str) -> list[tuple[int | None, int, int]]:
    if (day, school) in PLANTED_REPORTS:
        return PLANTED_REPORTS[(day, school)] or []
    return [NORMAL[school]] if day in SCHOOL_DAYS else []
