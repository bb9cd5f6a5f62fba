"""A seeded, deterministic generator of hard days on real shapes of the Cairns GTFS feed.

Three lines of the real feed (``tests/data/gtfs/cairns_gtfs.zip``), their real shapes, stops
and published stop-time profiles:

* ``112``: a loop, 21 stops, first stop = last stop (Smithfield Shopping Centre), 21 km;
* ``130``: an out-and-back pair, Raintrees -> The Pier (stop E) and The Pier (stop B, 74 m from
  E) -> Raintrees, 26 stops each way, 11 km;
* ``122``: an out-and-back pair, Redlynch -> Cairns Central and back to Redlynch (a stop 16 m
  from the first), 15 stops each way, 16 km.

Each line has a pool of buses; every bus of a line lists all the line's routes (a depot: any bus
may drive any run), and every route lists all its runs of the day. Each bus drives a block of
runs back to back: arrive at the next run's first stop, lay over 10-25 min, depart near the
scheduled time (-1..+6 min, never before it has arrived), drive the shape at per-leg speeds the
timetable does not know, dwell 0-60 s at stops, stop now and then for traffic between stops.

Scenarios (:class:`Scenarios`, each switchable; :func:`mixed_day` has all):

``layovers``
    back to back with 10-25 min layovers in the next run's first stop (off: the device is off
    between runs and the bus shows up 2-5 min before departure);
``terminal_three``
    at the start of the day the first three buses of each line wait together at its first stop;
``terminal_off_stop``
    some buses end runs parked 40-120 m off the last stop, off the path, and lay over there
    (the last stop's passage is then the closest approach);
``late_join``
    one bus per line switches its device on in the middle of its first run (earlier stops
    unobserved);
``frozen``
    one bus per line breaks down mid-run: its device goes silent, or keeps repeating the same
    position for 20 min; a spare bus from a depot nearby finishes the run and the rest of the
    block;
``sampling``
    each device samples every 5-60 s (off: every 10 s), with 10 % jitter;
``noise``
    Gaussian noise of 2-8 m per device, 1 % outliers 50-150 m off (off: 3 m, no outliers).

Ground truth comes from the noise-free trajectory sampled every 0.5 s (see
:class:`tests.realdays.day.TruthTrip` for what a passage is). A few previous days of every run
(driven with the same model) are given to the tracker as ``segment_history``, as production
would have learned them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import random
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache

import numpy as np
from pyproj import Transformer

from routing.calendar import service_day_start
from routing.model import Calendar, Ping, Place, Route, Run, VehicleContext
from tests.conftest import FIXTURES
from tests.realdays.day import Day, TruthTrip

CAIRNS = FIXTURES / "gtfs" / "cairns_gtfs.zip"
CALENDAR = Calendar(timezone="Australia/Brisbane")  # the feed's agency_timezone
SERVICE_DATE = dt.date(2014, 9, 10)  # a Wednesday inside the feed's weekday service
STOP_RADIUS_M = 40.0  # as backend.gtfs_import gives city stops
CORRIDOR_M = 80.0
DT = 0.5  # truth trajectory resolution, seconds
# line -> shape ids driven in turn (a loop, or an out-and-back pair)
LINES: dict[str, tuple[str, ...]] = {
    "112": ("1120011",),
    "130": ("1300016", "1300017"),
    "122": ("1220010", "1220009"),
}
_PROJ = "+proj=tmerc +lat_0=-16.92 +lon_0=145.75 +k=1 +datum=WGS84 +units=m"
_FWD = Transformer.from_crs("EPSG:4326", _PROJ, always_xy=True)
_BACK = Transformer.from_crs(_PROJ, "EPSG:4326", always_xy=True)


@dataclass(frozen=True)
class Scenarios:
    """Which difficulties a day has (see the module docstring)."""

    layovers: bool = True
    terminal_three: bool = True
    terminal_off_stop: bool = True
    late_join: bool = True
    frozen: bool = True
    sampling: bool = True
    noise: bool = True

    @classmethod
    def none(cls) -> Scenarios:
        return cls(**{f.name: False for f in fields(cls)})

    @classmethod
    def only(cls, *names: str) -> Scenarios:
        return replace(cls.none(), **dict.fromkeys(names, True))


@dataclass(frozen=True)
class DayConfig:
    seed: int = 0
    lines: tuple[str, ...] = ("112", "130", "122")
    buses_per_line: int = 10
    runs_per_bus: int = 4
    scenarios: Scenarios = field(default_factory=Scenarios)
    first_departure: str = "06:00"
    history_days: int = 5
    off_stop_share: float = 0.15  # of run ends, when terminal_off_stop
    layover_min: tuple[int, int] = (10, 25)  # scheduled layover between a bus's runs, minutes
    every_s: float | None = None  # every device samples this often (overrides ``sampling``)
    #: each run says the bus planned to drive it (``Run.vehicle_id``, the bus's block), as a
    #: bundle with vehicle blocks does; off: a pure pool, any bus of the line may drive any run
    blocks: bool = False


# --- the feed ------------------------------------------------------------------------------------
def _rows(feed: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    with feed.open(name) as raw:
        return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig")))


@dataclass(frozen=True)
class Pattern:
    """One real shape with its stops and its published stop-time profile, in metres."""

    shape_id: str
    route_id: str  # GTFS route id
    x: np.ndarray
    y: np.ndarray
    cum: np.ndarray  # metres along the shape at each vertex
    path: tuple[tuple[float, float], ...]  # (lon, lat)
    stop_ids: tuple[str, ...]
    stop_names: tuple[str, ...]
    stop_ll: tuple[tuple[float, float], ...]  # (lat, lon)
    stop_xy: np.ndarray  # (n, 2)
    along: np.ndarray  # each stop's closest approach along the shape, in order
    offsets_s: tuple[int, ...]  # published profile: seconds after the first stop

    @property
    def length(self) -> float:
        return float(self.cum[-1])

    def at(self, a: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        a = np.clip(np.asarray(a, dtype=float), 0.0, self.length)
        k = np.clip(np.searchsorted(self.cum, a, side="right") - 1, 0, len(self.x) - 2)
        f = (a - self.cum[k]) / (self.cum[k + 1] - self.cum[k])
        return (self.x[k] + f * (self.x[k + 1] - self.x[k]),
                self.y[k] + f * (self.y[k + 1] - self.y[k]))

    def normal(self, a: float) -> tuple[float, float]:
        """Unit vector to the left of the direction of travel at ``a``."""
        k = int(np.clip(np.searchsorted(self.cum, a, side="right") - 1, 0, len(self.x) - 2))
        dx, dy = self.x[k + 1] - self.x[k], self.y[k + 1] - self.y[k]
        n = math.hypot(dx, dy)
        return -dy / n, dx / n


@lru_cache(maxsize=1)
def _feed() -> tuple[dict, dict, dict, dict]:
    with zipfile.ZipFile(CAIRNS) as feed:
        trips = _rows(feed, "trips.txt")
        stops = {s["stop_id"]: s for s in _rows(feed, "stops.txt")}
        times: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
        for r in _rows(feed, "stop_times.txt"):
            times[r["trip_id"]].append((int(r["stop_sequence"]), r["stop_id"],
                                        r["arrival_time"] or r["departure_time"]))
        shapes: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
        for p in _rows(feed, "shapes.txt"):
            shapes[p["shape_id"]].append((int(p["shape_pt_sequence"]), float(p["shape_pt_lon"]),
                                          float(p["shape_pt_lat"])))
    return {t["trip_id"]: t for t in trips}, stops, times, shapes


def _seconds(hms: str) -> int:
    h, m, s = (int(v) for v in hms.split(":"))
    return h * 3600 + m * 60 + s


@lru_cache(maxsize=16)
def pattern(shape_id: str) -> Pattern:
    """The shape, the stops and the published profile of the first trip (by id) that uses it."""
    trips, stops, times, shapes = _feed()
    trip_id = min(t for t, row in trips.items() if row["shape_id"] == shape_id)
    rows = sorted(times[trip_id])
    pts = sorted(shapes[shape_id])
    lon = np.array([p[1] for p in pts])
    lat = np.array([p[2] for p in pts])
    x, y = (np.asarray(v) for v in _FWD.transform(lon, lat))
    keep = np.concatenate([[True], np.hypot(np.diff(x), np.diff(y)) > 0.01])
    x, y, lon, lat = x[keep], y[keep], lon[keep], lat[keep]
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    ids = tuple(r[1] for r in rows)
    ll = tuple((float(stops[s]["stop_lat"]), float(stops[s]["stop_lon"])) for s in ids)
    sx, sy = _FWD.transform([p[1] for p in ll], [p[0] for p in ll])
    stop_xy = np.column_stack([sx, sy])
    fine = np.arange(0.0, cum[-1], 1.0)
    k = np.clip(np.searchsorted(cum, fine, side="right") - 1, 0, len(x) - 2)
    f = (fine - cum[k]) / (cum[k + 1] - cum[k])
    fx, fy = x[k] + f * (x[k + 1] - x[k]), y[k] + f * (y[k + 1] - y[k])
    along, start = [], 0
    for sxj, syj in stop_xy:  # the first close approach after the previous stop
        d = np.hypot(fx[start:] - sxj, fy[start:] - syj)
        near = np.flatnonzero(d <= max(float(d.min()) + 10.0, 30.0))
        first = near[: int(np.argmax(np.diff(near) > 1)) + 1] if np.any(np.diff(near) > 1) \
            else near
        i = start + int(first[np.argmin(d[first])])
        along.append(float(fine[i]))
        start = i
    offsets = [_seconds(r[2]) for r in rows]
    return Pattern(
        shape_id=shape_id, route_id=trips[trip_id]["route_id"], x=x, y=y, cum=cum,
        path=tuple(zip(lon.tolist(), lat.tolist(), strict=True)), stop_ids=ids,
        stop_names=tuple(stops[s]["stop_name"] for s in ids), stop_ll=ll, stop_xy=stop_xy,
        along=np.array(along), offsets_s=tuple(o - offsets[0] for o in offsets))


# --- trajectories --------------------------------------------------------------------------------
class Track:
    """A vehicle's true position over time, built piece by piece at ``DT`` resolution."""

    def __init__(self, t0: float, x: float, y: float):
        self.t: list[np.ndarray] = [np.array([t0])]
        self.x: list[np.ndarray] = [np.array([x])]
        self.y: list[np.ndarray] = [np.array([y])]

    @property
    def end(self) -> tuple[float, float, float]:
        return float(self.t[-1][-1]), float(self.x[-1][-1]), float(self.y[-1][-1])

    def _add(self, t: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        self.t.append(t)
        self.x.append(x)
        self.y.append(y)

    def hold(self, until: float) -> None:
        t0, x0, y0 = self.end
        if until <= t0:
            return
        t = np.append(np.arange(t0 + DT, until, DT), until)
        self._add(t, np.full(len(t), x0), np.full(len(t), y0))

    def line(self, x1: float, y1: float, speed_mps: float) -> None:
        t0, x0, y0 = self.end
        dur = max(math.hypot(x1 - x0, y1 - y0) / speed_mps, DT)
        t = np.append(np.arange(t0 + DT, t0 + dur, DT), t0 + dur)
        f = (t - t0) / dur
        self._add(t, x0 + f * (x1 - x0), y0 + f * (y1 - y0))

    def along(self, pat: Pattern, knots_t: list[float], knots_a: list[float]) -> None:
        t0 = self.end[0]
        t = np.append(np.arange(t0 + DT, knots_t[-1], DT), knots_t[-1])
        x, y = pat.at(np.interp(t, knots_t, knots_a))
        self._add(t, x, y)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.concatenate(self.t), np.concatenate(self.x), np.concatenate(self.y)


@dataclass
class Leg:
    """How one drive of a pattern goes: seconds per leg (driving), dwell per stop, traffic
    stops per leg ``(fraction of the leg, seconds)``."""

    drive_s: list[float]
    dwell_s: list[float]
    traffic: list[tuple[float, float] | None]

    def arrivals(self, t_dep: float) -> list[float]:
        """When the bus is at each stop's point (dwell included), for the history."""
        out, t = [t_dep], t_dep
        for j in range(1, len(self.dwell_s)):
            t += self.drive_s[j - 1] + (self.traffic[j - 1] or (0, 0))[1]
            out.append(t)
            t += self.dwell_s[j]
        return out


class _Line:
    """One line: its patterns, its typical per-leg speeds (unknown to the timetable)."""

    def __init__(self, name: str, rng: random.Random):
        self.name = name
        self.patterns = [pattern(s) for s in LINES[name]]
        self.typical: list[np.ndarray] = []
        for pat in self.patterns:
            dist = np.diff(pat.along)
            v = np.array([rng.uniform(5.0, 12.0) for _ in dist])  # m/s
            # scale so that a typical drive keeps the published running time (a stop costs
            # 31 s on average: 65 % dwell 10-60 s, a traffic stop of 10-60 s on a leg in four)
            budget = pat.offsets_s[-1] - 31.0 * (len(pat.along) - 2)
            scale = float(np.sum(dist / v)) / max(budget, float(np.sum(dist)) / 16.0)
            self.typical.append(np.clip(v * scale, 4.0, 17.0))

    def leg(self, k: int, rng: random.Random, pace: float) -> Leg:
        pat = self.patterns[k]
        dist = np.diff(pat.along)
        drive = [float(d / (v * pace * rng.uniform(0.85, 1.15)))
                 for d, v in zip(dist, self.typical[k], strict=True)]
        dwell = [0.0] + [0.0 if rng.random() < 0.35 else rng.uniform(10, 60)
                         for _ in range(len(dist) - 1)] + [0.0]
        traffic = [(rng.uniform(0.2, 0.8), rng.uniform(10, 60)) if rng.random() < 0.25 else None
                   for _ in dist]
        return Leg(drive, dwell, traffic)


def _drive_run(track: Track, pat: Pattern, t_dep: float, leg: Leg, from_a: float | None = None,
               to_index: int | None = None) -> dict[int, tuple[float, float]]:
    """Drive ``pat`` from its first stop (or from ``from_a``) at ``t_dep`` up to stop
    ``to_index`` (default: the last). Returns, per stop reached, when the bus is at its point
    and when it leaves it (after the dwell; the last stop reached has no dwell)."""
    last = len(pat.along) - 1 if to_index is None else to_index
    a = float(pat.along[0]) if from_a is None else from_a
    knots_t, knots_a = [t_dep], [a]
    t = t_dep
    at: dict[int, tuple[float, float]] = {}
    if from_a is None:
        at[0] = (t_dep, t_dep)
    for j in range(1, last + 1):
        a0, a1 = float(pat.along[j - 1]), float(pat.along[j])
        if a1 <= a:  # at the same point as the previous stop, or passed before a hand-over
            if from_a is None or a1 > from_a:
                at[j] = (t, t)
            continue
        speed = max(a1 - a0, 1.0) / leg.drive_s[j - 1]
        stop = leg.traffic[j - 1]
        if stop is not None and a < a0 + stop[0] * (a1 - a0):
            mid = a0 + stop[0] * (a1 - a0)
            t += (mid - a) / speed
            knots_t += [t, t + stop[1]]
            knots_a += [mid, mid]
            t, a = t + stop[1], mid
        t += max(a1 - a, 0.0) / speed
        knots_t.append(t)
        knots_a.append(a1)
        a = a1
        arrive = t
        if j < last and leg.dwell_s[j] > 0:
            t += leg.dwell_s[j]
            knots_t.append(t)
            knots_a.append(a)
        at[j] = (arrive, t)
    if len(knots_t) > 1:
        track.along(pat, knots_t, knots_a)
    return at


def _end_point_off_stop(pat: Pattern, rng: random.Random) -> tuple[float, float, float]:
    """A parking spot 40-120 m from the last stop, off the path, and the distance along the
    path where the bus leaves the path to reach it without entering the stop's circle."""
    sx, sy = pat.stop_xy[-1]
    a_last = float(pat.along[-1])
    for _ in range(50):
        dist = rng.uniform(44.0, 120.0)
        nx, ny = pat.normal(a_last)
        side = rng.choice((-1.0, 1.0))
        px, py = sx + side * nx * dist, sy + side * ny * dist
        for back in range(40, 400, 10):
            qx, qy = pat.at(a_last - back)
            qx, qy = float(qx), float(qy)
            # segment q->p must stay out of the circle (with 3 m to spare)
            dx, dy = px - qx, py - qy
            f = min(max(((sx - qx) * dx + (sy - qy) * dy) / (dx * dx + dy * dy), 0.0), 1.0)
            near = math.hypot(qx + f * dx - sx, qy + f * dy - sy)
            a_q = a_last - back
            lo = max(float(pat.along[-2]), a_q - 300.0)
            px_, py_ = pat.at(np.arange(lo, a_q, 2.0))
            if near > STOP_RADIUS_M + 3.0 and (
                    len(px_) == 0 or float(np.min(np.hypot(px_ - sx, py_ - sy))) > STOP_RADIUS_M + 3.0):
                return px, py, a_last - back
    raise AssertionError(f"no parking spot off the last stop of shape {pat.shape_id}")


# --- truth ---------------------------------------------------------------------------------------
def _span(t: np.ndarray, lo: float, hi: float) -> tuple[int, int]:
    """Indices ``[i0, i1)`` of the samples in ``[lo, hi]``, at least one."""
    i0 = min(int(np.searchsorted(t, lo)), len(t) - 1)
    return i0, max(int(np.searchsorted(t, hi, side="right")), i0 + 1)


def _inside(windows: list[tuple[float, float]], ts: float) -> bool:
    return any(lo <= ts <= hi for lo, hi in windows)


def _passages(t: np.ndarray, x: np.ndarray, y: np.ndarray, run: _RunDrive,
              seen: list[tuple[float, float]]) -> tuple[list[float | None], list[float | None]]:
    """Passage time per stop from the true trajectory (see :class:`TruthTrip`), ``None`` for a
    stop this vehicle did not drive past on this run or while its device was not reporting."""
    pat = run.pat
    n = len(pat.along)
    out: list[float | None] = [None] * n
    dist: list[float | None] = [None] * n
    for j in range(n):
        sx, sy = pat.stop_xy[j]
        if j == n - 1 and run.off_stop is not None:
            lo, hi = run.off_stop
            i0, i1 = _span(t, lo, hi)
            d = np.hypot(x[i0:i1] - sx, y[i0:i1] - sy)
            k = int(np.argmin(d))
            at, near = float(t[i0 + k]), float(d[k])
        elif j not in run.at:
            continue
        elif j == 0:  # departure: leaving the circle
            lo = run.at[0][1]
            hi = run.at[1][0] if 1 in run.at else lo + 900
            i0, i1 = _span(t, lo, hi)
            d = np.hypot(x[i0:i1] - sx, y[i0:i1] - sy)
            out_k = np.flatnonzero(d > STOP_RADIUS_M)
            if not len(out_k):
                continue
            k = int(out_k[0])
            at, near = float(t[i0 + k]), float(np.min(d[: k + 1]))
            if k > 0:
                d0, d1 = float(d[k - 1]), float(d[k])
                at = float(t[i0 + k - 1]) + (STOP_RADIUS_M - d0) / (d1 - d0) * (at - float(t[i0 + k - 1]))
        else:  # arrival: entering the circle on the way to the stop's point
            lo = run.at[j - 1][1] if j - 1 in run.at else run.start
            hi = run.at[j][0]
            i0, i1 = _span(t, lo, hi)
            d = np.hypot(x[i0:i1] - sx, y[i0:i1] - sy)
            near = float(np.min(d))
            if d[-1] > STOP_RADIUS_M:  # never inside: the closest approach
                k = int(np.argmin(d))
                at = float(t[i0 + k])
            else:
                outside = np.flatnonzero(d > STOP_RADIUS_M)
                if not len(outside):
                    at = float(t[i0])
                else:
                    k = int(outside[-1])
                    d0, d1 = float(d[k]), float(d[k + 1])
                    t0, t1 = float(t[i0 + k]), float(t[i0 + k + 1])
                    at = t0 + (d0 - STOP_RADIUS_M) / (d0 - d1) * (t1 - t0)
        if _inside(seen, at):
            out[j], dist[j] = at, round(near, 1)
    return out, dist


# --- the day -------------------------------------------------------------------------------------
@dataclass
class _RunDrive:
    """One run as one vehicle drove it (before truth is read off the trajectory)."""

    pat: Pattern
    route_id: str
    run_id: str
    start: float
    at: dict[int, tuple[float, float]]
    off_stop: tuple[float, float] | None
    flags: set[str]


@dataclass
class _Vehicle:
    vehicle_id: str
    line: _Line
    runs: list[tuple[int, str, float]]  # (pattern index, run id, scheduled departure)
    kind: str = ""  # late_join | frozen_silent | frozen_repeat | spare
    track: Track | None = None
    on: list[tuple[float, float]] = field(default_factory=list)  # device reports true fixes
    frozen: tuple[float, float] | None = None  # device repeats its last fix
    resume: tuple[float, Leg, float] | None = None  # a spare continuing a run: (t, leg, along)
    drives: list[_RunDrive] = field(default_factory=list)


def _noise(rng: random.Random, scen: Scenarios) -> tuple[float, float, float]:
    """(interval s, sigma m, outlier probability) of one device."""
    every = rng.choice((5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)) if scen.sampling else 10.0
    sigma = rng.uniform(2.0, 8.0) if scen.noise else 3.0
    return every, sigma, 0.01 if scen.noise else 0.0


def _sample(rng: random.Random, t: np.ndarray, x: np.ndarray, y: np.ndarray, every: float,
            sigma: float, p_out: float, windows: list[tuple[float, float]],
            frozen: tuple[float, float] | None, speed: bool) -> tuple[list[Ping], int]:
    """Pings of a device while it is on (``windows``), every ``every`` s with 10 % jitter; during
    ``frozen=(from, to)`` it repeats its first fix of that span exactly. Also how many
    outliers it put in."""
    pings: list[Ping] = []
    outliers = 0
    for lo, hi in sorted(windows):
        ts = lo + rng.uniform(0, min(every, max(hi - lo, 0.0)))
        held: Ping | None = None
        while ts <= hi:
            if held is not None:
                pings.append(Ping(ts=round(ts, 3), lat=held.lat, lon=held.lon))
                ts += every * rng.uniform(0.9, 1.1)
                continue
            tx, ty = float(np.interp(ts, t, x)), float(np.interp(ts, t, y))
            px, py = tx + rng.gauss(0, sigma), ty + rng.gauss(0, sigma)
            if p_out and rng.random() < p_out:
                outliers += 1
                r, ang = rng.uniform(50, 150), rng.uniform(0, 2 * math.pi)
                px, py = px + r * math.cos(ang), py + r * math.sin(ang)
            v = None
            if speed:
                x2, y2 = float(np.interp(ts + 1, t, x)), float(np.interp(ts + 1, t, y))
                v = round(max(0.0, math.hypot(x2 - tx, y2 - ty) * 3.6 + rng.gauss(0, 1.0)), 1)
            lon, lat = _BACK.transform(px, py)
            pings.append(Ping(ts=round(ts, 3), lat=round(lat, 7), lon=round(lon, 7),
                              speed_kmh=v, accuracy_m=round(2 * sigma, 1)))
            if frozen is not None and frozen[0] <= ts <= frozen[1]:
                held = pings[-1]
            ts += every * rng.uniform(0.9, 1.1)
    out, last = [], -math.inf
    for p in sorted(pings, key=lambda p: p.ts):
        if p.ts > last:
            out.append(p)
            last = p.ts
    return out, outliers


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600:02d}{s % 3600 // 60:02d}{s % 60:02d}"


def _drive_block(v: _Vehicle, scen: Scenarios, cfg: DayConfig, rng: random.Random,
                 route_of: dict[str, str], spare_on: float) -> _Vehicle | None:
    """Drive a vehicle's block of runs; returns the spare bus sent when this one breaks down."""
    line, track = v.line, v.track
    assert track is not None
    on_from = float(track.t[0][0])  # the device is on from the start of the track
    parked = False  # the last run ended off the stop: lay over there until near departure
    for n, (k, run_id, sched) in enumerate(v.runs):
        pat = line.patterns[k]
        flags: set[str] = set()
        from_a: float | None = None
        if v.resume is not None and n == 0:
            t_dep, leg, from_a = v.resume
            flags.add("handover")
        else:
            fx, fy = (float(c) for c in pat.at(pat.along[0]))
            if parked:
                track.hold(sched - rng.uniform(1, 3) * 60)
            if math.hypot(track.end[1] - fx, track.end[2] - fy) > 1.0:
                track.line(fx, fy, 4.0)
            if not scen.layovers and n > 0:
                v.on.append((on_from, track.end[0] + 30.0))
                on_from = max(track.end[0] + 60.0, sched - rng.uniform(2, 5) * 60)
                track.hold(on_from)
            t_dep = max(sched + rng.uniform(-60, 360), track.end[0] + 30.0)
            track.hold(t_dep)
            if n > 0 and scen.layovers:
                flags.add("layover")
            if v.kind == "terminal_three" and n == 0:
                flags.add("terminal_three")
            leg = line.leg(k, rng, rng.uniform(0.85, 1.15))
        start = track.end[0] if from_a is None else t_dep
        if v.kind.startswith("frozen") and n == 1:
            j = rng.randint(len(pat.along) // 3, 2 * len(pat.along) // 3)
            at = _drive_run(track, pat, t_dep, leg, to_index=j)
            a_j, a_next = float(pat.along[j]), float(pat.along[j + 1])
            a_b = a_j + 0.5 * (a_next - a_j)
            t_b = at[j][1] + 0.5 * leg.drive_s[j]
            track.along(pat, [track.end[0], t_b], [a_j, a_b])
            v.on.append((on_from, t_b))
            if v.kind == "frozen_repeat":
                v.frozen = (t_b, t_b + 20 * 60)
                v.on.append(v.frozen)
            track.hold(t_b + 30 * 60)  # broken down where it stopped
            v.drives.append(_RunDrive(pat, route_of[pat.shape_id], run_id, start, at, None,
                                      flags | {"handover", v.kind}))
            nx, ny = pat.normal(a_b)
            bx, by = (float(c) for c in pat.at(a_b))
            away = rng.uniform(300, 600)
            spare = _Vehicle(f"spare-{line.name}", line, v.runs[n:], "spare")
            spare.track = Track(spare_on, bx + nx * away, by + ny * away)
            spare.track.hold(t_b + rng.uniform(8, 15) * 60)
            spare.track.line(bx, by, 8.0)
            spare.track.hold(spare.track.end[0] + 30.0)
            spare.resume = (spare.track.end[0], leg, a_b)
            return spare
        off_stop = scen.terminal_off_stop and rng.random() < cfg.off_stop_share
        last = len(pat.along) - 1
        at = _drive_run(track, pat, t_dep, leg, from_a, last - 1 if off_stop else None)
        window = None
        if off_stop:
            px, py, a_q = _end_point_off_stop(pat, rng)
            a_prev = float(pat.along[-2])
            speed = max(float(pat.along[-1] - pat.along[-2]), 1.0) / leg.drive_s[-1]
            t_from = track.end[0]
            if a_q > a_prev:
                track.along(pat, [t_from, t_from + (a_q - a_prev) / speed], [a_prev, a_q])
            track.line(px, py, speed)
            window = (at[last - 1][1] if last - 1 in at else t_from, track.end[0])
            flags.add("terminal_off_stop")
            parked = True
        else:
            track.hold(track.end[0] + 20.0)
            parked = False
        if v.kind == "late_join" and n == 0:
            j = rng.randint(max(2, len(pat.along) // 3), len(pat.along) // 2)
            on_from = (at[j - 1][1] + at[j][0]) / 2
            flags.add("late_join")
        v.drives.append(_RunDrive(pat, route_of[pat.shape_id], run_id, start, at, window, flags))
    v.on.append((on_from, track.end[0] + 60.0))
    track.hold(track.end[0] + 60.0)
    return None


def generate(cfg: DayConfig = DayConfig()) -> Day:
    """A hard day, the same for the same ``cfg`` (seed included)."""
    rng = random.Random(cfg.seed)
    scen = cfg.scenarios
    day0 = service_day_start(SERVICE_DATE, CALENDAR)
    h, m = (int(c) for c in cfg.first_departure.split(":"))
    first_dep = h * 3600 + m * 60
    lines = [_Line(name, random.Random(f"{cfg.seed}-{name}")) for name in cfg.lines]
    runs: dict[str, list[Run]] = defaultdict(list)  # route id -> runs
    route_of = {p.shape_id: f"{line.name}-{p.shape_id}" for line in lines for p in line.patterns}
    vehicles: list[_Vehicle] = []
    run_times: dict[str, tuple[int, ...]] = {}
    # --- the timetable: blocks of runs back to back, buses spread evenly over a cycle ---------
    for n, line in enumerate(lines):
        cycle = sum(p.offsets_s[-1] + 17.5 * 60 for p in line.patterns)
        headway = cycle / cfg.buses_per_line  # at each terminal
        for b in range(cfg.buses_per_line):
            v = _Vehicle(f"bus-{line.name}-{b:02d}", line, [])
            t = first_dep + 60 * round(((b // len(line.patterns)) * headway + n * 120) / 60)
            k = b % len(line.patterns)  # a pair's buses start at both ends
            for _ in range(cfg.runs_per_bus):
                pat = line.patterns[k]
                route_id = route_of[pat.shape_id]
                run_id = f"{route_id}-{_hms(t)}"
                while any(r.id == run_id for r in runs[route_id]):
                    run_id += "b"
                times = tuple(int(t + o) for o in pat.offsets_s)
                runs[route_id].append(Run(run_id, times, dates=frozenset({SERVICE_DATE}),
                                          vehicle_id=v.vehicle_id if cfg.blocks else None))
                run_times[run_id] = times
                v.runs.append((k, run_id, day0 + t))
                t = times[-1] + 60 * rng.randint(*cfg.layover_min)
                k = (k + 1) % len(line.patterns)
            vehicles.append(v)
    routes: dict[str, Route] = {}
    for line in lines:
        for pat in line.patterns:
            rid = route_of[pat.shape_id]
            stops = tuple(Place(sid, name[:60], lat, lon, STOP_RADIUS_M)
                          for sid, name, (lat, lon) in zip(pat.stop_ids, pat.stop_names,
                                                           pat.stop_ll, strict=True))
            routes[rid] = Route(
                id=rid, name=f"{line.name} {pat.stop_names[0]} - {pat.stop_names[-1]}"[:80],
                school_id=None, path=pat.path, corridor_m=CORRIDOR_M, stops=stops,
                runs=tuple(sorted(runs[rid], key=lambda r: (r.times_s[0], r.id))))
    # --- previous days of every run: the history production would have learned ---------------
    history: dict[str, list[list[float | None]]] = defaultdict(list)
    for v in vehicles:
        for k, run_id, _ in v.runs:
            for d in range(cfg.history_days):
                hrng = random.Random(f"{cfg.seed}-{run_id}-{d}")
                arr = v.line.leg(k, hrng, hrng.uniform(0.85, 1.15)).arrivals(0.0)
                history[run_id].append([round(b - a, 1) for a, b in zip(arr, arr[1:], strict=False)])
    # --- who has which difficulty ---------------------------------------------------------------
    for line in lines:
        pool = [v for v in vehicles if v.line is line]
        if scen.terminal_three:
            for v in pool[:3]:
                v.kind = "terminal_three"
        if scen.late_join:
            pool[-1].kind = "late_join"
        if scen.frozen and cfg.runs_per_bus >= 2 and (len(pool) >= 2 or not scen.late_join):
            pool[len(pool) // 2 - (len(pool) == 2)].kind = \
                "frozen_repeat" if lines.index(line) % 2 else "frozen_silent"
    # --- drive ----------------------------------------------------------------------------------
    spare_on = day0 + first_dep - 30 * 60
    todo = list(vehicles)
    driven: list[_Vehicle] = []
    while todo:
        v = todo.pop(0)
        vrng = random.Random(f"{cfg.seed}-{v.vehicle_id}")
        if v.track is None:
            k0, _, dep0 = v.runs[0]
            pat0 = v.line.patterns[k0]
            x0, y0 = (float(c) for c in pat0.at(pat0.along[0]))
            if v.kind == "terminal_three":
                first = next(w for w in vehicles if w.line is v.line)
                arrive = first.runs[0][2] - 20 * 60 + 120 * int(v.vehicle_id[-2:])
            else:
                arrive = dep0 - vrng.uniform(3, 8) * 60
            v.track = Track(arrive, x0, y0)
        spare = _drive_block(v, scen, cfg, vrng, route_of, spare_on)
        driven.append(v)
        if spare is not None:
            todo.insert(0, spare)
    # --- devices and truth ----------------------------------------------------------------------
    contexts: dict[str, VehicleContext] = {}
    pings: dict[str, list[Ping]] = {}
    trips: list[TruthTrip] = []
    devices: dict[str, dict[str, float]] = {}
    for v in driven:
        assert v.track is not None
        t, x, y = v.track.arrays()
        nrng = random.Random(f"{cfg.seed}-device-{v.vehicle_id}")
        every, sigma, p_out = _noise(nrng, scen)
        every = cfg.every_s or every
        pings[v.vehicle_id], outliers = _sample(nrng, t, x, y, every, sigma, p_out, v.on, v.frozen,
                                      speed=nrng.random() < 0.5)
        devices[v.vehicle_id] = {"every_s": every, "sigma_m": round(sigma, 1),
                                 "outliers": outliers}
        line_routes = tuple(routes[route_of[p.shape_id]] for p in v.line.patterns)
        contexts[v.vehicle_id] = VehicleContext(
            vehicle_id=v.vehicle_id, kind="school_bus", speed_limit_kmh=None, routes=line_routes,
            schools=(), calendar=CALENDAR,
            segment_history={r.id: history[r.id] for route in line_routes for r in route.runs})
        seen = [w for w in v.on if v.frozen is None or w != v.frozen]
        for run in v.drives:
            passages, dist = _passages(t, x, y, run, seen)
            trips.append(TruthTrip(
                run_id=run.run_id, route_id=run.route_id, vehicle_id=v.vehicle_id,
                service_date=SERVICE_DATE, scheduled=tuple(day0 + s for s in run_times[run.run_id]),
                passages=tuple(passages), flags=frozenset(run.flags), passage_m=tuple(dist)))
    trips.sort(key=lambda tr: (tr.scheduled[0], tr.run_id, tr.vehicle_id))
    name = "mixed" if scen == Scenarios() else "+".join(
        f.name for f in fields(scen) if getattr(scen, f.name)) or "plain"
    if cfg.blocks:
        name += " blocks"
    return Day(name=f"cairns {name} seed {cfg.seed}", service_date=SERVICE_DATE,
               contexts=dict(sorted(contexts.items())), pings=dict(sorted(pings.items())),
               trips=trips, notes={"config": repr(cfg), "devices": devices})


def small_day(seed: int, lines: tuple[str, ...] = ("130",), buses: int = 3, runs: int = 2,
              scenarios: Scenarios | None = None) -> Day:
    """A hand-sized day for unit tests."""
    return generate(DayConfig(seed=seed, lines=lines, buses_per_line=buses, runs_per_bus=runs,
                              scenarios=scenarios or Scenarios(), history_days=2))


def mixed_day(seed: int, buses_per_line: int = 10, runs_per_bus: int = 4) -> Day:
    """Every scenario at once: 3 lines, 30 buses, ~120 runs by default."""
    return generate(DayConfig(seed=seed, buses_per_line=buses_per_line, runs_per_bus=runs_per_bus))
