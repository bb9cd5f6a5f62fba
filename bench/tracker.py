"""Benchmark of the pure tracker: throughput and accuracy against simulated ground truth.

Run: ``.venv/bin/python bench/tracker.py [--quick]``. Prints numbers, asserts nothing.

* throughput: pings/s of ``routing.tracker.track`` on one core (median of 5 runs), feeding
  simulated bus days in ingest-sized batches, with the state JSON round trip the service does
  between batches, and in one batch per vehicle-day (the audit's path);
* accuracy on generated scenarios around 朱亭: stop recall/precision and arrival-time error,
  corridor-deviation precision/recall on drives with and without a detour, and ETA mean absolute
  error 1/3/5 stops ahead, learned segment times vs the schedule + delay baseline.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routing.model import Ping, Route  # noqa: E402
from routing.state import TrackerState  # noqa: E402
from routing.tracker import live_view, track  # noqa: E402
from tests.unit.routing.simulate import (  # noqa: E402
    MONDAY,
    Drive,
    at,
    bus,
    drive,
    make_route,
    path_length,
    random_polyline,
)

T0 = at(MONDAY, "06:45")


def scenario(seed: int, n_vertices: int = 8, n_stops: int = 8, every_s: float = 5.0,
             noise_m: float = 8.0, detour: bool = False,
             legs: list[float] | None = None) -> tuple[Route, Drive, list[float]]:
    rng = random.Random(seed)
    xy = random_polyline(rng, n_vertices)
    length = path_length(xy)
    along = [length * k / (n_stops - 1) for k in range(n_stops)]
    speeds = legs or [rng.uniform(7, 14) for _ in along]
    dwell = [rng.uniform(10, 45) for _ in along]
    dwell[-1] = 0.0
    times, t = [], T0
    for k, a in enumerate(along):  # the timetable assumes a flat 10 m/s and 30 s dwells
        t = T0 if k == 0 else t + (a - along[k - 1]) / 10.0 + 30
        times.append(int(t - at(MONDAY, "00:00")))
    route = make_route(f"r{seed}", xy, along, times, radius_m=60)
    d_span = None
    if detour:
        start = rng.uniform(0.2, 0.6) * length
        d_span = (start, start + rng.uniform(600, 1500), rng.uniform(200, 400))
    d = drive(route, xy, along, T0, speeds, dwell, every_s, noise_m, seed, detour=d_span,
              jitter_s=every_s * 0.2)
    return route, d, [] if d_span is None else [d_span[0], d_span[1]]


def throughput(quick: bool) -> None:
    days = [scenario(s, n_vertices=12, n_stops=10) for s in range(4 if quick else 12)]
    total = sum(len(d.pings) for _, d, _ in days)
    for label, size, roundtrip in (("batches of 50 + state JSON", 50, True),
                                   ("batches of 500", 500, False),
                                   ("one batch per day", 10**9, False)):
        rates = []
        for _ in range(5):
            start = time.perf_counter()
            for route, d, _ in days:
                ctx = bus((route,))
                state: TrackerState | None = None
                for k in range(0, len(d.pings), size):
                    if roundtrip and state is not None:
                        state = TrackerState.from_dict(json.loads(json.dumps(state.to_dict())))
                    state, _ = track(ctx, state, d.pings[k:k + size])
            rates.append(total / (time.perf_counter() - start))
        print(f"  throughput, {label:<28} {statistics.median(rates):>9,.0f} pings/s "
              f"(median of 5, {total} pings, {len(days)} bus days)")


def stop_accuracy(quick: bool) -> None:
    tp = fp = fn = 0
    errors: list[float] = []
    for seed in range(40 if quick else 150):
        rng = random.Random(seed)
        every = rng.choice([1.0, 5.0, 10.0, 20.0, 30.0, 40.0])
        route, d, _ = scenario(1000 + seed, n_vertices=rng.randint(3, 9),
                               n_stops=rng.randint(3, 9), every_s=every,
                               noise_m=rng.uniform(0, 15))
        _, events = track(bus((route,)), None, d.pings)
        arrived = {e.stop_id: e.ts for e in events if e.kind == "stop_arrived"}
        for stop, truth in zip(route.stops, d.arrivals, strict=True):
            if stop.id in arrived:
                tp += 1
                errors.append(abs(arrived[stop.id] - truth))
            else:
                fn += 1
        fp += sum(1 for s in arrived if s not in {p.id for p in route.stops})
    print(f"  stops: recall {tp / (tp + fn):.4f}, precision {tp / max(tp + fp, 1):.4f}, "
          f"arrival error median {statistics.median(errors):.1f} s, "
          f"p90 {statistics.quantiles(errors, n=10)[-1]:.1f} s (sampling 1-40 s, noise 0-15 m)")


def deviation_accuracy(quick: bool) -> None:
    tp = fp = fn = 0
    for seed in range(30 if quick else 100):
        detour = seed % 2 == 0
        route, d, span = scenario(2000 + seed, every_s=random.Random(seed).choice([5.0, 15.0]),
                                  noise_m=12.0, detour=detour)
        _, events = track(bus((route,)), None, d.pings)
        found = [e for e in events if e.kind == "route_deviation_started"]
        if detour:
            hit = [e for e in found if e.details["progress_m"] >= span[0] - 300]
            tp += 1 if hit else 0
            fn += 0 if hit else 1
            fp += max(0, len(found) - 1)
        else:
            fp += len(found)
    print(f"  deviations: recall {tp / max(tp + fn, 1):.3f}, precision {tp / max(tp + fp, 1):.3f}"
          f" (detours 200-400 m off for 600-1500 m, noise 12 m)")


def eta_accuracy(quick: bool) -> None:
    """Days on the same route: each leg has its own typical speed (the timetable does not know
    it), each day a random pace; history = earlier days' segment_s."""
    rng = random.Random(7)
    typical = [rng.uniform(6, 15) for _ in range(10)]
    errors: dict[str, dict[int, list[float]]] = {"history": {1: [], 3: [], 5: []},
                                                 "schedule": {1: [], 3: [], 5: []}}
    history: list[list[float | None]] = []
    n_days = 8 if quick else 20
    for day in range(n_days):
        pace = rng.uniform(0.85, 1.15)
        legs = [v * pace * rng.uniform(0.9, 1.1) for v in typical]
        route, d, _ = scenario(3000, n_vertices=10, n_stops=10, every_s=10.0, legs=legs)
        ctx_hist = bus((route,), history={route.runs[0].id: list(reversed(history))})
        ctx_none = bus((route,))
        state: TrackerState | None = None
        done = None
        for p in d.pings:
            state, events = track(ctx_hist, state, [p])
            done = next((e for e in events if e.kind == "trip_completed"), done)
            if day < 3 or int(p.ts) % 60 >= 10:  # learn on the first days; sample once a minute
                continue
            for label, ctx in (("history", ctx_hist), ("schedule", ctx_none)):
                view = live_view(ctx, state)
                if view is None or view.next_stop_id is None:
                    continue
                upcoming = [s for s in view.stops if s.status == "upcoming"]
                for ahead in (1, 3, 5):
                    if len(upcoming) >= ahead and upcoming[ahead - 1].eta is not None:
                        s = upcoming[ahead - 1]
                        errors[label][ahead].append(abs(s.eta - d.arrivals[s.sequence]))
        if done is not None:
            history.append(list(done.details["segment_s"]))
    for label in ("history", "schedule"):
        cells = ", ".join(f"{k} ahead {statistics.mean(v):6.1f} s (n={len(v)})"
                          for k, v in errors[label].items() if v)
        print(f"  ETA MAE, {label:<9} {cells}")


def _pings_per_trip_sanity() -> None:
    route, d, _ = scenario(1)
    assert isinstance(d.pings[0], Ping) and route.stops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer scenarios")
    args = parser.parse_args()
    _pings_per_trip_sanity()
    print("routing.tracker benchmark (one core)")
    throughput(args.quick)
    stop_accuracy(args.quick)
    deviation_accuracy(args.quick)
    eta_accuracy(args.quick)


if __name__ == "__main__":
    main()
