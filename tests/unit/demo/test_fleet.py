"""The sample district's simulated fleet: something moves at once, and it never stops."""

from __future__ import annotations

import json

import pytest

from backend.demo import SAMPLE_BUNDLE, banner
from backend.demo.fleet import KITCHEN_ROAD, SCHOOL_ROAD, sample_fleet
from backend.demo.plan import fix_at
from gps_ingest.filters import haversine_m

BUNDLE = json.loads(SAMPLE_BUNDLE.read_text(encoding="utf-8"))
START = 1_795_400_000.0
DAY = 86_400.0


def fleet():
    timelines, devices = sample_fleet(BUNDLE, START)
    return {t.vehicle_id: t for t in timelines}, devices


def test_four_vehicles_each_with_its_own_device_and_credentials():
    timelines, devices = fleet()
    assert sorted(timelines) == ["bus-07", "bus-12", "car-liu", "truck-01"]
    assert devices["bus-07"].device_id == "dev-bus-07"
    assert devices["bus-07"].token == "demo-token-bus-07"
    assert devices["bus-12"].crs == "gcj02"  # sends GCJ-02, as the sample registers it


def test_the_first_buses_leave_a_minute_or_two_after_the_start_staggered():
    timelines, _ = fleet()
    first = {v: timelines[v].leg_at(START) for v in ("bus-07", "bus-12")}
    assert first["bus-07"].route_id == "zt-am-1" and first["bus-12"].route_id == "lf-am-1"
    assert first["bus-07"].stop_times[0] == START + 20.0
    assert first["bus-12"].stop_times[0] == START + 45.0
    assert first["bus-12"].speeding and not first["bus-07"].speeding


@pytest.mark.parametrize("vehicle", ["bus-07", "bus-12", "car-liu", "truck-01"])
def test_a_day_of_legs_is_seamless(vehicle):
    timelines, _ = fleet()
    timeline = timelines[vehicle]
    timeline.plan_until(START + DAY)
    legs = timeline.planned
    assert legs[0].starts_at == START
    for before, after in zip(legs, legs[1:], strict=False):
        assert after.starts_at == pytest.approx(before.ends_at)
        end, start = fix_at(before, before.ends_at), fix_at(after, after.starts_at)
        assert haversine_m(end.lat, end.lon, start.lat, start.lon) < 1.0  # no jumps
    assert legs[-1].ends_at > START + DAY


def test_bus_07_alternates_its_morning_and_afternoon_routes_and_bus_12_drives_back_empty():
    timelines, _ = fleet()
    timelines["bus-07"].plan_until(START + 3 * 3600)
    timelines["bus-12"].plan_until(START + 3 * 3600)
    routes_07 = [leg.route_id for leg in timelines["bus-07"].planned]
    routes_12 = [leg.route_id for leg in timelines["bus-12"].planned]
    assert routes_07[:4] == ["zt-am-1", "zt-pm-1", "zt-am-1", "zt-pm-1"]
    assert routes_12[:4] == ["lf-am-1", None, "lf-am-1", None]
    speeding = [leg.speeding for leg in timelines["bus-12"].planned if leg.route_id]
    assert speeding[:6] == [True, False, False, True, False, False]


def test_the_teacher_and_the_meal_truck_reach_the_schools():
    timelines, _ = fleet()
    schools = {s["id"]: (s["lat"], s["lon"]) for s in BUNDLE["schools"]}
    assert SCHOOL_ROAD[0] == schools["zhuting"] and SCHOOL_ROAD[-1] == schools["longfeng"]
    assert KITCHEN_ROAD[-1] == schools["zhuting"]
    for vehicle in ("car-liu", "truck-01"):
        timeline = timelines[vehicle]
        timeline.plan_until(START + 2 * 3600)
        ends = set()
        for leg in timeline.planned:
            end = fix_at(leg, leg.ends_at)
            ends |= {s for s, p in schools.items() if haversine_m(end.lat, end.lon, *p) < 20}
        assert ends == {"zhuting", "longfeng"}, vehicle


def test_leg_at_forgets_the_legs_that_are_over():
    timelines, _ = fleet()
    timeline = timelines["bus-07"]
    later = START + 5 * 3600
    leg = timeline.leg_at(later)
    assert leg.starts_at <= later < leg.ends_at
    assert timeline.planned[0] is leg


def test_the_banner_names_the_page_the_logins_and_the_first_departures():
    lines = banner(BUNDLE, "http://127.0.0.1:8000", [("bus-07", "zt-am-1", START + 90.0)])
    text = "\n".join(lines)
    assert "http://127.0.0.1:8000/" in text
    for login in ("zhang.lanlan / demo-parent-1", "wang.jun / demo-parent-2",
                  "liu.hua / demo-parent-3", "houqin.wang / demo-logistics-1",
                  "admin / demo-admin-1"):
        assert login in text
    assert "driver.zhao" not in text  # the pages are for parents and staff
    assert "bus-07 leaves 龙凤村 at" in text
