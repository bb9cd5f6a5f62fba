"""Small builders for timeline tests: pings from metres east/north of 朱亭 and event filters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from routing.config import DEFAULT, TrackerConfig
from routing.model import Event, Ping, VehicleContext
from routing.state import TrackerState
from routing.tracker import track

from .simulate import to_lonlat


def ping(t: float, x: float, y: float, speed_kmh: float | None = None) -> Ping:
    lon, lat = to_lonlat(x, y)
    return Ping(ts=t, lat=lat, lon=lon, speed_kmh=speed_kmh)


def straight(t0: float, x0: float, y0: float, x1: float, y1: float, speed_mps: float,
             every_s: float, speed_kmh: float | None = None) -> list[Ping]:
    """Pings every ``every_s`` from (x0, y0) to (x1, y1) at ``speed_mps``; the last at the end."""
    import math

    length = math.dist((x0, y0), (x1, y1))
    duration = length / speed_mps
    out, t = [], 0.0
    while t < duration:
        f = t / duration
        out.append(ping(t0 + t, x0 + f * (x1 - x0), y0 + f * (y1 - y0), speed_kmh))
        t += every_s
    out.append(ping(t0 + duration, x1, y1, speed_kmh))
    return out


def run(ctx: VehicleContext, pings: Sequence[Ping], cfg: TrackerConfig = DEFAULT,
        state: TrackerState | None = None) -> tuple[TrackerState, list[Event]]:
    return track(ctx, state, pings, cfg)


def kinds(events: Iterable[Event], *wanted: str) -> list[Event]:
    return [e for e in events if not wanted or e.kind in wanted]


def summary(events: Iterable[Event]) -> list[tuple[str, str | None]]:
    return [(e.kind, e.stop_id) for e in events]
