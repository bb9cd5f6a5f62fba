"""The learned ETA: today's drives over a stretch, any run or vehicle; per-ping predictions in
event time; uncertainties; and on a real day (HSL 510) better than timetable + current delay."""

from __future__ import annotations

import dataclasses
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.config import DEFAULT
from routing.eta import baseline_etas, predict, stretch_estimate, weighted_median
from routing.geometry import route_geometry
from routing.model import SegmentObservation
from routing.state import StopState, TripState
from routing.tracker import live_view, track

from . import hsl510
from .helpers import straight
from .simulate import MONDAY, at, bus, make_route

T0 = at(MONDAY, "06:48")
TIMES = [6 * 3600 + 50 * 60 + k * 300 for k in range(4)]
ROUTE = make_route("r", [(0, 0), (6000, 0)], [0, 2000, 4000, 6000], TIMES)
GEOM = route_geometry(ROUTE)
IDS = [s.id for s in ROUTE.stops]


def drive_to(x_m: float):
    """Leaves the first stop at 06:50, then 10 m/s along the route up to ``x_m``."""
    return straight(T0 + 120, 0, 0, x_m, 0, 10.0, 10.0)


def test_a_stretch_driven_earlier_today_by_another_bus_sets_the_eta():
    # the timetable says 300 s per stretch; a bus 20 minutes ago took 500 s over the last one
    seen = T0 - 1200
    today = {(IDS[2], IDS[3]): (SegmentObservation(seen, 500.0, 20.0, "other-trip"),)}
    ctx = bus((ROUTE,))
    state, _ = track(ctx, None, drive_to(3000))
    plain = live_view(ctx, state)
    learned = live_view(dataclasses.replace(ctx, segment_observations=today), state)
    assert plain is not None and learned is not None
    assert plain.eta_source == "schedule" and learned.eta_source == "today"
    gap_plain = plain.stops[3].eta - plain.stops[2].eta
    gap_learned = learned.stops[3].eta - learned.stops[2].eta
    assert gap_plain == pytest.approx(300.0, rel=0.1)
    assert gap_learned > gap_plain + 100  # mostly today's 500 s, a little of the timetable's 300


def test_observations_after_the_prediction_time_or_of_the_same_trip_are_not_used():
    later = SegmentObservation(T0 + 5000, 900.0, None, "x")
    own = SegmentObservation(T0 - 60, 900.0, None, "mine")
    old = SegmentObservation(T0 - 3 * 3600, 900.0, None, "y")
    s = stretch_estimate([later, own, old], T0, "mine", [], 300.0)
    assert not s.today and s.seg_s == 300.0


def test_the_recent_drive_weighs_more_than_the_older_one():
    fresh = SegmentObservation(T0 - 60, 400.0, None, "a")
    stale = SegmentObservation(T0 - 5400, 200.0, None, "b")
    s = stretch_estimate([fresh, stale], T0, "t", [], 300.0)
    assert s.today and s.seg_s > 300.0


def test_weighted_median_follows_the_weights():
    assert weighted_median([1.0, 2.0, 3.0], [0.1, 0.1, 5.0]) == 3.0
    assert weighted_median([5.0], [0.01]) == 5.0


def test_the_baseline_is_the_timetable_shifted_by_the_last_observed_delay():
    day0 = at(MONDAY, "00:00")
    trip = _trip(progress_m=2500, arrivals=[T0 + 100, day0 + TIMES[1] + 60])
    base = baseline_etas(trip, day0 + TIMES[1] + 90)
    assert base[:2] == [None, None]
    assert base[2] == trip.scheduled_at[2] + 60
    assert base[3] == trip.scheduled_at[3] + 60
    fresh = _trip(progress_m=0, arrivals=[])
    assert baseline_etas(fresh, T0)[1] == fresh.scheduled_at[1]


def _trip(progress_m: float, arrivals: list[float], inside: int | None = None) -> TripState:
    stops = [StopState() for _ in IDS]
    for j, a in enumerate(arrivals):
        stops[j] = StopState(status="visited", arrived_at=a,
                             departed_at=None if inside == j else a + 20)
    day0 = at(MONDAY, "00:00")
    return TripState("t", ROUTE.id, "r-run", MONDAY.isoformat(), T0,
                     [day0 + t for t in TIMES], progress_m, T0, stops, inside_stop=inside)


@st.composite
def situations(draw):
    visited = draw(st.integers(1, 3))
    t = T0
    arrivals = []
    for _ in range(visited):
        t += draw(st.floats(30, 900))
        arrivals.append(t)
    inside = visited - 1 if draw(st.booleans()) else None
    lo = GEOM.stop_along[visited - 1]
    hi = GEOM.stop_along[visited] if visited < len(IDS) else lo
    progress = draw(st.floats(lo, hi)) if inside is None else lo
    now = t + draw(st.floats(0, 1200))
    obs = {}
    for k in range(len(IDS) - 1):
        obs[(IDS[k], IDS[k + 1])] = tuple(
            SegmentObservation(now - draw(st.floats(0, 9000)), draw(st.floats(1, 2000)),
                               draw(st.one_of(st.none(), st.floats(0, 120))), f"o{i}")
            for i in range(draw(st.integers(0, 4))))
    history = [[draw(st.one_of(st.none(), st.floats(1, 2000))) for _ in range(len(IDS) - 1)]
               for _ in range(draw(st.integers(0, 4)))]
    return _trip(progress, arrivals, inside), now, obs, history


@settings(max_examples=200, deadline=None)
@given(situations())
def test_etas_never_decrease_along_the_route_nor_precede_now_and_uncertainty_grows(case):
    trip, now, obs, history = case
    pred = predict(trip, GEOM, now, history, DEFAULT, obs)
    ahead = [(e, u) for e, u in zip(pred.etas, pred.uncertainties, strict=True) if e is not None]
    assert [e is None for e in pred.etas] == [s.status != "upcoming" for s in trip.stops]
    for (e1, u1), (e2, u2) in zip(ahead, ahead[1:], strict=False):
        assert e2 >= e1 and u2 >= u1  # type: ignore[operator]
    assert all(e >= now and u is not None and u > 0 for e, u in ahead)


@pytest.fixture(scope="module")
def hsl_day() -> hsl510.Day:
    return hsl510.load_day()


def test_on_the_hsl510_day_the_learned_eta_beats_timetable_plus_delay(hsl_day):
    """Real 1 Hz traces of 12 trips fed in event-time order (later trips learn from earlier
    ones); the timetable is the day's own median profile, the baseline's best case.
    ``python -m tests.unit.routing.hsl510`` prints the table."""
    score = hsl510.replay(hsl_day)
    for k in hsl510.AHEAD:
        learned, base = score.mae(k)
        assert len(score.learned[k]) > 10000
        assert learned <= 0.85 * base, (k, learned, base)
    learned_1, base_1 = score.mae(1)
    assert learned_1 <= 0.75 * base_1
    # uncertainty widens with the stops ahead, and is of the order of the errors
    medians = [statistics.median(score.uncertainty[k]) for k in hsl510.AHEAD]
    assert medians == sorted(medians)
    assert 0.3 < medians[1] / score.mae(3)[0] < 3


def test_a_slow_outlier_bus_today_does_not_drag_the_next_buses_eta():
    # four buses took ~300 s over the stretch this last hour; the latest one, stuck behind a
    # breakdown, took 900 s. A weighted mean would say ~440 s; the weighted median keeps ~300 s.
    normal = [SegmentObservation(T0 - age, seg, None, f"n{age}")
              for age, seg in ((300, 290.0), (900, 310.0), (1500, 300.0), (2100, 305.0))]
    slow = SegmentObservation(T0 - 60, 900.0, None, "slow")
    s = stretch_estimate([*normal, slow], T0, "t", [], 300.0)
    assert s.today and s.seg_s == pytest.approx(300.0, abs=15.0)
    # ... while two slow buses out of three do move it: a slow day is not an outlier
    two = stretch_estimate([normal[0], slow, dataclasses.replace(slow, trip_id="slow-2")], T0,
                           "t", [], 300.0)
    assert two.seg_s > 600.0


def test_the_time_already_spent_in_the_stretch_counts_towards_the_next_stop():
    # stop 1 left at T0+420; the bus is 110 m into the 1 850 m between stop 1's exit radius and
    # stop 2's circle. Just gone, or after standing 2 min at a light there: by distance alone both
    # would have 94 % of the stretch's driving time ahead of them.
    arrivals = [T0 + 100, T0 + 400]
    trip = _trip(progress_m=2200, arrivals=arrivals)
    just_gone = T0 + 430
    held = T0 + 550
    left_fresh = predict(trip, GEOM, just_gone, [], DEFAULT).etas[2] - just_gone
    left_held = predict(trip, GEOM, held, [], DEFAULT).etas[2] - held
    drive = 300.0 - 20.0  # the timetable's stretch less the dwell seen at stop 1
    assert left_fresh == pytest.approx(drive * 1740 / 1850, rel=0.05)  # on pace: distance rules
    assert left_held < left_fresh - 40  # part of the stretch's time is already spent ...
    assert left_held >= 1740 / (50 / 3.6)  # ... but the rest is no faster than 50 km/h
