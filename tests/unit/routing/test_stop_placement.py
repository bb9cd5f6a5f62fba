"""Where each stop sits along its route: on a pass of the path by it that keeps the stops in
order, the nearest such pass unless an earlier one is nearly as near."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.geometry import route_geometry

from .simulate import make_route

TIMES = [6 * 3600 + 50 * 60 + k * 120 for k in range(8)]

# East along a main street (y=0), north up a side street at x=650, west along a parallel street
# (y=38). A stop 28 m north of the main street at x=500 is 10 m from the parallel street, which
# the route reaches 338 m later: a shape of Cairns route 133 passes its stop 750255 like this.
PARALLEL = [(0, 0), (650, 0), (650, 38), (0, 38)]
FIRST_PASS_M, CLOSE_PASS_M = 500.0, 650 + 38 + 150.0


def test_a_stop_a_parallel_street_passes_first_is_placed_where_the_route_comes_close():
    route = make_route("par", PARALLEL, [0, FIRST_PASS_M, 1338], TIMES[:3],
                       stop_offsets_m=[0, 28, 0])
    along = route_geometry(route).stop_along
    assert along[1] == pytest.approx(CLOSE_PASS_M, abs=1)  # not 500 m, 28 m away on the main street
    assert along == pytest.approx((0, CLOSE_PASS_M, 1338), abs=1)


def test_a_stop_on_a_road_driven_twice_the_same_way_is_placed_on_the_first_pass_its_order_allows():
    # east along y=0 to 1000, round a block (north, west, south) back to (400, 0), east again
    xy = [(0, 0), (1000, 0), (1000, 300), (400, 300), (400, 0), (2000, 0)]
    # stop 1 at x=600 beside y=0 on the first pass; stop 3 at the very same place, listed after
    # stop 2 on the block's north side, so it can only be the second pass
    first, north, second = 600.0, 1000 + 300 + 300.0, 1000 + 300 + 600 + 300 + 200.0
    route = make_route("twice", xy, [0, first, north, second, 3200], TIMES[:5],
                       stop_offsets_m=[0, 6, 0, 6, 0])
    along = route_geometry(route).stop_along
    assert along == pytest.approx((0, first, north, second, 3200), abs=1)


def test_a_loop_whose_first_and_last_stop_coincide_starts_at_the_start_and_ends_at_the_end():
    ring = [(0, 0), (1000, 0), (1000, 600), (0, 600), (0, 0)]
    route = make_route("ring", ring, [0, 1300, 2100, 3200], TIMES[:4])
    geom = route_geometry(route)
    assert geom.stop_xy[0] == pytest.approx(geom.stop_xy[-1], abs=1e-6)
    assert geom.stop_along == pytest.approx((0, 1300, 2100, 3200), abs=1)


def test_a_stop_listed_out_of_order_waits_beside_its_neighbour_without_dragging_the_others():
    # stop 2 stands beside 500 m but is listed after the stop at 1000 m: a feed's mistake
    route = make_route("ooo", [(0, 0), (3000, 0)], [0, 1000, 500, 1500, 3000], TIMES[:5],
                       stop_offsets_m=[0, 0, 20, 0, 0])
    along = route_geometry(route).stop_along
    assert along == pytest.approx((0, 1000, 1000, 1500, 3000), abs=1)


@st.composite
def roads_with_stops(draw) -> tuple[list[tuple[float, float]], list[tuple[int, float]]]:
    """A road that turns at most 60 degrees at a vertex and never heads back on itself (within
    80 degrees of its first heading), and stops on it in order as (segment, fraction)."""
    heading0 = draw(st.floats(0, 2 * math.pi))
    turn, xy = 0.0, [(0.0, 0.0)]
    for _ in range(draw(st.integers(1, 8))):
        length = draw(st.floats(40, 1500))
        x, y = xy[-1]
        xy.append((x + length * math.cos(heading0 + turn), y + length * math.sin(heading0 + turn)))
        turn = max(-1.4, min(1.4, turn + draw(st.floats(-1.05, 1.05))))
    places = st.tuples(st.integers(0, len(xy) - 2), st.floats(0, 1))
    stops = sorted(draw(st.lists(places, min_size=1, max_size=12)))
    return xy, stops


@settings(max_examples=60, deadline=None)
@given(roads_with_stops())
def test_stops_on_the_path_in_order_are_placed_in_order_where_they_stand(case):
    xy, stops = case
    seg = [math.dist(a, b) for a, b in zip(xy, xy[1:], strict=False)]
    start = [sum(seg[:k]) for k in range(len(seg))]
    route = make_route("gen", xy, [start[k] + f * seg[k] for k, f in stops],
                       [21600 + 60 * j for j in range(len(stops))])
    geom = route_geometry(route)
    # the truth in the route's own projection: the same fraction of the same (projected) segment
    truth = [geom.seg_start[k] + f * (geom.seg_end[k] - geom.seg_start[k]) for k, f in stops]
    assert all(b >= a for a, b in zip(geom.stop_along, geom.stop_along[1:], strict=False))
    assert geom.stop_along == pytest.approx(truth, abs=1.0)
