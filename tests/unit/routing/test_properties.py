"""Properties of the tracker on generated drives around 朱亭, with ground truth."""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.audit import audit_trips
from routing.model import Event, Route
from routing.state import TrackerState
from routing.tracker import track, track_owned

from .simulate import MONDAY, Drive, at, bus, drive, make_route, path_length, random_polyline

T0 = at(MONDAY, "06:45")


@dataclass
class Scenario:
    route: Route
    drive: Drive
    every_s: float
    noise_m: float
    speed_mps: float


@st.composite
def scenarios(draw) -> Scenario:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    xy = random_polyline(rng, draw(st.integers(2, 7)))
    length = path_length(xy)
    n_inner = draw(st.integers(0, 5))
    inner = sorted(rng.uniform(300, length - 300) for _ in range(n_inner)) if length > 700 else []
    kept: list[float] = []
    for a in inner:  # circles apart: at least 300 m between stops
        if (not kept or a - kept[-1] >= 300) and length - a >= 300:
            kept.append(a)
    along = [0.0, *kept, length]
    speed = draw(st.floats(6.0, 16.0))
    dwell = [draw(st.floats(0.0, 60.0)) for _ in along]
    dwell[-1] = 0.0
    every = draw(st.floats(1.0, 40.0))
    noise = draw(st.floats(0.0, 15.0))
    radius = draw(st.floats(50.0, 80.0))
    truth_t = [T0 + a / speed + sum(dwell[:k]) for k, a in enumerate(along)]
    times = [int(t - at(MONDAY, "00:00")) for t in truth_t]
    route = make_route("gen", xy, along, times, radius_m=radius)
    d = drive(route, xy, along, T0, speed, dwell, every, noise, seed, jitter_s=every * 0.2)
    return Scenario(route, d, every, noise, speed)


# XIAOCHE_PROPERTY_EXAMPLES=500 for a longer hunt than the default run's few seconds
PROPERTY = settings(max_examples=int(os.environ.get("XIAOCHE_PROPERTY_EXAMPLES", "40")),
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY
@given(scenarios())
def test_a_bus_driving_any_route_visits_every_stop_once_in_order_on_time(sc: Scenario):
    _, events = track(bus((sc.route,), limit=None), None, sc.drive.pings)
    arrivals = [e for e in events if e.kind == "stop_arrived"]
    assert [e.stop_id for e in arrivals] == [s.id for s in sc.route.stops]
    assert not [e for e in events if e.kind == "stop_missed"]
    slack = sc.every_s * 1.2 + 4 * sc.noise_m / sc.speed_mps + 1.0
    for e, truth in zip(arrivals, sc.drive.arrivals, strict=True):
        assert abs(e.ts - truth) <= slack, (e.stop_id, e.ts - truth, slack)
    assert [e.kind for e in events if e.kind.startswith("trip")] == ["trip_started",
                                                                     "trip_completed"]


@PROPERTY
@given(scenarios(), st.randoms(use_true_random=False))
def test_the_audit_is_the_same_whatever_order_the_pings_arrived_in(sc: Scenario, rnd):
    pings = list(sc.drive.pings)
    shuffled = pings[:]
    rnd.shuffle(shuffled)
    duplicated = shuffled + rnd.sample(pings, k=min(5, len(pings)))
    assert audit_trips(bus((sc.route,)), duplicated) == audit_trips(bus((sc.route,)), pings)


def _progress_never_goes_back(events: list[Event]) -> None:
    last: dict[str, tuple[int, float]] = {}
    for e in events:
        if e.trip_id is None or "sequence" not in e.details:
            continue
        seq, prog = e.details["sequence"], e.details["progress_m"]
        before = last.get(e.trip_id, (-1, -math.inf))
        assert seq >= before[0] and prog >= before[1], (e, before)
        last[e.trip_id] = (seq, prog)


@PROPERTY
@given(scenarios(), st.randoms(use_true_random=False))
def test_no_event_goes_backwards_in_progress_even_when_backlogs_arrive_late(sc: Scenario, rnd):
    pings = list(sc.drive.pings)
    batches: list[list] = []
    rest = pings[:]
    while rest:
        k = rnd.randint(1, max(1, len(rest) // 3))
        batch, rest = rest[:k], rest[k:]
        if batches and rnd.random() < 0.3:  # part of an earlier stretch arrives late again
            batch = batch + rnd.sample(batches[-1], k=min(3, len(batches[-1])))
        rnd.shuffle(batch)
        batches.append(batch)
    if len(batches) > 2 and rnd.random() < 0.5:  # a whole backlog arrives after newer pings
        batches[1], batches[2] = batches[2], batches[1]
    state, events = None, []
    for batch in batches:
        state, new = track(bus((sc.route,)), state, batch)
        events += new
    _progress_never_goes_back(events)
    kinds = [e.kind for e in events if e.kind.startswith("trip")]
    assert kinds in (["trip_started", "trip_completed"], ["trip_started"], [])


@PROPERTY
@given(scenarios(), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4))
def test_state_survives_a_json_round_trip_mid_trip_with_identical_events(sc: Scenario, cuts):
    ctx = bus((sc.route,))
    pings = sc.drive.pings
    _, whole = track(ctx, None, pings)
    indices = sorted({int(c * len(pings)) for c in cuts} | {0, len(pings)})
    state: TrackerState | None = None
    events: list[Event] = []
    for a, b in zip(indices, indices[1:], strict=False):
        stored = json.loads(json.dumps(state.to_dict())) if state is not None else None
        state, new = track(ctx, TrackerState.from_dict(stored) if stored else None, pings[a:b])
        events += new
    assert events == whole


@PROPERTY
@given(scenarios(), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4))
def test_tracking_in_place_gives_what_tracking_a_copy_gives_and_track_copies(sc: Scenario, cuts):
    ctx = bus((sc.route,))
    pings = sc.drive.pings
    indices = sorted({int(c * len(pings)) for c in cuts} | {0, len(pings)})
    copied: TrackerState | None = None
    owned: TrackerState | None = None
    for a, b in zip(indices, indices[1:], strict=False):
        before = copied.to_dict() if copied is not None else None
        new_copied, events = track(ctx, copied, pings[a:b])
        if copied is not None:
            assert copied.to_dict() == before  # track leaves its input alone
        # what the ingest does: a state read for this call alone, advanced in place
        owned, owned_events = track_owned(
            ctx, TrackerState.from_dict(owned.to_dict()) if owned is not None else None,
            pings[a:b])
        assert owned_events == events and owned.to_dict() == new_copied.to_dict()
        copied = new_copied
