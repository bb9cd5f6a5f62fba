"""Plausibility filters: which well-formed pings are kept, and why the others are not.

Modelled on Traccar's ``FilterHandler``: one ordered list of small predicates (:data:`FILTERS`),
each naming its reason.  Pure: the caller's clock comes in as ``now``, the devices' last stored
fixes as ``last_fix``; nothing here reads a clock, a database or the environment.

Event time, not arrival time
----------------------------
A backlog after a dead zone arrives late and may be older than the fix already stored.  The
batch is therefore walked per device **in timestamp order** (a stable sort, so of two pings
with the same ``ts`` the first sent is the one kept), and each ping is compared with its nearest
accepted predecessor *in time*: the previous accepted ping of the batch, or the device's stored
last fix when that is later than it but still earlier than the ping.  A ping older than
everything known is compared with the stored last fix, which then comes after it: the speed
check is symmetric in time, so that still tells a teleport from a drive.  Accepted pings are
returned in their original order.

Implausible jumps without a division
------------------------------------
Traccar divides distance by time, which blows up for pings a fraction of a second apart (30 m
of GPS jitter in 0.1 s is "1080 km/h").  Here a ping is a jump when it lies farther from its
reference than the vehicle could have driven plus what GPS noise explains::

    distance_m > max_speed_kmh / 3.6 * |dt_s| + jump_slack_m + accuracy_m

so ``dt = 0`` needs no special case, jitter of tens of metres is never a jump, and a real jump
(5 km in 10 s) always is.  A single wrong fix stored as a device's very first position makes
the next fixes look like jumps until ``|dt|`` is long enough to reach them (at 200 km/h, 20 km
take 6 minutes) — Traccar has the same property; it heals itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gps_ingest.records import (
    DUPLICATE,
    FUTURE_TS,
    IMPLAUSIBLE_JUMP,
    LOW_ACCURACY,
    NAN,
    NULL_ISLAND,
    TOO_OLD,
    PingRecord,
    Reject,
    coordinate_problem,
)

EARTH_RADIUS_M = 6_371_009.0  # mean radius, the one geopy's great_circle uses
M_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180.0


@dataclass(frozen=True)
class FilterConfig:
    """The filters' tunables, each with its default and why."""

    #: SPEC §4: a ping more than 5 min ahead of the server is rejected; phone clocks drift a
    #: little, but a device far ahead would make every later true ping look "older".
    max_future_s: float = 300.0
    #: SPEC §1 ``XIAOCHE_MAX_PING_AGE_S`` (7 days: a week's backlog of a phone left in a
    #: drawer is still worth storing); 0 = no limit, for loading history.
    max_age_s: float = 604_800.0
    #: A GPS fix in a village valley is 5–50 m, in a town's street canyon up to ~200 m; phones
    #: without a GPS lock report Wi-Fi/cell-tower fixes of 1–5 km, which would put a bus off
    #: its route and at the wrong stop.  500 m keeps every GPS fix and drops those.  None = off.
    max_accuracy_m: float | None = 500.0
    #: Expressways allow 120 km/h; a bus or car "doing" 200 km/h is a bad fix.  Real speeding
    #: below that must reach ``routing``'s overspeed events, so the margin is wide.  0 = off.
    max_speed_kmh: float = 200.0
    #: Distance GPS noise can add between two fixes of a parked vehicle (two fixes of ~±50 m),
    #: on top of the ping's own stated accuracy.
    jump_slack_m: float = 100.0


@dataclass(frozen=True, slots=True)
class Fix:
    """A device's position at a time: what jumps are measured from."""

    ts: float
    lat: float
    lon: float


@dataclass(slots=True)
class Context:
    """What a filter may look at besides the ping (one per batch, updated per ping)."""

    now: float
    cfg: FilterConfig
    #: the nearest accepted fix in time of this device (see module docs), or None
    reference: Fix | PingRecord | None = None
    #: the previous accepted ping of this device in this batch (same or earlier ts), or None
    previous: PingRecord | None = None


Filter = Callable[[PingRecord, Context], Reject | None]


def _reject(p: PingRecord, reason: str, detail: str) -> Reject:
    return Reject(reason, p.item_index, detail, ts=p.ts)


def _iso(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return repr(ts)


# -- the filters, in order -----------------------------------------------------------------------


def finite_coordinates(p: PingRecord, ctx: Context) -> Reject | None:
    """NaN or out-of-range values (the decoders reject these; records built elsewhere too)."""
    if not (math.isfinite(p.ts) and math.isfinite(p.lat) and math.isfinite(p.lon)):
        return _reject(p, NAN, f"ts/lat/lon ({p.ts!r}, {p.lat!r}, {p.lon!r}) not finite")
    problem = coordinate_problem(p.lat, p.lon)
    return None if problem is None else _reject(p, *problem)


def null_island(p: PingRecord, ctx: Context) -> Reject | None:
    """(0, 0) exactly is what receivers without a fix send (Traccar's ``filter.zero``)."""
    if p.lat == 0.0 and p.lon == 0.0:
        return _reject(p, NULL_ISLAND, "lat 0, lon 0: the receiver had no fix")
    return None


def future_ts(p: PingRecord, ctx: Context) -> Reject | None:
    """A device clock far ahead of ours."""
    ahead_s = p.ts - ctx.now
    if ahead_s > ctx.cfg.max_future_s:
        return _reject(p, FUTURE_TS, f"ts {_iso(p.ts)} is {ahead_s:.0f} s ahead of the server "
                                     f"clock; at most {ctx.cfg.max_future_s:g} s")
    return None


def too_old(p: PingRecord, ctx: Context) -> Reject | None:
    """Older than the configured age (0 = no limit)."""
    age_s = ctx.now - p.ts
    if ctx.cfg.max_age_s > 0 and age_s > ctx.cfg.max_age_s:
        return _reject(p, TOO_OLD, f"ts {_iso(p.ts)} is {age_s / 86400:.1f} days old; at most "
                                   f"{ctx.cfg.max_age_s / 86400:g} days")
    return None


def low_accuracy(p: PingRecord, ctx: Context) -> Reject | None:
    """The device's own uncertainty is larger than a bus route can use."""
    limit = ctx.cfg.max_accuracy_m
    if limit is not None and p.accuracy_m is not None and p.accuracy_m > limit:
        return _reject(p, LOW_ACCURACY, f"accuracy {p.accuracy_m:g} m is worse than {limit:g} m")
    return None


def duplicate(p: PingRecord, ctx: Context) -> Reject | None:
    """A second ping of the same device and ts in the batch (sorted, so it follows the first)."""
    if ctx.previous is not None and ctx.previous.ts == p.ts:
        return _reject(p, DUPLICATE, f"ts {_iso(p.ts)} already in this message (item "
                                     f"{ctx.previous.item_index}); the first is kept")
    return None


def implausible_jump(p: PingRecord, ctx: Context) -> Reject | None:
    """Farther from the neighbouring fix than the vehicle could drive (see module docs)."""
    ref = ctx.reference
    if ref is None or ctx.cfg.max_speed_kmh <= 0:
        return None
    dt_s = abs(p.ts - ref.ts)
    reachable_m = ctx.cfg.max_speed_kmh / 3.6 * dt_s + ctx.cfg.jump_slack_m + (p.accuracy_m or 0.0)
    d_lon = abs(p.lon - ref.lon)
    # |Δlat| + |Δlon| (in metres of a meridian degree) is never less than the distance: a
    # near ping is accepted without trigonometry.
    if (abs(p.lat - ref.lat) + min(d_lon, 360.0 - d_lon)) * M_PER_DEGREE <= reachable_m:
        return None
    distance_m = haversine_m(ref.lat, ref.lon, p.lat, p.lon)
    if distance_m > reachable_m:
        return _reject(p, IMPLAUSIBLE_JUMP, f"{distance_m / 1000:.2f} km from the fix at "
                       f"{_iso(ref.ts)} in {dt_s:g} s; at {ctx.cfg.max_speed_kmh:g} km/h at most "
                       f"{reachable_m / 1000:.2f} km")
    return None


#: The order in which a ping is judged; the first filter that objects names the reason.
FILTERS: list[Filter] = [
    finite_coordinates,
    null_island,
    future_ts,
    too_old,
    low_accuracy,
    duplicate,
    implausible_jump,
]


# -- applying them -------------------------------------------------------------------------------


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (≈ 1 µs; geopy's ``great_circle`` takes ≈ 10 µs).

    >>> round(haversine_m(28.0, 113.0, 28.0, 113.01))
    982
    """
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    a = (math.sin((phi2 - phi1) / 2) ** 2
         + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass
class FilterResult:
    kept: list[PingRecord]  # in the input's order
    rejected: list[tuple[int, Reject]]  # (position in the input, reject), in the input's order
    last_fix: dict[str, Fix] = field(default_factory=dict)  # newest known fix per device


def _sort_key_ts(ts: float) -> float:
    return ts if ts == ts else -math.inf  # NaN sorts first; the first filter rejects it


def filter_batch(pings: Sequence[PingRecord], last_fix: Mapping[str, Fix], now: float,
                 cfg: FilterConfig, filters: Sequence[Filter] = FILTERS) -> FilterResult:
    """Judge a batch: kept pings, rejects, and each device's newest fix afterwards."""
    order = sorted(range(len(pings)),
                   key=lambda i: (pings[i].device_id, _sort_key_ts(pings[i].ts)))
    verdicts: list[Reject | None] = [None] * len(pings)
    newest = dict(last_fix)
    ctx = Context(now, cfg)
    device: str | None = None
    stored: Fix | None = None
    for i in order:
        p = pings[i]
        if p.device_id != device:
            _move_forward(newest, ctx.previous)
            device, stored = p.device_id, last_fix.get(p.device_id)
            ctx.previous = None
        ctx.reference = _nearest_in_time(ctx.previous, stored, p.ts)
        for judge in filters:
            verdict = judge(p, ctx)
            if verdict is not None:
                verdicts[i] = verdict
                break
        else:
            ctx.previous = p
    _move_forward(newest, ctx.previous)
    kept = [p for p, v in zip(pings, verdicts, strict=True) if v is None]
    rejected = [(i, v) for i, v in enumerate(verdicts) if v is not None]
    return FilterResult(kept, rejected, newest)


def _move_forward(newest: dict[str, Fix], p: PingRecord | None) -> None:
    """Record a device's last accepted ping (its newest: the walk is in ts order)."""
    if p is not None:
        known = newest.get(p.device_id)
        if known is None or p.ts > known.ts:
            newest[p.device_id] = Fix(p.ts, p.lat, p.lon)


def _nearest_in_time(previous: PingRecord | None, stored: Fix | None,
                     ts: float) -> Fix | PingRecord | None:
    if stored is not None and stored.ts <= ts and (previous is None or stored.ts > previous.ts):
        return stored
    if previous is not None:
        return previous
    return stored  # later than the ping, or None: compared backwards in time


def apply_filters(pings: Sequence[PingRecord], last_fix: Mapping[str, Fix], now: float,
                  cfg: FilterConfig) -> tuple[list[PingRecord], list[tuple[int, Reject]]]:
    """Kept pings (the same objects, in input order) and ``(input position, reject)`` pairs.

    Every input ping is in exactly one of the two.  :func:`filter_batch` also returns the
    devices' newest fixes.
    """
    result = filter_batch(pings, last_fix, now, cfg)
    return result.kept, result.rejected
