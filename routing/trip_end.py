"""How a trip ends when its vehicle never enters the last stop's circle.

A bus lays over at the terminal a few dozen metres off the stop, or its sparse pings stride past
the circle into a depot lot. Waiting for the circle kept such trips open until they timed out:
they swallowed the next run and raised deviations on the drive back. Near the end of its route
(progress within the stop tolerance of the last stop) a trip therefore also ends when the vehicle

* **stopped near the last stop**: within ``radius + trip_end_margin_m`` of it for
  ``trip_end_dwell_s`` — the stop is visited, at the vehicle's closest approach;
* **reached the end of the path** away from the stop;
* **left the route there** (off the corridor after being near the stop, or past its
  projection) — visited if it had come near, else missed;
* **began the next run** (:mod:`routing.trip_start` found a departure) — likewise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from routing.config import TrackerConfig
from routing.geometry import RouteGeometry
from routing.state import TripState
from routing.stop_arrival import StopEvent

#: metres short of the path's end that count as having reached it
END_OF_PATH_M = 15.0


@dataclass(frozen=True, slots=True)
class TripEnd:
    reason: str
    ts: float
    arrived_at: float | None  # when the last stop counts as reached (None: it was not)


def trip_end(trip: TripState, geom: RouteGeometry, x: float | None, y: float | None, ts: float,
             on_route: bool, cfg: TrackerConfig, force: str | None = None) -> TripEnd | None:
    """Feed one ping near the end of the route (``x``/``y`` in the route's frame); the end of the
    trip if this ping shows it, else ``None``. ``force`` ends it now for that reason."""
    last = trip.stops[-1]
    near = trip.end_near
    if force is not None:
        reached = near[2] if near is not None and last.status == "upcoming" else None
        return TripEnd(force, ts, reached)
    if last.status != "upcoming" or x is None or y is None:
        return None
    place = geom.route.stops[-1]
    a_last = geom.stop_along[-1]
    if trip.progress_m < a_last - place.radius_m - cfg.stop_progress_tolerance_m:
        return None
    sx, sy = geom.stop_xy[-1]
    d = math.hypot(x - sx, y - sy)
    if d <= place.radius_m:
        return None  # the stop detector sees it
    if d <= place.radius_m + cfg.trip_end_margin_m:
        if near is None:
            near = trip.end_near = [ts, d, ts]
        elif d < near[1]:
            near[1], near[2] = d, ts
        if ts - near[0] >= cfg.trip_end_dwell_s:
            return TripEnd("last_stop_near", ts, near[2])
    if trip.progress_m >= geom.length_m - END_OF_PATH_M and on_route and d > place.radius_m + \
            cfg.trip_end_margin_m:
        return TripEnd("end_of_path", ts, None)
    if not on_route and (near is not None or trip.progress_m >= a_last):
        return TripEnd("left_route_at_end", ts, near[2] if near is not None else None)
    return None


def arrive_last(trip: TripState, arrived_at: float, cfg: TrackerConfig) -> list[StopEvent]:
    """The last stop, reached just off its circle: visited at the closest approach."""
    j = len(trip.stops) - 1
    stop = trip.stops[j]
    stop.status, stop.arrived_at = "visited", arrived_at
    return [StopEvent("stop_arrived", arrived_at, j, {
        "sequence": j, "progress_m": round(trip.progress_m, 1),
        "scheduled_at": trip.scheduled_at[j], "late_s": round(arrived_at - trip.scheduled_at[j], 1),
        "interpolated": True, "near": True})]
