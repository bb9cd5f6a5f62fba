"""The tracker: one vehicle's pings in, its state advanced, its events out.

``track`` is a pure function of ``(ctx, state, pings, cfg)``. Pings are sorted by their own
timestamps; pings at or before what the state has already processed are ignored (a late backlog
never moves a trip backwards; the audit, recomputed from all stored pings, is the ground truth).
The per-ping loop does only scalar bookkeeping: projections, offsets, hop lengths and
segment candidates are computed for the whole batch with numpy/Shapely first.

Order of detectors per ping: overspeed, school geofences (teacher trips, meal deliveries), then
the trip (timeout, progress, deviation, stops, completion, start of the next run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from routing.config import DEFAULT, TrackerConfig
from routing.deviation import detect_deviation, end_deviation
from routing.eta import segment_seconds
from routing.geometry import RouteGeometry, route_geometry, segments_m
from routing.live import live_view, route_index_of, route_of
from routing.meal_deliveries import detect_meal_delivery
from routing.model import Event, Ping, VehicleContext
from routing.overspeed import detect_overspeed, ping_speed_kmh
from routing.progress import ProjectedBatch, advance, snap
from routing.run_matching import open_windows, run_windows, trip_id_for
from routing.state import StopState, TerminalVisit, TrackerState, TripState, moved_at
from routing.stop_arrival import Fix, StopEvent, detect_stops, miss_remaining
from routing.teacher_trips import (
    detect_teacher_trip,
    leg_details,
    school_distances,
    step_geofence,
    step_school_leg,
)
from routing.trip_end import TripEnd, arrive_last, trip_end
from routing.trip_start import (
    Departure,
    available,
    claim_key,
    departure,
    implied_departure,
    nearest,
    passed_events,
    passed_on_streak,
    record_terminals,
    run_score,
    unobserved_before,
    zone_of,
)

__all__ = ["OnPing", "TrackerState", "live_view", "moved_at", "route_of",
           "sorted_unique", "track", "track_owned", "trip_id_for"]


def sorted_unique(pings: Sequence[Ping]) -> list[Ping]:
    """Pings in timestamp order, one per ``ts`` (the same one whatever the input order)."""
    def key(p: Ping) -> tuple[Any, ...]:
        return (p.ts, p.lat, p.lon, *((v is None, v or 0.0) for v in
                                      (p.speed_kmh, p.heading_deg, p.accuracy_m)))
    ordered = sorted(pings, key=attrgetter("ts"))
    if all(a.ts != b.ts for a, b in zip(ordered, ordered[1:], strict=False)):
        return ordered
    out: list[Ping] = []
    for p in sorted(pings, key=key):
        if not out or p.ts != out[-1].ts:
            out.append(p)
    return out


#: Called after each ping that leaves the vehicle on a trip, with the state as of that ping
#: (``state.last_ts`` is the ping's ``ts``): per-ping ETAs in event time. It must not keep or
#: change the state (read what it needs there and then).
OnPing = Callable[[TrackerState], None]


def track(ctx: VehicleContext, state: TrackerState | None, pings: Sequence[Ping],
          cfg: TrackerConfig = DEFAULT, on_ping: OnPing | None = None
          ) -> tuple[TrackerState, list[Event]]:
    """Advance a vehicle's tracker by a batch of pings.

    Parameters
    ----------
    ctx : VehicleContext
        The vehicle, its routes, the schools, the calendar.
    state : TrackerState or None
        What the previous batch left (``None`` for a vehicle never seen). Not mutated.
    pings : sequence of Ping
        Validated pings in any order, possibly older than the state (those are ignored).
    cfg : TrackerConfig
        Tunables.
    on_ping : callable, optional
        :data:`OnPing`, after every ping on a trip (ETAs per ping, not per batch).

    Returns
    -------
    tuple
        The new state and the events, in the order they were concluded.
    """
    st = TrackerState.from_dict(state.to_dict()) if state is not None else TrackerState()
    return track_owned(ctx, st, pings, cfg, on_ping)


def track_owned(ctx: VehicleContext, state: TrackerState | None, pings: Sequence[Ping],
                cfg: TrackerConfig = DEFAULT, on_ping: OnPing | None = None
                ) -> tuple[TrackerState, list[Event]]:
    """:func:`track` for a caller that owns ``state`` and lets go of it: the state is advanced
    in place and returned instead of copied first (the ingest reads each state from the database
    for one call; the copy was a tenth of its tracking time). Same results as :func:`track`."""
    st = state if state is not None else TrackerState()
    fresh = [p for p in sorted_unique(pings) if st.last_ts is None or p.ts > st.last_ts]
    if not fresh:
        return st, []
    batch = _Batch(ctx, st, fresh, cfg)
    batch.on_ping = on_ping
    batch.run()
    return st, batch.events


class _Batch:
    """One call of :func:`track`: vectorised precomputation, then the per-ping loop."""

    def __init__(self, ctx: VehicleContext, st: TrackerState, fresh: list[Ping],
                 cfg: TrackerConfig):
        self.ctx, self.st, self.fresh, self.cfg = ctx, st, fresh, cfg
        self.events: list[Event] = []
        self.on_ping: OnPing | None = None
        self.base = 0 if st.last_lat is None or st.last_lon is None or st.last_ts is None else 1
        lat = [p.lat for p in fresh]
        lon = [p.lon for p in fresh]
        ts = [p.ts for p in fresh]
        if st.last_lat is not None and st.last_lon is not None and st.last_ts is not None:
            lat, lon, ts = [st.last_lat, *lat], [st.last_lon, *lon], [st.last_ts, *ts]
        self.lat = np.array(lat, dtype=np.float64)
        self.lon = np.array(lon, dtype=np.float64)
        self.ts = ts
        self.hops = segments_m(self.lat, self.lon)
        self._batches: dict[int, ProjectedBatch] = {}
        self.windows = run_windows(ctx, ts[0], ts[-1], cfg)
        self.window_bounds = [(w.opens_at, w.closes_at) for w in self.windows]
        self.route_index = {r.id: k for k, r in enumerate(ctx.routes)}
        self.school_d = (school_distances(ctx.schools, self.lat, self.lon)
                         if ctx.kind in ("teacher_car", "meal_truck") else None)
        # first stops of the routes a trip may start on in this batch: terminal visits
        firsts = {w.route.stops[0].id: w.route.stops[0] for w in self.windows}
        self.first_stops = {i: (p.radius_m, zone_of(p.radius_m, cfg)) for i, p in firsts.items()}
        self.first_d = school_distances(tuple(firsts.values()), self.lat, self.lon) \
            if firsts else None
        self.first_ids = list(firsts)
        # pings near a first stop (and the ping after, which may leave it): the others skip it
        self.first_near: list[bool] = []
        if self.first_d is not None:
            zones = np.array([z for _, z in self.first_stops.values()])
            near = (self.first_d <= zones[None, :]).any(axis=1)
            near[1:] |= near[:-1]
            self.first_near = near.tolist()

    def projected(self, route_index: int) -> ProjectedBatch:
        b = self._batches.get(route_index)
        if b is None:
            geom = route_geometry(self.ctx.routes[route_index])
            b = self._batches[route_index] = ProjectedBatch(geom, self.lat, self.lon)
        return b

    def emit(self, kind: str, ts: float, trip: TripState | None = None, stop_id: str | None = None,
             details: dict[str, Any] | None = None,
             ids: Sequence[str | None] | None = None) -> None:
        route_id, trip_id, run_id = ids if ids is not None else (
            (trip.route_id, trip.trip_id, trip.run_id) if trip else (None, None, None))
        self.events.append(Event(kind=kind, ts=ts, vehicle_id=self.ctx.vehicle_id,
                                 route_id=route_id, trip_id=trip_id, run_id=run_id,
                                 stop_id=stop_id, details=details or {}))

    def run(self) -> None:
        st = self.st
        for i, p in enumerate(self.fresh):
            k = self.base + i
            prev = k - 1 if k >= 1 else None
            hop = float(self.hops[prev]) if prev is not None else None
            dt = self.ts[k] - self.ts[prev] if prev is not None else None
            speed = ping_speed_kmh(p.speed_kmh, hop, dt, self.cfg)
            self.overspeed(p.ts, speed)
            if self.school_d is not None:
                self.schools(k, prev, hop or 0.0)
            if self.first_d is not None and (self.first_near[k] or self.st.terminals):
                self.terminals(k, prev)
            self.trip_step(k, prev, hop or 0.0, speed)
            st.last_ts, st.last_lat, st.last_lon = p.ts, p.lat, p.lon
            st.last_speed_kmh, st.last_heading_deg = speed, p.heading_deg
            if self.on_ping is not None and st.trip is not None:
                self.on_ping(st)

    # --- vehicle-level detectors ---------------------------------------------------------
    def overspeed(self, ts: float, speed: float | None) -> None:
        limit = self.ctx.speed_limit_kmh
        if limit is None:
            return
        st = self.st
        ids = list(st.overspeed_trip)
        for at, details in detect_overspeed(st.overspeed, ts, speed, limit, self.cfg):
            self.emit("overspeed", at, details=details, ids=ids)
        if st.overspeed.first_ts == ts:
            trip = st.trip
            st.overspeed_trip = [trip.route_id, trip.trip_id, trip.run_id] if trip else \
                [None, None, None]

    def schools(self, k: int, prev: int | None, hop: float) -> None:
        assert self.school_d is not None
        ctx, gs = self.ctx, self.st.geofence
        before = (self.ts[prev], float(self.lat[prev]), float(self.lon[prev])) \
            if prev is not None else None
        here = (self.ts[k], float(self.lat[k]), float(self.lon[k]))
        left, entered = step_geofence(gs, ctx.schools, self.school_d[k], before, here, self.cfg)
        if ctx.kind == "teacher_car":
            for at, to_id, details in detect_teacher_trip(ctx, gs, left, entered, here[0], hop,
                                                          self.cfg):
                self.emit("teacher_trip_completed", at, stop_id=to_id, details=details)
        else:
            for at, school_id, details in detect_meal_delivery(entered):
                self.emit("meal_delivery_arrived", at, stop_id=school_id, details=details)
            leg = step_school_leg(gs, left, entered, here[0], hop, self.cfg)
            if leg is not None and entered is not None:  # evidence for the finance grid
                self.emit("school_leg_completed", entered.at, stop_id=entered.school.id,
                          details=leg_details(ctx, leg, entered))

    def terminals(self, k: int, prev: int | None) -> None:
        assert self.first_d is not None
        if not self.first_near[k] and not any(  # away from every first stop, no circle open
                v.circle_in is not None and v.circle_out is None
                for v in self.st.terminals.values()):
            return
        here = dict(zip(self.first_ids, self.first_d[k].tolist(), strict=True))
        before = dict(zip(self.first_ids, self.first_d[prev].tolist(), strict=True)) \
            if prev is not None else None
        record_terminals(self.st, self.first_stops, here, before, self.ts[k],
                         self.ts[prev] if prev is not None else None, self.cfg)

    # --- trips ---------------------------------------------------------------------------
    def trip_step(self, k: int, prev: int | None, hop: float, speed: float | None) -> None:
        trip = self.st.trip
        ts = self.ts[k]
        if trip is not None:
            index = self.route_index.get(trip.route_id)
            deadline = trip.scheduled_at[-1] + self.cfg.trip_timeout_slack_s
            if index is None:
                self.complete(trip, ts, "route_removed")
            elif ts > deadline:
                self.complete(trip, deadline, "timeout")
            elif self.taken_over(trip, ts):
                self.complete(trip, moved_at(trip), "handed_over", remaining="unobserved")
            else:
                self.advance(trip, self.projected(index), k, prev, hop, speed)
        trip = self.st.trip
        if self.windows and (trip is None or self.near_end(trip)):
            self.try_start(k, prev, speed)

    def taken_over(self, trip: TripState, ts: float) -> bool:
        """Another vehicle drives this pool run on after this one's device went quiet."""
        if trip.route_id not in self.ctx.pool_route_ids:
            return False
        claim = self.ctx.claims.get(claim_key(trip.run_id, trip.service_date))
        return claim is not None and claim.vehicle_id != self.ctx.vehicle_id \
            and claim.progress_ts > moved_at(trip) and ts - moved_at(trip) > \
            self.cfg.claim_stale_s

    def near_end(self, trip: TripState) -> bool:
        """Past the last stop but one, near enough to the last that the next run may begin."""
        index = self.route_index.get(trip.route_id)
        if index is None:
            return False
        geom = self.projected(index).geom
        place = geom.route.stops[-1]
        return trip.progress_m >= geom.stop_along[-1] - place.radius_m - \
            self.cfg.stop_progress_tolerance_m

    def advance(self, trip: TripState, b: ProjectedBatch, k: int, prev: int | None, hop: float,
                speed: float | None, first: bool = False) -> None:
        geom, cfg, ts = b.geom, self.cfg, self.ts[k]
        corridor = geom.route.corridor_m
        offset = b.offsets[k]
        on_route = offset <= corridor
        before = None
        if not first and prev is not None:
            before = Fix(self.ts[prev], b.xs[prev], b.ys[prev], trip.progress_m,
                         trip.last_on_route, None)
            new = advance(b, k, trip.progress_m, ts - trip.progress_ts, corridor, cfg)
            if new is not None:
                if new >= trip.progress_m + 1.0:
                    trip.moved_ts = ts
                trip.progress_m, trip.progress_ts = new, ts
            trip.distance_m += hop
        trip.ping_count += 1
        if speed is not None:
            trip.max_speed_kmh = max(trip.max_speed_kmh or 0.0, speed)
        end = trip_end(trip, geom, b.xs[k], b.ys[k], ts, on_route, cfg)
        if end is not None:  # at the terminal, or leaving the route there: no deviation
            self.finish_at_end(trip, geom, end)
            return
        for kind, at, details in detect_deviation(trip, ts, offset, corridor, cfg):
            self.emit(kind, at, trip, details=details)
        here = Fix(ts, b.xs[k], b.ys[k], trip.progress_m, on_route, speed)
        self.stop_events(trip, geom, detect_stops(trip, geom, before, here, cfg))
        trip.last_on_route = on_route
        dev = trip.deviation
        if dev.active and dev.first_ts is not None and \
                ts - dev.first_ts >= cfg.trip_abandon_off_route_s:
            self.complete(trip, ts, "abandoned")
        elif trip.stops[-1].status == "visited":
            last = trip.stops[-1].arrived_at
            self.complete(trip, last if last is not None else ts, "last_stop")
        elif trip.stops[-1].status == "missed" and trip.inside_stop is None:
            self.complete(trip, ts, "all_stops_done")  # stops settle in order: all are done

    def finish_at_end(self, trip: TripState, geom: RouteGeometry, end: TripEnd) -> None:
        """Close a trip that ended near its last stop without entering its circle."""
        if end.arrived_at is not None:
            self.stop_events(trip, geom, arrive_last(trip, end.arrived_at, cfg=self.cfg))
        self.complete(trip, end.arrived_at if end.arrived_at is not None else end.ts,
                      end.reason)

    def stop_events(self, trip: TripState, geom: RouteGeometry, found: list[StopEvent]) -> None:
        for e in found:
            self.emit(e.kind, e.ts, trip, stop_id=geom.route.stops[e.index].id, details=e.details)

    def complete(self, trip: TripState, ts: float, reason: str,
                 remaining: str = "missed") -> None:
        index = route_index_of(self.ctx, trip.route_id)
        if remaining == "unobserved":
            for s in trip.stops:
                if s.status == "upcoming":
                    s.status = "unobserved"
        elif index is not None:
            self.stop_events(trip, route_geometry(self.ctx.routes[index]),
                             miss_remaining(trip, ts, reason))
        for kind, at, details in end_deviation(trip, ts, reason):
            self.emit(kind, at, trip, details=details)
        visited = [s for s in trip.stops if s.status == "visited"]
        self.emit("trip_completed", ts, trip, details={
            "reason": reason, "service_date": trip.service_date, "started_at": trip.started_at,
            "duration_s": round(ts - trip.started_at, 1),
            "distance_km": round(trip.distance_m / 1000, 3),
            "max_speed_kmh": None if trip.max_speed_kmh is None else round(trip.max_speed_kmh, 1),
            "stops_visited": len(visited),
            "stops_missed": sum(s.status == "missed" for s in trip.stops),
            "unobserved": [j for j, s in enumerate(trip.stops) if s.status == "unobserved"],
            "segment_s": segment_seconds(trip.stops),
            "late_s": None if trip.stops[-1].arrived_at is None else
            round(trip.stops[-1].arrived_at - trip.scheduled_at[-1], 1),
            "ping_count": trip.ping_count})
        self.st.joining.clear()  # a departure or join is judged afresh after a trip
        done = self.st.done_trips
        done.append(trip.trip_id)
        del done[: max(0, len(done) - self.cfg.done_trips_kept)]
        self.st.trip = None

    def try_start(self, k: int, prev: int | None, speed: float | None) -> None:
        ts, cfg, st = self.ts[k], self.cfg, self.st
        # most pings of a day fall in no start window (a parked bus): answer those cheaply
        if not any(lo <= ts <= hi for lo, hi in self.window_bounds):
            return
        current = st.trip
        found: dict[int, tuple[float, float | None, TerminalVisit | None] | None] = {}
        candidates = []
        for w in open_windows(self.windows, ts, set(st.done_trips)):
            if current is not None and w.trip_id == current.trip_id:
                continue
            if not available(self.ctx, w, ts, cfg):
                continue
            if w.route_index not in found:
                found[w.route_index] = departure(self.projected(w.route_index), w.route, k,
                                                 ts, self.fresh[k - self.base].speed_kmh, st,
                                                 cfg, allow_join=current is None)
            dep = found[w.route_index]
            if dep is None:
                continue
            along, departed_at, visit = dep
            if departed_at is None:  # a mid-route join: when the timetable says it left
                departed_at = implied_departure(self.projected(w.route_index).geom.stop_along,
                                                w.scheduled_at, along, ts)
                if w.first_at - departed_at > cfg.trip_join_max_early_s:
                    continue  # far ahead of this run's timetable: not this run (yet)
            candidates.append(Departure(w, along, departed_at, visit,
                                        run_score(w, departed_at, cfg)))
        best = nearest(candidates, self.ctx.pool_route_ids, cfg, self.ctx.vehicle_id)
        if best is None:
            return
        if current is not None:  # the next run began before this one was seen to end
            geom = route_geometry(self.ctx.routes[self.route_index[current.route_id]])
            end = trip_end(current, geom, None, None, current.progress_ts, False, cfg,
                           force="next_trip")
            assert end is not None
            self.finish_at_end(current, geom, end)
        self.start(best, k, prev, speed)

    def start(self, dep: Departure, k: int, prev: int | None, speed: float | None) -> None:
        w, cfg, ts = dep.window, self.cfg, self.ts[k]
        b = self.projected(w.route_index)
        geom = b.geom
        stops = [StopState() for _ in w.route.stops]
        visit = dep.visit
        if visit is not None:  # departed from the first stop: it was visited
            arrived = visit.circle_in if visit.circle_in is not None else visit.zone_in
            arrived = min(max(arrived, w.first_at - cfg.trip_start_before_s), dep.departed_at)
            stops[0] = StopState(status="visited", arrived_at=arrived,
                                 departed_at=dep.departed_at, stopped=True)
            started_at, unobserved = arrived, 0
        else:  # joined mid-route: the stops behind it were not seen, neither visited nor missed
            radii = [p.radius_m for p in w.route.stops]
            unobserved = unobserved_before(geom.stop_along, radii, dep.progress_m)
            streak = self.st.joining.get(w.route.id)
            passed = passed_on_streak(streak[5] if streak and len(streak) > 5 else [],
                                      geom.stop_along, radii, dep.progress_m)
            for j in range(unobserved):
                if j in passed:  # ... except those passed while the join was being confirmed
                    stops[j] = StopState(status="visited", arrived_at=passed[j][0],
                                         departed_at=passed[j][1])
                else:
                    stops[j].status = "unobserved"
            started_at = min([ts, *(a for a, _ in passed.values())])
        trip = TripState(
            trip_id=w.trip_id, route_id=w.route.id, run_id=w.run.id,
            service_date=w.service_date.isoformat(), started_at=started_at,
            scheduled_at=list(w.scheduled_at), progress_m=dep.progress_m, progress_ts=ts,
            stops=stops)
        self.st.trip = trip
        if visit is not None:  # a visit is left once: the next departure needs a visit of its own
            self.st.terminals.pop(w.route.stops[0].id, None)
        self.emit("trip_started", started_at, trip, details={
            "service_date": trip.service_date, "scheduled_start_at": w.first_at,
            "delay_s": round(dep.departed_at - w.first_at, 1),
            "departed_at": round(dep.departed_at, 3), "progress_m": round(dep.progress_m, 1),
            "joined": visit is None,
            "unobserved": [j for j, s in enumerate(stops) if s.status == "unobserved"]})
        self.st.joining.clear()
        for j, s in enumerate(stops):  # stops passed before the join was sure
            if visit is None and s.status == "visited" and s.arrived_at is not None and \
                    s.departed_at is not None:
                self.stop_events(trip, geom, passed_events(trip, j, s, geom))
        if visit is not None:
            s0 = stops[0]
            assert s0.arrived_at is not None and s0.departed_at is not None
            self.stop_events(trip, geom, [
                StopEvent("stop_arrived", s0.arrived_at, 0, {
                    "sequence": 0, "progress_m": round(geom.stop_along[0], 1),
                    "scheduled_at": w.first_at, "late_s": round(s0.arrived_at - w.first_at, 1),
                    "interpolated": True}),
                StopEvent("stop_departed", s0.departed_at, 0, {
                    "sequence": 0, "progress_m": round(geom.stop_along[0], 1),
                    "arrived_at": s0.arrived_at,
                    "dwell_s": round(s0.departed_at - s0.arrived_at, 1), "stopped": True})])
        if prev is not None and visit is not None:
            # stops between the first and here, passed between the two departure pings
            before, _ = snap(b, prev, 0.0, dep.progress_m, 0.0, cfg)
            trip.progress_m, trip.progress_ts = min(before, dep.progress_m), self.ts[prev]
            trip.distance_m = max(trip.progress_m - geom.stop_along[0], 0.0)  # driven so far
            self.advance(trip, b, k, prev, float(self.hops[prev]), speed)
        else:
            self.advance(trip, b, k, None, 0.0, speed, first=True)
