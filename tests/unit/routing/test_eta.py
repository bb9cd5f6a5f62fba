"""ETAs: schedule + current delay without history, learned segment times with it."""

import pytest

from routing.tracker import live_view, track

from .helpers import kinds, ping, straight
from .simulate import MONDAY, at, bus, make_route

T0 = at(MONDAY, "06:48")
TIMES = [6 * 3600 + 50 * 60 + k * 300 for k in range(4)]
ROUTE = make_route("r", [(0, 0), (6000, 0)], [0, 2000, 4000, 6000], TIMES)


def first_leg(late_s=0.0):
    # leaves the first stop at 06:50 + late_s, then 10 m/s
    return [ping(T0, 0, 0, 0.0), *straight(T0 + 120 + late_s, 0, 0, 3000, 0, 10.0, 10.0)]


def test_without_history_the_eta_is_the_schedule_shifted_by_the_current_delay():
    state, _ = track(bus((ROUTE,)), None, first_leg(late_s=300))
    view = live_view(bus((ROUTE,)), state)
    assert view is not None and view.eta_source == "schedule"
    assert view.next_stop_id == "r-s2"
    assert [s.status for s in view.stops] == ["visited", "visited", "upcoming", "upcoming"]
    assert view.delay_s > 0
    for s in view.stops[2:]:
        assert s.eta == pytest.approx(s.scheduled_at + view.delay_s)
        assert 0 < s.eta_confidence < 1 and s.eta_uncertainty_s > 0
    assert view.stops[3].eta_uncertainty_s >= view.stops[2].eta_uncertainty_s
    assert view.position["ts"] == view.as_of


def test_with_history_the_eta_follows_the_median_segment_times():
    history = {"r-run": [[150.0, 210.0, 200.0], [150.0, 190.0, 200.0], [150.0, 200.0, 900.0]]}
    ctx = bus((ROUTE,), history=history)
    state, _ = track(ctx, None, first_leg())
    view = live_view(ctx, state)
    assert view is not None and view.eta_source == "history"
    s2, s3 = view.stops[2], view.stops[3]
    # at 3000 m of the 2000..4000 segment, half of its median 200 s remains; today's pace shrinks
    assert s3.eta - s2.eta == pytest.approx(200.0, rel=0.35)
    assert s2.eta > view.as_of
    assert s3.eta_confidence < s2.eta_confidence <= 1


def test_trip_completed_carries_the_segment_times_the_eta_learns_from():
    pings = first_leg() + straight(T0 + 120 + 310, 3000, 0, 6000, 0, 10.0, 10.0)
    _, events = track(bus((ROUTE,)), None, pings)
    done = kinds(events, "trip_completed")[0]
    arrivals = [e.ts for e in kinds(events, "stop_arrived")]
    expected = [round(b - a, 1) for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert done.details["segment_s"] == expected


def test_no_live_view_without_a_trip():
    assert live_view(bus((ROUTE,)), None) is None
    state, _ = track(bus((ROUTE,)), None, [ping(at(MONDAY, "03:00"), 0, 0)])
    assert live_view(bus((ROUTE,)), state) is None
