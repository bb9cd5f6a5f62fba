"""A fleet tracked together: one vehicle per run of a pool route, as live and in the audit.

A route listed by several vehicles (a depot's pool, a spare bus) has each run driven by one of
them a day. Vehicles see each other's holds on runs through :attr:`VehicleContext.claims`, which
a :class:`ClaimBook` keeps from their tracker states: the trip each is on (with when it last made
progress) and the trips each has done. Live, the ingest builds the book from the stored states of
a batch's pool partners; the audit and the replay of a fleet's day feed every vehicle of a pool
through :func:`track_fleet` in event-time order, so both see the same holds at the same moments.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from routing.config import DEFAULT, TrackerConfig
from routing.model import Event, Ping, RunClaim, VehicleContext
from routing.run_matching import parse_trip_id
from routing.state import TrackerState
from routing.tracker import OnPing, moved_at, track_owned
from routing.trip_start import claim_key, stale

#: Event-time slice in which the vehicles of a pool are advanced one after the other (the ingest's
#: batches are shorter; a hold is taken when a bus departs, minutes apart between buses).
SLICE_S = 30.0


def pool_route_ids(routes_by_vehicle: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """For each vehicle, its routes that another vehicle lists too.

    >>> pool_route_ids({"a": ["r1", "r2"], "b": ["r2"], "c": ["r3"]})
    {'a': frozenset({'r2'}), 'b': frozenset({'r2'}), 'c': frozenset()}
    """
    count: dict[str, int] = defaultdict(int)
    for routes in routes_by_vehicle.values():
        for r in set(routes):
            count[r] += 1
    return {v: frozenset(r for r in routes if count[r] > 1)
            for v, routes in routes_by_vehicle.items()}


def with_pools(contexts: Mapping[str, VehicleContext]) -> dict[str, VehicleContext]:
    """The contexts with ``pool_route_ids`` set from the routes they list."""
    pools = pool_route_ids({v: [r.id for r in c.routes] for v, c in contexts.items()})
    return {v: dataclasses.replace(c, pool_route_ids=pools[v]) for v, c in contexts.items()}


class ClaimBook:
    """Every vehicle's holds on runs, as their tracker states show them."""

    def __init__(self, cfg: TrackerConfig = DEFAULT):
        self.cfg = cfg
        self.claims: dict[str, RunClaim] = {}
        self._held: dict[str, set[str]] = defaultdict(set)  # vehicle -> keys of open trips

    @classmethod
    def of(cls, states: Mapping[str, TrackerState | None],
           cfg: TrackerConfig = DEFAULT) -> ClaimBook:
        book = cls(cfg)
        for vehicle_id in sorted(states):
            state = states[vehicle_id]
            if state is not None:
                book.update(vehicle_id, state)
        return book

    def update(self, vehicle_id: str, state: TrackerState) -> None:
        """Take in what the vehicle's state now says."""
        for key in self._held.pop(vehicle_id, ()):
            claim = self.claims.get(key)
            if claim is not None and claim.vehicle_id == vehicle_id and not claim.done:
                del self.claims[key]  # its trip ended: the done list says how
        for trip_id in state.done_trips:
            parsed = parse_trip_id(trip_id, vehicle_id)
            if parsed is not None:
                key = claim_key(parsed[1], parsed[0].isoformat())
                self._put(key, RunClaim(vehicle_id, trip_id, state.last_ts or 0.0, done=True))
        trip = state.trip
        if trip is not None:
            key = claim_key(trip.run_id, trip.service_date)
            self._put(key, RunClaim(vehicle_id, trip.trip_id, moved_at(trip)))
            self._held[vehicle_id].add(key)

    def _put(self, key: str, claim: RunClaim) -> None:
        held = self.claims.get(key)
        if held is None or held.vehicle_id == claim.vehicle_id:
            if held is None or not held.done or claim.done:
                self.claims[key] = claim
        elif not held.done and (claim.done or stale(held, claim.progress_ts, self.cfg)):
            self.claims[key] = claim  # the other vehicle went quiet: this one took the run over


def track_fleet(contexts: Mapping[str, VehicleContext],
                pings: Mapping[str, Sequence[Ping]],
                states: Mapping[str, TrackerState | None] | None = None,
                cfg: TrackerConfig = DEFAULT,
                slice_s: float = SLICE_S,
                on_ping: Mapping[str, OnPing] | None = None
                ) -> tuple[dict[str, TrackerState], dict[str, list[Event]]]:
    """Track several vehicles together in event time, each seeing the others' holds on runs.

    Vehicles without pool routes are tracked in one call each (nothing of theirs depends on the
    others). The others advance slice by slice (``slice_s`` of event time), in vehicle-id order
    within a slice, each with the claims as the book holds them then. ``on_ping`` maps a vehicle
    id to the :data:`routing.tracker.OnPing` called after each of its pings on a trip.

    Returns
    -------
    tuple
        Each vehicle's final state and its events in the order they were concluded.
    """
    states = dict(states or {})
    out_states: dict[str, TrackerState] = {}
    events: dict[str, list[Event]] = {v: [] for v in contexts}
    pooled = sorted(v for v, c in contexts.items() if c.pool_route_ids)
    callbacks = on_ping or {}
    for vehicle_id in sorted(set(contexts) - set(pooled)):
        st, ev = track_owned(contexts[vehicle_id], _copy(states.get(vehicle_id)),
                             pings.get(vehicle_id, ()), cfg, callbacks.get(vehicle_id))
        out_states[vehicle_id], events[vehicle_id] = st, ev
    current = {v: _copy(states.get(v)) or TrackerState() for v in pooled}
    book = ClaimBook.of(current, cfg)
    for vehicle_id, chunk in _slices({v: pings.get(v, ()) for v in pooled}, slice_s):
        ctx = dataclasses.replace(contexts[vehicle_id], claims=book.claims)
        st, ev = track_owned(ctx, current[vehicle_id], chunk, cfg, callbacks.get(vehicle_id))
        current[vehicle_id] = st
        events[vehicle_id].extend(ev)
        book.update(vehicle_id, st)
    out_states.update(current)
    return out_states, events


def _slices(pings: Mapping[str, Sequence[Ping]], slice_s: float) -> Iterable[tuple[str,
                                                                                  list[Ping]]]:
    """``(vehicle_id, pings)`` per vehicle per slice of event time, slices in order."""
    by_slice: dict[int, dict[str, list[Ping]]] = defaultdict(lambda: defaultdict(list))
    for vehicle_id, ps in pings.items():
        for p in ps:
            by_slice[int(p.ts // slice_s)][vehicle_id].append(p)
    for k in heapq.nsmallest(len(by_slice), by_slice):
        chunk = by_slice[k]
        for vehicle_id in sorted(chunk):
            yield vehicle_id, chunk[vehicle_id]


def _copy(state: TrackerState | None) -> TrackerState | None:
    return None if state is None else TrackerState.from_dict(state.to_dict())
