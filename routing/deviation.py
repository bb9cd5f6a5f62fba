"""Corridor deviation: a trip's vehicle farther from its route's path than ``corridor_m``.

Debounced both ways (:mod:`routing.episode`): started after ``deviation_min_pings`` consecutive
pings and ``deviation_min_s`` beyond the corridor, ended after ``deviation_end_pings`` consecutive
pings back inside. The offset is the distance to the path anywhere along it: a shortcut over a
part of the route driven later is not a deviation, a detour off every part of it is.
"""

from __future__ import annotations

from typing import Any

from routing import episode
from routing.config import TrackerConfig
from routing.state import TripState

_RULES: dict[int, tuple[TrackerConfig, episode.Debounce]] = {}


def _rule(cfg: TrackerConfig) -> episode.Debounce:
    cached = _RULES.get(id(cfg))
    if cached is None or cached[0] is not cfg:  # keyed by identity: hashing cfg costs more
        rule = episode.Debounce(cfg.deviation_min_pings, cfg.deviation_min_s,
                                cfg.deviation_end_pings)
        cached = _RULES[id(cfg)] = (cfg, rule)
    return cached[1]


def detect_deviation(trip: TripState, ts: float, offset_m: float, corridor_m: float,
                     cfg: TrackerConfig) -> list[tuple[str, float, dict[str, Any]]]:
    """Feed one ping's offset; return ``(kind, ts, details)`` for each event it causes.

    ``route_deviation_started`` carries ``max_offset_m`` so far and is stamped with the first
    ping outside; ``route_deviation_ended`` carries ``started_at``, ``duration_s`` and the
    episode's ``max_offset_m`` and is stamped with the first ping back inside.
    """
    changes = episode.feed(trip.deviation, ts, offset_m > corridor_m, offset_m, _rule(cfg))
    return [_as_event(t, trip.progress_m, "back_inside") for t in changes]


def end_deviation(trip: TripState, ts: float,
                  reason: str) -> list[tuple[str, float, dict[str, Any]]]:
    """Close a deviation still open when the trip ends."""
    change = episode.close(trip.deviation, ts)
    return [] if change is None else [_as_event(change, trip.progress_m, reason)]


def _as_event(t: episode.Transition, progress_m: float,
              reason: str) -> tuple[str, float, dict[str, Any]]:
    if t.kind == "started":
        return "route_deviation_started", t.started_at, {
            "max_offset_m": round(t.peak, 1), "progress_m": round(progress_m, 1)}
    assert t.ended_at is not None
    return "route_deviation_ended", t.ended_at, {
        "started_at": t.started_at, "duration_s": round(t.ended_at - t.started_at, 1),
        "max_offset_m": round(t.peak, 1), "progress_m": round(progress_m, 1), "reason": reason}
