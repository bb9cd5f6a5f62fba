"""What the tracker is judged by on a :class:`~tests.realdays.day.Day` (issue 13).

:func:`drive` feeds the tracker as production does; :func:`evaluate` compares what it concluded
with the day's ground truth:

``trips_right_vehicle``
    share of truth trips (a vehicle driving a run, or part of one after a hand-over) for which
    the tracker made a trip with that run id, on that vehicle, on that service date (goal 95 %);
``stop_recall``
    share of truth passages with the tracker's event on the right trip within
    :data:`TOLERANCE_S` (goal 98 %). Stop 0 is judged by its ``stop_departed`` (the departure:
    a bus lays over in the first stop's circle), every other stop by its ``stop_arrived``.
    120 s is twice the coarsest sampling (60 s): an entry interpolated between two pings a
    minute apart can honestly be that far off, and anything later is another pass of the stop;
``time_error_median_s``
    median ``|tracker - truth|`` over the passages found (goal 20 s);
``false_deviations_per_100``
    ``route_deviation_started`` events overlapping no true detour, per 100 truth trips (the
    generated and the HSL days have no true detour, so every one is false);
``wrongly_missed`` / ``unobserved_missed``
    ``stop_missed`` on a right trip for a stop the bus did pass / for a stop no device could see
    (a late join, a frozen device, the part of a run another bus drove: correct is
    ``unobserved``, not ``missed``);
``eta_mae_s`` / ``baseline_mae_s`` / ``eta_ratio``
    mean absolute error of the tracker's ETA (``routing.tracker.live_view``, sampled every
    :data:`ETA_EVERY_S` of event time per vehicle, on right trips only, once the bus has really
    left its first stop) at 1, 3 and 5 stops ahead, of the baseline "timetable + current delay"
    on the same predictions, and their ratio (goal 0.7). Only stops the bus has not yet
    reached are targets: a stop already passed but not seen (a trip held open) is a detection
    failure, counted by the recall, not an ETA error. The baseline predicts stop j at
    ``scheduled_at[j] + delay``, the delay being the last stop arrival the tracker has seen on
    the trip minus its scheduled time (0 before any). Predictions made while the bus still lays
    over at its first stop (when it leaves is the driver's decision, not a matter of traffic)
    are scored apart, in ``counts["eta_waiting_mae_s"]``.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from routing.eta import StretchLog
from routing.fleet import ClaimBook, with_pools
from routing.model import Event, Ping, VehicleContext
from routing.run_matching import trip_id_for
from routing.state import TrackerState
from routing.tracker import live_view, track_owned
from tests.realdays.day import Day, TruthTrip

TOLERANCE_S = 120.0
ETA_EVERY_S = 30.0
AHEAD = (1, 3, 5)
GOALS = {"trips_right_vehicle": 0.95, "stop_recall": 0.98, "time_error_median_s": 20.0,
         "eta_ratio": 0.7}

Observer = Callable[[str, VehicleContext, TrackerState, list[Event]], None]


def drive(day: Day, batch_s: float = 5.0, observe: Observer | None = None) -> dict[str, list[Event]]:
    """Feed the tracker the way production does: every vehicle's pings in batches of
    ``batch_s`` seconds of event time, all vehicles interleaved in event time (a batch goes in
    once its last ping has been received), each vehicle's state carried between its batches.

    This is the one place that calls the tracker. Vehicles that share a route are a pool
    (:func:`routing.fleet.with_pools`) and see each other's holds on runs through a
    :class:`routing.fleet.ClaimBook`, as the ingest's tracking step does.
    ``observe(vehicle_id, ctx, state, new_events)`` is called after every batch.
    """
    batches: list[tuple[float, str, list[Ping]]] = []
    for vehicle_id, pings in day.pings.items():
        current: list[Ping] = []
        for p in pings:
            if current and p.ts - current[0].ts >= batch_s:
                batches.append((current[-1].ts, vehicle_id, current))
                current = []
            current.append(p)
        if current:
            batches.append((current[-1].ts, vehicle_id, current))
    batches.sort(key=lambda b: (b[0], b[1]))
    states: dict[str, TrackerState] = {}
    events: dict[str, list[Event]] = {v: [] for v in day.contexts}
    # today's drives, from every vehicle's stop events as concluded (the ingest reads the same
    # from the stored events): what the ETAs learn today's traffic from
    stretches = StretchLog()
    contexts = {v: dataclasses.replace(c, segment_observations=stretches.live())
                for v, c in with_pools(day.contexts).items()}
    book = ClaimBook()
    for _, vehicle_id, pings in batches:
        ctx = contexts[vehicle_id]
        if ctx.pool_route_ids:
            ctx = dataclasses.replace(ctx, claims=book.claims)
        state, new = track_owned(ctx, states.get(vehicle_id), pings)
        states[vehicle_id] = state
        book.update(vehicle_id, state)
        events[vehicle_id].extend(new)
        for e in new:
            if e.trip_id is not None and e.stop_id is not None:
                stretches.add(e.trip_id, e.kind, e.stop_id, e.ts)
        if observe is not None:
            observe(vehicle_id, ctx, state, new)
    return events


@dataclass
class Report:
    """The numbers of one day (see the module docstring); ``counts`` for the curious."""

    day: str
    vehicles: int
    pings: int
    truth_trips: int
    tracker_trips: int
    trips_right_vehicle: float
    stop_recall: float
    time_error_median_s: float | None
    time_error_p90_s: float | None
    false_deviations: int
    false_deviations_per_100: float
    wrongly_missed: int
    unobserved_stops: int
    unobserved_missed: int
    eta_mae_s: dict[int, float | None]
    baseline_mae_s: dict[int, float | None]
    eta_ratio: dict[int, float | None]
    eta_n: dict[int, int]
    drive_s: float
    counts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Eta:
    """Samples the live view of every vehicle every ``ETA_EVERY_S`` and scores its ETAs."""

    def __init__(self, day: Day):
        self.truth = {(t.run_id, t.vehicle_id, t.service_date.isoformat()): t for t in day.trips}
        self.last: dict[str, float] = {}
        self.err: dict[str, dict[int, list[float]]] = {
            k: defaultdict(list) for k in ("tracker", "baseline", "tracker_waiting",
                                           "baseline_waiting")}

    def __call__(self, vehicle_id: str, ctx: VehicleContext, state: TrackerState,
                 new: list[Event]) -> None:
        if state.trip is None or state.last_ts is None:
            return
        if state.last_ts - self.last.get(vehicle_id, -1e18) < ETA_EVERY_S:
            return
        self.last[vehicle_id] = state.last_ts
        truth = self.truth.get((state.trip.run_id, vehicle_id, state.trip.service_date))
        if truth is None:
            return  # the wrong run: its ETAs answer another question
        view = live_view(ctx, state)
        if view is None:
            return
        seen = [s for s in view.stops if s.arrived_at is not None]
        delay = seen[-1].arrived_at - seen[-1].scheduled_at if seen else 0.0  # type: ignore[operator]
        upcoming = [s for s in view.stops if s.status == "upcoming"]
        left = truth.passages[0]
        suffix = "_waiting" if left is not None and state.last_ts < left else ""
        for ahead in AHEAD:
            if len(upcoming) < ahead:
                break
            s = upcoming[ahead - 1]
            real = truth.passages[s.sequence]
            if s.sequence == 0 or real is None or s.eta is None or real < state.last_ts:
                continue  # a stop already reached (but not seen) has no ETA to judge
            self.err["tracker" + suffix][ahead].append(abs(s.eta - real))
            self.err["baseline" + suffix][ahead].append(abs(s.scheduled_at + delay - real))


def _mae(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 1) if values else None


def evaluate(day: Day, drive: Callable[..., dict[str, list[Event]]] = drive,
             batch_s: float = 5.0) -> Report:
    """Run ``drive`` on ``day`` and score the tracker against the day's truth."""
    eta = _Eta(day)
    start = time.perf_counter()
    events = drive(day, batch_s=batch_s, observe=eta)
    elapsed = time.perf_counter() - start
    by_trip: dict[str, list[Event]] = defaultdict(list)
    started: dict[str, Event] = {}
    deviations: list[Event] = []
    completed: Counter[str] = Counter()
    for vehicle_events in events.values():
        for e in vehicle_events:
            if e.trip_id is not None:
                by_trip[e.trip_id].append(e)
            if e.kind == "trip_started" and e.trip_id is not None:
                started[e.trip_id] = e
            elif e.kind == "route_deviation_started":
                deviations.append(e)
            elif e.kind == "trip_completed":
                completed[str(e.details.get("reason"))] += 1
    right = hits = passages = wrongly_missed = unobserved = unobserved_missed = 0
    errors: list[float] = []
    flag_right: Counter[str] = Counter()
    flag_total: Counter[str] = Counter()
    for truth in day.trips:
        trip_id = trip_id_for(truth.vehicle_id, truth.run_id, truth.service_date)
        found = trip_id in started
        right += found
        for f in truth.flags:
            flag_total[f] += 1
            flag_right[f] += found
        observed = truth.observed
        passages += len(observed)
        unobserved += len(truth.passages) - len(observed) if found else 0
        if not found:
            continue
        trip_events = by_trip[trip_id]
        for j in observed:
            at = _tracker_passage(trip_events, j)
            real = truth.passages[j]
            assert real is not None
            if at is not None and abs(at - real) <= TOLERANCE_S:
                hits += 1
                errors.append(abs(at - real))
        for e in trip_events:
            if e.kind == "stop_missed":
                j = int(e.details["sequence"])
                if truth.passages[j] is None:
                    unobserved_missed += 1
                else:
                    wrongly_missed += 1
    false_dev = sum(1 for e in deviations if not _on_detour(day, e))
    claims: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in started.values():
        claims[(e.run_id or "", str(e.details.get("service_date")))].add(e.vehicle_id)
    truth_claims: dict[tuple[str, str], set[str]] = defaultdict(set)
    for t in day.trips:
        truth_claims[(t.run_id, t.service_date.isoformat())].add(t.vehicle_id)
    wrong_trips = sum(1 for e in started.values()
                      if e.vehicle_id not in truth_claims.get(
                          (e.run_id or "", str(e.details.get("service_date"))), set()))
    n = len(day.trips)
    mae = {k: _mae(eta.err["tracker"][k]) for k in AHEAD}
    base = {k: _mae(eta.err["baseline"][k]) for k in AHEAD}
    return Report(
        day=day.name, vehicles=len(day.contexts), pings=day.n_pings, truth_trips=n,
        tracker_trips=len(started),
        trips_right_vehicle=round(right / n, 4) if n else 0.0,
        stop_recall=round(hits / passages, 4) if passages else 0.0,
        time_error_median_s=round(statistics.median(errors), 1) if errors else None,
        time_error_p90_s=round(statistics.quantiles(errors, n=10)[-1], 1)
        if len(errors) >= 2 else None,
        false_deviations=false_dev,
        false_deviations_per_100=round(100 * false_dev / n, 1) if n else 0.0,
        wrongly_missed=wrongly_missed, unobserved_stops=unobserved,
        unobserved_missed=unobserved_missed,
        eta_mae_s=mae, baseline_mae_s=base,
        eta_ratio={k: round(mae[k] / base[k], 3) if mae[k] is not None and base[k] else None
                   for k in AHEAD},
        eta_n={k: len(eta.err["tracker"][k]) for k in AHEAD},
        drive_s=round(elapsed, 3),
        counts={
            "truth_passages": passages, "passages_found": hits,
            "tracker_trips_not_in_truth": wrong_trips,
            "runs_claimed_by_several_vehicles": sum(
                1 for key, vs in claims.items() if len(vs - truth_claims.get(key, set())) and
                len(vs) > 1),
            "trip_completed_reasons": dict(sorted(completed.items())),
            "eta_waiting_mae_s": {k: _mae(eta.err["tracker_waiting"][k]) for k in AHEAD},
            "baseline_waiting_mae_s": {k: _mae(eta.err["baseline_waiting"][k]) for k in AHEAD},
            "eta_waiting_n": {k: len(eta.err["tracker_waiting"][k]) for k in AHEAD},
            "right_vehicle_by_flag": {f: f"{flag_right[f]}/{flag_total[f]}"
                                      for f in sorted(flag_total)},
            "departures_out_of_timetable_order": out_of_order(day),
        })


def out_of_order(day: Day) -> int:
    """Truth trips that left their first stop before a trip of an *earlier* run of the same
    route by another bus: no rule that sees only times and places can tell those two buses'
    runs apart (both drive the same road at about the same time), so they bound what run
    matching can reach on a day."""
    by_route: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for t in day.trips:
        if t.passages and t.passages[0] is not None:
            by_route[t.route_id].append((t.scheduled[0], t.passages[0], t.vehicle_id))
    n = 0
    for trips in by_route.values():
        trips.sort()
        for k, (_, left, vehicle) in enumerate(trips):
            if any(earlier_left > left and v != vehicle for _, earlier_left, v in trips[:k]):
                n += 1
    return n


def _tracker_passage(events: list[Event], j: int) -> float | None:
    """The tracker's time for stop ``j`` of a trip (see the module docstring)."""
    kinds = ("stop_departed", "stop_arrived") if j == 0 else ("stop_arrived",)
    for kind in kinds:
        for e in events:
            if e.kind == kind and e.details.get("sequence") == j:
                return e.ts
    return None


def _on_detour(day: Day, e: Event) -> bool:
    return any(lo <= e.ts <= hi for lo, hi in day.detours.get(e.vehicle_id, ()))


def truth_for(day: Day, vehicle_id: str) -> list[TruthTrip]:
    """The truth trips of one vehicle, in time order."""
    return [t for t in day.trips if t.vehicle_id == vehicle_id]
