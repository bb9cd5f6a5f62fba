"""WGS-84 ↔ GCJ-02 ("Mars coordinates"), the datum AMap and Tencent maps draw in.

GCJ-02 is WGS-84 plus a deliberately obfuscated, smooth offset of a few hundred metres that
applies inside China.  The forward formula is not published officially; the one everybody uses
(and every Chinese map SDK agrees with to well under a metre) is the leaked/reconstructed one
popularised by the eviltransform project (github.com/googollee/eviltransform, MIT, after
on4wp7.codeplex.com and emq.googlecode.com) and by coordtransform (github.com/wandergis/
coordtransform).  Its constants are those of that formula: the Krasovsky 1940 ellipsoid
(semi-major axis 6 378 245 m, first eccentricity squared 0.006 693 421 622 965 943 23) and the
polynomial/sine series in ``_offset_deg`` centred on (35° N, 105° E).

There is no closed-form inverse.  :func:`gcj02_to_wgs84` solves ``forward(w) = g`` by fixed-point
iteration (the offset varies by < 10⁻⁴ per degree, so each step gains ~4 digits); it stops when
the residual is below 1e-10° (≈ 0.01 mm), in 2–4 steps.

Outside China (:func:`out_of_china`, the bounding box eviltransform uses) both directions return
the input unchanged, as the map SDKs do.  The box is a box: it also covers parts of Mongolia,
Korea, Japan and South-East Asia, where no county school bus drives.

Pure; numpy only for the ``*_array`` variants.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

_A = 6_378_245.0  # Krasovsky 1940 semi-major axis, metres
_EE = 0.00669342162296594323  # Krasovsky 1940 first eccentricity squared
_PI = math.pi

# eviltransform's "outOfChina" box
_MIN_LAT, _MAX_LAT = 0.8293, 55.8271
_MIN_LON, _MAX_LON = 72.004, 137.8347

_TOLERANCE_DEG = 1e-10
_MAX_ITERATIONS = 30


def out_of_china(lat: float, lon: float) -> bool:
    """True where GCJ-02 applies no offset.

    >>> out_of_china(28.2, 113.0), out_of_china(48.85, 2.29)
    (False, True)
    """
    return not (_MIN_LAT <= lat <= _MAX_LAT and _MIN_LON <= lon <= _MAX_LON)


def _offset_deg(lat: Any, lon: Any, xp: Any = math) -> tuple[Any, Any]:
    """GCJ-02 minus WGS-84 at a WGS-84 point, in degrees (lat, lon).

    ``xp`` is :mod:`math` for floats (several times faster than numpy on scalars) or
    :mod:`numpy` for arrays: the series is written once for both.
    """
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = xp.sqrt(xp.fabs(x))
    common = (20.0 * xp.sin(6.0 * x * _PI) + 20.0 * xp.sin(2.0 * x * _PI)) * 2.0 / 3.0
    d_lat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x + common
             + (20.0 * xp.sin(y * _PI) + 40.0 * xp.sin(y / 3.0 * _PI)) * 2.0 / 3.0
             + (160.0 * xp.sin(y / 12.0 * _PI) + 320.0 * xp.sin(y * _PI / 30.0)) * 2.0 / 3.0)
    d_lon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x + common
             + (20.0 * xp.sin(x * _PI) + 40.0 * xp.sin(x / 3.0 * _PI)) * 2.0 / 3.0
             + (150.0 * xp.sin(x / 12.0 * _PI) + 300.0 * xp.sin(x / 30.0 * _PI)) * 2.0 / 3.0)
    rad_lat = lat / 180.0 * _PI
    magic = 1.0 - _EE * xp.sin(rad_lat) ** 2
    sqrt_magic = xp.sqrt(magic)
    d_lat = d_lat * 180.0 / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * _PI)
    d_lon = d_lon * 180.0 / (_A / sqrt_magic * xp.cos(rad_lat) * _PI)
    return d_lat, d_lon


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """WGS-84 → GCJ-02 (lat, lon); unchanged outside China.

    >>> wgs84_to_gcj02(39.911954, 116.377817)  # Beijing, eviltransform's test point
    (39.91334545536069, 116.38404722455657)
    """
    if out_of_china(lat, lon):
        return lat, lon
    d_lat, d_lon = _offset_deg(lat, lon)
    return lat + d_lat, lon + d_lon


def gcj02_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """GCJ-02 → WGS-84 (lat, lon) by iteration, to ≈ 0.01 mm; unchanged outside China.

    >>> lat, lon = gcj02_to_wgs84(39.91334545536069, 116.38404722455657)
    >>> round(lat, 7), round(lon, 7)
    (39.911954, 116.377817)
    """
    if out_of_china(lat, lon):
        return lat, lon
    d_lat, d_lon = _offset_deg(lat, lon)
    w_lat, w_lon = lat - d_lat, lon - d_lon
    for _ in range(_MAX_ITERATIONS):
        d_lat, d_lon = _offset_deg(w_lat, w_lon)
        r_lat = lat - (w_lat + d_lat)
        r_lon = lon - (w_lon + d_lon)
        w_lat += r_lat
        w_lon += r_lon
        if abs(r_lat) < _TOLERANCE_DEG and abs(r_lon) < _TOLERANCE_DEG:
            break
    return w_lat, w_lon


# -- vectorised ----------------------------------------------------------------------------------


def out_of_china_array(lat: ArrayLike, lon: ArrayLike) -> NDArray[np.bool_]:
    lat_a = np.asarray(lat, dtype=float)
    lon_a = np.asarray(lon, dtype=float)
    return ~((lat_a >= _MIN_LAT) & (lat_a <= _MAX_LAT) & (lon_a >= _MIN_LON) & (lon_a <= _MAX_LON))




def wgs84_to_gcj02_array(lat: ArrayLike,
                         lon: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`wgs84_to_gcj02` over arrays (a track, a route's stops)."""
    lat_a = np.asarray(lat, dtype=float)
    lon_a = np.asarray(lon, dtype=float)
    inside = ~out_of_china_array(lat_a, lon_a)
    d_lat, d_lon = _offset_deg(lat_a, lon_a, np)
    return np.where(inside, lat_a + d_lat, lat_a), np.where(inside, lon_a + d_lon, lon_a)


def gcj02_to_wgs84_array(lat: ArrayLike,
                         lon: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`gcj02_to_wgs84` over arrays (iterates until every point has converged)."""
    lat_a = np.asarray(lat, dtype=float)
    lon_a = np.asarray(lon, dtype=float)
    inside = ~out_of_china_array(lat_a, lon_a)
    d_lat, d_lon = _offset_deg(lat_a, lon_a, np)
    w_lat, w_lon = lat_a - d_lat, lon_a - d_lon
    for _ in range(_MAX_ITERATIONS):
        d_lat, d_lon = _offset_deg(w_lat, w_lon, np)
        r_lat = lat_a - (w_lat + d_lat)
        r_lon = lon_a - (w_lon + d_lon)
        w_lat = w_lat + r_lat
        w_lon = w_lon + r_lon
        if not (np.nanmax(np.abs(r_lat), initial=0.0) >= _TOLERANCE_DEG
                or np.nanmax(np.abs(r_lon), initial=0.0) >= _TOLERANCE_DEG):
            break
    return np.where(inside, w_lat, lat_a), np.where(inside, w_lon, lon_a)
