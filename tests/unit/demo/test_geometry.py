"""The demo's path geometry: the same points along a route as the test drives use."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.demo import SAMPLE_BUNDLE
from backend.demo.geometry import (
    along_of,
    bearing_deg,
    heading_along,
    offset,
    path_lengths,
    point_along,
)
from gps_ingest.filters import haversine_m

BUNDLE = json.loads(SAMPLE_BUNDLE.read_text(encoding="utf-8"))
ZT_AM_1 = next(r for r in BUNDLE["routes"] if r["id"] == "zt-am-1")
PATH = [(lat, lon) for lon, lat in ZT_AM_1["path"]["coordinates"]]
CUM = path_lengths(PATH)


def test_lengths_add_up_the_segments():
    assert CUM[0] == 0.0 and sorted(CUM) == CUM
    assert CUM[-1] == pytest.approx(sum(haversine_m(*a, *b) for a, b in zip(PATH, PATH[1:], strict=False)))
    assert 3000 < CUM[-1] < 4000  # 龙凤村 → 朱亭学校 is about 3.5 km by this road


def test_points_along_are_the_vertices_at_their_distances_and_clamped_at_the_ends():
    for i, metres in enumerate(CUM):
        assert point_along(PATH, CUM, metres) == pytest.approx(PATH[i])
    assert point_along(PATH, CUM, CUM[-1] + 500) == pytest.approx(PATH[-1])


@given(st.floats(0.0, 1.0))
def test_projecting_a_point_of_the_path_gives_back_its_distance(fraction):
    metres = fraction * CUM[-1]
    assert along_of(PATH, CUM, point_along(PATH, CUM, metres)) == pytest.approx(metres, abs=0.5)


def test_the_sample_stops_project_onto_their_vertices():
    places = {p["id"]: (p["lat"], p["lon"]) for p in BUNDLE["stops"] + BUNDLE["schools"]}
    alongs = [along_of(PATH, CUM, places[s["stop_id"]]) for s in ZT_AM_1["stops"]]
    assert alongs == pytest.approx([CUM[0], CUM[2], CUM[4], CUM[6]], abs=0.5)


def test_headings_follow_the_road():
    assert bearing_deg((27.0, 113.0), (27.01, 113.0)) == pytest.approx(0.0, abs=0.01)
    assert bearing_deg((27.0, 113.0), (26.99, 113.0)) == pytest.approx(180.0, abs=0.01)
    # zt-am-1 runs from 龙凤村 south-west to 朱亭学校
    assert all(200 < heading_along(PATH, CUM, m) < 250 for m in (0, 500, CUM[-1] - 1, CUM[-1]))


@given(st.floats(-30, 30), st.floats(-30, 30))
def test_an_offset_moves_a_point_by_that_many_metres(north, east):
    moved = offset((27.45, 113.23), north, east)
    assert haversine_m(27.45, 113.23, *moved) == pytest.approx((north**2 + east**2) ** 0.5,
                                                                 abs=0.01)
