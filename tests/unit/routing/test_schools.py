"""Teacher trips between schools and meal deliveries: school geofences with hysteresis."""

import datetime as dt

import pytest
from geopy.distance import geodesic

from routing.model import Assignment, Place, VehicleContext

from .helpers import kinds, ping, run, straight
from .simulate import CAL, MONDAY, at, to_lonlat

A_LON, A_LAT = to_lonlat(0, 0)
B_LON, B_LAT = to_lonlat(6000, 3000)
ZHUTING = Place("zhuting", "朱亭学校", A_LAT, A_LON, 150, True)
LONGFENG = Place("longfeng", "龙凤学校", B_LAT, B_LON, 120, True)
TUESDAY = MONDAY + dt.timedelta(days=1)


TUE_THU_AT_LONGFENG = (Assignment("longfeng", frozenset({2, 4})),)


def car(assignments=TUE_THU_AT_LONGFENG) -> VehicleContext:
    return VehicleContext(vehicle_id="car-liu", kind="teacher_car", speed_limit_kmh=80,
                          routes=(), schools=(ZHUTING, LONGFENG), calendar=CAL,
                          assignments=assignments, teacher_id="t-liu")


def truck() -> VehicleContext:
    return VehicleContext(vehicle_id="truck-01", kind="meal_truck", speed_limit_kmh=70,
                          routes=(), schools=(ZHUTING, LONGFENG), calendar=CAL)


def school_to_school(t0, every_s=10.0):
    return [ping(t0, 0, 0, 0.0), *straight(t0 + 10, 0, 0, 6000, 0, 15.0, every_s),
            *straight(t0 + 10 + 400 + every_s, 6000, 0, 6000, 3000, 15.0, every_s),
            ping(t0 + 1200, 6000, 3000, 0.0)]


def test_leaving_one_school_and_entering_another_is_a_teacher_trip():
    pings = school_to_school(at(TUESDAY, "07:30"))
    _, events = run(car(), pings)
    (trip,) = kinds(events, "teacher_trip_completed")
    d = trip.details
    assert (d["from_school_id"], d["to_school_id"], trip.stop_id) == ("zhuting", "longfeng",
                                                                      "longfeng")
    assert d["matches_assignment"] is True  # Tuesday, assigned to 龙凤
    assert d["departed_at"] == pytest.approx(at(TUESDAY, "07:30") + 10 + 150 / 15, abs=0.5)
    assert d["arrived_at"] == trip.ts and d["arrived_at"] > d["departed_at"]
    # hops from the last fix inside 朱亭's exit radius (150 + 50 m) to the first inside 龙凤
    last_in = max(k for k, p in enumerate(pings) if geodesic((p.lat, p.lon), (A_LAT, A_LON)).m
                  <= 200 and p.ts < d["departed_at"] + 60)
    first_in = min(k for k, p in enumerate(pings) if geodesic((p.lat, p.lon), (B_LAT, B_LON)).m
                   <= 120)
    path = sum(geodesic((p.lat, p.lon), (q.lat, q.lon)).km
               for p, q in zip(pings[last_in:first_in], pings[last_in + 1:first_in + 1],
                               strict=True))
    assert d["path_km"] == pytest.approx(path, abs=0.002)
    assert d["straight_km"] == pytest.approx(geodesic((A_LAT, A_LON), (B_LAT, B_LON)).km,
                                             abs=0.001)
    assert d["ping_count"] > 50 and d["teacher_id"] == "t-liu"


def test_a_trip_on_a_day_without_an_assignment_does_not_match_it():
    _, events = run(car(), school_to_school(at(MONDAY, "07:30")))
    assert kinds(events, "teacher_trip_completed")[0].details["matches_assignment"] is False


def test_a_drive_longer_than_three_hours_is_not_a_teacher_trip():
    t0 = at(TUESDAY, "07:30")
    pings = [ping(t0, 0, 0), ping(t0 + 60, 2000, 0), ping(t0 + 3 * 3600, 4000, 0),
             ping(t0 + 3 * 3600 + 120, 6000, 3000)]
    _, events = run(car(), pings)
    assert not kinds(events, "teacher_trip_completed")


def test_driving_out_and_back_to_the_same_school_is_not_a_teacher_trip():
    t0 = at(TUESDAY, "07:30")
    pings = [*straight(t0, 0, 0, 2000, 0, 15, 10), *straight(t0 + 200, 2000, 0, 0, 0, 15, 10)]
    _, events = run(car(), pings)
    assert not kinds(events, "teacher_trip_completed")


def test_a_car_parked_on_the_edge_of_a_school_does_not_flap_in_and_out():
    t0 = at(TUESDAY, "07:30")
    pings = [ping(t0 + 30 * k, 140 + (40 if k % 2 else 0), 0, 0.0) for k in range(20)]
    truck_state, events = run(truck(), pings)
    assert len(kinds(events, "meal_delivery_arrived")) == 1
    _, car_events = run(car(), pings)
    assert not car_events


def test_a_meal_truck_entering_a_school_is_a_delivery_once_per_entry():
    t0 = at(TUESDAY, "10:00")
    pings = [ping(t0, 1000, 0), *straight(t0 + 10, 1000, 0, 0, 0, 10, 10),
             *[ping(t0 + 200 + 60 * k, 0, 0, 0.0) for k in range(10)],
             *straight(t0 + 900, 0, 0, 6000, 3000, 15, 10)]
    _, events = run(truck(), pings)
    deliveries = kinds(events, "meal_delivery_arrived")
    assert [(e.stop_id, e.details["school_id"]) for e in deliveries] == [
        ("zhuting", "zhuting"), ("longfeng", "longfeng")]
    assert deliveries[0].ts == pytest.approx(t0 + 10 + 85, abs=1)  # crossing 150 m, interpolated


def test_a_meal_trucks_drive_from_one_school_to_another_is_a_school_leg_with_its_driven_km():
    t0 = at(TUESDAY, "10:00")
    truck_events = run(truck(), school_to_school(t0))[1]
    (leg,) = kinds(truck_events, "school_leg_completed")
    (trip,) = kinds(run(car(), school_to_school(t0))[1], "teacher_trip_completed")
    d = leg.details
    assert (d["from_school_id"], d["to_school_id"], leg.stop_id) == ("zhuting", "longfeng",
                                                                     "longfeng")
    # the same drive measured as a teacher's trip is measured: same path, times and line
    for key in ("departed_at", "arrived_at", "duration_s", "path_km", "straight_km",
                "ping_count", "service_date"):
        assert d[key] == trip.details[key], key
    assert d["path_km"] > d["straight_km"]  # round the corner at (6000, 0)
    assert "teacher_id" not in d and "matches_assignment" not in d
    assert kinds(truck_events, "meal_delivery_arrived")  # the delivery is still told


def test_a_teacher_car_gives_teacher_trips_not_school_legs():
    _, events = run(car(), school_to_school(at(TUESDAY, "07:30")))
    assert kinds(events, "teacher_trip_completed") and not kinds(events, "school_leg_completed")
