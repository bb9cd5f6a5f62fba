"""Timelines of stop arrivals, departures and misses."""

import dataclasses

from .helpers import kinds, ping, run, straight, summary
from .simulate import MONDAY, at, bus, make_route

T0 = at(MONDAY, "06:48")
TIMES = [6 * 3600 + 50 * 60 + k * 120 for k in range(4)]
EAST = make_route("east", [(0, 0), (3000, 0)], [0, 1000, 2000, 3000], TIMES)


def test_bus_passing_a_stop_between_two_pings_counts_as_arrival():
    # 12 m/s, a ping every 30 s: fixes at 720 m and 1080 m, none inside the 60 m circle of 1000 m
    pings = [ping(T0, 0, 0, 0.0)] + straight(T0 + 60, 0, 0, 3000, 0, 12.0, 30.0)
    _, events = run(bus((EAST,)), pings)
    arrived = {e.stop_id: e for e in kinds(events, "stop_arrived")}
    departed = {e.stop_id: e for e in kinds(events, "stop_departed")}
    a, d = arrived["east-s1"], departed["east-s1"]
    assert T0 + 60 + 60 < a.ts < T0 + 60 + 90  # between the pings at 720 m and 1080 m
    assert abs(a.ts - (T0 + 60 + 940 / 12)) < 1.0  # where the circle is entered, linearly
    assert a.details["interpolated"] is True
    assert abs(d.details["dwell_s"] - 120 / 12) < 1.0
    assert d.details["stopped"] is False
    assert not kinds(events, "stop_missed")


def test_passing_a_stop_on_a_curve_between_sparse_pings_counts_by_progress():
    # the road bends 90 degrees at the stop; pings 400 m either side: the chord cuts the corner
    route = make_route("bend", [(0, 0), (1000, 0), (1000, 1000)], [0, 1000, 2000], TIMES[:3])
    pings = [ping(T0, 0, 0, 0.0), ping(T0 + 60, 600, 0), ping(T0 + 100, 1000, 400),
             ping(T0 + 150, 1000, 1000)]
    _, events = run(bus((route,)), pings)
    assert [e.stop_id for e in kinds(events, "stop_arrived")] == ["bend-s0", "bend-s1", "bend-s2"]
    a = kinds(events, "stop_arrived")[1]
    assert T0 + 60 < a.ts < T0 + 100


def test_a_stop_beside_a_road_the_route_uses_earlier_is_not_visited_on_that_pass():
    # out along y=0, back along y=100; the third stop (on the way back) is 50 m from both roads
    xy = [(0, 0), (2000, 0), (2000, 100), (0, 100)]
    route = make_route("loop", xy, [0, 2050, 3100, 4100], TIMES, stop_offsets_m=[0, 0, -50, 0])
    out = straight(T0 + 60, 0, 0, 2000, 0, 10.0, 5.0)
    turn = straight(out[-1].ts + 5, 2000, 0, 2000, 100, 10.0, 5.0)
    back = straight(turn[-1].ts + 5, 2000, 100, 0, 100, 10.0, 5.0)
    _, events = run(bus((route,)), [ping(T0, 0, 0, 0.0), *out, *turn, *back])
    arrivals = kinds(events, "stop_arrived")
    assert [e.stop_id for e in arrivals] == ["loop-s0", "loop-s1", "loop-s2", "loop-s3"]
    passed_beside_at = T0 + 60 + 1100 / 10  # outward, 50 m from the stop, 100 s earlier
    assert arrivals[2].ts > back[0].ts > passed_beside_at + 100
    assert not kinds(events, "stop_missed")


def test_a_stop_a_parallel_street_passes_first_is_visited_where_the_route_comes_close():
    # Cairns route 133 and its stop 750255: the main street passes the stop 28 m away, inside its
    # 40 m circle; the route turns into the parallel street and passes it at 10 m 338 m later
    xy = [(0, 0), (650, 0), (650, 38), (0, 38)]
    route = make_route("par", xy, [0, 500, 1338], TIMES[:3], radius_m=40.0,
                       stop_offsets_m=[0, 28, 0], school_last=False)
    main = straight(T0 + 60, 0, 0, 650, 0, 10.0, 5.0)
    side = straight(main[-1].ts + 5, 650, 0, 650, 38, 10.0, 5.0)
    back = straight(side[-1].ts + 5, 650, 38, 0, 38, 10.0, 5.0)
    _, events = run(bus((route,)), [ping(T0, 0, 0, 0.0), *main, *side, *back])
    arrivals = kinds(events, "stop_arrived")
    assert [e.stop_id for e in arrivals] == ["par-s0", "par-s1", "par-s2"]
    enters_on_the_close_pass = back[0].ts + (650 - (500 + (40**2 - 10**2) ** 0.5)) / 10.0
    assert abs(arrivals[1].ts - enters_on_the_close_pass) < 1.0  # not 43 s early on the main street
    assert not kinds(events, "stop_missed")


def test_a_stop_the_bus_drives_around_is_missed_once_progress_is_clearly_past_it():
    pings = [ping(T0, 0, 0, 0.0)]
    pings += straight(T0 + 60, 0, 0, 700, 0, 10.0, 10.0)
    pings += straight(pings[-1].ts + 10, 700, 400, 1300, 400, 10.0, 10.0)  # a parallel road
    pings += straight(pings[-1].ts + 10, 1300, 0, 3000, 0, 10.0, 10.0)
    _, events = run(bus((EAST,)), pings)
    assert ("stop_missed", "east-s1") in summary(events)
    missed = kinds(events, "stop_missed")[0]
    assert missed.details["reason"] == "passed"
    assert missed.details["progress_m"] > 1000 + 60 + 150
    assert [e.stop_id for e in kinds(events, "stop_arrived")] == ["east-s0", "east-s2", "east-s3"]
    assert kinds(events, "route_deviation_started") and kinds(events, "route_deviation_ended")


def test_dwell_and_stopped_are_reported_on_departure():
    pings = [ping(T0, 0, 0, 0.0)] + straight(T0 + 60, 0, 0, 1000, 0, 10.0, 5.0)
    pings += [ping(pings[-1].ts + k * 5, 1000, 0, 0.0) for k in range(1, 10)]
    pings += straight(pings[-1].ts + 5, 1000, 0, 3000, 0, 10.0, 5.0)
    _, events = run(bus((EAST,)), pings)
    d = next(e for e in kinds(events, "stop_departed") if e.stop_id == "east-s1")
    assert 50 <= d.details["dwell_s"] <= 65
    assert d.details["stopped"] is True


def test_idling_on_the_edge_of_a_stop_circle_arrives_and_departs_once():
    edge = [ping(T0 + 60 + k * 10, 1000 - (50 if k % 2 else 75), 0, 0.0) for k in range(12)]
    pings = [ping(T0, 0, 0, 0.0), ping(T0 + 30, 500, 0), *edge,
             *straight(T0 + 200, 1000, 0, 3000, 0, 10.0, 10.0)]
    _, events = run(bus((EAST,)), pings)
    assert [e.kind for e in events if e.stop_id == "east-s1"] == ["stop_arrived", "stop_departed"]


def test_the_trip_completes_on_arrival_at_the_last_stop_with_its_segment_times():
    pings = [ping(T0, 0, 0, 0.0)] + straight(T0 + 60, 0, 0, 3000, 0, 10.0, 10.0)
    _, events = run(bus((EAST,)), pings)
    done = kinds(events, "trip_completed")[0]
    last = kinds(events, "stop_arrived")[-1]
    assert done.ts == last.ts and last.stop_id == "east-s3"
    assert done.details["reason"] == "last_stop"
    assert done.details["stops_visited"] == 4 and done.details["stops_missed"] == 0
    segments = done.details["segment_s"]
    # circles are entered 60 m (stops) or 150 m (the school) before their centre
    assert len(segments) == 3 and abs(segments[1] - 100) < 2 and abs(segments[2] - 91) < 2
    assert abs(done.details["distance_km"] - 2.9) < 0.01  # to the first ping inside the school


def test_stops_never_reached_are_missed_when_the_trip_times_out():
    pings = [ping(T0, 0, 0, 0.0)] + straight(T0 + 60, 0, 0, 1500, 0, 10.0, 10.0)
    late = at(MONDAY, "08:10")  # last stop 06:56 + one hour of slack has passed
    _, events = run(bus((EAST,)), [*pings, ping(late, 1500, 0, 0.0)])
    tail = summary(events)[-3:]
    assert tail == [("stop_missed", "east-s2"), ("stop_missed", "east-s3"),
                    ("trip_completed", None)]
    done = events[-1]
    assert done.details["reason"] == "timeout"
    assert done.ts == at(MONDAY, "06:56") + 3600
    assert kinds(events, "stop_missed")[0].details["reason"] == "timeout"


def test_visiting_a_later_stop_first_marks_the_skipped_one_missed_before_the_arrival():
    route = dataclasses.replace(EAST, id="east2")
    pings = [ping(T0, 0, 0, 0.0), ping(T0 + 100, 950, 300), ping(T0 + 130, 1000, 300),
             ping(T0 + 200, 1950, 0), *straight(T0 + 210, 1950, 0, 3000, 0, 10.0, 10.0)]
    _, events = run(bus((route,)), pings)
    stop_events = [(e.kind, e.stop_id) for e in events if e.stop_id and "s2" in e.stop_id
                   or e.stop_id and "s1" in e.stop_id]
    assert stop_events[:2] == [("stop_missed", "east-s1"), ("stop_arrived", "east-s2")]
