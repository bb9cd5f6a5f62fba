"""The staff console's day in the browser tests: the sample district with a second teacher of
朱亭学校 (周敏, no assignment at 龙凤学校, so 龙凤's staff must never see her), bus-07's Monday
morning run of zt-am-1 that swerves round 石塘村 (a missed stop and a deviation) and drives one
stretch at 78 km/h (limit 60), audited; and this month's subsidy ledger: 刘胜 with one trip
booked at 10 CNY and one pending (off his timetable, 16 km: 20 CNY once approved), 周敏 with one."""

from __future__ import annotations

import datetime as dt
import math
import time
from zoneinfo import ZoneInfo

from tests.integration.audit.conftest import MONDAY, drive_pings, ingest, place_of

SHANGHAI = ZoneInfo("Asia/Shanghai")
DETOUR_M = 600  # pings within this of 石塘村 are pushed off the road, most at the stop itself


def swerving_drive(bundle: dict) -> list[dict]:
    pings = drive_pings(bundle, MONDAY)
    lon0, lat0 = place_of(bundle, "shitang-cun")
    for p in pings:
        d = math.hypot((p["lon"] - lon0) * math.cos(math.radians(lat0)) * 111_000,
                       (p["lat"] - lat0) * 111_000)
        w = max(0.0, 1 - d / DETOUR_M)  # ~400 m south-east at the stop, tapering to nothing
        p["lat"] = round(p["lat"] - 0.0027 * w, 7)
        p["lon"] = round(p["lon"] + 0.0030 * w, 7)
    for p in pings[95:99]:
        p["speed_kmh"] = 78.0
    return pings


def teacher_trip(teacher_id: str, day: dt.date, km: float, hour: int, on_timetable: bool):
    from routing.model import Event

    departed = dt.datetime.combine(day, dt.time(hour), tzinfo=SHANGHAI).timestamp()
    return Event(kind="teacher_trip_completed", ts=departed + 900, vehicle_id="car-liu",
                 route_id=None, trip_id=None, run_id=None, stop_id="longfeng", details={
                     "teacher_id": teacher_id, "from_school_id": "zhuting",
                     "to_school_id": "longfeng", "departed_at": departed,
                     "arrived_at": departed + 900, "duration_s": 900.0, "path_km": km,
                     "straight_km": km * 0.8, "matches_assignment": on_timetable,
                     "ping_count": 30, "service_date": day.isoformat()})


def console_day(app, bundle: dict) -> list[dict]:
    """Import ``bundle`` (with 周敏 added), store and audit the swerving drive, book the month's
    teacher trips; the drive's pings."""
    from backend.audit_service import audit_date
    from backend.bundle import import_bundle
    from backend.extensions import db
    from backend.subsidy_service import book_trips

    # the ledger's story is the old per-trip tiers: 朱亭 and 龙凤 in no cluster, so the 16 km trip
    # is paid on what was driven (inside the cluster its grid distance would cap it)
    bundle.pop("clusters", None)
    bundle["teachers"].append({"id": "t-zhou", "name": "周敏", "home_school_id": "zhuting",
                               "vehicle_id": None, "assignments": []})
    app.config.update(MAX_PING_AGE_S=0.0, MAX_FUTURE_S=10 * 365 * 86400.0)
    with app.app_context():
        import_bundle(bundle)
    pings = swerving_drive(bundle)
    assert ingest(app, pings) == len(pings)
    today = dt.datetime.now(SHANGHAI).date()
    day = today.replace(day=1) if today.day > 1 else today  # this month, before now
    with app.app_context():
        audit_date(MONDAY)
        with db.engine.begin() as conn:
            book_trips(conn, [teacher_trip("t-liu", day, 8.0, 7, True),
                              teacher_trip("t-liu", day, 16.0, 15, False),
                              teacher_trip("t-zhou", day, 8.0, 9, True)], now=time.time())
    return pings
