"""Arrival-time predictions for the remaining stops of a trip.

The model, per stretch between two consecutive stops (``seg``: arrival to arrival, dwell at the
first stop included, the unit of ``trip_completed.details["segment_s"]``):

1. **today**: recent drives over the same stretch by any vehicle on any run
   (``VehicleContext.segment_observations``), each weighted by its recency (half-life
   :data:`TODAY_HALF_LIFE_S`, none older than :data:`TODAY_WINDOW_S`, none after the prediction
   time), combined by weighted median;
2. **prior**: the median of the run's recent completed trips (``segment_history``: same
   departure, hence same time of day; the caller hands the same weekday type), else the
   timetable's own segment time;
3. the two blended by weight: today's summed recency weights against a prior weight
   (:data:`HISTORY_WEIGHT` per history trip up to :data:`HISTORY_WEIGHT_MAX`, or
   :data:`SCHEDULE_WEIGHT` for the timetable);
4. scaled by the vehicle's own **pace**: its time over that estimate on the stretches it has
   driven on this trip, shrunk towards 1 while few are known (a slow driver stays slow).

Dwell at a stop is learned alike (today's observed dwells, else :data:`DEFAULT_DWELL_SHARE` of
the stretch), so a bus standing at a stop and a bus just gone are told apart. The next stop gets
what is left of the stretch's driving time, from now: the mean of the share left by distance and
the driving time not yet spent since the bus left its stop (the time already spent in the stretch
counts: a bus that stood at a light just past its stop has less than its whole stretch ahead).

Every ETA has an **uncertainty** (seconds, one robust standard deviation): per stretch, the
spread of today's observations (MAD) or a share of its time when there are too few, summed in
quadrature along the stops ahead, so it never shrinks with distance.

Steps 1-3 (today's drives, the prior and their blend, :class:`StretchLog`) are
:mod:`routing.eta_stretches`; their names are re-exported here.

The issue's **baseline** (:func:`baseline_etas`): every stop at its scheduled time shifted by the
current delay, the last observed arrival minus its scheduled time (0 before any).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from routing.config import TrackerConfig
from routing.eta_stretches import (  # noqa: F401  (re-exported: the ETA's public names)
    DEFAULT_DWELL_SHARE,
    HISTORY_SPREAD,
    HISTORY_WEIGHT,
    HISTORY_WEIGHT_MAX,
    MIN_SEGMENT_SPREAD_S,
    SCHEDULE_SPREAD,
    SCHEDULE_WEIGHT,
    TODAY_HALF_LIFE_S,
    TODAY_WINDOW_S,
    Stretch,
    StretchLog,
    _blend,
    _priors,
    history_columns,
    stretch_estimate,
    weighted_median,
)
from routing.geometry import RouteGeometry
from routing.model import SegmentObservation
from routing.state import StopState, TripState

#: The fastest a bus drives a stretch, on average between its stops (bounds what is left of a
#: timetable's stretch after a long wait at its first stop).
FASTEST_CRUISE_KMH = 50.0
#: Between stops, the driving time left is this weighted mean of the driving time not yet spent
#: since the departure and the share of the stretch left by distance (:func:`_drive_left`).
ELAPSED_WEIGHT = 0.5
#: Floor of any prediction's uncertainty (GPS, stop radius), seconds.
MIN_UNCERTAINTY_S = 5.0
#: Stretches of this trip already driven that set the vehicle's pace (the latest ones) and the
#: pseudo-count shrinking it towards 1; the pace stays within these bounds.
PACE_SEGMENTS = 6
PACE_PRIOR = 4.0
PACE_MIN, PACE_MAX = 0.6, 1.8


@dataclass(frozen=True, slots=True)
class Prediction:
    """ETAs for every stop of the trip (``None`` for stops already visited or missed)."""

    delay_s: float
    source: str  # today | history | schedule
    etas: tuple[float | None, ...]
    confidences: tuple[float | None, ...]
    next_stop: int | None
    uncertainties: tuple[float | None, ...] = ()


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


def next_stop(trip: TripState) -> int | None:
    """Index of the first stop still upcoming (``None`` when every stop is done)."""
    return next((j for j, s in enumerate(trip.stops) if s.status == "upcoming"), None)


def baseline_etas(trip: TripState, now: float) -> list[float | None]:
    """The timetable + current delay baseline of issue #13: every upcoming stop at its scheduled
    time plus the delay at the last observed arrival (0 before any), never before ``now``."""
    delay = 0.0
    for s, at in zip(trip.stops, trip.scheduled_at, strict=True):
        if s.arrived_at is not None:
            delay = s.arrived_at - at
    return [None if s.status != "upcoming" else max(now, at + delay)
            for s, at in zip(trip.stops, trip.scheduled_at, strict=True)]



def predict(trip: TripState, geom: RouteGeometry, now: float,
            history: Sequence[Sequence[float | None]], cfg: TrackerConfig,
            observations: Mapping[tuple[str, str], Sequence[SegmentObservation]] | None = None,
            ) -> Prediction:
    """ETAs and their uncertainties for the remaining stops of ``trip`` as of ``now``.

    Parameters
    ----------
    trip : TripState
        The trip in progress.
    geom : RouteGeometry
        Its route geometry.
    now : float
        Event time of the prediction (the ping's ``ts``).
    history : sequence of sequences
        Recent completed runs' ``segment_s`` of the same run.
    cfg : TrackerConfig
        Tunables.
    observations : mapping, optional
        Today's drives by stretch ``(from_stop_id, to_stop_id)``, any run or vehicle; only those
        before ``now`` count.
    """
    n = len(trip.stops)
    delay = current_delay(trip, geom, now)
    nxt = next_stop(trip)
    etas: list[float | None] = [None] * n
    confs: list[float | None] = [None] * n
    uncs: list[float | None] = [None] * n
    if nxt is None:
        return Prediction(delay, "schedule", tuple(etas), tuple(confs), None, tuple(uncs))
    stops = geom.route.stops
    sched = trip.scheduled_at
    priors, counts = _priors(history, [sched[k + 1] - sched[k] for k in range(n - 1)], cfg)
    obs = observations or {}
    first = nxt - 1 - PACE_SEGMENTS  # the stretches that set the pace, and those ahead
    stretches: list[Stretch | None] = [None] * (n - 1)
    for k in range(max(first, 0), n - 1):
        stretches[k] = _blend(obs.get((stops[k].id, stops[k + 1].id), ()), now, trip.trip_id,
                              priors[k], counts[k])
    pace = _pace(trip, stretches, nxt)
    learned = any(s is not None and s.today for s in stretches[max(nxt - 1, 0):])
    source = "today" if learned else "history" if any(counts) else "schedule"
    if nxt == 0:
        remaining_m = max(geom.stop_along[0] - trip.progress_m, 0.0)
        eta = max(now + remaining_m / (cfg.eta_default_speed_kmh / 3.6), sched[0] + delay)
        var = (max(delay, 0.0) * 0.25 + 60.0) ** 2
    else:
        s = stretches[nxt - 1]
        assert s is not None
        # the stretch's driving time runs from leaving the previous stop's exit radius (its
        # departure) to entering the next stop's radius (its arrival): the share left is by
        # the distance left between those two points
        a0 = geom.stop_along[nxt - 1] + stops[nxt - 1].radius_m + cfg.stop_exit_margin_m
        a1 = geom.stop_along[nxt] - stops[nxt].radius_m
        if a1 <= a0:
            a0, a1 = geom.stop_along[nxt - 1], geom.stop_along[nxt]
        frac = 1.0 if a1 <= a0 else min(max((a1 - trip.progress_m) / (a1 - a0), 0.0), 1.0)
        prev = trip.stops[nxt - 1]
        # the fastest the stretch can be driven: what is left of a timetable's stretch after a
        # long wait at its first stop is no shorter than this
        fastest = max(geom.stop_along[nxt] - geom.stop_along[nxt - 1], 0.0) / \
            (FASTEST_CRUISE_KMH / 3.6)
        leg = s.seg_s * pace
        if prev.arrived_at is not None and prev.departed_at is None and \
                trip.inside_stop == nxt - 1:
            if nxt == 1:  # at the first stop a bus waits for its departure time
                drive = (s.seg_s - s.dwell_s) * pace if s.dwell_seen else \
                    (1 - DEFAULT_DWELL_SHARE) * leg
                eta = max(now, sched[0]) + drive
            elif s.dwell_seen:  # standing there: the usual dwell, or at once if already longer
                eta = max(now, prev.arrived_at + s.dwell_s) + (s.seg_s - s.dwell_s) * pace
            else:  # the stretch's time includes an unknown wait here: no less driving is left
                eta = max(prev.arrived_at + leg, now + max(fastest, (1 - DEFAULT_DWELL_SHARE)
                                                           * leg - (now - prev.arrived_at)))
        else:
            if s.dwell_seen:
                drive = (s.seg_s - s.dwell_s) * pace
            elif prev.arrived_at is not None and prev.departed_at is not None:
                drive = max(leg - (prev.departed_at - prev.arrived_at), fastest)  # dwell spent
            else:
                drive = (1 - DEFAULT_DWELL_SHARE) * leg
            eta = now + _drive_left(drive, frac, now - prev.departed_at
                                    if prev.departed_at is not None else None,
                                    max(a1 - trip.progress_m, 0.0))
        var = (s.spread_s * max(frac, 0.3)) ** 2
    # the stops ahead at once: each adds its stretch's time and (in quadrature) its spread
    ahead = stretches[nxt:]
    steps = np.fromiter((s.seg_s * pace for s in ahead), float, len(ahead))  # type: ignore[union-attr]
    spreads = np.fromiter((s.spread_s ** 2 for s in ahead), float, len(ahead))  # type: ignore[union-attr]
    eta_ahead = eta + np.concatenate(([0.0], np.cumsum(steps)))
    unc = np.maximum(np.sqrt(var + np.concatenate(([0.0], np.cumsum(spreads)))),
                     MIN_UNCERTAINTY_S)
    etas[nxt:] = eta_ahead.tolist()
    uncs[nxt:] = np.round(unc, 1).tolist()
    confs[nxt:] = np.round(60.0 / (60.0 + unc), 3).tolist()
    return Prediction(delay, source, tuple(etas), tuple(confs), nxt, tuple(uncs))


def _drive_left(drive: float, frac: float, elapsed: float | None, metres_left: float) -> float:
    """Seconds of driving left to the next stop: the share of the stretch's driving time by the
    distance left, averaged (weight :data:`ELAPSED_WEIGHT`) with the driving time not yet spent
    since the departure, never less than the distance left at :data:`FASTEST_CRUISE_KMH`.

    By distance alone, a bus held by a light just past its stop would still have the stretch's
    whole time ahead of it once it drives on; by time alone, a bus stuck in a queue would be
    about to arrive. Either alone was worse on the real HSL traces (bench/README.md).

    >>> _drive_left(60.0, 0.5, None, 200.0)
    30.0
    >>> _drive_left(60.0, 0.9, 40.0, 180.0)  # 40 s stood at a light: 54 s by distance, 20 by time
    37.0
    >>> _drive_left(600.0, 0.02, 170.0, 150.0)  # a fast bus 10 s from the stop: by distance
    12.0
    """
    by_distance = drive * frac
    if elapsed is None:
        return by_distance
    by_time = max(drive - elapsed, metres_left / (FASTEST_CRUISE_KMH / 3.6))
    # only ever earlier than by distance: a bus driving the stretch faster than it usually
    # takes has spent little time but has little left — by time it would be minutes late
    return min(by_distance, ELAPSED_WEIGHT * by_time + (1 - ELAPSED_WEIGHT) * by_distance)


def _pace(trip: TripState, stretches: Sequence[Stretch | None], nxt: int) -> float:
    """This vehicle's time over the model's on the stretches of this trip it has driven (the
    latest :data:`PACE_SEGMENTS`, not the first: buses wait at the first stop), shrunk to 1."""
    actual = expected = 0.0
    count = 0
    for k in range(max(nxt - 1, 1) - 1, 0, -1):
        s = stretches[k]
        if s is None or count >= PACE_SEGMENTS:
            break
        a, b = trip.stops[k].arrived_at, trip.stops[k + 1].arrived_at
        if a is not None and b is not None and s.seg_s > 0:
            actual += b - a
            expected += s.seg_s
            count += 1
    if count == 0 or expected <= 0:
        return 1.0
    ratio = actual / expected
    weight = count / (count + PACE_PRIOR)
    return min(max(1 + weight * (ratio - 1), PACE_MIN), PACE_MAX)


def segment_seconds(stops: Sequence[StopState]) -> list[float | None]:
    """Seconds between consecutive stop arrivals (``None`` where either stop has none): what the
    caller stores and hands back as ``VehicleContext.segment_history`` for the ETA."""
    out: list[float | None] = []
    for a, b in zip(stops, stops[1:], strict=False):
        ok = a.arrived_at is not None and b.arrived_at is not None
        out.append(round(b.arrived_at - a.arrived_at, 1) if ok else None)  # type: ignore[operator]
    return out
