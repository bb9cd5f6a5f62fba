"""What each simulated vehicle does, as pure functions of time.

A vehicle's day is a chain of :class:`Leg`\\ s. A leg is a drive along one path given as knots
``(time, metres along the path)``: the vehicle moves linearly between two knots, and two knots
at the same place are a wait (at a stop, at a school, at the kitchen). :func:`fix_at` turns a leg
and a time into a position, speed and heading, so the simulator only has to ask "where is it
now?" every few seconds, and a test can ask the same for any time.

A leg that drives a bus route carries ``route_id`` and ``stop_times`` (when it leaves the first
stop and reaches each of the others): ``backend.demo.runs`` imports those as a run dated that day,
so the tracker matches the drive to a trip as it would a real one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from backend.demo.geometry import LatLon, heading_along, path_lengths, point_along


@dataclass(frozen=True)
class ScanPlan:
    """A rider card tapped on the bus reader (SPEC §4 ``scans``)."""

    ts: float
    card_id: str
    action: str  # "board" | "alight"
    lat: float
    lon: float


@dataclass(frozen=True)
class Leg:
    vehicle_id: str
    path: tuple[LatLon, ...]
    cum: tuple[float, ...]
    knots: tuple[tuple[float, float], ...]  # (epoch seconds, metres along), time non-decreasing
    route_id: str | None = None  # a run of this route, to be imported for the tracker
    stop_times: tuple[float, ...] = ()  # leaves the first stop, reaches the others
    scans: tuple[ScanPlan, ...] = ()
    speeding: bool = False  # has a stretch over the speed limit (the demo's one exception)

    @property
    def starts_at(self) -> float:
        return self.knots[0][0]

    @property
    def ends_at(self) -> float:
        return self.knots[-1][0]


@dataclass(frozen=True)
class Fix:
    lat: float
    lon: float
    speed_kmh: float
    heading_deg: float


def fix_at(leg: Leg, t: float) -> Fix:
    """Where the vehicle of ``leg`` is at time ``t`` (clamped to the leg's span)."""
    knots = leg.knots
    t = min(max(t, knots[0][0]), knots[-1][0])
    k = max(i for i in range(len(knots) - 1) if knots[i][0] <= t) if len(knots) > 1 else 0
    (t0, a0), (t1, a1) = knots[k], knots[min(k + 1, len(knots) - 1)]
    along = a0 if t1 <= t0 else a0 + (a1 - a0) * (t - t0) / (t1 - t0)
    speed_mps = 0.0 if t1 <= t0 else abs(a1 - a0) / (t1 - t0)
    lat, lon = point_along(leg.path, leg.cum, along)
    moving_back = a1 < a0
    heading = heading_along(leg.path, leg.cum, along)
    if moving_back:
        heading = (heading + 180.0) % 360.0
    return Fix(lat, lon, speed_mps * 3.6, heading)


def drive_knots(stop_alongs: Sequence[float], depart_at: float, wait_before_s: float,
                speeds_kmh: Sequence[float], dwell_s: float, end_dwell_s: float
                ) -> tuple[list[tuple[float, float]], list[float]]:
    """Knots of a drive that waits ``wait_before_s`` at its first stop, leaves at ``depart_at``,
    drives each stretch ``i`` (stop ``i`` to ``i + 1``) at ``speeds_kmh[i]``, waits ``dwell_s`` at
    every stop on the way and ``end_dwell_s`` at the last; and ``stop_times``: when it leaves the
    first stop and reaches each of the others.

    ``stop_alongs`` may decrease (driving a path backwards).

    >>> knots, times = drive_knots([0.0, 500.0], 1000.0, 60.0, [36.0], 30.0, 120.0)
    >>> knots
    [(940.0, 0.0), (1000.0, 0.0), (1050.0, 500.0), (1170.0, 500.0)]
    >>> times
    [1000.0, 1050.0]
    """
    if len(speeds_kmh) != len(stop_alongs) - 1:
        raise ValueError("one speed per stretch between two stops")
    knots = [(depart_at - wait_before_s, stop_alongs[0]), (depart_at, stop_alongs[0])]
    times = [depart_at]
    t = depart_at
    for i, along in enumerate(stop_alongs[1:]):
        t += abs(along - stop_alongs[i]) / (speeds_kmh[i] / 3.6)
        knots.append((t, along))
        times.append(t)
        last = i == len(stop_alongs) - 2
        t += end_dwell_s if last else dwell_s
        knots.append((t, along))
    return knots, times


@dataclass(frozen=True)
class RouteShape:
    """A route as the demo drives it: its path, where its stops lie along it, who boards where."""

    route_id: str
    path: tuple[LatLon, ...]
    cum: tuple[float, ...]
    stop_ids: tuple[str, ...]
    stop_alongs: tuple[float, ...]
    riders: tuple[tuple[str, str], ...] = ()  # (card_id, stop_id) of the students it carries

    @classmethod
    def of(cls, route_id: str, path: Sequence[LatLon], stop_ids: Sequence[str],
           stop_alongs: Sequence[float], riders: Sequence[tuple[str, str]] = ()) -> RouteShape:
        return cls(route_id, tuple(path), tuple(path_lengths(path)), tuple(stop_ids),
                   tuple(stop_alongs), tuple(riders))


def run_leg(vehicle_id: str, shape: RouteShape, depart_at: float, wait_before_s: float,
            cruise_kmh: float, rng: random.Random, dwell_s: float = 40.0,
            end_dwell_s: float = 120.0, speeding_kmh: float | None = None) -> Leg:
    """The bus drives ``shape`` as a scheduled run leaving its first stop at ``depart_at``.

    Each stretch is driven at ``cruise_kmh`` ± 12 %; with ``speeding_kmh`` the longest stretch
    is driven at that speed instead. Riders board at their stop 20 s before the bus leaves it and
    alight at the route's last stop 30 s after the bus arrives there.
    """
    stretches = len(shape.stop_alongs) - 1
    speeds = [cruise_kmh * rng.uniform(0.88, 1.12) for _ in range(stretches)]
    if speeding_kmh is not None:
        longest = max(range(stretches),
                      key=lambda i: abs(shape.stop_alongs[i + 1] - shape.stop_alongs[i]))
        speeds[longest] = speeding_kmh
    knots, times = drive_knots(shape.stop_alongs, depart_at, wait_before_s, speeds, dwell_s,
                               end_dwell_s)
    leg = Leg(vehicle_id, shape.path, shape.cum, tuple(knots), shape.route_id, tuple(times),
              speeding=speeding_kmh is not None)
    scans = []
    for card_id, stop_id in shape.riders:
        j = shape.stop_ids.index(stop_id)
        leaves = times[0] if j == 0 else times[j] + dwell_s
        board = fix_at(leg, leaves - 20.0)
        scans.append(ScanPlan(leaves - 20.0, card_id, "board", board.lat, board.lon))
        alight = fix_at(leg, times[-1] + 30.0)
        scans.append(ScanPlan(times[-1] + 30.0, card_id, "alight", alight.lat, alight.lon))
    return Leg(leg.vehicle_id, leg.path, leg.cum, leg.knots, leg.route_id, leg.stop_times,
               tuple(sorted(scans, key=lambda s: s.ts)), leg.speeding)


def drive_leg(vehicle_id: str, path: Sequence[LatLon], start_at: float, wait_before_s: float,
              speed_kmh: float, end_dwell_s: float, reverse: bool = False) -> Leg:
    """A plain drive along ``path`` (backwards with ``reverse``), not a scheduled run: a bus
    going back to its first stop, a teacher's car, the meal truck."""
    cum = path_lengths(path)
    ends = [cum[-1], 0.0] if reverse else [0.0, cum[-1]]
    knots, _ = drive_knots(ends, start_at + wait_before_s, wait_before_s, [speed_kmh], 0.0,
                           end_dwell_s)
    return Leg(vehicle_id, tuple(path), tuple(cum), tuple(knots))
