"""Metric geometry: a local projection per route, the projected path with its stops as
distance-along-route, and cheap ellipsoidal distances for the hot path.

Each route is projected once (transverse Mercator whose central meridian and origin are the
centre of the route's bounding box: 30 km off the meridian the scale error is 1e-5, and PROJ's
tmerc is four times faster than aeqd) and cached; pings are projected in one vectorised call per
batch.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Transformer

from routing.model import Route

FloatArray = NDArray[np.float64]

# WGS-84
_A = 6378137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)


def ellipsoid_radii(lat_deg: float) -> tuple[float, float]:
    """Meridional (M) and prime-vertical (N) radii of curvature of WGS-84 at a latitude, metres."""
    s = math.sin(math.radians(lat_deg))
    w = 1 - _E2 * s * s
    return _A * (1 - _E2) / (w * math.sqrt(w)), _A / math.sqrt(w)


def segment_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Length of a short hop on the WGS-84 ellipsoid, metres.

    Local flat-earth on the ellipsoid's radii of curvature at the mid-latitude: for hops under
    10 km (consecutive pings) it agrees with the geodesic to better than 1 part in 10^5, at a
    fraction of the cost of ``geopy.distance.geodesic``.
    """
    m, n = ellipsoid_radii((lat1 + lat2) / 2)
    dy = math.radians(lat2 - lat1) * m
    dx = math.radians(lon2 - lon1) * n * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(dx, dy)


def segments_m(lat: FloatArray, lon: FloatArray) -> FloatArray:
    """Vectorised :func:`segment_m` between consecutive points; ``len(lat) - 1`` lengths."""
    mid = np.radians((lat[1:] + lat[:-1]) / 2)
    s = np.sin(mid)
    w = 1 - _E2 * s * s
    m = _A * (1 - _E2) / (w * np.sqrt(w))
    n = _A / np.sqrt(w)
    dy = np.radians(np.diff(lat)) * m
    dx = np.radians(np.diff(lon)) * n * np.cos(mid)
    return np.hypot(dx, dy)


def local_xy(lat: FloatArray, lon: FloatArray, lat0: float, lon0: float) -> tuple[FloatArray,
                                                                                   FloatArray]:
    """Metres east/north of (lat0, lon0), flat on the ellipsoid: exact enough within a few km
    (school geofences), and vectorised."""
    m, n = ellipsoid_radii(lat0)
    x = np.radians(lon - lon0) * n * math.cos(math.radians(lat0))
    y = np.radians(lat - lat0) * m
    return x, y


def circle_entry(x0: float, y0: float, x1: float, y1: float, cx: float, cy: float,
                 r: float) -> tuple[float, float] | None:
    """Where the segment p0->p1 is inside the circle, as fractions ``(enter, leave)`` in [0, 1].

    ``None`` when the segment never comes within ``r`` of the centre.

    Examples
    --------
    >>> circle_entry(-10, 0, 10, 0, 0, 0, 5)
    (0.25, 0.75)
    """
    dx, dy = x1 - x0, y1 - y0
    fx, fy = x0 - cx, y0 - cy
    a = dx * dx + dy * dy
    c = fx * fx + fy * fy - r * r
    if a == 0.0:
        return (0.0, 1.0) if c <= 0 else None
    b = 2 * (fx * dx + fy * dy)
    disc = b * b - 4 * a * c
    if disc < 0:
        return None
    root = math.sqrt(disc)
    t0, t1 = (-b - root) / (2 * a), (-b + root) / (2 * a)
    if t1 < 0 or t0 > 1:
        return None
    return max(t0, 0.0), min(t1, 1.0)


@lru_cache(maxsize=64)
def _transformer(lat0: float, lon0: float) -> Transformer:
    proj = f"+proj=tmerc +lat_0={lat0} +lon_0={lon0} +k=1 +datum=WGS84 +units=m +no_defs"
    return Transformer.from_crs("EPSG:4326", proj, always_xy=True)


@dataclass(frozen=True, eq=False)
class RouteGeometry:
    """A route in its own metric projection, built once and reused for every batch."""

    route: Route
    transformer: Transformer
    line: shapely.LineString
    seg_x0: FloatArray
    seg_y0: FloatArray
    seg_dx: FloatArray
    seg_dy: FloatArray
    seg_len2: FloatArray
    seg_start: FloatArray  # distance along the route where each segment starts
    seg_end: FloatArray
    length_m: float
    stop_xy: tuple[tuple[float, float], ...]
    stop_along: tuple[float, ...]  # each stop's position along the route, non-decreasing
    starts: tuple[float, ...]  # seg_start as Python floats, for bisect on the hot path
    ends: tuple[float, ...]

    def project(self, lat: FloatArray, lon: FloatArray) -> tuple[FloatArray, FloatArray]:
        """WGS-84 degrees to this route's metres (vectorised)."""
        x, y = self.transformer.transform(lon, lat)
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def offsets(self, x: FloatArray, y: FloatArray) -> FloatArray:
        """Distance of each point from the path anywhere along it, metres (vectorised)."""
        return np.asarray(shapely.distance(self.line, shapely.points(x, y)), dtype=np.float64)

    def candidates(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """For every point and every path segment: the distance to the segment and the position
        along the route of the closest point on it; two ``(points, segments)`` arrays."""
        px = x[:, None] - self.seg_x0[None, :]
        py = y[:, None] - self.seg_y0[None, :]
        t = np.clip((px * self.seg_dx + py * self.seg_dy) / self.seg_len2, 0.0, 1.0)
        dist = np.hypot(px - t * self.seg_dx, py - t * self.seg_dy)
        along = self.seg_start + t * (self.seg_end - self.seg_start)
        return dist, along

    def window(self, lo_m: float, hi_m: float) -> tuple[int, int]:
        """Index range ``[i, j)`` of the segments overlapping ``[lo_m, hi_m]`` along the route."""
        i = min(bisect_left(self.ends, lo_m), len(self.starts) - 1)
        j = bisect_right(self.starts, hi_m)
        return i, max(j, i + 1)


# Two passes whose offsets from a stop differ by less than this are one as far as a feed can tell
# (a stop sits on the kerb 3-10 m off a centre-line shape; twin carriageways are ~10 m apart), and
# then the earlier pass wins: a stop on a road the route drives twice is left for the first time
# the route comes by. A parallel street 20-30 m away is not a tie.
STOP_TIE_M = 5.0
# Cells of the stops x segments distance matrix computed at once (bounds memory on long shapes).
_CELLS = 1 << 20


def _passes(geom_parts: tuple[FloatArray, ...],
            stop_xy: list[tuple[float, float]]) -> list[FloatArray]:
    """Where the path passes each stop: the positions along the route of the local minima of the
    distance from the path to the stop (vectorised over stops x segments)."""
    x0, y0, dx, dy, len2, start, end = geom_parts
    xy = np.asarray(stop_xy, dtype=np.float64).reshape(-1, 2)
    step = max(1, _CELLS // len(x0))
    out: list[FloatArray] = []
    for k in range(0, len(xy), step):
        px = xy[k:k + step, :1] - x0
        py = xy[k:k + step, 1:] - y0
        t = np.clip((px * dx + py * dy) / len2, 0.0, 1.0)
        # Distance to a segment is convex along it, so a local minimum is inside a segment or at
        # a vertex the path reaches closing in (t == 1 before it) and leaves moving away (t == 0).
        closing = np.ones_like(t, dtype=bool)
        closing[:, 1:] = t[:, :-1] == 1.0
        minimum = ((t > 0.0) & (t < 1.0)) | ((t == 0.0) & closing)
        minimum[:, -1] |= t[:, -1] == 1.0  # the path ends closing in
        along = start + t * (end - start)
        out.extend(along[row, minimum[row]] for row in range(len(t)))
    return out


def _stop_positions(geom_parts: tuple[FloatArray, ...], stop_xy: list[tuple[float, float]],
                    tie_m: float = STOP_TIE_M) -> tuple[float, ...]:
    """Each stop's position along the route, non-decreasing in the stops' order.

    A stop goes on one of the path's passes by it (:func:`_passes`), never before the previous
    stop. Of all such placements the one with the least total offset is chosen, except that the
    earliest one, stop by stop, within ``tie_m`` of that total wins. So a stop on a road the route
    drives twice lands on its own pass (the drive-by false triggers of Traccar #6019), and a stop
    that a parallel street passes at 30 m before the route comes within 10 m of it lands on the
    near pass. A stop none of whose passes fits the order (a feed's mistake) may instead sit at a
    neighbouring stop's pass or at an end of the path, for its offset there plus ``tie_m``.

    Cost: ``O(stops x segments)`` vectorised to find the passes, then a dynamic programme over
    them, ``O(passes log passes)``; once per route (the geometry is cached).
    """
    x0, y0, dx, dy, _, start, end = geom_parts
    own = _passes(geom_parts, stop_xy)
    vertex_along = np.append(start, end[-1])
    vertex_x, vertex_y = np.append(x0, x0[-1] + dx[-1]), np.append(y0, y0[-1] + dy[-1])
    places: list[tuple[FloatArray, FloatArray]] = []  # per stop: along, cost; by along then cost
    for j, (sx, sy) in enumerate(stop_xy):
        # a neighbour's place or an end is a fallback, never the earlier of a tie
        fallback = [own[k] for k in (j - 1, j + 1) if 0 <= k < len(own)] + [start[:1], end[-1:]]
        along = np.clip(np.concatenate([own[j], *fallback]), 0.0, end[-1])
        cost = np.hypot(np.interp(along, vertex_along, vertex_x) - sx,
                        np.interp(along, vertex_along, vertex_y) - sy)
        cost[len(own[j]):] += tie_m
        order = np.lexsort((cost, along))
        places.append((along[order], cost[order]))
    if not places:
        return ()
    # rest[j][c]: the least total cost of stops j, j+1, ... with stop j at its place c
    rest = [places[-1][1]] * len(places)
    for j in range(len(places) - 2, -1, -1):
        best_from = np.minimum.accumulate(rest[j + 1][::-1])[::-1]  # over places i, i+1, ...
        after = np.searchsorted(places[j + 1][0], places[j][0], side="left")  # the end is there
        rest[j] = places[j][1] + best_from[after]
    budget = float(rest[0].min()) + tie_m + 1e-6
    spent, previous, out = 0.0, -math.inf, []
    for (along, cost), total in zip(places, rest, strict=True):
        c = int(np.argmax((along >= previous) & (spent + total <= budget)))  # earliest that fits
        spent, previous = spent + float(cost[c]), float(along[c])
        out.append(previous)
    return tuple(out)


# a county has a few hundred routes: every one an ingest or audit process tracks stays cached (at
# 256 a fleet of more routes than that would miss on every batch, the LRU cycling through it)
@lru_cache(maxsize=4096)
def route_geometry(route: Route) -> RouteGeometry:
    """The cached metric geometry of a route.

    Parameters
    ----------
    route : Route
        The route; its path needs at least two distinct points.

    Returns
    -------
    RouteGeometry
        Projected path, segment arrays, stop positions along the route.
    """
    lons = np.array([p[0] for p in route.path], dtype=np.float64)
    lats = np.array([p[1] for p in route.path], dtype=np.float64)
    lat0 = float((lats.min() + lats.max()) / 2)
    lon0 = float((lons.min() + lons.max()) / 2)
    transformer = _transformer(round(lat0, 4), round(lon0, 4))
    xs, ys = (np.asarray(v, dtype=np.float64) for v in transformer.transform(lons, lats))
    keep = np.concatenate([[True], np.hypot(np.diff(xs), np.diff(ys)) > 1e-6])
    xs, ys = xs[keep], ys[keep]
    if len(xs) < 2:
        raise ValueError(f"route {route.id}: path needs two distinct points")
    dx, dy = np.diff(xs), np.diff(ys)
    lengths = np.hypot(dx, dy)
    end = np.cumsum(lengths)
    start = end - lengths
    sx, sy = transformer.transform([s.lon for s in route.stops], [s.lat for s in route.stops])
    stop_xy = [(float(a), float(b)) for a, b in zip(sx, sy, strict=True)]
    parts = (xs[:-1], ys[:-1], dx, dy, dx * dx + dy * dy, start, end)
    return RouteGeometry(
        route=route, transformer=transformer, line=shapely.LineString(np.column_stack([xs, ys])),
        seg_x0=parts[0], seg_y0=parts[1], seg_dx=dx, seg_dy=dy, seg_len2=parts[4],
        seg_start=start, seg_end=end, length_m=float(end[-1]), stop_xy=tuple(stop_xy),
        stop_along=_stop_positions(parts, stop_xy), starts=tuple(start.tolist()),
        ends=tuple(end.tolist()))
