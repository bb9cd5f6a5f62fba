"""Stop arrivals, departures and misses, matched on route progress.

A stop counts only when the vehicle's *progress along the route* is near the stop's own position
along the route: a stop beside a road that the route uses at another point is not visited when
the bus passes it then (the drive-by false triggers of Traccar issue #6019).

A stop is visited when

* a ping is inside its circle, or
* the straight segment between two consecutive pings crosses the circle, or
* progress strides over the stop between two pings that are both on the route (sparse pings on
  a curving road, where the chord cuts the corner).

Arrival and departure times are interpolated on the segment (or on progress) between the pings.
A stop is missed when progress goes ``stop_missed_margin_m`` past its circle without a visit, when
a later stop is visited first, or when the trip ends before reaching it (timeout, abandonment, or
arrival at the last stop): the trip's record is then complete, every stop visited or missed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from routing.config import TrackerConfig
from routing.geometry import RouteGeometry, circle_entry
from routing.state import TripState


class Fix(NamedTuple):
    """One ping as the stop detector sees it: route-frame metres, progress and on-route-ness."""

    ts: float
    x: float
    y: float
    progress_m: float
    on_route: bool
    speed_kmh: float | None


@dataclass(frozen=True, slots=True)
class StopEvent:
    """A stop event before the tracker dresses it as an :class:`~routing.model.Event`."""

    kind: str  # stop_arrived | stop_departed | stop_missed
    ts: float
    index: int
    details: dict[str, Any]


def detect_stops(trip: TripState, geom: RouteGeometry, prev: Fix | None, cur: Fix,
                 cfg: TrackerConfig) -> list[StopEvent]:
    """Advance the stops of ``trip`` (mutated) by one ping and return what happened, in order.

    Parameters
    ----------
    trip : TripState
        The trip in progress; its stops and ``inside_stop`` are updated.
    geom : RouteGeometry
        The trip's route geometry (stop positions along the route).
    prev : Fix or None
        The previous ping of this trip, ``None`` for the trip's first ping (no interpolation).
    cur : Fix
        The current ping.
    cfg : TrackerConfig
        Tunables.
    """
    out: list[StopEvent] = []
    stops = geom.route.stops
    if trip.inside_stop is not None:
        _follow_inside(trip, geom, prev, cur, cfg, out)
    j = _cursor(trip)
    while j < len(stops):
        place, a_j = stops[j], geom.stop_along[j]
        r = place.radius_m
        if a_j - r - cfg.stop_progress_tolerance_m > cur.progress_m:
            break
        visit = _visit(geom, j, prev, cur, cfg)
        if visit is not None:
            _miss_before(trip, j, visit[0], cur, cfg, out)
            _arrive(trip, j, visit, cur, cfg, out)
            if trip.inside_stop is not None:
                break  # dwelling: later stops wait for the departure
        elif cur.progress_m > a_j + r + cfg.stop_missed_margin_m and trip.inside_stop is None:
            _miss(trip, j, cur.ts, cur.progress_m, "passed", out)
        j += 1
    return out


def miss_remaining(trip: TripState, ts: float, reason: str) -> list[StopEvent]:
    """Mark every stop not yet visited as missed (the trip is ending)."""
    out: list[StopEvent] = []
    for j, stop in enumerate(trip.stops):
        if stop.status == "upcoming":
            _miss(trip, j, ts, trip.progress_m, reason, out)
    return out


def _cursor(trip: TripState) -> int:
    """The first stop not yet visited or missed (stops are settled in order)."""
    j = len(trip.stops)
    while j > 0 and trip.stops[j - 1].status == "upcoming":
        j -= 1
    return j


def _visit(geom: RouteGeometry, j: int, prev: Fix | None, cur: Fix,
           cfg: TrackerConfig) -> tuple[float, float | None] | None:
    """``(arrived_at, departed_at or None if still inside)`` when ping ``cur`` shows a visit."""
    place, a_j = geom.route.stops[j], geom.stop_along[j]
    r, tol = place.radius_m, cfg.stop_progress_tolerance_m
    sx, sy = geom.stop_xy[j]
    inside = math.hypot(cur.x - sx, cur.y - sy) <= r
    p0 = prev.progress_m if prev is not None else cur.progress_m
    if cur.progress_m < a_j - r - tol or p0 > a_j + r + tol:
        return None  # this pass of the road is not this stop's pass
    if prev is None:
        return (cur.ts, None) if inside else None
    dt = cur.ts - prev.ts
    chord = circle_entry(prev.x, prev.y, cur.x, cur.y, sx, sy, r)
    if inside:
        enter = chord[0] if chord is not None else 1.0
        return prev.ts + enter * dt, None
    if chord is not None:
        return prev.ts + chord[0] * dt, prev.ts + chord[1] * dt
    stride = cur.progress_m - prev.progress_m
    if prev.on_route and cur.on_route and stride > 0 and prev.progress_m <= a_j <= cur.progress_m:
        enter = min(max((a_j - r - prev.progress_m) / stride, 0.0), 1.0)
        leave = min(max((a_j + r - prev.progress_m) / stride, 0.0), 1.0)
        return prev.ts + enter * dt, prev.ts + leave * dt
    return None


def _follow_inside(trip: TripState, geom: RouteGeometry, prev: Fix | None, cur: Fix,
                   cfg: TrackerConfig, out: list[StopEvent]) -> None:
    k = trip.inside_stop
    assert k is not None
    stop, place = trip.stops[k], geom.route.stops[k]
    sx, sy = geom.stop_xy[k]
    d = math.hypot(cur.x - sx, cur.y - sy)
    if d <= place.radius_m:
        stop.exit_at = None
        if cur.speed_kmh is not None and cur.speed_kmh <= cfg.stopped_max_speed_kmh:
            stop.stopped = True
        return
    if stop.exit_at is None:
        leave = None
        if prev is not None:
            chord = circle_entry(prev.x, prev.y, cur.x, cur.y, sx, sy, place.radius_m)
            leave = chord[1] if chord is not None else 0.0
        stop.exit_at = prev.ts + leave * (cur.ts - prev.ts) if prev and leave is not None \
            else cur.ts
    beyond = geom.stop_along[k] + place.radius_m + cfg.stop_exit_margin_m
    if d > place.radius_m + cfg.stop_exit_margin_m or cur.progress_m > beyond:
        _depart(trip, k, stop.exit_at, cur.progress_m, cfg, out)


def _arrive(trip: TripState, j: int, visit: tuple[float, float | None], cur: Fix,
            cfg: TrackerConfig, out: list[StopEvent]) -> None:
    arrived_at, departed_at = visit
    stop = trip.stops[j]
    stop.status, stop.arrived_at = "visited", arrived_at
    stop.stopped = cur.speed_kmh is not None and cur.speed_kmh <= cfg.stopped_max_speed_kmh \
        and departed_at is None
    out.append(StopEvent("stop_arrived", arrived_at, j, {
        "sequence": j, "progress_m": round(cur.progress_m, 1),
        "scheduled_at": trip.scheduled_at[j], "late_s": round(arrived_at - trip.scheduled_at[j], 1),
        "interpolated": arrived_at != cur.ts}))
    trip.inside_stop = j
    if departed_at is not None:  # passed between two pings
        _depart(trip, j, departed_at, cur.progress_m, cfg, out, seen_inside=False)


def _depart(trip: TripState, k: int, departed_at: float, progress_m: float, cfg: TrackerConfig,
            out: list[StopEvent], seen_inside: bool = True) -> None:
    stop = trip.stops[k]
    assert stop.arrived_at is not None
    departed_at = max(departed_at, stop.arrived_at)
    dwell = departed_at - stop.arrived_at
    stop.departed_at, stop.exit_at = departed_at, None
    stop.stopped = stop.stopped or (seen_inside and dwell >= cfg.stopped_min_dwell_s)
    trip.inside_stop = None
    out.append(StopEvent("stop_departed", departed_at, k, {
        "sequence": k, "progress_m": round(progress_m, 1), "arrived_at": stop.arrived_at,
        "dwell_s": round(dwell, 1), "stopped": stop.stopped}))


def _miss(trip: TripState, j: int, ts: float, progress_m: float, reason: str,
          out: list[StopEvent]) -> None:
    trip.stops[j].status = "missed"
    out.append(StopEvent("stop_missed", ts, j, {
        "sequence": j, "progress_m": round(progress_m, 1),
        "scheduled_at": trip.scheduled_at[j], "reason": reason}))


def _miss_before(trip: TripState, j: int, arrived_at: float, cur: Fix, cfg: TrackerConfig,
                 out: list[StopEvent]) -> None:
    """A later stop is being visited: close the one we were in, and any never reached."""
    if trip.inside_stop is not None and trip.inside_stop < j:
        k = trip.inside_stop
        exit_at = trip.stops[k].exit_at
        left = min(exit_at, arrived_at) if exit_at is not None else arrived_at
        _depart(trip, k, left, cur.progress_m, cfg, out)
    for i in range(j):
        if trip.stops[i].status == "upcoming":
            _miss(trip, i, arrived_at, cur.progress_m, "later_stop_visited", out)
