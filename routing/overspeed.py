"""Overspeed episodes against the vehicle's ``speed_limit_kmh``.

The speed of a ping is the device's own ``speed_kmh`` when it reports one, else derived from the
ellipsoidal distance and time to the previous ping. An episode is debounced like a deviation
(:mod:`routing.episode`) and produces **one** ``overspeed`` event when it closes, because only
then is its ``max_speed_kmh`` known; the event is stamped with the episode's first ping.
"""

from __future__ import annotations

from typing import Any

from routing import episode
from routing.config import TrackerConfig


def ping_speed_kmh(reported_kmh: float | None, hop_m: float | None, dt_s: float | None,
                   cfg: TrackerConfig) -> float | None:
    """The speed to judge a ping by: reported, else derived, else ``None`` (unknown).

    Examples
    --------
    >>> ping_speed_kmh(None, 100.0, 10.0, TrackerConfig())
    36.0
    >>> ping_speed_kmh(52.0, 100.0, 10.0, TrackerConfig())
    52.0
    """
    if reported_kmh is not None:
        return reported_kmh
    if hop_m is None or dt_s is None or dt_s < cfg.derived_speed_min_dt_s:
        return None
    speed = hop_m / dt_s * 3.6
    return speed if speed <= cfg.derived_speed_max_kmh else None


_RULES: dict[int, tuple[TrackerConfig, episode.Debounce]] = {}


def _rule(cfg: TrackerConfig) -> episode.Debounce:
    cached = _RULES.get(id(cfg))
    if cached is None or cached[0] is not cfg:  # keyed by identity: hashing cfg costs more
        rule = episode.Debounce(cfg.overspeed_min_pings, cfg.overspeed_min_s,
                                cfg.overspeed_end_pings, cfg.episode_max_gap_s)
        cached = _RULES[id(cfg)] = (cfg, rule)
    return cached[1]


def detect_overspeed(ep: episode.Episode, ts: float, speed_kmh: float | None, limit_kmh: float,
                     cfg: TrackerConfig) -> list[tuple[float, dict[str, Any]]]:
    """Feed one ping; return ``(ts, details)`` of each overspeed episode that closed.

    A ping of unknown speed counts as under the limit for closing (it cannot prove speeding).
    Details: ``max_speed_kmh``, ``limit_kmh``, ``started_at``, ``ended_at``, ``duration_s``.
    """
    rule = _rule(cfg)
    over = speed_kmh is not None and speed_kmh > limit_kmh + cfg.overspeed_tolerance_kmh
    out = []
    for t in episode.feed(ep, ts, over, speed_kmh or 0.0, rule):
        if t.kind == "ended" and t.ended_at is not None:
            out.append((t.started_at, _details(t.started_at, t.ended_at, t.peak, limit_kmh)))
    return out


def _details(started_at: float, ended_at: float, peak: float, limit_kmh: float) -> dict[str, Any]:
    return {"max_speed_kmh": round(peak, 1), "limit_kmh": limit_kmh, "started_at": started_at,
            "ended_at": ended_at, "duration_s": round(ended_at - started_at, 1)}
