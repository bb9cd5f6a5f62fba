"""ETA accuracy of a tracked day: predictions recorded while the audit tracks, scored after.

The audit tracks each vehicle's day once; :class:`EtaRecorder` is its ``on_ping``: at every ping
on a trip it predicts the stops 1, 3 and 5 ahead as live tracking would have (the learned ETA
of :func:`routing.eta.predict`) next to the timetable + current delay baseline
(:func:`routing.eta.baseline_etas`). Once the day's trips are known, :meth:`EtaRecorder.scores`
compares each prediction with the audited arrival at that stop, when the stop was reached after
the prediction was made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from routing.config import DEFAULT, TrackerConfig
from routing.eta import baseline_etas
from routing.live import TripPredictor
from routing.model import TripAudit, VehicleContext
from routing.state import TrackerState

ETA_STOPS_AHEAD = (1, 3, 5)

#: trip id -> {"1": {"n", "abs_error_s", "baseline_abs_error_s"}, "3": …, "5": …} (sums, so
#: trips and days add up; MAE = sum / n)
EtaScores = dict[str, dict[str, dict[str, Any]]]


class EtaRecorder:
    """``on_ping`` for :func:`routing.tracker.track` (or one vehicle of
    :func:`routing.fleet.track_fleet`) that keeps every prediction of the stops ahead."""

    def __init__(self, ctx: VehicleContext, cfg: TrackerConfig = DEFAULT):
        self._predict = TripPredictor(ctx, cfg)
        #: (trip id, stop index, stops ahead, made at, learned ETA, baseline ETA)
        self.predictions: list[tuple[str, int, int, float, float, float]] = []

    def __call__(self, state: TrackerState) -> None:
        made = self._predict(state)
        if made is None or made.pred.next_stop is None:
            return
        trip, pred, now = made.trip, made.pred, state.last_ts
        base = baseline_etas(trip, now)
        for k in ETA_STOPS_AHEAD:
            j = pred.next_stop + k - 1
            if j >= len(trip.stops):
                continue
            eta, b = pred.etas[j], base[j]
            if eta is not None and b is not None:
                self.predictions.append((trip.trip_id, j, k, now, eta, b))

    def scores(self, audits: Sequence[TripAudit]) -> EtaScores:
        """The recorded predictions against the audited arrivals of ``audits``."""
        arrived = {a.trip_id: [s["arrived_at"] if s["status"] == "visited" else None
                               for s in a.stops] for a in audits}
        sums: dict[str, dict[str, list[float]]] = {}
        for trip_id, j, k, now, eta, b in self.predictions:
            truth = arrived.get(trip_id)
            if truth is None or j >= len(truth) or truth[j] is None or truth[j] <= now:
                continue
            cells = sums.setdefault(trip_id, {str(n): [0, 0.0, 0.0] for n in ETA_STOPS_AHEAD})
            cell = cells[str(k)]
            cell[0] += 1
            cell[1] += abs(eta - truth[j])
            cell[2] += abs(b - truth[j])
        return {trip_id: {k: {"n": int(n), "abs_error_s": round(e, 1),
                              "baseline_abs_error_s": round(b, 1)}
                          for k, (n, e, b) in cells.items()}
                for trip_id, cells in sums.items()}
