"""What the ETA believes about each stretch between two consecutive stops (``seg``: arrival to
arrival, the dwell at its first stop included): today's drives, the run's history and the
timetable, blended (see :mod:`routing.eta` for the model and how a prediction uses them).

* :class:`StretchLog` collects today's drives from the trips' stop events as they come;
* :func:`stretch_estimate` / ``_blend`` combine them (recency-weighted median) with the prior
  (``_prior``: the median of the run's history, else the timetable's own stretch time).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from routing.config import TrackerConfig
from routing.model import SegmentObservation

#: Today's observations lose half their weight every this many seconds: traffic changes within
#: the hour, and a drive from 10 minutes ago beats one from the morning.
TODAY_HALF_LIFE_S = 1800.0
#: ... and are not used at all past this age (the morning rush says little about noon).
TODAY_WINDOW_S = 7200.0
#: Weight of one completed trip of the run's history against today's (a fresh drive weighs 1).
HISTORY_WEIGHT = 0.3
HISTORY_WEIGHT_MAX = 1.5
#: Weight of the timetable when there is no history: any fresh drive over the stretch wins.
SCHEDULE_WEIGHT = 0.5
#: Share of a stretch spent standing at its first stop when no dwell was observed today.
DEFAULT_DWELL_SHARE = 0.1
#: Relative spread of a stretch's time when too few observations show it (history / timetable).
HISTORY_SPREAD = 0.15
SCHEDULE_SPREAD = 0.25
#: Floor of a stretch's spread, and of any prediction's uncertainty (GPS, stop radius), seconds.
MIN_SEGMENT_SPREAD_S = 5.0


class StretchLog:
    """Today's drives over each stretch, collected from a trip's stop events as they come
    (``stop_arrived`` / ``stop_departed``, per trip in event-time order): what
    ``VehicleContext.segment_observations`` holds. The ingest builds it from the stored events,
    a replay of a day from the events as the tracker concludes them."""

    def __init__(self) -> None:
        self._drives: dict[tuple[str, str], list[SegmentObservation]] = defaultdict(list)
        self._last: dict[str, tuple[str, float]] = {}  # trip -> its latest arrival (stop, ts)
        self._departed: dict[tuple[str, str], float] = {}

    def add(self, trip_id: str, kind: str, stop_id: str, ts: float,
            since: float = float("-inf")) -> None:
        """One stop event; a drive that arrived before ``since`` is not kept."""
        if kind == "stop_departed":
            self._departed[(trip_id, stop_id)] = ts
            return
        if kind != "stop_arrived":
            return
        last = self._last.get(trip_id)
        if last is not None and last[0] != stop_id and ts >= since:
            left = self._departed.get((trip_id, last[0]))
            self._drives[(last[0], stop_id)].append(SegmentObservation(
                ts, round(ts - last[1], 1), None if left is None else round(left - last[1], 1),
                trip_id))
        self._last[trip_id] = (stop_id, ts)

    def observations(self) -> dict[tuple[str, str], tuple[SegmentObservation, ...]]:
        return {key: tuple(v) for key, v in self._drives.items()}

    def live(self) -> Mapping[tuple[str, str], Sequence[SegmentObservation]]:
        """The log itself, growing as events are added (for a replay that predicts as it goes)."""
        return self._drives

def weighted_median(values: Sequence[float], weights: Sequence[float]) -> float:
    """The value where the cumulative weight (in value order) reaches half the total.

    >>> weighted_median([10.0, 20.0, 100.0], [1.0, 1.0, 0.5])
    20.0
    """
    pairs = sorted(zip(values, weights, strict=True))
    half = sum(weights) / 2
    acc = 0.0
    for v, w in pairs:
        acc += w
        if acc >= half:
            return v
    return pairs[-1][0]


@dataclass(frozen=True, slots=True)
class Stretch:
    """What the model believes about one stretch: seconds arrival to arrival, the dwell at its
    first stop, the spread of the former, and whether today's drives informed it."""

    seg_s: float
    dwell_s: float
    spread_s: float
    today: bool
    dwell_seen: bool = False  # today's drives showed the dwell (else it is a guessed share)


def stretch_estimate(observations: Sequence[SegmentObservation], now: float, trip_id: str,
                     history: Sequence[float], scheduled_s: float) -> Stretch:
    """Blend today's drives over one stretch (older than ``now``, not this trip's), the run's
    history and the timetable (see the module docstring)."""
    return _blend(observations, now, trip_id, _prior(history, scheduled_s), len(history))


def _prior(history: Sequence[float], scheduled_s: float) -> Stretch:
    """What the stretch takes without today's drives: the run's history, else the timetable;
    ``dwell_s`` a guessed share, ``today`` False."""
    if history:
        prior = statistics.median(history)
        spread = HISTORY_SPREAD * prior
        if len(history) >= 3:
            mad = statistics.median(abs(h - prior) for h in history)
            spread = max(1.4826 * mad, 0.5 * spread)
    else:
        prior, spread = scheduled_s, SCHEDULE_SPREAD * scheduled_s
    return Stretch(prior, DEFAULT_DWELL_SHARE * prior, max(spread, MIN_SEGMENT_SPREAD_S), False)


def _prior_weight(history_runs: int) -> float:
    return min(HISTORY_WEIGHT * history_runs, HISTORY_WEIGHT_MAX) if history_runs \
        else SCHEDULE_WEIGHT


def _blend(observations: Sequence[SegmentObservation], now: float, trip_id: str,
           prior_stretch: Stretch, history_runs: int = 0) -> Stretch:
    if not observations:
        return prior_stretch
    values: list[float] = []
    weights: list[float] = []
    dwells: list[float] = []
    dwell_w: list[float] = []
    for o in observations:
        age = now - o.ts
        if age < 0 or age > TODAY_WINDOW_S or o.trip_id == trip_id or o.seg_s <= 0:
            continue
        w = 0.5 ** (age / TODAY_HALF_LIFE_S)
        values.append(o.seg_s)
        weights.append(w)
        if o.dwell_s is not None and 0 <= o.dwell_s <= o.seg_s:
            dwells.append(o.dwell_s)
            dwell_w.append(w)
    if not values:
        return prior_stretch
    prior = prior_stretch.seg_s
    prior_w = _prior_weight(history_runs)
    today = weighted_median(values, weights)
    total = sum(weights)
    seg = (total * today + prior_w * prior) / (total + prior_w)
    if len(values) >= 3:
        mad = weighted_median([abs(v - today) for v in values], weights)
        spread = 1.4826 * mad
    else:  # one or two drives: their disagreement with the prior says how sure to be
        spread = 0.5 * (abs(today - prior) + prior_stretch.spread_s)
    dwell = weighted_median(dwells, dwell_w) if dwells else DEFAULT_DWELL_SHARE * seg
    return Stretch(seg, min(dwell, seg), max(spread, MIN_SEGMENT_SPREAD_S), True, bool(dwells))


#: Priors per (history object, timetable stretches): a trip's pings all ask for the same ones,
#: and the medians of its history are the dearest part of a prediction. Keyed by identity with
#: the history kept alive beside them (so an id is never reused while cached); bounded.
_PRIORS: dict[tuple[int, tuple[float, ...]], tuple[object, list[Stretch], list[int]]] = {}
_PRIORS_MAX = 512


def _priors(history: Sequence[Sequence[float | None]], scheduled: Sequence[float],
            cfg: TrackerConfig) -> tuple[list[Stretch], list[int]]:
    """Every stretch's prior, and how many history runs it rests on."""
    key = (id(history), tuple(scheduled))
    hit = _PRIORS.get(key)
    if hit is not None and hit[0] is history:
        return hit[1], hit[2]
    n = len(scheduled)
    columns = history_columns(history, n, cfg) if history else [[] for _ in range(n)]
    priors = [_prior(columns[k], scheduled[k]) for k in range(n)]
    counts = [len(c) for c in columns]
    if len(_PRIORS) >= _PRIORS_MAX:
        _PRIORS.clear()
    _PRIORS[key] = (history, priors, counts)
    return priors, counts


def history_columns(history: Sequence[Sequence[float | None]], n_segments: int,
                    cfg: TrackerConfig) -> list[list[float]]:
    """Per stretch, the usable seconds of the most recent completed runs of the same run."""
    runs = [h for h in history if len(h) == n_segments][: cfg.eta_history_runs]
    return [[float(h[k]) for h in runs if h[k] is not None and float(h[k]) > 0]  # type: ignore[arg-type]
            for k in range(n_segments)]
