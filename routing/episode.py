"""A debounced on/off condition over a ping stream (off the corridor, over the speed limit).

An episode starts after ``min_pings`` consecutive "on" pings spanning at least ``min_s``, and ends
after ``end_pings`` consecutive "off" pings (or a silence longer than ``max_gap_s``). Its start
time is the first "on" ping, its end the first "off" ping of the closing streak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Debounce:
    """How an episode is confirmed and closed."""

    min_pings: int
    min_s: float
    end_pings: int
    max_gap_s: float = math.inf


@dataclass(slots=True)
class Episode:
    """The mutable state of one debounced condition; JSON-friendly fields only."""

    active: bool = False
    first_ts: float | None = None  # first "on" ping of the candidate or active episode
    on_count: int = 0
    off_count: int = 0
    off_first_ts: float | None = None
    peak: float = 0.0
    last_ts: float | None = None
    last_on_ts: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Episode:
        return cls(**raw) if raw else cls()


@dataclass(frozen=True, slots=True)
class Transition:
    """An episode confirmed (``started``) or closed (``ended``)."""

    kind: str  # started | ended
    started_at: float
    ended_at: float | None
    peak: float


def feed(ep: Episode, ts: float, on: bool, value: float, rule: Debounce) -> list[Transition]:
    """Advance ``ep`` by one ping; return the transitions it causes (zero, one, or an end by
    silence followed by nothing).

    Parameters
    ----------
    ep : Episode
        Mutated in place.
    ts : float
        The ping's time; pings come in increasing ``ts``.
    on : bool
        Whether the condition holds at this ping.
    value : float
        The measured quantity (offset, speed); the episode keeps its peak.
    rule : Debounce
        Confirmation and closing thresholds.
    """
    out: list[Transition] = []
    if ep.last_ts is not None and ts - ep.last_ts > rule.max_gap_s:
        if ep.active and ep.first_ts is not None:
            end = ep.last_on_ts if ep.last_on_ts is not None else ep.last_ts
            out.append(Transition("ended", ep.first_ts, end, ep.peak))
        _reset(ep)
    ep.last_ts = ts
    if not ep.active:
        if not on:
            _reset(ep)
            ep.last_ts = ts
            return out
        if ep.on_count == 0:
            ep.first_ts, ep.peak = ts, value
        ep.on_count += 1
        ep.peak = max(ep.peak, value)
        ep.last_on_ts = ts
        assert ep.first_ts is not None
        if ep.on_count >= rule.min_pings and ts - ep.first_ts >= rule.min_s:
            ep.active, ep.off_count, ep.off_first_ts = True, 0, None
            out.append(Transition("started", ep.first_ts, None, ep.peak))
        return out
    if on:
        ep.off_count, ep.off_first_ts = 0, None
        ep.peak = max(ep.peak, value)
        ep.last_on_ts = ts
        return out
    ep.off_count += 1
    if ep.off_count == 1:
        ep.off_first_ts = ts
    if ep.off_count >= rule.end_pings:
        assert ep.first_ts is not None
        out.append(Transition("ended", ep.first_ts, ep.off_first_ts, ep.peak))
        _reset(ep)
        ep.last_ts = ts
    return out


def close(ep: Episode, ts: float) -> Transition | None:
    """End an active episode now (its trip ended); ``None`` when none is active."""
    result = None
    if ep.active and ep.first_ts is not None:
        result = Transition("ended", ep.first_ts, ts, ep.peak)
    _reset(ep)
    return result


def _reset(ep: Episode) -> None:
    ep.active, ep.first_ts, ep.on_count, ep.off_count = False, None, 0, 0
    ep.off_first_ts, ep.peak, ep.last_on_ts = None, 0.0, None
