"""A vehicle simulator with ground truth, around 朱亭 (27.43 N, 113.20 E), for the routing tests
and ``bench/tracker.py``.

Routes are built in metres east/north of an origin and converted to WGS-84; a drive moves along
the path at a given speed, dwells at stops, and is sampled at an interval with Gaussian noise.
Truth arrival/departure times are when the true position enters/leaves each stop's circle.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field

import numpy as np

from routing.calendar import service_day_start
from routing.geometry import ellipsoid_radii
from routing.model import Calendar, Ping, Place, Route, Run, VehicleContext

ZHUTING = (27.43, 113.20)  # lat, lon
CAL = Calendar()
MONDAY = dt.date(2026, 11, 23)


def to_lonlat(x: float, y: float, origin: tuple[float, float] = ZHUTING) -> tuple[float, float]:
    """Metres east/north of ``origin`` to ``(lon, lat)``."""
    m, n = ellipsoid_radii(origin[0])
    lat = origin[0] + math.degrees(y / m)
    lon = origin[1] + math.degrees(x / (n * math.cos(math.radians(origin[0]))))
    return lon, lat


def make_route(route_id: str, xy: list[tuple[float, float]], stop_along: list[float],
               times_s: list[int], radius_m: float = 60.0, corridor_m: float = 80.0,
               days: frozenset[int] | None = frozenset({1, 2, 3, 4, 5}),
               stop_offsets_m: list[float] | None = None, school_last: bool = True) -> Route:
    """A route through metric vertices ``xy`` with stops at the given distances along it."""
    pts = np.array(xy, dtype=float)
    seg = np.hypot(*np.diff(pts, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    stops = []
    for j, a in enumerate(stop_along):
        k = min(int(np.searchsorted(cum, a, side="right")) - 1, len(seg) - 1)
        f = (a - cum[k]) / seg[k]
        px, py = pts[k] + f * (pts[k + 1] - pts[k])
        if stop_offsets_m:
            nx, ny = -(pts[k + 1] - pts[k])[1] / seg[k], (pts[k + 1] - pts[k])[0] / seg[k]
            px, py = px + nx * stop_offsets_m[j], py + ny * stop_offsets_m[j]
        lon, lat = to_lonlat(px, py)
        is_school = school_last and j == len(stop_along) - 1
        stops.append(Place(f"{route_id}-s{j}", f"stop {j}", lat, lon,
                           150.0 if is_school else radius_m, is_school))
    return Route(id=route_id, name=route_id, school_id=None,
                 path=tuple(to_lonlat(x, y) for x, y in xy), corridor_m=corridor_m,
                 stops=tuple(stops),
                 runs=(Run(f"{route_id}-run", tuple(times_s), days=days),))


def bus(routes: tuple[Route, ...], limit: float | None = 60.0,
        history: dict | None = None) -> VehicleContext:
    return VehicleContext(vehicle_id="bus-07", kind="school_bus", speed_limit_kmh=limit,
                          routes=routes, schools=(), calendar=CAL,
                          segment_history=history or {})


def at(date: dt.date, hms: str) -> float:
    """Epoch seconds of a local time on a date (Asia/Shanghai)."""
    h, m, *s = (int(v) for v in hms.split(":"))
    return service_day_start(date, CAL) + h * 3600 + m * 60 + (s[0] if s else 0)


@dataclass
class Drive:
    pings: list[Ping]
    arrivals: list[float]  # truth: entering each stop's circle
    departures: list[float]
    speeds: list[float] = field(default_factory=list)


def drive(route: Route, xy: list[tuple[float, float]], stop_along: list[float], t0: float,
          speed_mps: float | list[float], dwell_s: list[float], every_s: float, noise_m: float, seed: int,
          detour: tuple[float, float, float] | None = None, report_speed: bool = True,
          jitter_s: float = 0.0) -> Drive:
    """Drive ``route`` from its start at ``t0``; ``detour=(from_m, to_m, offset_m)`` moves the
    vehicle sideways by ``offset_m`` between those distances along the route; ``speed_mps`` may
    give one speed per leg (the leg to stop k drives at ``speed_mps[k]``)."""
    rng = random.Random(seed)
    pts = np.array(xy, dtype=float)
    seg = np.hypot(*np.diff(pts, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    # a piecewise timeline of (t, along): drive, dwell at each stop, drive ...
    legs = list(speed_mps) if isinstance(speed_mps, list) else [speed_mps] * len(stop_along)
    knots_t, knots_a = [t0], [0.0]
    for a, dwell, leg_speed in zip(stop_along, dwell_s, legs, strict=True):
        if a > knots_a[-1]:
            knots_t.append(knots_t[-1] + (a - knots_a[-1]) / leg_speed)
            knots_a.append(a)
        knots_t.append(knots_t[-1] + dwell)
        knots_a.append(a)
    fine_t = np.arange(t0, knots_t[-1] + 0.001, 0.25)
    along = np.interp(fine_t, knots_t, knots_a)

    def position(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = np.clip(np.searchsorted(cum, a, side="right") - 1, 0, len(seg) - 1)
        f = (a - cum[k]) / seg[k]
        x = pts[k, 0] + f * (pts[k + 1, 0] - pts[k, 0])
        y = pts[k, 1] + f * (pts[k + 1, 1] - pts[k, 1])
        if detour is not None:
            lo, hi, off = detour
            inside = (a >= lo) & (a <= hi)
            dx, dy = pts[k + 1, 0] - pts[k, 0], pts[k + 1, 1] - pts[k, 1]
            x = x + np.where(inside, -dy / seg[k] * off, 0.0)
            y = y + np.where(inside, dx / seg[k] * off, 0.0)
        return x, y

    fx, fy = position(along)
    arrivals, departures = [], []
    for stop in route.stops:
        m, n = ellipsoid_radii(ZHUTING[0])
        sx = math.radians(stop.lon - ZHUTING[1]) * n * math.cos(math.radians(ZHUTING[0]))
        sy = math.radians(stop.lat - ZHUTING[0]) * m
        inside = np.hypot(fx - sx, fy - sy) <= stop.radius_m
        idx = np.flatnonzero(inside)
        arrivals.append(float(fine_t[idx[0]]) if len(idx) else math.nan)
        departures.append(float(fine_t[idx[-1]]) if len(idx) else math.nan)
    pings, speeds = [], []
    t = t0
    end = knots_t[-1]
    while t <= end:
        a = float(np.interp(t, knots_t, knots_a))
        x, y = position(np.array([a]))
        moving = float(np.interp(t + 0.5, knots_t, knots_a)) > a + 1e-9
        leg = min(int(np.searchsorted(stop_along, a, side="right")), len(legs) - 1)
        v = legs[leg] * 3.6 if moving else 0.0
        lon, lat = to_lonlat(float(x[0]) + rng.gauss(0, noise_m), float(y[0]) + rng.gauss(0, noise_m))
        pings.append(Ping(ts=round(t, 3), lat=lat, lon=lon,
                          speed_kmh=v if report_speed else None))
        speeds.append(v)
        t += every_s + (rng.uniform(-jitter_s, jitter_s) if jitter_s else 0.0)
    if pings[-1].ts < end:  # the bus reports once it is at the last stop
        x, y = position(np.array([stop_along[-1]]))
        lon, lat = to_lonlat(float(x[0]), float(y[0]))
        pings.append(Ping(ts=round(end, 3), lat=lat, lon=lon, speed_kmh=0.0))
    return Drive(pings, arrivals, departures, speeds)


def random_polyline(rng: random.Random, n_vertices: int) -> list[tuple[float, float]]:
    """A road that never turns back on itself: heading within 80 degrees of its first."""
    heading0 = rng.uniform(0, 2 * math.pi)
    heading = heading0
    pts = [(rng.uniform(-2000, 2000), rng.uniform(-2000, 2000))]
    for _ in range(n_vertices - 1):
        length = rng.uniform(300, 1500)
        x, y = pts[-1]
        pts.append((x + length * math.cos(heading), y + length * math.sin(heading)))
        heading = heading0 + max(-1.4, min(1.4, heading - heading0 + rng.uniform(-0.9, 0.9)))
    return pts


def path_length(xy: list[tuple[float, float]]) -> float:
    return float(sum(math.dist(a, b) for a, b in zip(xy, xy[1:], strict=False)))
