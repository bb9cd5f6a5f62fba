"""Where a simulated vehicle is at a time: the pure heart of `xiaoche demo`."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.demo import SAMPLE_BUNDLE
from backend.demo.fleet import route_shape
from backend.demo.geometry import along_of, point_along
from backend.demo.plan import drive_knots, drive_leg, fix_at, run_leg
from gps_ingest.filters import haversine_m

BUNDLE = json.loads(SAMPLE_BUNDLE.read_text(encoding="utf-8"))
AM = route_shape(BUNDLE, "zt-am-1", with_riders=True)
T0 = 1_795_400_000.0


def leg(**kwargs):
    return run_leg("bus-07", AM, T0, 120.0, 30.0, random.Random(1), **kwargs)


def test_knots_wait_drive_and_dwell():
    knots, times = drive_knots([0.0, 300.0, 900.0], 100.0, 20.0, [36.0, 18.0], 30.0, 60.0)
    assert knots == [(80.0, 0.0), (100.0, 0.0), (130.0, 300.0), (160.0, 300.0),
                     (280.0, 900.0), (340.0, 900.0)]
    assert times == [100.0, 130.0, 280.0]
    with pytest.raises(ValueError):
        drive_knots([0.0, 300.0], 100.0, 0.0, [30.0, 30.0], 0.0, 0.0)


def test_the_bus_waits_at_its_first_stop_then_reaches_every_stop_on_its_timetable():
    run = leg()
    assert run.route_id == "zt-am-1" and run.starts_at == T0 - 120.0
    first = fix_at(run, T0 - 60.0)
    assert (first.lat, first.lon) == pytest.approx((27.452, 113.231)) and first.speed_kmh == 0.0
    places = {p["id"]: (p["lat"], p["lon"]) for p in BUNDLE["stops"] + BUNDLE["schools"]}
    assert run.stop_times[0] == T0 and run.stop_times == tuple(sorted(run.stop_times))
    for stop_id, at in zip(AM.stop_ids, run.stop_times, strict=True):
        fix = fix_at(run, at)
        assert haversine_m(fix.lat, fix.lon, *places[stop_id]) < 1.0
    assert fix_at(run, run.ends_at + 999) == fix_at(run, run.ends_at)  # clamped


def test_a_plausible_speed_with_a_dwell_at_each_stop():
    run = leg()
    speeds = [fix_at(run, t).speed_kmh for t in range(int(run.starts_at), int(run.ends_at), 5)]
    assert max(speeds) <= 30.0 * 1.12 + 1e-9 and min(s for s in speeds if s > 0) >= 30.0 * 0.88
    assert fix_at(run, run.stop_times[1] + 20).speed_kmh == 0.0  # dwelling at 石塘村
    moving = fix_at(run, run.stop_times[0] + 30)
    assert moving.speed_kmh > 0 and 200 < moving.heading_deg < 250  # south-west


def test_a_speeding_run_drives_its_longest_stretch_at_that_speed():
    run = leg(speeding_kmh=68.0)
    assert run.speeding
    peak = max(fix_at(run, t).speed_kmh for t in range(int(run.starts_at), int(run.ends_at)))
    assert peak == pytest.approx(68.0)


def test_riders_board_at_their_stop_and_alight_at_school():
    run = leg()
    scans = [(s.card_id, s.action) for s in run.scans]
    assert scans == [("04A1B2C3", "board"), ("04A1B2C4", "board"),
                     ("04A1B2C3", "alight"), ("04A1B2C4", "alight")]
    board = run.scans[1]  # 王芳 at 石塘村, while the bus stands there
    assert run.stop_times[1] < board.ts < run.stop_times[1] + 40.0
    assert haversine_m(board.lat, board.lon, 27.4455, 113.2225) < 1.0
    assert all(run.stop_times[-1] < s.ts < run.ends_at for s in run.scans[2:])


def test_a_plain_drive_backwards_ends_where_the_path_begins():
    back = drive_leg("bus-12", AM.path, T0, 10.0, 35.0, 5.0, reverse=True)
    assert back.route_id is None and back.stop_times == ()
    assert (fix_at(back, T0).lat, fix_at(back, T0).lon) == pytest.approx(AM.path[-1])
    end = fix_at(back, back.ends_at)
    assert (end.lat, end.lon) == pytest.approx(AM.path[0])
    assert 20 < fix_at(back, T0 + 60).heading_deg < 70  # north-east, back towards 龙凤村


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_progress_never_goes_backwards_and_the_bus_stays_on_its_road(seed, a, b):
    run = run_leg("bus-07", AM, T0, 120.0, 30.0, random.Random(seed))
    span = run.ends_at - run.starts_at
    t1, t2 = sorted((run.starts_at + a * span, run.starts_at + b * span))
    p1, p2 = fix_at(run, t1), fix_at(run, t2)
    d1 = along_of(AM.path, AM.cum, (p1.lat, p1.lon))
    d2 = along_of(AM.path, AM.cum, (p2.lat, p2.lon))
    assert d2 >= d1 - 0.5
    assert haversine_m(p2.lat, p2.lon, *point_along(AM.path, AM.cum, d2)) < 1.0
