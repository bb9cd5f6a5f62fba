"""WGS-84 ↔ GCJ-02 against published reference pairs, and the inverse as a round-trip property.

Reference pairs:
- googollee/eviltransform, ``python/test.py`` (TESTS: wgsLat, wgsLng, gcjLat, gcjLng for
  Shanghai, Shenzhen, Beijing), MIT.
- wandergis/coordtransform, ``test/app.js``: ``wgs84togcj02(116.404, 39.915)`` →
  ``[116.41024449916938, 39.91640428150164]`` (lng, lat), MIT.
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing import gcj02
from routing.gcj02 import (
    gcj02_to_wgs84,
    gcj02_to_wgs84_array,
    out_of_china,
    wgs84_to_gcj02,
    wgs84_to_gcj02_array,
)

REFERENCE = [  # (wgs lat, wgs lon, gcj lat, gcj lon)
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai (eviltransform)
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen (eviltransform)
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing (eviltransform)
    (39.915, 116.404, 39.91640428150164, 116.41024449916938),  # Beijing (coordtransform)
]


def metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((phi2 - phi1) / 2) ** 2
         + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6_371_009 * math.asin(math.sqrt(a))


def test_the_module_examples_hold():
    assert doctest.testmod(gcj02).failed == 0


@pytest.mark.parametrize(("w_lat", "w_lon", "g_lat", "g_lon"), REFERENCE)
def test_the_forward_shift_matches_the_published_pairs(w_lat, w_lon, g_lat, g_lon):
    lat, lon = wgs84_to_gcj02(w_lat, w_lon)
    assert lat == pytest.approx(g_lat, abs=1e-9) and lon == pytest.approx(g_lon, abs=1e-9)


@pytest.mark.parametrize(("w_lat", "w_lon", "g_lat", "g_lon"), REFERENCE)
def test_the_inverse_recovers_the_published_wgs84_point_within_a_centimetre(w_lat, w_lon, g_lat, g_lon):
    assert metres(*gcj02_to_wgs84(g_lat, g_lon), w_lat, w_lon) < 0.01


def test_the_shift_in_china_is_hundreds_of_metres():
    for w_lat, w_lon, g_lat, g_lon in REFERENCE:
        assert 100 < metres(w_lat, w_lon, g_lat, g_lon) < 1000


@pytest.mark.parametrize(("lat", "lon"), [(48.8583, 2.2945), (0.0, 0.0), (-33.86, 151.21),
                                          (56.0, 120.0), (30.0, 140.0)])
def test_outside_china_nothing_is_shifted(lat, lon):
    assert out_of_china(lat, lon)
    assert wgs84_to_gcj02(lat, lon) == (lat, lon) == gcj02_to_wgs84(lat, lon)


# China's bounding box, kept 0.05° (≈ 5 km, far more than the < 1 km shift) inside the edge of
# the out_of_china box so that a point and its shifted twin are on the same side of it.
china_lat = st.floats(3.9, 53.5)
china_lon = st.floats(73.7, 135.0)


@settings(max_examples=2000)
@given(china_lat, china_lon)
def test_converting_to_gcj02_and_back_returns_within_half_a_metre(lat, lon):
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lat, lon))
    assert metres(lat, lon, *back) < 0.01  # the contract is 0.5 m; we aim for 1 cm


@settings(max_examples=500)
@given(china_lat, china_lon)
def test_converting_from_gcj02_and_back_returns_within_half_a_metre(lat, lon):
    assert metres(lat, lon, *wgs84_to_gcj02(*gcj02_to_wgs84(lat, lon))) < 0.01


@settings(max_examples=100)
@given(st.lists(st.tuples(china_lat, china_lon), min_size=1, max_size=50))
def test_the_array_variants_agree_with_the_scalar_ones(points):
    lat = np.array([p[0] for p in points] + [48.85])
    lon = np.array([p[1] for p in points] + [2.29])
    g_lat, g_lon = wgs84_to_gcj02_array(lat, lon)
    w_lat, w_lon = gcj02_to_wgs84_array(g_lat, g_lon)
    for i in range(len(lat)):
        assert (g_lat[i], g_lon[i]) == pytest.approx(wgs84_to_gcj02(lat[i], lon[i]), abs=1e-12)
        assert (w_lat[i], w_lon[i]) == pytest.approx(gcj02_to_wgs84(g_lat[i], g_lon[i]), abs=1e-9)
    assert (g_lat[-1], g_lon[-1]) == (48.85, 2.29)
