"""Pings of bus-07 driving its morning route zt-am-1 on Monday 2026-11-23 (Asia/Shanghai),
stored through the real ingest pipeline, for the daily audit's tests.

The drive is built from the sample bundle itself: the bus waits at 龙凤村 from ten minutes before
the first departure, then follows the route's path vertex by vertex at 30 km/h, leaving each stop
just in time to reach the next one a minute early, and ends parked at 朱亭学校. Positions carry a
few metres of seeded noise, as real fixes do.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from collections.abc import Iterator, Sequence

import pytest

from routing.calendar import parse_hms, zone

MONDAY = dt.date(2026, 11, 23)
TZ = "Asia/Shanghai"
EVERY_S = 10.0
SPEED_MPS = 30 / 3.6
EARTH_M = 6_371_008.8


@pytest.fixture
def app(app):
    """The migrated test app, accepting history: the drive is old (or, on this clock, ahead)."""
    app.config.update(MAX_PING_AGE_S=0.0, MAX_FUTURE_S=10 * 365 * 86400.0)
    return app


def local_ts(date: dt.date, hms: str) -> float:
    """Epoch seconds of a local schedule time of ``date`` in the district timezone."""
    midnight = dt.datetime.combine(date, dt.time(0), tzinfo=zone(TZ))
    return midnight.timestamp() + parse_hms(hms)


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine distance of two (lon, lat) points."""
    (lon1, lat1), (lon2, lat2) = (tuple(map(math.radians, p)) for p in (a, b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_M * math.asin(math.sqrt(h))


def route_of(bundle: dict, route_id: str) -> dict:
    return next(r for r in bundle["routes"] if r["id"] == route_id)


def place_of(bundle: dict, place_id: str) -> tuple[float, float]:
    """(lon, lat) of a stop or school of the bundle."""
    for item in bundle["stops"] + bundle["schools"]:
        if item["id"] == place_id:
            return item["lon"], item["lat"]
    raise KeyError(place_id)


def _nearest_vertex(path: Sequence[tuple[float, float]], point: tuple[float, float]) -> int:
    return min(range(len(path)), key=lambda i: _metres(path[i], point))


def path_length_m(bundle: dict, route_id: str) -> float:
    path = route_of(bundle, route_id)["path"]["coordinates"]
    return sum(_metres(a, b) for a, b in zip(path, path[1:], strict=False))


def drive_pings(
    bundle: dict, date: dt.date = MONDAY, route_id: str = "zt-am-1", seed: int = 7
) -> list[dict]:
    """Ping objects (SPEC §4) of one on-time run of ``route_id`` on ``date``."""
    route = route_of(bundle, route_id)
    path = [tuple(c) for c in route["path"]["coordinates"]]
    stop_vertex = [_nearest_vertex(path, place_of(bundle, s["stop_id"])) for s in route["stops"]]
    scheduled = [local_ts(date, s["time"]) for s in route["stops"]]
    # knots of (t, lon, lat, speed_kmh): parked at the first stop, then leg by leg
    knots = [(scheduled[0] - 600, *path[0], 0.0), (scheduled[0], *path[0], 0.0)]
    for j in range(1, len(stop_vertex)):
        legs = path[stop_vertex[j - 1] : stop_vertex[j] + 1]
        leg_m = sum(_metres(a, b) for a, b in zip(legs, legs[1:], strict=False))
        t = max(knots[-1][0], scheduled[j] - 60 - leg_m / SPEED_MPS)
        knots.append((t, *legs[0], 0.0))
        for a, b in zip(legs, legs[1:], strict=False):
            t += _metres(a, b) / SPEED_MPS
            knots.append((t, *b, SPEED_MPS * 3.6))
        stay = scheduled[j] if j < len(stop_vertex) - 1 else t + 180
        knots.append((stay, *legs[-1], 0.0))
    rng = random.Random(seed)
    pings, t = [], knots[0][0]
    while t <= knots[-1][0]:
        k = max(i for i, knot in enumerate(knots) if knot[0] <= t)
        k = min(k, len(knots) - 2)
        (t0, lon0, lat0, _), (t1, lon1, lat1, v1) = knots[k], knots[k + 1]
        f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
        moving = (lon0, lat0) != (lon1, lat1)
        noise_deg = 4 / 111_000  # ~4 m
        pings.append(
            {
                "ts": round(t, 3),
                "lat": round(lat0 + f * (lat1 - lat0) + rng.gauss(0, noise_deg), 7),
                "lon": round(lon0 + f * (lon1 - lon0) + rng.gauss(0, noise_deg), 7),
                "speed_kmh": round(v1, 1) if moving else 0.0,
                "accuracy_m": 6,
            }
        )
        t += EVERY_S
    return pings


def ingest(app, pings: Sequence[dict], device_id: str = "dev-bus-07", chunk: int = 1000) -> int:
    """Store pings through the real ingest pipeline (what MQTT and HTTP use), ``chunk`` per
    message, in the order given; returns how many were accepted."""
    from backend.ingest.service import pipeline
    from gps_ingest.pipeline import Message

    messages = [
        Message(
            kind="pings",
            device_id=device_id,
            payload=json.dumps(list(pings[i : i + chunk])).encode(),
            received_at=float(pings[i]["ts"]) + 5,
        )
        for i in range(0, len(pings), chunk)
    ]
    ingest_pipeline = pipeline(app)
    ingest_pipeline.registry.reload()  # see devices imported since (it reloads on a miss ≥ 2 s)
    results = ingest_pipeline.process(messages)
    assert all(not r.rejected for r in results), [r.rejected for r in results]
    return sum(r.accepted for r in results)


@pytest.fixture
def monday_drive(app, imported) -> Iterator[list[dict]]:
    """bus-07's on-time Monday morning run, stored."""
    pings = drive_pings(imported)
    assert ingest(app, pings) == len(pings)
    yield pings
