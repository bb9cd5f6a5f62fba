"""The HSL 510 day (tests/data/hsl510: real 1 Hz GPS of 12 trips, 27 stops) replayed through
the tracker with per-ping ETAs, scored against the truth and against the baseline.

- truth: a stop's arrival is the trip's closest approach to it among pings within 30 m;
- timetable: each trip's scheduled start plus the day's median profile (median over trips of
  the seconds from the first stop to each stop), so the baseline's schedule is as good as a
  timetable gets;
- feed: every bus's pings together, in event-time order, in chunks of ``CHUNK_S`` seconds; the
  stop events of each chunk become today's observations (what ``backend.tracking_service``
  builds from stored events), so a later trip learns from the earlier ones;
- score: at every ping of a trip in progress, for the stops 1, 3 and 5 ahead of the tracker's
  next stop whose truth is still in the future, the absolute error of the learned ETA and of
  the baseline (:func:`routing.eta.baseline_etas`).

``.venv/bin/python -m tests.unit.routing.hsl510`` prints the table.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from routing.config import DEFAULT
from routing.eta import baseline_etas, predict
from routing.geometry import route_geometry
from routing.model import Calendar, Ping, Place, Route, Run, SegmentObservation, VehicleContext
from routing.tracker import TrackerState, track_owned

FIXTURE = Path(__file__).resolve().parents[2] / "data" / "hsl510"
CALENDAR = Calendar(timezone="Europe/Helsinki")
DAY = dt.date(2020, 9, 23)
TRUTH_RADIUS_M = 30.0
STOP_RADIUS_M = 20.0
CORRIDOR_M = 60.0
CHUNK_S = 30.0
AHEAD = (1, 3, 5)


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass
class Trip:
    run_id: str
    device_id: str
    scheduled_start: float
    first_ts: float
    last_ts: float
    truth: list[float | None] = field(default_factory=list)


@dataclass
class Day:
    stops: tuple[Place, ...]
    path: tuple[tuple[float, float], ...]
    trips: list[Trip]
    pings: dict[str, list[Ping]]  # device -> pings in ts order
    offsets: list[float]  # median seconds from the first stop to each stop


def load_day() -> Day:
    with open(FIXTURE / "stops.csv", newline="") as f:
        stops = tuple(Place(r["stop_id"], r["name"], float(r["lat"]), float(r["lon"]),
                            STOP_RADIUS_M) for r in csv.DictReader(f))
    geojson = json.loads((FIXTURE / "route.geojson").read_text())
    path = tuple((float(x), float(y)) for x, y in geojson["features"][0]["geometry"]["coordinates"])
    pings: dict[str, list[Ping]] = defaultdict(list)
    with open(FIXTURE / "pings.csv", newline="") as f:
        for r in csv.DictReader(f):
            pings[r["device_id"]].append(Ping(_epoch(r["ts"]), float(r["lat"]), float(r["lon"])))
    with open(FIXTURE / "trips.csv", newline="") as f:
        trips = [Trip(r["trip_id"][:8], r["device_id"], _epoch(r["scheduled_start"]),
                      _epoch(r["first_ping_ts"]), _epoch(r["last_ping_ts"]))
                 for r in csv.DictReader(f)]
    lat0 = statistics.fmean(s.lat for s in stops)
    kx, ky = 111320.0 * np.cos(np.radians(lat0)), 110540.0
    sx = np.array([s.lon for s in stops]) * kx
    sy = np.array([s.lat for s in stops]) * ky
    for t in trips:
        mine = [p for p in pings[t.device_id] if t.first_ts <= p.ts <= t.last_ts]
        x = np.array([p.lon for p in mine]) * kx
        y = np.array([p.lat for p in mine]) * ky
        d = np.hypot(x[:, None] - sx[None, :], y[:, None] - sy[None, :])
        for j in range(len(stops)):
            k = int(np.argmin(d[:, j]))
            t.truth.append(mine[k].ts if d[k, j] <= TRUTH_RADIUS_M else None)
    offsets = [0.0]
    for j in range(1, len(stops)):
        offsets.append(statistics.median(t.truth[j] - t.truth[0] for t in trips  # type: ignore[operator]
                                         if t.truth[0] is not None and t.truth[j] is not None))
    return Day(stops, path, trips, dict(pings), offsets)


def contexts(day: Day) -> dict[str, VehicleContext]:
    """One context per bus, whose route has only that bus's runs (run matching is not what is
    measured here): the same stops, so all buses share today's observations."""
    midnight = dt.datetime.combine(DAY, dt.time(0), tzinfo=dt.timezone(dt.timedelta(hours=3)))
    day0 = midnight.timestamp()
    runs: dict[str, list[Run]] = defaultdict(list)
    for t in day.trips:
        times = tuple(int(round(t.scheduled_start - day0 + o)) for o in day.offsets)
        runs[t.device_id].append(Run(t.run_id, times, dates=frozenset({DAY})))
    out = {}
    for device, rs in runs.items():
        route = Route("510", "510", None, day.path, CORRIDOR_M, day.stops, tuple(rs))
        out[device] = VehicleContext(device, "school_bus", None, (route,), (), CALENDAR)
    return out


@dataclass
class Score:
    learned: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    baseline: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    uncertainty: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))

    def mae(self, k: int) -> tuple[float, float]:
        return statistics.fmean(self.learned[k]), statistics.fmean(self.baseline[k])

    def table(self) -> str:
        lines = ["stops ahead  n      learned MAE s  baseline MAE s  better  median unc. s"]
        for k in AHEAD:
            learned, base = self.mae(k)
            lines.append(f"{k:>11}  {len(self.learned[k]):<6} {learned:>13.1f}  {base:>14.1f}  "
                         f"{1 - learned / base:>6.0%}  {statistics.median(self.uncertainty[k]):>13.1f}")
        return "\n".join(lines)


def replay(day: Day, learn: bool = True) -> Score:
    """Every bus's pings through the tracker in event-time chunks, scoring each ping's ETAs."""
    ctxs = contexts(day)
    truth = {(t.device_id, t.run_id): t.truth for t in day.trips}
    states = {device: TrackerState() for device in ctxs}
    observations: dict[tuple[str, str], list[SegmentObservation]] = defaultdict(list)
    arrivals: dict[str, dict[int, float]] = defaultdict(dict)
    departures: dict[str, dict[int, float]] = defaultdict(dict)
    index = {s.id: j for j, s in enumerate(day.stops)}
    score = Score()
    geom = route_geometry(next(iter(ctxs.values())).routes[0])
    frozen: dict[tuple[str, str], tuple[SegmentObservation, ...]] = {}

    def on_ping(device: str, ctx: VehicleContext):
        def scored(state: TrackerState) -> None:
            trip, now = state.trip, state.last_ts
            assert trip is not None and now is not None
            real = truth.get((device, trip.run_id))
            pred = predict(trip, geom, now, ctx.segment_history.get(trip.run_id, ()), DEFAULT,
                           ctx.segment_observations if learn else None)
            if pred.next_stop is None or real is None:
                return
            base = baseline_etas(trip, now)
            for k in AHEAD:
                j = pred.next_stop + k - 1
                if j >= len(real) or real[j] is None or real[j] <= now:  # type: ignore[operator]
                    continue
                eta, b = pred.etas[j], base[j]
                assert eta is not None and b is not None
                score.learned[k].append(abs(eta - real[j]))  # type: ignore[operator]
                score.baseline[k].append(abs(b - real[j]))  # type: ignore[operator]
                score.uncertainty[k].append(pred.uncertainties[j])  # type: ignore[arg-type]
        return scored

    everything = sorted((p.ts, device, p) for device, ps in day.pings.items() for p in ps)
    start = 0
    while start < len(everything):
        end = start
        limit = everything[start][0] + CHUNK_S
        chunk: dict[str, list[Ping]] = defaultdict(list)
        while end < len(everything) and everything[end][0] < limit:
            chunk[everything[end][1]].append(everything[end][2])
            end += 1
        start = end
        for device, pings in chunk.items():
            ctx = dataclasses.replace(ctxs[device], segment_observations=frozen)
            _, events = track_owned(ctx, states[device], pings, DEFAULT, on_ping(device, ctx))
            for e in events:
                if e.stop_id is None or e.trip_id is None:
                    continue
                j = index[e.stop_id]
                if e.kind == "stop_departed":
                    departures[e.trip_id][j] = e.ts
                elif e.kind == "stop_arrived":
                    arrivals[e.trip_id][j] = e.ts
                    before = arrivals[e.trip_id].get(j - 1)
                    if j > 0 and before is not None:
                        left = departures[e.trip_id].get(j - 1)
                        observations[(day.stops[j - 1].id, e.stop_id)].append(SegmentObservation(
                            e.ts, e.ts - before, None if left is None else left - before,
                            e.trip_id))
        frozen = {key: tuple(v) for key, v in observations.items()}
    return score


if __name__ == "__main__":
    print(replay(load_day()).table())
