"""The daily audit: a day's trips recomputed from all stored pings, in timestamp order, with the
same tracker as live. It is the ground truth the live view approximates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from routing.config import DEFAULT, TrackerConfig
from routing.model import Event, Ping, TripAudit, VehicleContext
from routing.run_matching import run_windows
from routing.state import TrackerState
from routing.tracker import OnPing, route_of, track


def audit_day(ctx: VehicleContext, pings: Sequence[Ping], cfg: TrackerConfig = DEFAULT,
              service_date: dt.date | None = None) -> list[TripAudit]:
    """Recompute a day's trips from stored pings with the same code as live tracking (the
    audit's entry point, next to :func:`routing.tracker.track`): :func:`audit_trips`."""
    return audit_trips(ctx, pings, cfg, service_date)


def audit_trips(ctx: VehicleContext, pings: Sequence[Ping], cfg: TrackerConfig = DEFAULT,
                service_date: dt.date | None = None,
                on_ping: OnPing | None = None) -> list[TripAudit]:
    """Every trip found in ``pings`` (any order, duplicates by ``ts`` dropped), oldest first.

    Parameters
    ----------
    ctx : VehicleContext
        The vehicle as it is configured.
    pings : sequence of Ping
        The stored pings of the day (and, for runs past midnight, of the night after).
    cfg : TrackerConfig
        Tunables.
    service_date : datetime.date, optional
        Keep only trips of this service day.
    on_ping : callable, optional
        Called after every ping on a trip, as by :func:`routing.tracker.track` (the audit's
        ETA accuracy records its predictions this way, in the same pass).

    Returns
    -------
    list of TripAudit
        One per trip; a trip still running at the last ping has ``completed_at=None`` and its
        unreached stops ``upcoming``.
    """
    # track() puts the pings in timestamp order and drops duplicates itself (sorted_unique):
    # doing it here as well only walked a day's pings twice
    state, events = track(ctx, None, pings, cfg, on_ping)
    return trips_of(ctx, state, events, cfg, service_date)


def audit_fleet(contexts: Mapping[str, VehicleContext], pings: Mapping[str, Sequence[Ping]],
                cfg: TrackerConfig = DEFAULT,
                service_date: dt.date | None = None,
                on_ping: Mapping[str, OnPing] | None = None) -> dict[str, list[TripAudit]]:
    """:func:`audit_trips` for vehicles that share pool routes: tracked together in event time
    (:func:`routing.fleet.track_fleet`), so one vehicle drives each run as it did live;
    ``on_ping`` per vehicle id."""
    from routing.fleet import track_fleet

    states, events = track_fleet(contexts, pings, None, cfg, on_ping=on_ping)
    return {v: trips_of(contexts[v], states[v], events[v], cfg, service_date) for v in contexts}


def trips_of(ctx: VehicleContext, state: TrackerState, events: Sequence[Event],
             cfg: TrackerConfig = DEFAULT,
             service_date: dt.date | None = None) -> list[TripAudit]:
    """The trips a tracked day's events (and its final state) describe, oldest first."""
    by_trip: dict[str, list[Event]] = {}
    for e in events:
        if e.trip_id is not None:
            by_trip.setdefault(e.trip_id, []).append(e)
    audits = []
    for trip_id, trip_events in by_trip.items():
        started = next((e for e in trip_events if e.kind == "trip_started"), None)
        if started is None or started.route_id is None or started.run_id is None:
            continue  # an overspeed episode that began on a trip of an earlier batch
        day = dt.date.fromisoformat(started.details["service_date"])
        if service_date is not None and day != service_date:
            continue
        audits.append(_audit(ctx, state, trip_id, started, trip_events, day, cfg))
    return audits


def _audit(ctx: VehicleContext, state: TrackerState, trip_id: str, started: Event,
           events: list[Event], day: dt.date, cfg: TrackerConfig) -> TripAudit:
    done = next((e for e in events if e.kind == "trip_completed"), None)
    live = state.trip if state.trip is not None and state.trip.trip_id == trip_id else None
    route = route_of(ctx, started.route_id or "")
    stop_ids = [s.id for s in route.stops] if route else []
    scheduled = list(live.scheduled_at) if live else []
    if not scheduled and route is not None:
        windows = [w for w in run_windows(ctx, started.ts, started.ts, cfg)
                   if w.trip_id == trip_id]
        scheduled = list(windows[0].scheduled_at) if windows else []
    unobserved = set(started.details.get("unobserved") or ())
    if done is not None:
        unobserved.update(done.details.get("unobserved") or ())
    elif live is not None:
        unobserved.update(j for j, s in enumerate(live.stops) if s.status == "unobserved")
    stops = []
    for j, stop_id in enumerate(stop_ids):
        arrived = next((e.ts for e in events if e.kind == "stop_arrived"
                        and e.details.get("sequence") == j), None)
        departed = next((e.ts for e in events if e.kind == "stop_departed"
                         and e.details.get("sequence") == j), None)
        missed = any(e.kind == "stop_missed" and e.details.get("sequence") == j for e in events)
        at = scheduled[j] if j < len(scheduled) else None
        stops.append({
            "stop_id": stop_id, "scheduled_at": at, "arrived_at": arrived,
            "departed_at": departed,
            "status": "visited" if arrived is not None else "missed" if missed else
            "unobserved" if j in unobserved else "upcoming",
            "late_s": round(arrived - at, 1) if arrived is not None and at is not None else None})
    deviations: list[dict[str, object]] = []
    for e in events:
        if e.kind == "route_deviation_started":
            deviations.append({"started_at": e.ts, "ended_at": None,
                               "max_offset_m": e.details.get("max_offset_m")})
        elif e.kind == "route_deviation_ended" and deviations:
            deviations[-1].update(ended_at=e.ts, max_offset_m=e.details.get("max_offset_m"))
    if done is not None:
        distance_km, max_speed = done.details["distance_km"], done.details["max_speed_kmh"]
    else:
        distance_km = round(live.distance_m / 1000, 3) if live else 0.0
        max_speed = round(live.max_speed_kmh, 1) if live and live.max_speed_kmh else None
    return TripAudit(
        trip_id=trip_id, run_id=started.run_id or "", route_id=started.route_id or "",
        vehicle_id=ctx.vehicle_id, service_date=day, started_at=started.ts,
        completed_at=done.ts if done else None, distance_km=distance_km, max_speed_kmh=max_speed,
        stops=tuple(stops), deviations=tuple(deviations), events=tuple(events))
