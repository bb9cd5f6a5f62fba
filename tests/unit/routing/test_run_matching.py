"""Which run a bus is driving: service days, start windows, direction, runs past midnight."""

import dataclasses
import datetime as dt

import pytest

from routing.calendar import parse_hms
from routing.model import Calendar, Run
from routing.run_matching import trip_id_for

from .helpers import kinds, ping, run, straight
from .simulate import MONDAY, at, bus, make_route

AM = make_route("zt-am-1", [(0, 0), (4000, 0)], [0, 2000, 4000],
                [parse_hms(t) for t in ("06:50", "06:58", "07:06")])
PM = make_route("zt-pm-1", [(4000, 0), (0, 0)], [0, 2000, 4000],
                [parse_hms(t) for t in ("16:40", "16:48", "16:56")])


def drive_east(t0, x0=0.0, x1=4000.0, reverse=False):
    a, b = (x1, x0) if reverse else (x0, x1)
    return [ping(t0, a, 0, 0.0), *straight(t0 + 120, a, 0, b, 0, 10.0, 10.0)]


def test_the_morning_and_evening_runs_on_reversed_paths_are_matched_run_by_run():
    ctx = bus((AM, PM))
    pings = drive_east(at(MONDAY, "06:45")) + drive_east(at(MONDAY, "16:35"), reverse=True)
    _, events = run(ctx, pings)
    trips = [(e.kind, e.run_id) for e in kinds(events, "trip_started", "trip_completed")]
    assert trips == [("trip_started", "zt-am-1-run"), ("trip_completed", "zt-am-1-run"),
                     ("trip_started", "zt-pm-1-run"), ("trip_completed", "zt-pm-1-run")]
    assert kinds(events, "trip_started")[0].trip_id == trip_id_for("bus-07", "zt-am-1-run", MONDAY)
    assert not kinds(events, "stop_missed")


def test_a_bus_parked_at_the_school_all_day_starts_the_evening_run_when_it_leaves():
    ctx = bus((AM, PM))
    parked = [ping(at(MONDAY, "07:30") + k * 600, 4000, 0, 0.0) for k in range(55)]
    leaves = straight(at(MONDAY, "16:41"), 4000, 0, 0, 0, 10.0, 10.0)
    _, events = run(ctx, parked)
    assert not kinds(events, "trip_started")  # parked in the window is not driving the run
    _, events = run(ctx, parked + leaves)
    started = kinds(events, "trip_started")
    assert [e.run_id for e in started] == ["zt-pm-1-run"]
    assert started[0].details["departed_at"] >= at(MONDAY, "16:41")
    assert started[0].ts >= at(MONDAY, "16:40") - 1800  # the visit, not the whole day parked


def test_no_trip_starts_on_a_holiday():
    ctx = dataclasses.replace(bus((AM,)), calendar=Calendar(holidays=frozenset({MONDAY})))
    _, events = run(ctx, drive_east(at(MONDAY, "06:45")))
    assert not kinds(events, "trip_started")


def test_an_extra_school_day_runs_the_timetable_of_its_weekday():
    saturday = MONDAY + dt.timedelta(days=5)
    ctx = dataclasses.replace(bus((AM,)), calendar=Calendar(extra_school_days={saturday: 1}))
    _, events = run(ctx, drive_east(at(saturday, "06:45")))
    assert [e.trip_id for e in kinds(events, "trip_started")] == \
        [trip_id_for("bus-07", "zt-am-1-run", saturday)]
    _, sunday = run(ctx, drive_east(at(saturday + dt.timedelta(days=1), "06:45")))
    assert not kinds(sunday, "trip_started")


def test_an_explicit_date_runs_even_on_a_saturday():
    saturday = MONDAY + dt.timedelta(days=5)
    extra = dataclasses.replace(AM, runs=(Run("extra", AM.runs[0].times_s,
                                              dates=frozenset({saturday})),))
    _, events = run(bus((extra,)), drive_east(at(saturday, "06:45")))
    assert [e.run_id for e in kinds(events, "trip_started")] == ["extra"]


def test_a_bus_at_the_start_outside_the_window_starts_nothing():
    _, events = run(bus((AM,)), drive_east(at(MONDAY, "05:30")))
    assert not kinds(events, "trip_started")


def test_a_bus_driving_the_route_backwards_to_its_first_stop_starts_nothing():
    pings = drive_east(at(MONDAY, "06:45"), reverse=True)
    _, events = run(bus((AM,)), pings)
    assert not kinds(events, "trip_started")  # it arrived at the first stop and never left


def test_a_device_switched_on_after_the_first_stop_joins_the_run_moving_forward():
    pings = straight(at(MONDAY, "06:52"), 300, 0, 4000, 0, 10.0, 10.0)
    _, events = run(bus((AM,)), pings)
    started = kinds(events, "trip_started")
    # 300 m forward along the path first (trip_join_min_progress_m): 300 -> 600 m
    assert started[0].ts == pings[3].ts and started[0].details["joined"] is True
    assert started[0].details["unobserved"] == [0]  # passed before the device was on
    assert not kinds(events, "stop_missed")  # not seen is not missed
    done = kinds(events, "trip_completed")[0]
    assert done.details["stops_visited"] == 2 and done.details["unobserved"] == [0]
    # the timetable's pace puts its departure from the first stop 0.6 km before the join
    assert started[0].details["delay_s"] == pytest.approx(
        pings[3].ts - 600 / 2000 * (at(MONDAY, "06:58") - at(MONDAY, "06:50"))
        - at(MONDAY, "06:50"), abs=1)


def test_a_run_past_midnight_belongs_to_the_previous_service_day():
    night = dataclasses.replace(AM, runs=(Run("night", tuple(parse_hms(t) for t in
                                                         ("23:55", "24:03", "24:11")),
                                              days=frozenset({1})),))
    _, events = run(bus((night,)), drive_east(at(MONDAY, "23:52")))
    started = kinds(events, "trip_started")
    assert [e.trip_id for e in started] == [trip_id_for("bus-07", "night", MONDAY)]
    assert kinds(events, "trip_completed")[0].details["reason"] == "last_stop"
    assert kinds(events, "trip_completed")[0].ts > at(MONDAY + dt.timedelta(days=1), "00:00")


def test_a_loop_route_that_ends_where_it_starts_is_driven_once():
    loop = make_route("loop", [(0, 0), (1500, 0), (1500, 1500), (0, 1500), (0, 0)],
                      [0, 1500, 3000, 6000],
                      [parse_hms(t) for t in ("06:50", "06:55", "07:00", "07:10")])
    t0 = at(MONDAY, "06:45")
    pings = [ping(t0, 0, 0, 0.0)]
    for (x0, y0), (x1, y1) in zip(loop_xy := [(0, 0), (1500, 0), (1500, 1500), (0, 1500), (0, 0)],
                                  loop_xy[1:], strict=False):
        pings += straight(pings[-1].ts + 10, x0, y0, x1, y1, 10.0, 10.0)
    pings += [ping(pings[-1].ts + 60 * k, 0, 0, 0.0) for k in range(1, 20)]
    _, events = run(bus((loop,)), pings)
    assert len(kinds(events, "trip_started")) == 1
    assert kinds(events, "trip_completed")[0].details["stops_visited"] == 4
