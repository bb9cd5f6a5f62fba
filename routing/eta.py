"""Arrival-time predictions for the remaining stops of a trip.

Two predictors:

* **schedule + delay** (the fallback, and the benchmark's baseline): every remaining stop at its
  scheduled time shifted by the current delay; the delay compares the time now with the
  schedule interpolated at the vehicle's progress along the route.
* **learned**: per-segment travel times (seconds between consecutive stop arrivals) are the
  median of the run's recent completed trips (``VehicleContext.segment_history``, fed from
  ``trip_completed.details["segment_s"]``), scaled by today's pace on the segments already
  driven (shrunk towards 1 while few are known). The next stop gets the remaining fraction of its
  segment by distance along the route.

Confidence is a heuristic in [0, 1]: it grows with the number of history runs, shrinks with their
spread and with the number of stops ahead; the schedule fallback starts at 0.4.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from routing.config import TrackerConfig
from routing.geometry import RouteGeometry
from routing.state import TripState


@dataclass(frozen=True, slots=True)
class Prediction:
    """ETAs for every stop of the trip (``None`` for stops already visited or missed)."""

    delay_s: float
    source: str  # history | schedule
    etas: tuple[float | None, ...]
    confidences: tuple[float | None, ...]
    next_stop: int | None


def current_delay(trip: TripState, geom: RouteGeometry, now: float) -> float:
    """Seconds behind schedule (negative when early) at the vehicle's current progress.

    Before the vehicle has left its first stop, early counts as on time: buses wait there.
    """
    sched = np.asarray(trip.scheduled_at)
    planned = float(np.interp(trip.progress_m, geom.stop_along, sched))
    delay = now - planned
    first = trip.stops[0]
    if first.departed_at is None and trip.progress_m <= geom.stop_along[0] + \
            geom.route.stops[0].radius_m:
        delay = max(delay, 0.0)
    return delay


def segment_medians(history: Sequence[Sequence[float | None]], n_segments: int,
                    cfg: TrackerConfig) -> tuple[list[float | None], int, float]:
    """Median seconds per segment over the most recent usable runs.

    Returns the medians (``None`` where no run has the segment), how many runs were used, and the
    relative spread (median absolute deviation of total times over their median).
    """
    runs = [list(h) for h in history if len(h) == n_segments][: cfg.eta_history_runs]
    medians: list[float | None] = []
    for k in range(n_segments):
        values = [float(h[k]) for h in runs if h[k] is not None and float(h[k]) >= 0]  # type: ignore[arg-type]
        medians.append(statistics.median(values) if values else None)
    totals = [sum(float(v) for v in h if v is not None) for h in runs]
    spread = 0.0
    if len(totals) >= 2:
        mid = statistics.median(totals)
        spread = statistics.median(abs(t - mid) for t in totals) / mid if mid > 0 else 0.0
    return medians, len(runs), spread


def predict(trip: TripState, geom: RouteGeometry, now: float,
            history: Sequence[Sequence[float | None]], cfg: TrackerConfig) -> Prediction:
    """ETAs for the remaining stops of ``trip`` as of ``now`` (the last ping's time).

    Parameters
    ----------
    trip : TripState
        The trip in progress.
    geom : RouteGeometry
        Its route geometry.
    now : float
        Event time of the prediction.
    history : sequence of sequences
        Recent completed runs' ``segment_s`` of the same run.
    cfg : TrackerConfig
        Tunables.
    """
    n = len(trip.stops)
    delay = current_delay(trip, geom, now)
    nxt = next((j for j, s in enumerate(trip.stops) if s.status == "upcoming"), None)
    etas: list[float | None] = [None] * n
    confs: list[float | None] = [None] * n
    if nxt is None:
        return Prediction(delay, "schedule", tuple(etas), tuple(confs), None)
    medians, runs, spread = segment_medians(history, n - 1, cfg)
    if runs == 0:
        for j in range(nxt, n):
            etas[j] = max(now, trip.scheduled_at[j] + delay)
            confs[j] = round(0.4 * 0.93 ** (j - nxt), 3)
        return Prediction(delay, "schedule", tuple(etas), tuple(confs), nxt)
    sched = trip.scheduled_at
    seg = [m if m is not None else sched[k + 1] - sched[k] for k, m in enumerate(medians)]
    pace = _todays_pace(trip, seg)
    base = runs / (runs + 2) / (1 + 2 * spread)
    if nxt == 0:
        remaining_m = max(geom.stop_along[0] - trip.progress_m, 0.0)
        eta = max(now + remaining_m / (cfg.eta_default_speed_kmh / 3.6), sched[0] + delay)
    else:
        a0, a1 = geom.stop_along[nxt - 1], geom.stop_along[nxt]
        frac = 1.0 if a1 <= a0 else min(max((a1 - trip.progress_m) / (a1 - a0), 0.0), 1.0)
        prev = trip.stops[nxt - 1]
        leg = seg[nxt - 1] * pace
        if prev.arrived_at is not None and trip.inside_stop == nxt - 1:
            eta = max(now + leg * frac, prev.arrived_at + leg)  # still dwelling there
        elif prev.arrived_at is not None and prev.departed_at is not None:
            # the segment time includes the dwell at its first stop, already spent today
            dwell = prev.departed_at - prev.arrived_at
            eta = now + max(leg - dwell, 0.25 * leg) * frac
        else:
            eta = now + leg * frac
    for j in range(nxt, n):
        if j > nxt:
            eta += seg[j - 1] * pace
        etas[j] = eta
        confs[j] = round(base * 0.97 ** (j - nxt), 3)
    return Prediction(delay, "history", tuple(etas), tuple(confs), nxt)


def _todays_pace(trip: TripState, seg: list[float]) -> float:
    """Today's time over the typical time on segments already driven, shrunk towards 1."""
    actual = typical = 0.0
    count = 0
    for k in range(len(seg)):
        a, b = trip.stops[k].arrived_at, trip.stops[k + 1].arrived_at
        if a is not None and b is not None and seg[k] > 0:
            actual += b - a
            typical += seg[k]
            count += 1
    if count == 0 or typical <= 0:
        return 1.0
    weight = count / (count + 3)
    return min(max(1 + weight * (actual / typical - 1), 0.7), 1.5)
