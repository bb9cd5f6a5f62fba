"""Corridor deviation and overspeed: debounced episodes."""

import pytest

from routing.config import TrackerConfig
from routing.geometry import segment_m

from .helpers import kinds, ping, run, straight
from .simulate import MONDAY, at, bus, make_route

T0 = at(MONDAY, "06:48")
TIMES = [6 * 3600 + 50 * 60 + k * 300 for k in range(3)]
EAST = make_route("east", [(0, 0), (6000, 0)], [0, 3000, 6000], TIMES, corridor_m=80)


def start():
    return [ping(T0, 0, 0, 0.0), ping(T0 + 60, 200, 0), ping(T0 + 70, 300, 0)]


def test_one_fix_outside_the_corridor_is_not_a_deviation():
    pings = [*start(), ping(T0 + 80, 400, 300), ping(T0 + 90, 500, 0), ping(T0 + 100, 600, 0)]
    _, events = run(bus((EAST,)), pings)
    assert not kinds(events, "route_deviation_started")


def test_two_fixes_outside_but_less_than_thirty_seconds_are_not_a_deviation():
    pings = [*start(), ping(T0 + 80, 400, 200), ping(T0 + 100, 500, 200),
             ping(T0 + 110, 600, 0), ping(T0 + 120, 700, 0)]
    _, events = run(bus((EAST,)), pings)
    assert not kinds(events, "route_deviation_started")


def test_a_deviation_starts_after_two_fixes_and_thirty_seconds_and_ends_after_two_inside():
    off = [ping(T0 + 80 + 10 * k, 400 + 100 * k, 150 + 50 * (k == 2)) for k in range(5)]
    back = [ping(T0 + 130, 900, 10), ping(T0 + 140, 1000, 0), ping(T0 + 150, 1100, 0)]
    _, events = run(bus((EAST,)), [*start(), *off, *back])
    started = kinds(events, "route_deviation_started")
    ended = kinds(events, "route_deviation_ended")
    assert len(started) == 1 and len(ended) == 1
    assert started[0].ts == T0 + 80  # stamped with the first fix outside
    assert ended[0].ts == T0 + 130  # ... and with the first fix back inside
    assert ended[0].details["started_at"] == T0 + 80
    assert ended[0].details["duration_s"] == 50
    assert ended[0].details["max_offset_m"] == pytest.approx(200, abs=1)
    assert started[0].trip_id == ended[0].trip_id is not None


def test_a_deviation_still_open_at_the_end_of_the_trip_is_closed_with_it():
    pings = [*start(), *straight(T0 + 80, 300, 300, 5800, 300, 10.0, 10.0),
             ping(T0 + 700, 6000, 0)]
    _, events = run(bus((EAST,)), pings)
    names = [e.kind for e in events]
    assert names.index("route_deviation_ended") < names.index("trip_completed")
    assert kinds(events, "route_deviation_ended")[0].details["reason"] == "last_stop"


def test_one_speed_spike_is_not_an_overspeed():
    pings = [ping(T0 + 10 * k, 100 * k, 0, 80.0 if k == 3 else 40.0) for k in range(10)]
    _, events = run(bus((EAST,), limit=60.0), pings)
    assert not kinds(events, "overspeed")


def test_an_overspeed_episode_gives_one_event_with_its_maximum_when_it_ends():
    speeds = [40, 65, 70, 78, 66, 61, 50, 45, 70, 40]
    pings = [ping(T0 + 10 * k, 100 * k, 0, float(v)) for k, v in enumerate(speeds)]
    _, events = run(bus((EAST,), limit=60.0), pings)
    over = kinds(events, "overspeed")
    assert len(over) == 1
    assert over[0].ts == T0 + 10
    assert over[0].details == {"max_speed_kmh": 78.0, "limit_kmh": 60.0, "started_at": T0 + 10,
                               "ended_at": T0 + 60, "duration_s": 50.0}


def test_overspeed_is_derived_from_positions_when_the_device_reports_no_speed():
    pings = [ping(T0 + 10 * k, 250 * k, 0) for k in range(6)]  # 25 m/s = 90 km/h
    pings += [ping(T0 + 60 + 10 * k, 1250 + 100 * k, 0) for k in range(3)]
    _, events = run(bus((EAST,), limit=60.0), pings)
    over = kinds(events, "overspeed")
    assert len(over) == 1
    hop = segment_m(pings[0].lat, pings[0].lon, pings[1].lat, pings[1].lon)
    assert over[0].details["max_speed_kmh"] == pytest.approx(hop / 10 * 3.6, abs=0.1)


def test_a_long_silence_closes_an_overspeed_episode():
    pings = [ping(T0 + 10 * k, 100 * k, 0, 90.0) for k in range(4)]
    pings.append(ping(T0 + 1000, 5000, 0, 90.0))
    _, events = run(bus((EAST,), limit=60.0), pings, TrackerConfig(episode_max_gap_s=300))
    over = kinds(events, "overspeed")
    assert len(over) == 1 and over[0].details["ended_at"] == T0 + 30
