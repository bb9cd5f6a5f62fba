"""The hard-day generator (``tests/realdays``) and the five causes of issue 13, one test each.

The generator tests check the instrument: deterministic for a seed, its truth where its pings
say, each scenario really there. The cause tests drive a hand-sized generated day through the
tracker and assert the *correct* behaviour; the tracker before issue 13's fix failed every one
of them (each was first committed as a strict xfail and checked to fail for its named reason).
Each cause has a plain test next to it that checks the scenario is what it claims to be (without
the tracker), so a pass cannot come from a generator bug.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.geometry import segment_m
from routing.model import Event
from routing.run_matching import trip_id_for
from tests.realdays.day import Day, TruthTrip
from tests.realdays.generator import LINES, DayConfig, Scenarios, generate, pattern
from tests.realdays.metrics import drive, evaluate

LAYOVERS = Scenarios.only("layovers")


@lru_cache(maxsize=32)
def day(seed: int = 0, lines: tuple[str, ...] = ("130",), buses: int = 1, runs: int = 2,
        scenarios: Scenarios = LAYOVERS, **kw) -> Day:
    """A small generated day (cached: the tests only read it)."""
    return generate(DayConfig(seed=seed, lines=lines, buses_per_line=buses, runs_per_bus=runs,
                              scenarios=scenarios, history_days=0, **kw))


_EVENTS: dict[int, tuple[Day, dict[str, list[Event]]]] = {}


def events_of(d: Day) -> dict[str, list[Event]]:
    """The tracker's events on a day, driven once per day (days are cached by :func:`day`)."""
    if id(d) not in _EVENTS:
        _EVENTS[id(d)] = (d, drive(d))
    return _EVENTS[id(d)][1]


def started(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind == "trip_started"]


def on_trip(events: list[Event], trip_id: str, kind: str) -> list[Event]:
    return [e for e in events if e.trip_id == trip_id and e.kind == kind]


def dist_m(d: Day, vehicle_id: str, stop_ll: tuple[float, float], ts: float) -> float:
    """Distance from a stop of the vehicle's ping nearest in time to ``ts``."""
    p = min(d.pings[vehicle_id], key=lambda p: abs(p.ts - ts))
    return segment_m(p.lat, p.lon, *stop_ll)


def stop_of(d: Day, t: TruthTrip, j: int) -> tuple[float, float]:
    route = next(r for r in d.contexts[t.vehicle_id].routes if r.id == t.route_id)
    return route.stops[j].lat, route.stops[j].lon


# --- the generator ---------------------------------------------------------------------------
def test_the_feed_gives_each_line_its_real_shapes_and_stops_in_order_along_them():
    for shapes in LINES.values():
        for shape_id in shapes:
            pat = pattern(shape_id)
            assert len(pat.along) >= 15 and pat.length > 10_000
            assert np.all(np.diff(pat.along) >= 0)
            assert pat.offsets_s[0] == 0 and list(pat.offsets_s) == sorted(pat.offsets_s)
            off = [math.dist(np.array(pat.at(a)).ravel(), xy)
                   for a, xy in zip(pat.along, pat.stop_xy, strict=True)]
            assert max(off) < 25.0  # every stop beside its shape, found in order
    loop = pattern("1120011")
    assert loop.stop_ids[0] == loop.stop_ids[-1]


def test_a_seed_gives_the_same_day_and_another_seed_another():
    cfg = DayConfig(seed=3, lines=("130",), buses_per_line=2, runs_per_bus=2)
    a, b = generate(cfg), generate(cfg)
    assert a.pings == b.pings and a.trips == b.trips
    assert {k: c.routes for k, c in a.contexts.items()} == \
        {k: c.routes for k, c in b.contexts.items()}
    other = generate(DayConfig(seed=4, lines=("130",), buses_per_line=2, runs_per_bus=2))
    assert other.pings != a.pings


def test_every_bus_of_a_line_may_drive_every_run_of_it():
    d = day(lines=("130", "122"), buses=3)
    for t in d.trips:
        route = next(r for r in d.contexts[t.vehicle_id].routes if r.id == t.route_id)
        assert t.run_id in {r.id for r in route.runs}
        line = t.route_id.split("-")[0]
        for vid, ctx in d.contexts.items():
            if vid.split("-")[1] == line:
                assert route in ctx.routes


def test_the_truth_is_where_the_pings_say_it_is():
    """1 s sampling, 3 m noise: at each truth passage the nearest ping is on the stop's circle
    (entering it, or leaving stop 0), or at the recorded closest approach."""
    d = day(lines=("112", "130", "122"), buses=2, every_s=1.0,
            scenarios=Scenarios.only("layovers", "terminal_off_stop"), off_stop_share=0.5)
    checked = 0
    for t in d.trips:
        for j in t.observed:
            at, near = t.passages[j], t.passage_m[j]
            assert at is not None and near is not None
            radius = max(40.0, near)
            assert abs(dist_m(d, t.vehicle_id, stop_of(d, t, j), at) - radius) < 25.0, (t, j)
            checked += 1
        assert [p for p in t.passages if p is not None] == \
            sorted(p for p in t.passages if p is not None)
    assert checked == sum(len(t.passages) for t in d.trips)  # nothing unobserved here


def test_each_scenario_is_in_the_mixed_day():
    d = generate(DayConfig(seed=1, buses_per_line=5, runs_per_bus=2, history_days=1))
    flags = {f for t in d.trips for f in t.flags}
    assert {"layover", "terminal_three", "terminal_off_stop", "late_join", "handover",
            "frozen_silent", "frozen_repeat"} <= flags
    gaps = [np.median(np.diff([p.ts for p in ps])) for ps in d.pings.values()]
    assert min(gaps) < 8 and max(gaps) > 40  # 5-60 s sampling
    devices = d.notes["devices"]
    assert sum(v["outliers"] for v in devices.values()) > 20  # 1 % of ~12 000 pings
    assert min(v["sigma_m"] for v in devices.values()) < 4 < 6 < max(
        v["sigma_m"] for v in devices.values())
    assert len({t.vehicle_id for t in d.trips}) == len(d.contexts) == 3 * 5 + 3  # + 3 spares
    assert all(len(ctx.segment_history) for ctx in d.contexts.values())


def test_late_join_frozen_and_hand_over_leave_the_right_stops_unobserved():
    d = generate(DayConfig(seed=1, lines=("130", "122"), buses_per_line=3, runs_per_bus=2,
                           scenarios=Scenarios.only("layovers", "late_join", "frozen")))
    late = d.flagged("late_join")
    assert len(late) == 2
    for t in late:
        obs = t.observed
        assert obs[0] >= 2 and obs == list(range(obs[0], len(t.passages)))
        assert d.pings[t.vehicle_id][0].ts > t.scheduled[0]  # the device was off until then
    for kind in ("frozen_silent", "frozen_repeat"):
        (broken,) = d.flagged(kind)
        (spare,) = [t for t in d.flagged("handover") if t.run_id == broken.run_id and t is not
                    broken]
        assert spare.vehicle_id.startswith("spare-")
        last = broken.observed[-1]
        assert broken.observed == list(range(last + 1))
        assert spare.observed == list(range(last + 1, len(spare.passages)))
        after = [p for p in d.pings[broken.vehicle_id] if p.ts > broken.passages[last] + 300]
        if kind == "frozen_silent":
            assert not after
        else:  # one fix repeated for 20 min, then nothing
            assert len({(p.lat, p.lon) for p in after}) == 1
            assert 15 * 60 < after[-1].ts - after[0].ts <= 20 * 60


def test_terminal_layovers_off_the_stop_park_40_to_120_m_away():
    d = day(lines=("112", "130", "122"), buses=2,
            scenarios=Scenarios.only("layovers", "terminal_off_stop"), off_stop_share=1.0)
    for t in d.trips:
        assert "terminal_off_stop" in t.flags
        assert 40.0 < t.passage_m[-1] <= 125.0


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), line=st.sampled_from(sorted(LINES)),
       flags=st.sets(st.sampled_from(["layovers", "terminal_off_stop", "late_join", "frozen",
                                      "sampling", "noise"])))
def test_any_day_keeps_its_invariants(seed, line, flags):
    d = generate(DayConfig(seed=seed, lines=(line,), buses_per_line=2, runs_per_bus=2,
                           scenarios=Scenarios.only(*flags), history_days=0))
    for pings in d.pings.values():
        ts = [p.ts for p in pings]
        assert ts == sorted(set(ts)) and len(ts) > 10
        assert all(-90 < p.lat < 0 and 140 < p.lon < 150 for p in pings)
    runs = {r.id: r for ctx in d.contexts.values() for route in ctx.routes for r in route.runs}
    assert len({(t.run_id, t.vehicle_id) for t in d.trips}) == len(d.trips)
    driven = {t.run_id for t in d.trips}
    assert driven == set(runs)  # every run of the timetable is driven, by someone
    for t in d.trips:
        obs = [t.passages[j] for j in t.observed]
        assert obs == sorted(obs) and obs
        pings = d.pings[t.vehicle_id]
        assert pings[0].ts - 60 <= obs[0] and obs[-1] <= pings[-1].ts + 60


def test_the_measures_are_not_vacuous():
    d = day(lines=("112",), buses=1, scenarios=Scenarios.none())
    good = evaluate(d)
    assert good.trips_right_vehicle == 1.0 and good.stop_recall == 1.0
    assert good.false_deviations == 0 and good.wrongly_missed == 0
    assert good.eta_n[1] > 20
    blind = evaluate(d, drive=lambda day, batch_s, observe: {v: [] for v in day.contexts})
    assert blind.trips_right_vehicle == 0.0 and blind.stop_recall == 0.0


# --- issue 13, cause by cause -------------------------------------------------------------
# (1) The run is decided on arrival at the first stop, not on departure.
CAUSE_1 = {"seed": 0, "lines": ("130",), "buses": 4, "runs": 2}


def test_cause_1_scenario_a_bus_lays_over_where_another_run_just_left():
    d = day(**CAUSE_1)
    (t,) = [t for t in d.trips if t.vehicle_id == "bus-130-00" and "layover" in t.flags]
    first = stop_of(d, t, 0)
    arrived = min(p.ts for p in d.pings["bus-130-00"]
                  if p.ts > d.trips[0].passages[-1] and segment_m(p.lat, p.lon, *first) < 40)
    assert t.passages[0] - arrived > 10 * 60  # a layover of more than 10 min
    before = [o for o in d.trips if o.route_id == t.route_id and o.passages[0] is not None
              and 0 < arrived - o.passages[0] < 10 * 60]
    assert before  # another bus left on this route's previous run minutes before it arrived


def test_cause_1_a_bus_arriving_for_its_layover_takes_its_own_run_not_the_one_that_just_left():
    d = day(**CAUSE_1)
    ev = events_of(d)["bus-130-00"]
    truth = [t.run_id for t in d.trips if t.vehicle_id == "bus-130-00"]
    assert [e.run_id for e in started(ev)][: len(truth)] == truth


# (2) Several buses claim one run.
CAUSE_2 = {"seed": 0, "lines": ("112",), "buses": 3, "runs": 1,
           "scenarios": Scenarios.only("layovers", "terminal_three")}


def test_cause_2_scenario_three_buses_wait_together_at_one_terminal():
    d = day(**CAUSE_2)
    assert len(d.flagged("terminal_three")) == 3
    first = stop_of(d, d.trips[0], 0)
    at_stop = [min(p.ts for p in d.pings[v] if segment_m(p.lat, p.lon, *first) < 40)
               for v in d.contexts]
    assert max(at_stop) < min(t.passages[0] for t in d.trips)  # all three there at once


def test_cause_2_three_buses_at_one_terminal_each_take_their_own_run():
    d = day(**CAUSE_2)
    ev = events_of(d)
    claims: dict[str, set[str]] = {}
    for vid, events in ev.items():
        for e in started(events):
            claims.setdefault(e.run_id or "", set()).add(vid)
    assert all(len(v) == 1 for v in claims.values()), claims
    for t in d.trips:
        assert t.run_id in [e.run_id for e in started(ev[t.vehicle_id])]


# (3) Trips end only inside the last stop's circle.
CAUSE_3 = {"seed": 0, "lines": ("122",), "buses": 1, "runs": 2,
           "scenarios": Scenarios.only("layovers", "terminal_off_stop"), "off_stop_share": 1.0}


def test_cause_3_scenario_the_bus_lays_over_off_the_last_stop_out_of_its_circle():
    d = day(**CAUSE_3)
    t = d.trips[0]
    assert "terminal_off_stop" in t.flags and 40 < t.passage_m[-1] <= 125
    assert d.trips[1].passages[0] - t.passages[-1] > 10 * 60  # then a layover


def test_cause_3_a_trip_ends_at_a_terminal_layover_off_the_stop_without_deviating():
    d = day(**CAUSE_3)
    t = d.trips[0]
    ev = events_of(d)[t.vehicle_id]
    trip_id = trip_id_for(t.vehicle_id, t.run_id, t.service_date)
    (done,) = on_trip(ev, trip_id, "trip_completed")
    assert done.ts - t.passages[-1] < 5 * 60  # not when the bus leaves for its next run
    assert not on_trip(ev, trip_id, "route_deviation_started")


# (4) Trips start too early, near the first stop while finishing the previous run, and the
#     previous trip takes the terminal's visit: the new trip marks its first stop missed.
CAUSE_4 = {"seed": 2, "lines": ("130",), "buses": 1, "runs": 2, "layover_min": (0, 0),
           "every_s": 15.0}


def test_cause_4_scenario_a_bus_turns_at_the_pier_from_stop_e_to_stop_b():
    d = day(**CAUSE_4)
    a, b = d.trips
    end_a, start_b = stop_of(d, a, -1), stop_of(d, b, 0)
    assert 60 < segment_m(*end_a, *start_b) < 90  # The Pier, stop E then stop B
    assert 0 < b.passages[0] - a.passages[-1] < 5 * 60  # a quick turn


def test_cause_4_the_next_trip_starts_at_its_own_first_stop_and_does_not_miss_it():
    d = day(**CAUSE_4)
    _, b = d.trips
    ev = events_of(d)[b.vehicle_id]
    trip_id = trip_id_for(b.vehicle_id, b.run_id, b.service_date)
    assert not [e for e in on_trip(ev, trip_id, "stop_missed") if e.details["sequence"] == 0]
    left = [e for e in on_trip(ev, trip_id, "stop_departed") if e.details["sequence"] == 0]
    assert left and abs(left[0].ts - b.passages[0]) < 120


# (5) Late joins (earlier stops unobserved, not missed) and hand-overs.
CAUSE_5_LATE = {"seed": 0, "lines": ("130",), "buses": 1, "runs": 1,
                "scenarios": Scenarios.only("late_join")}
CAUSE_5_HANDOVER = {"seed": 0, "lines": ("130",), "buses": 1, "runs": 2,
                    "scenarios": Scenarios.only("layovers", "frozen")}


def test_cause_5_scenarios_a_device_switched_on_mid_run_and_a_bus_finishing_another_s_run():
    (late,) = day(**CAUSE_5_LATE).trips
    assert "late_join" in late.flags and late.observed[0] >= 8
    d = day(**CAUSE_5_HANDOVER)
    broken, spare = sorted(d.flagged("handover"), key=lambda t: t.vehicle_id)
    assert broken.run_id == spare.run_id and spare.vehicle_id == "spare-130"
    assert spare.observed[0] == broken.observed[-1] + 1 and spare.observed[-1] == 25


def test_cause_5_a_late_join_starts_its_run_and_leaves_earlier_stops_unobserved():
    d = day(**CAUSE_5_LATE)
    (t,) = d.trips
    ev = events_of(d)[t.vehicle_id]
    trip_id = trip_id_for(t.vehicle_id, t.run_id, t.service_date)
    assert on_trip(ev, trip_id, "trip_started")
    missed = {e.details["sequence"] for e in on_trip(ev, trip_id, "stop_missed")}
    assert not missed & {j for j, p in enumerate(t.passages) if p is None}
    arrived = {e.details["sequence"] for e in on_trip(ev, trip_id, "stop_arrived")}
    assert set(t.observed) <= arrived


def test_cause_5_a_bus_finishing_a_run_after_a_frozen_device_gets_that_run():
    d = day(**CAUSE_5_HANDOVER)
    spare = next(t for t in d.flagged("handover") if t.vehicle_id == "spare-130")
    ev = events_of(d)[spare.vehicle_id]
    trip_id = trip_id_for(spare.vehicle_id, spare.run_id, spare.service_date)
    arrived = {e.details["sequence"] for e in on_trip(ev, trip_id, "stop_arrived")}
    assert set(spare.observed) <= arrived
