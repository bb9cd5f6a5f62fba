"""Chaining finds the fewest buses exactly, then the least empty driving (checked against brute
force on small random sets of routes)."""

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from routing.planning.chaining import Leg, chain


def travel(ax, ay, bx, by):
    return abs(ax - bx) + abs(ay - by)


def brute_force(legs):
    """(fewest buses, least empty driving among those) by trying every successor assignment."""
    n = len(legs)
    options = []
    for a in range(n):
        ok = [None] + [b for b in range(n) if b != a and legs[a].free_s + travel(
            legs[a].end_x, legs[a].end_y, legs[b].start_x, legs[b].start_y) <= legs[b].start_s]
        options.append(ok)
    best = None
    for succ in itertools.product(*options):
        chosen = [s for s in succ if s is not None]
        if len(set(chosen)) != len(chosen):
            continue
        cost = sum(travel(legs[a].end_x, legs[a].end_y, legs[b].start_x, legs[b].start_y)
                   for a, b in enumerate(succ) if b is not None)
        key = (n - len(chosen), cost)
        best = key if best is None or key < best else best
    return best


legs_strategy = st.lists(
    st.builds(lambda s, d, x0, y0, x1, y1: Leg(s, x0, y0, s + d, x1, y1),
              st.integers(0, 100), st.integers(1, 40), st.integers(0, 30), st.integers(0, 30),
              st.integers(0, 30), st.integers(0, 30)),
    min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(legs_strategy)
def test_chaining_uses_the_fewest_buses_and_then_the_least_empty_driving(legs):
    buses, empty = chain(legs, travel)
    assert sorted(i for bus in buses for i in bus) == list(range(len(legs)))
    for bus in buses:
        for a, b in zip(bus, bus[1:], strict=False):
            la, lb = legs[a], legs[b]
            assert la.free_s + travel(la.end_x, la.end_y, lb.start_x, lb.start_y) <= lb.start_s
    fewest, least = brute_force(legs)
    assert len(buses) == fewest
    assert empty == least


def test_a_greedy_first_come_chaining_would_need_one_bus_more():
    # Route 0 could follow route 1 or 2; route 3 only route 1. Taking the nearest first
    # (1 → 0, 0.0 empty) would strand 3; the matching sends 2 → 0 and 1 → 3: two buses.
    legs = [Leg(100, 0, 0, 110, 0, 0),   # 0
            Leg(0, 0, 0, 10, 0, 0),      # 1 ends at (0, 0)
            Leg(0, 50, 0, 10, 50, 0),    # 2 ends at (50, 0)
            Leg(15, 5, 0, 30, 1000, 0)]  # 3 starts at (5, 0) at 15: only 1 reaches it
    buses, _ = chain(legs, travel)
    assert sorted(buses) == [[1, 3], [2, 0]]
