"""The real day: HSL line 510, direction 1, Wednesday 2020-09-23 (``tests/data/hsl510``).

12 trips by 11 buses on one route (27 stops, 17.5 km), about 1 ping a second while moving.

* The route is ``route.geojson``'s ``route`` line (a GPS trace of one trip, every stop within
  15.1 m of it), its stops ``stops.csv`` with the 40 m radius the GTFS import gives city stops,
  the corridor 80 m.
* **The timetable is derived, not published**: the extract has only each trip's scheduled
  start. A run per trip starts at its ``scheduled_start``; its time at stop j adds the median,
  over the trips that passed both, of (passage at stop j - departure from stop 0), made
  non-decreasing. The schedule therefore knows the day's typical running time (an optimistic
  timetable for the baseline ETA, which is judged against the same trips).
* Every one of the 11 vehicles lists the route (a depot pool: any bus may drive any run).
* Ground truth, per trip (the pings of its ``device_id`` between its ``first_ping_ts`` and
  ``last_ping_ts`` in ``trips.csv``): a stop is passed when the 1 Hz trace comes within 30 m of
  it (the first close approach after the previous stop's); the passage is the moment the trace
  enters the stop's 40 m circle, interpolated between pings, or for stop 0 the moment it leaves
  it (the departure). Stops the trace never comes within 30 m of are unobserved (the 07:09
  trip's last stop at 31 m, the two cut trips' tails).
* ``every_s`` subsamples each device to about one ping per ``every_s`` seconds (the issue's
  conditions were ~30 s); the truth always comes from the full trace.
* ``history``: each run's ``segment_history`` is the other 11 trips' truth (a stand-in for
  previous days: the extract has one day).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
from pyproj import Transformer

from routing.calendar import service_day_start
from routing.model import Calendar, Ping, Place, Route, Run, VehicleContext
from tests.conftest import FIXTURES
from tests.realdays.day import Day, TruthTrip

HSL = FIXTURES / "hsl510"
CALENDAR = Calendar(timezone="Europe/Helsinki")
SERVICE_DATE = dt.date(2020, 9, 23)
STOP_RADIUS_M = 40.0
CORRIDOR_M = 80.0
PASS_M = 30.0  # a stop counts as passed when the trace comes this close


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class _Trip:
    device_id: str
    scheduled: float  # epoch
    first: float
    last: float


@lru_cache(maxsize=1)
def _raw() -> tuple[list[tuple[str, float, float]], tuple[tuple[float, float], ...],
                    list[dict[str, str]], list[_Trip], dict[str, list[tuple[float, float, float]]]]:
    with open(HSL / "stops.csv", encoding="utf-8") as f:
        stop_rows = list(csv.DictReader(f))
    stops = [(r["stop_id"], float(r["lat"]), float(r["lon"])) for r in stop_rows]
    geo = json.loads((HSL / "route.geojson").read_text(encoding="utf-8"))
    line = next(ft for ft in geo["features"] if ft["properties"]["name"] == "route")
    path = tuple((float(lon), float(lat)) for lon, lat in line["geometry"]["coordinates"])
    with open(HSL / "trips.csv", encoding="utf-8") as f:
        trips = [_Trip(r["device_id"], _epoch(r["scheduled_start"]), _epoch(r["first_ping_ts"]),
                       _epoch(r["last_ping_ts"])) for r in csv.DictReader(f)]
    pings: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    with open(HSL / "pings.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            pings[r["device_id"]].append((_epoch(r["ts"]), float(r["lat"]), float(r["lon"])))
    for v in pings.values():
        v.sort()
    return stops, path, stop_rows, sorted(trips, key=lambda t: t.scheduled), dict(pings)


def _passages(xy: np.ndarray, ts: np.ndarray, stops_xy: np.ndarray) -> list[float | None]:
    """Truth passage per stop from one trip's 1 Hz trace (see the module docstring)."""
    out: list[float | None] = []
    start = 0
    for j, (sx, sy) in enumerate(stops_xy):
        d = np.hypot(xy[start:, 0] - sx, xy[start:, 1] - sy)
        near = np.flatnonzero(d <= PASS_M)
        if not len(near):
            out.append(None)
            continue
        gaps = np.flatnonzero(np.diff(near) > 1)
        first = near[: gaps[0] + 1] if len(gaps) else near
        c = start + int(first[np.argmin(d[first])])
        dist = np.hypot(xy[:, 0] - sx, xy[:, 1] - sy)
        if j == 0:  # leaving the circle
            k = c
            while k < len(ts) and dist[k] <= STOP_RADIUS_M:
                k += 1
            if k == len(ts):
                out.append(None)
                continue
            d0, d1 = dist[k - 1], dist[k]
            out.append(float(ts[k - 1] + (STOP_RADIUS_M - d0) / (d1 - d0) * (ts[k] - ts[k - 1])))
        else:  # entering it
            k = c
            while k > 0 and dist[k - 1] <= STOP_RADIUS_M:
                k -= 1
            if k == 0:
                out.append(float(ts[0]))
            else:
                d0, d1 = dist[k - 1], dist[k]
                out.append(float(ts[k - 1] + (d0 - STOP_RADIUS_M) / (d0 - d1)
                                 * (ts[k] - ts[k - 1])))
        start = c
    return out


def _subsample(rows: list[tuple[float, float, float]], every_s: float) -> list[tuple[float, float,
                                                                                     float]]:
    if every_s <= 1.0:
        return rows
    out, last = [], -1e18
    for r in rows:
        if r[0] - last >= every_s:
            out.append(r)
            last = r[0]
    return out


def hsl_day(every_s: float = 1.0, history: bool = True) -> Day:
    """The HSL 510 day as a :class:`Day`, every ping (``every_s=1``) or about one per
    ``every_s`` seconds per device."""
    stops, path, stop_rows, trips, raw = _raw()
    lon0 = float(np.mean([p[0] for p in path]))
    lat0 = float(np.mean([p[1] for p in path]))
    fwd = Transformer.from_crs(
        "EPSG:4326", f"+proj=tmerc +lat_0={lat0} +lon_0={lon0} +k=1 +datum=WGS84 +units=m",
        always_xy=True)
    sx, sy = fwd.transform([s[2] for s in stops], [s[1] for s in stops])
    stops_xy = np.column_stack([sx, sy])
    seen: list[list[float | None]] = []
    for trip in trips:
        rows = [r for r in raw[trip.device_id] if trip.first - 0.5 <= r[0] <= trip.last + 0.5]
        ts = np.array([r[0] for r in rows])
        x, y = fwd.transform([r[2] for r in rows], [r[1] for r in rows])
        seen.append(_passages(np.column_stack([x, y]), ts, stops_xy))
    profile = [0.0]
    for j in range(1, len(stops)):
        offsets = [p[j] - p[0] for p in seen if p[0] is not None and p[j] is not None]
        profile.append(max(profile[-1], statistics.median(offsets)))
    day0 = service_day_start(SERVICE_DATE, CALENDAR)
    zone = ZoneInfo(CALENDAR.timezone)
    runs, truth = [], []
    for trip, passages in zip(trips, seen, strict=True):
        local = dt.datetime.fromtimestamp(trip.scheduled, zone)
        run_id = f"510-{local:%H%M}"
        start = trip.scheduled - day0
        times = tuple(int(round(start + o)) for o in profile)
        runs.append(Run(run_id, times, dates=frozenset({SERVICE_DATE})))
        truth.append(TruthTrip(
            run_id=run_id, route_id="hsl-2510-1", vehicle_id=trip.device_id,
            service_date=SERVICE_DATE, scheduled=tuple(day0 + t for t in times),
            passages=tuple(passages), flags=frozenset({"hsl"})))
    route = Route(
        id="hsl-2510-1", name="510 Itäväylä - Westendinasema", school_id=None, path=path,
        corridor_m=CORRIDOR_M,
        stops=tuple(Place(r["stop_id"], f"{r['stop_code']} {r['name']}", float(r["lat"]),
                          float(r["lon"]), STOP_RADIUS_M) for r in stop_rows),
        runs=tuple(runs))
    segments = {t.run_id: [_segments(t.passages)] for t in truth}
    contexts, pings = {}, {}
    for device_id in sorted(raw):
        hist = {run.id: [s for rid, ss in segments.items() if rid != run.id for s in ss]
                for run in runs} if history else {}
        contexts[device_id] = VehicleContext(
            vehicle_id=device_id, kind="school_bus", speed_limit_kmh=None, routes=(route,),
            schools=(), calendar=CALENDAR, segment_history=hist)
        pings[device_id] = [Ping(ts=t, lat=lat, lon=lon)
                            for t, lat, lon in _subsample(raw[device_id], every_s)]
    label = "1 Hz" if every_s <= 1.0 else f"~{every_s:g} s"
    return Day(name=f"HSL 510 2020-09-23 {label}", service_date=SERVICE_DATE, contexts=contexts,
               pings=pings, trips=truth, notes={"profile_s": [round(p) for p in profile]})


def _segments(passages: tuple[float | None, ...]) -> list[float | None]:
    return [None if a is None or b is None else round(b - a, 1)
            for a, b in zip(passages, passages[1:], strict=False)]
