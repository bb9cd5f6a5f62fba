"""Metric geometry: ellipsoidal hops, circle crossings, stops along a road driven twice,
progress-aware snapping."""

import doctest
import importlib

import numpy as np
import pytest
from geopy.distance import geodesic

from routing.config import DEFAULT
from routing.geometry import circle_entry, route_geometry, segment_m, segments_m
from routing.progress import ProjectedBatch, advance

from .simulate import make_route, to_lonlat

OUT_AND_BACK = make_route("oab", [(0, 0), (2000, 0), (2000, 40), (0, 40)],
                          [0, 500, 3040], [0, 60, 120])


@pytest.mark.parametrize("east_m, north_m", [(10, 0), (300, 400), (-2500, 7000), (9000, -9000)])
def test_hops_on_the_ellipsoid_agree_with_the_geodesic(east_m, north_m):
    lon0, lat0 = to_lonlat(0, 0)
    lon1, lat1 = to_lonlat(east_m, north_m)
    truth = geodesic((lat0, lon0), (lat1, lon1)).m
    assert segment_m(lat0, lon0, lat1, lon1) == pytest.approx(truth, rel=1e-5)
    vec = segments_m(np.array([lat0, lat1]), np.array([lon0, lon1]))
    assert vec[0] == pytest.approx(segment_m(lat0, lon0, lat1, lon1), rel=1e-12)


def test_a_segment_through_a_circle_enters_and_leaves_it_where_the_geometry_says():
    assert circle_entry(-10, 0, 10, 0, 0, 0, 5) == (0.25, 0.75)
    assert circle_entry(-10, 6, 10, 6, 0, 0, 5) is None
    assert circle_entry(0, 0, 10, 0, 0, 0, 5) == (0.0, 0.5)  # starts inside


def test_stops_on_a_road_driven_twice_are_placed_on_their_own_pass():
    geom = route_geometry(OUT_AND_BACK)
    assert geom.length_m == pytest.approx(4040, abs=1)
    # the last stop is 40 m from the outward road at 1000 m, but it belongs to the way back
    assert geom.stop_along == pytest.approx((0, 500, 3040), abs=1)


def test_a_stop_beside_a_finely_drawn_road_is_placed_at_its_foot():
    # a GTFS shape has a vertex every few metres: the stop belongs where the road is nearest, not
    # where it first comes within some tolerance (that was 30 m early here)
    road = make_route("fine", [(10.0 * k, 0) for k in range(301)], [0, 1000, 3000], [0, 60, 120],
                      stop_offsets_m=[0, 15, 0])
    assert route_geometry(road).stop_along == pytest.approx((0, 1000, 3000), abs=0.5)


def test_progress_follows_the_pass_near_the_current_progress_not_the_nearest_point():
    geom = route_geometry(OUT_AND_BACK)
    xs = [500.0, 1500.0, 1500.0, 500.0]
    ys = [20.0, 20.0, 20.0, 20.0]  # between the two passes: both are 20 m away
    lonlat = [to_lonlat(x, y) for x, y in zip(xs, ys, strict=True)]
    batch = ProjectedBatch(geom, np.array([p[1] for p in lonlat]), np.array([p[0] for p in lonlat]))
    progress = advance(batch, 0, 400.0, 10.0, 80.0, DEFAULT)
    assert progress == pytest.approx(500, abs=2)  # outward, not 3540 on the way back
    progress = advance(batch, 1, progress, 100.0, 80.0, DEFAULT)
    assert progress == pytest.approx(1500, abs=2)
    later = advance(batch, 3, 3000.0, 60.0, 80.0, DEFAULT)
    assert later == pytest.approx(3540, abs=2)  # on the way back now


@pytest.mark.parametrize("module", ["routing.calendar", "routing.geometry", "routing.subsidy",
                                    "routing.overspeed", "routing.run_matching"])
def test_the_docstring_examples_hold(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0
