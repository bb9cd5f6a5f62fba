"""The real HSL 510 day (tests/data/hsl510) as a district, its ``pings.csv`` (a
``device_id`` column, 11 buses) replayed as one fleet through the real pipeline with ETAs: the
ETAs the product prints for a recorded day are scored against the truth next to the timetable
+ current-delay baseline, as tests/unit/routing/hsl510.py does with the tracker alone."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict

import pytest

from backend.replay import replay_trace
from tests.unit.routing import hsl510


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def hsl_bundle(day: hsl510.Day) -> tuple[dict, dict[str, list[float]]]:
    """The day as a bundle: its stops, one route per bus with that bus's runs (the timetable is
    the day's median profile; run matching is not what is measured), a vehicle and a device per
    bus. Returns it with every run's scheduled epoch times."""
    midnight = dt.datetime.combine(hsl510.DAY, dt.time(0),
                                   tzinfo=dt.timezone(dt.timedelta(hours=3))).timestamp()
    runs: dict[str, list[dict]] = defaultdict(list)
    scheduled: dict[str, list[float]] = {}
    for t in day.trips:
        times = [t.scheduled_start + o for o in day.offsets]
        scheduled[t.run_id] = times
        runs[t.device_id].append({"id": t.run_id, "times": [_hms(x - midnight) for x in times],
                                  "dates": [hsl510.DAY.isoformat()]})
    path = {"type": "LineString", "coordinates": [list(p) for p in day.path]}
    stops = [{"stop_id": s.id} for s in day.stops]
    bundle = {
        "district": {"id": "hsl", "name": "HSL", "timezone": "Europe/Helsinki"},
        "stops": [{"id": s.id, "name": s.name, "lat": s.lat, "lon": s.lon,
                   "radius_m": hsl510.STOP_RADIUS_M} for s in day.stops],
        "routes": [{"id": f"510-{device}", "name": "510", "school_id": None, "path": path,
                    "corridor_m": hsl510.CORRIDOR_M, "stops": stops, "runs": rs}
                   for device, rs in sorted(runs.items())],
        "vehicles": [{"id": f"bus-{device}", "kind": "school_bus", "route_ids": [f"510-{device}"]}
                     for device in sorted(runs)],
        "devices": [{"id": device, "vehicle_id": f"bus-{device}", "token": f"token-{device}"}
                    for device in sorted(runs)],
    }
    return bundle, scheduled


@pytest.fixture
def app(app):
    app.config.update(MAX_PING_AGE_S=0.0)
    return app


@pytest.mark.slow
def test_a_fleet_day_replayed_with_etas_beats_the_baseline_on_real_traces(app):
    from backend.bundle import import_bundle

    day = hsl510.load_day()
    bundle, scheduled = hsl_bundle(day)
    with app.app_context():
        import_bundle(bundle)
    result = replay_trace(app, hsl510.FIXTURE / "pings.csv", None, progress=False, etas=True)

    assert result.stored + sum(result.rejected.values()) == sum(len(p) for p in day.pings.values())
    index = {s.id: j for j, s in enumerate(day.stops)}
    truth = {t.run_id: t.truth for t in day.trips}
    arrivals: dict[str, list[tuple[float, int]]] = defaultdict(list)  # run -> (ts, stop index)
    for e in result.events:
        if e.kind == "stop_arrived" and e.run_id is not None:
            arrivals[e.run_id].append((e.ts, index[e.stop_id]))
    assert len({e.run_id for e in result.events if e.kind == "trip_started"}) >= 11

    by_ping: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for line in result.etas:
        by_ping[(line["run_id"], line["as_of"])].append(
            (index[line["stop_id"]], _epoch(line["eta"])))
    errors: dict[int, list[float]] = defaultdict(list)
    baseline: dict[int, list[float]] = defaultdict(list)
    for (run_id, as_of), etas in by_ping.items():
        now = _epoch(as_of)
        seen = [(ts, j) for ts, j in arrivals[run_id] if ts <= now]
        delay = seen[-1][0] - scheduled[run_id][seen[-1][1]] if seen else 0.0
        for k in (1, 3, 5):
            if len(etas) < k:
                continue
            j, eta = etas[k - 1]
            real = truth[run_id][j]
            if real is None or real <= now:
                continue
            errors[k].append(abs(eta - real))
            baseline[k].append(abs(max(now, scheduled[run_id][j] + delay) - real))
    for k in (1, 3, 5):
        learned, base = statistics.fmean(errors[k]), statistics.fmean(baseline[k])
        assert len(errors[k]) > 10000
        assert learned < 0.9 * base, (k, learned, base)


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
