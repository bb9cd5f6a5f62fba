"""A day of a fleet with its ground truth: what the tracker is given and what really happened."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from routing.model import Ping, VehicleContext


@dataclass(frozen=True)
class TruthTrip:
    """One vehicle driving (part of) one run.

    ``passages`` has one entry per stop of the route: when the bus really passed it, in epoch
    seconds, or ``None`` where nobody could observe it (the device was not on yet, had frozen, or
    another bus drove that part of the run). Stop 0's passage is its *departure* (the moment the
    bus leaves the first stop's circle: a bus lays over there, so its arrival says nothing about
    the run), every other stop's is its *arrival* (entering the stop's circle), or the closest
    approach for a stop the bus never comes within the radius of (a terminal layover off the
    stop).
    """

    run_id: str
    route_id: str
    vehicle_id: str
    service_date: dt.date
    scheduled: tuple[float, ...]  # epoch seconds per stop
    passages: tuple[float | None, ...]
    flags: frozenset[str] = frozenset()
    #: true offsets of each passage from the stop, metres (diagnostics; None where unobserved)
    passage_m: tuple[float | None, ...] = ()

    @property
    def key(self) -> tuple[str, str, dt.date]:
        return self.run_id, self.vehicle_id, self.service_date

    @property
    def observed(self) -> list[int]:
        """Indices of the stops with a truth passage."""
        return [j for j, t in enumerate(self.passages) if t is not None]


@dataclass
class Day:
    """Everything a tracker run needs (contexts, pings) and everything it is judged against.

    ``detours`` are the spans (per vehicle) when a bus on a trip really left its route's corridor:
    a deviation span overlapping none of them is false. The generated days have none (no bus ever
    detours), so every deviation the tracker raises on them is false; the HSL day has none either
    (99.3 % of its pings are within 30 m of the route, the farthest 86 m).
    """

    name: str
    service_date: dt.date
    contexts: dict[str, VehicleContext]
    pings: dict[str, list[Ping]]
    trips: list[TruthTrip]
    detours: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def n_pings(self) -> int:
        return sum(len(p) for p in self.pings.values())

    def flagged(self, flag: str) -> list[TruthTrip]:
        return [t for t in self.trips if flag in t.flags]
