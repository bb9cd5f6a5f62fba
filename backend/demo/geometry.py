"""Where a vehicle is along a path: lengths, points, headings and projections (pure).

Paths are sequences of ``(lat, lon)`` in WGS-84; distances are metres along the path, from
``path_lengths`` (haversine per segment). At the scale of a village road an equirectangular
projection around a point is exact enough for projecting a stop onto its route.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gps_ingest.filters import haversine_m

LatLon = tuple[float, float]
EARTH_RADIUS_M = 6_371_008.8


def path_lengths(path: Sequence[LatLon]) -> list[float]:
    """Metres along ``path`` at each of its vertices (the first is 0).

    >>> [round(m) for m in path_lengths([(27.0, 113.0), (27.001, 113.0), (27.001, 113.001)])]
    [0, 111, 210]
    """
    cum = [0.0]
    for a, b in zip(path, path[1:], strict=False):
        cum.append(cum[-1] + haversine_m(*a, *b))
    return cum


def _segment_at(cum: Sequence[float], along: float) -> int:
    if along <= 0:
        return 0
    return max(j for j in range(len(cum) - 1) if cum[j] <= along)


def point_along(path: Sequence[LatLon], cum: Sequence[float], along: float) -> LatLon:
    """The point ``along`` metres along ``path`` (clamped to its ends).

    >>> path = [(27.0, 113.0), (27.001, 113.0)]
    >>> [round(v, 6) for v in point_along(path, path_lengths(path), path_lengths(path)[1] / 2)]
    [27.0005, 113.0]
    """
    i = _segment_at(cum, along)
    length = cum[i + 1] - cum[i]
    f = min(1.0, (along - cum[i]) / length) if length > 0 else 1.0
    (lat0, lon0), (lat1, lon1) = path[i], path[i + 1]
    return lat0 + f * (lat1 - lat0), lon0 + f * (lon1 - lon0)


def bearing_deg(a: LatLon, b: LatLon) -> float:
    """Initial compass bearing from ``a`` to ``b`` (0 = north, 90 = east).

    >>> round(bearing_deg((27.0, 113.0), (27.0, 113.01)))
    90
    """
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    dlon = math.radians(b[1] - a[1])
    x = math.sin(dlon) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dlon)
    return math.degrees(math.atan2(x, y)) % 360.0


def heading_along(path: Sequence[LatLon], cum: Sequence[float], along: float) -> float:
    """The direction of travel ``along`` metres along ``path``."""
    i = _segment_at(cum, along)
    if i + 1 < len(cum) - 1 and along >= cum[i + 1]:
        i += 1
    return bearing_deg(path[i], path[i + 1])


def _local_xy(origin: LatLon, point: LatLon) -> tuple[float, float]:
    x = math.radians(point[1] - origin[1]) * math.cos(math.radians(origin[0])) * EARTH_RADIUS_M
    y = math.radians(point[0] - origin[0]) * EARTH_RADIUS_M
    return x, y


def along_of(path: Sequence[LatLon], cum: Sequence[float], point: LatLon) -> float:
    """Metres along ``path`` of the point of the path nearest to ``point``.

    >>> path = [(27.0, 113.0), (27.0, 113.01), (27.01, 113.01)]
    >>> round(along_of(path, path_lengths(path), (27.0001, 113.005)))
    495
    """
    best = (math.inf, 0.0)
    for i in range(len(path) - 1):
        ax, ay = _local_xy(point, path[i])
        bx, by = _local_xy(point, path[i + 1])
        dx, dy = bx - ax, by - ay
        span = dx * dx + dy * dy
        f = 0.0 if span == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / span))
        px, py = ax + f * dx, ay + f * dy
        best = min(best, (px * px + py * py, cum[i] + f * (cum[i + 1] - cum[i])))
    return best[1]


def offset(point: LatLon, north_m: float, east_m: float) -> LatLon:
    """``point`` moved by metres north and east (GPS noise, a scan beside the bus).

    >>> lat, lon = offset((27.0, 113.0), 111.2, 0.0)
    >>> round(lat, 4), lon
    (27.001, 113.0)
    """
    lat = point[0] + math.degrees(north_m / EARTH_RADIUS_M)
    lon = point[1] + math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(point[0]))))
    return lat, lon
