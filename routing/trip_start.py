"""When a trip starts, and which run it is: decided on departure, not on arrival.

A bus reaches the first stop of its next run early and lays over there (at the school gate, at a
terminal a few dozen metres off the stop). The run it is about to drive is the one whose
scheduled departure is nearest to when it *leaves*, not to when it arrived: a bus arriving at
07:10 for a 10-minute layover drives the 07:20 run, not the 07:05 one. So:

* every ping near the first stop of a route with an open start window is remembered as a
  **terminal visit** of the vehicle (:class:`~routing.state.TerminalVisit`), whatever trip it is
  on: when two runs share a terminal, the trip ending there does not consume the visit the next
  trip starts from;
* a trip starts when the vehicle **departs along the route**: on the path, past the first stop's
  circle by ``trip_depart_margin_m`` and moving forward, within ``terminal_memory_s`` of a
  terminal visit. Its first stop is then visited (arrival and
  departure taken from the terminal visit) and its run is the one whose scheduled start is
  nearest to the departure, a late departure preferred to an early one;
* a vehicle first seen **mid-route** (a phone switched on late, an ingest down at the start)
  starts the trip once it has gone ``trip_join_min_progress_m`` forward along the path; the stops
  behind it are ``unobserved``, not missed, and the run is chosen by the departure time the
  timetable implies for where it is;
* a run **planned for the vehicle** (``Run.vehicle_id``, its block) is its own: it wins over
  any other run that fits, so buses that leave in another order than planned keep their runs;
* runs of a **pool route** (one listed by several vehicles) are driven by one vehicle per day: a
  run another vehicle holds (:class:`~routing.model.RunClaim`) is not a candidate unless that
  vehicle has made no progress on it for ``claim_stale_s`` (its device froze, another bus took
  over).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from routing.config import TrackerConfig
from routing.geometry import RouteGeometry
from routing.model import Route, RunClaim, VehicleContext
from routing.progress import ProjectedBatch, snap
from routing.run_matching import RunWindow
from routing.state import StopState, TerminalVisit, TrackerState, TripState
from routing.stop_arrival import StopEvent


@dataclass(frozen=True, slots=True)
class Departure:
    """A start the tracker has decided on."""

    window: RunWindow
    progress_m: float  # where along the route the vehicle is now
    departed_at: float  # when it left the first stop (estimated for a late join)
    visit: TerminalVisit | None  # the terminal visit it departed from (None: late join)
    score: float  # how well the departure fits the run's scheduled start (lower is better)


#: points of a streak's track kept (an hour of 30 s pings, ten minutes at 5 s)
STREAK_TRACK_KEPT = 120


def record_terminals(st: TrackerState, first_stops: dict[str, tuple[float, float]],
                     distances: dict[str, float], prev_distances: dict[str, float] | None,
                     ts: float, prev_ts: float | None, cfg: TrackerConfig) -> None:
    """Update the vehicle's terminal visits with one ping.

    ``first_stops`` maps a first stop's id to ``(radius_m, zone_m)``; ``distances`` gives the
    ping's distance to each, ``prev_distances`` the previous ping's (for interpolated crossings).
    """
    for stop_id, (radius, zone) in first_stops.items():
        d = distances[stop_id]
        visit = st.terminals.get(stop_id)
        if d > zone:
            if visit is not None and visit.circle_in is not None and visit.circle_out is None:
                visit.circle_out = _crossing(prev_distances, stop_id, radius, d, ts, prev_ts)
            continue
        if visit is None or ts - visit.zone_last > cfg.terminal_memory_s:
            visit = st.terminals[stop_id] = TerminalVisit(zone_in=ts, zone_last=ts)
        visit.zone_last = ts
        if d <= radius:
            if visit.circle_in is None or visit.circle_out is not None:
                if visit.circle_in is None:
                    visit.circle_in = _crossing(prev_distances, stop_id, radius, d, ts, prev_ts,
                                                entering=True)
                visit.circle_out = None
        elif visit.circle_in is not None and visit.circle_out is None:
            visit.circle_out = _crossing(prev_distances, stop_id, radius, d, ts, prev_ts)
    stale = [k for k, v in st.terminals.items() if ts - v.zone_last > cfg.terminal_memory_s]
    for k in stale:
        del st.terminals[k]


def _crossing(prev: dict[str, float] | None, stop_id: str, radius: float, d: float, ts: float,
              prev_ts: float | None, entering: bool = False) -> float:
    """When the vehicle crossed the circle, interpolated on distance between two pings."""
    if prev is None or prev_ts is None or stop_id not in prev:
        return ts
    d0 = prev[stop_id]
    if entering and d0 > radius >= d or not entering and d0 <= radius < d:
        return prev_ts + (radius - d0) / (d - d0) * (ts - prev_ts)
    return ts if entering else prev_ts


def available(ctx: VehicleContext, w: RunWindow, ts: float, cfg: TrackerConfig) -> bool:
    """Whether the vehicle may take this run instance (pool routes: not held by another)."""
    if w.route.id not in ctx.pool_route_ids:
        return True
    claim = ctx.claims.get(claim_key(w.run.id, w.service_date.isoformat()))
    return claim is None or claim.vehicle_id == ctx.vehicle_id or stale(claim, ts, cfg)


def stale(claim: RunClaim, ts: float, cfg: TrackerConfig) -> bool:
    """A claim of a trip still open whose vehicle has made no progress for ``claim_stale_s``."""
    return not claim.done and ts - claim.progress_ts > cfg.claim_stale_s


def claim_key(run_id: str, service_date: str) -> str:
    """How :attr:`VehicleContext.claims` is keyed: ``"2026-11-23/zt-am-1"``."""
    return f"{service_date}/{run_id}"


def run_score(w: RunWindow, departed_at: float, cfg: TrackerConfig) -> float:
    """Seconds between the departure and the run's scheduled start; past ``run_early_grace_s``
    an early departure counts ``run_early_weight`` times (a bus leaves minutes late far more
    often than minutes early: a bus 6 min late for the 07:16 is not 2 min early for the 07:24).

    >>> from routing.config import DEFAULT
    >>> w = lambda first: RunWindow(0, None, None, None, (first,), 0.0, 0.0, "")  # type: ignore
    >>> run_score(w(1000.0), 1360.0, DEFAULT), run_score(w(1480.0), 1360.0, DEFAULT)
    (360.0, 660.0)
    """
    late = departed_at - w.first_at
    if late >= 0:
        return late
    early = -late
    return early if early <= cfg.run_early_grace_s else \
        cfg.run_early_grace_s + (early - cfg.run_early_grace_s) * cfg.run_early_weight


def departure(b: ProjectedBatch, route: Route, k: int, ts: float, speed_kmh: float | None,
              st: TrackerState, cfg: TrackerConfig, allow_join: bool) -> tuple[float, float | None, TerminalVisit | None] | None:
    """``(progress_m, departed_at, visit)`` when ping ``k`` shows the vehicle leaving the first
    stop of ``route`` along it; ``(progress_m, None, None)`` when it has joined the route
    mid-way (the caller estimates the departure per run); ``None`` otherwise.

    Forward movement is judged over a streak of pings on the path (``st.joining``), not between
    two pings: at 1 Hz a bus pulling out moves a few metres a ping, as much as GPS noise.
    """
    geom = b.geom
    first = route.stops[0]
    a0 = geom.stop_along[0]
    sx, sy = geom.stop_xy[0]
    d_first = math.hypot(b.xs[k] - sx, b.ys[k] - sy)
    zone = zone_of(first.radius_m, cfg)
    if d_first <= zone:  # at the terminal: the start of the path (a loop also ends here)
        along, d = snap(b, k, 0.0, a0 + zone + cfg.progress_window_m, 0.0, cfg)
    else:
        along, d = snap(b, k, 0.0, geom.length_m, geom.length_m, cfg)  # nearest anywhere
    if d > route.corridor_m:
        st.joining.pop(route.id, None)
        return None
    streak = st.joining.get(route.id)
    if streak is None or len(streak) < 6 or ts - streak[2] > cfg.episode_max_gap_s or \
            along < streak[3] - cfg.progress_back_m:
        streak = st.joining[route.id] = [ts, along, ts, along, along, []]
    elif along - streak[4] < cfg.trip_moving_mps * (ts - streak[2]):
        streak[0] = ts  # standing (or creeping): the vehicle has not set off yet
    streak[2], streak[3], streak[4] = ts, max(streak[3], along), along
    track = streak[5]
    if not track or along > track[-1][1]:
        track.append([ts, along])  # where it went when: stops passed before a join was sure
        del track[:max(0, len(track) - STREAK_TRACK_KEPT)]
    moved = along - streak[1]
    left_stop = first.radius_m + cfg.trip_depart_margin_m
    if along < a0 + left_stop or d_first < left_stop or moved < cfg.trip_start_min_move_m:
        return None
    # a GPS jump of a standing bus is no departure: the fix must sit on the road and, where the
    # device reports its speed, the bus must be moving
    if d > cfg.trip_depart_max_offset_m or (speed_kmh is not None and
                                            speed_kmh <= cfg.stopped_max_speed_kmh):
        return None
    visit = st.terminals.get(first.id)
    if visit is not None and ts - visit.zone_last <= cfg.terminal_memory_s:
        # it left when it set off, or when it left the stop's circle if that came later (a bus
        # that drove through the circle to lay over beyond it left when it set off again)
        left = streak[0] if visit.circle_out is None else max(visit.circle_out, streak[0])
        return along, min(left, ts), visit
    if not allow_join or moved < cfg.trip_join_min_progress_m:
        return None
    return along, None, None


def passed_on_streak(track: list[list[float]], stop_along: tuple[float, ...],
                     radii: list[float], along: float) -> dict[int, tuple[float, float]]:
    """Stops the vehicle passed while a mid-route join was being confirmed: ``{index: (arrived,
    departed)}`` interpolated on the streak's ``[ts, progress_m]`` track (entering and leaving
    the stop's radius along the path), for stops wholly between its first point and ``along``."""
    out: dict[int, tuple[float, float]] = {}
    if len(track) < 2:
        return out
    ts = [p[0] for p in track]
    at = [p[1] for p in track]
    for j, (a, r) in enumerate(zip(stop_along, radii, strict=True)):
        if a - r >= at[0] and a + r < min(along, at[-1]):
            out[j] = (_time_at(ts, at, a - r), _time_at(ts, at, a + r))
    return out


def _time_at(ts: list[float], at: list[float], a: float) -> float:
    k = 1
    while k < len(at) - 1 and at[k] < a:
        k += 1
    span = at[k] - at[k - 1]
    f = 0.0 if span <= 0 else min(max((a - at[k - 1]) / span, 0.0), 1.0)
    return ts[k - 1] + f * (ts[k] - ts[k - 1])


def implied_departure(stop_along: tuple[float, ...], scheduled: tuple[float, ...],
                      along: float, ts: float) -> float:
    """When the vehicle left the first stop, if it has kept the timetable's pace since."""
    j = 0
    while j + 1 < len(stop_along) - 1 and stop_along[j + 1] <= along:
        j += 1
    span = stop_along[j + 1] - stop_along[j]
    f = 0.0 if span <= 0 else min(max((along - stop_along[j]) / span, 0.0), 1.0)
    at = scheduled[j] + f * (scheduled[j + 1] - scheduled[j])
    return ts - (at - scheduled[0])


def unobserved_before(stop_along: tuple[float, ...], radii: list[float], along: float) -> int:
    """How many leading stops a vehicle joining at ``along`` can no longer be seen at."""
    n = 0
    while n < len(stop_along) and stop_along[n] + radii[n] < along:
        n += 1
    return n


def nearest(candidates: list[Departure], pool: frozenset[str] = frozenset(),
            cfg: TrackerConfig | None = None, vehicle_id: str | None = None
            ) -> Departure | None:
    """The best departure: the run whose scheduled start fits best.

    A run planned for this vehicle (its block, ``Run.vehicle_id``) wins over any other that
    fits: two buses of a pool that leave in the other order than their timetables (one late, the
    next early) each keep their own run. Otherwise runs planned for no vehicle come before runs
    planned for another (a spare bus taking over a block takes what is left).

    Among those, on a pool route every run is driven by some bus, so a run already due and not
    taken is the next bus's, first come first served: the oldest such run (at most
    ``pool_due_late_s`` late) wins over a later one that fits the clock better. With 5-minute
    headways and buses leaving up to 6 minutes late, the nearest start alone gives the 06:16 to
    the bus that is late for the 06:11 and every bus after it the wrong run.
    """
    if vehicle_id is not None and candidates:
        def rank(c: Departure) -> int:
            planned = c.window.run.vehicle_id
            return 0 if planned == vehicle_id else 1 if planned is None else 2
        first = min(rank(c) for c in candidates)
        candidates = [c for c in candidates if rank(c) == first]
        if first == 0:
            return min(candidates, key=lambda c: (c.score, c.window.route_index,
                                                  c.window.run.id))
    if cfg is not None:
        due = [c for c in candidates if c.window.route.id in pool and
               0.0 <= c.departed_at - c.window.first_at <= cfg.pool_due_late_s]
        if due:
            return min(due, key=lambda c: (c.window.first_at, c.window.route_index,
                                           c.window.run.id))
    return min(candidates, key=lambda c: (c.score, c.window.route_index, c.window.run.id),
               default=None)


def zone_of(radius_m: float, cfg: TrackerConfig) -> float:
    """How near a first stop counts as being at the terminal."""
    return radius_m + cfg.trip_start_margin_m


def passed_events(trip: TripState, j: int, s: StopState, geom: RouteGeometry) -> list[StopEvent]:
    """Arrival and departure of a stop visited before the trip started (interpolated)."""
    assert s.arrived_at is not None and s.departed_at is not None
    at = round(geom.stop_along[j], 1)
    return [StopEvent("stop_arrived", s.arrived_at, j, {
                "sequence": j, "progress_m": at, "scheduled_at": trip.scheduled_at[j],
                "late_s": round(s.arrived_at - trip.scheduled_at[j], 1), "interpolated": True}),
            StopEvent("stop_departed", s.departed_at, j, {
                "sequence": j, "progress_m": at, "arrived_at": s.arrived_at,
                "dwell_s": round(s.departed_at - s.arrived_at, 1), "stopped": False})]
