"""Rider card scans on a bus become events: ``rider_boarded`` / ``rider_alighted`` for the
child's parents, and ``rider_wrong_bus`` for staff when the card is scanned on a bus that is
not serving the child's route."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from notifications.model import Child
from routing.model import Event, Route

_EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class ActiveTrip:
    """The trip the scanning vehicle is on (from the tracker state), if any."""

    route_id: str
    trip_id: str
    run_id: str | None = None


def scan_events(ts: float, card_id: str, action: str, vehicle_id: str, rider: Child | None,
                trip: ActiveTrip | None, vehicle_route_ids: Collection[str],
                stop_id: str | None = None) -> list[Event]:
    """Events of one scan (SPEC §4 ``scans``: ``action`` is ``board`` or ``alight``).

    ``rider`` is the student holding ``card_id`` (``None``: an unknown card, no event — the
    caller counts it). The bus is the wrong one when the child's route differs from the active
    trip's, or, outside a trip, is not among ``vehicle_route_ids`` (the routes the vehicle serves
    that day, substitutions included). ``stop_id`` is where the bus was, when known
    (:func:`stop_at`).

    >>> kid = Child("s-001", "李明", "zt-am-1", "longfeng-cun", "04A1B2C3")
    >>> trip = ActiveTrip("zt-am-2", "zt-am-2:2026-11-23:r")
    >>> [e.kind for e in scan_events(100.0, "04A1B2C3", "board", "bus-09", kid, trip, ["zt-am-2"])]
    ['rider_boarded', 'rider_wrong_bus']
    >>> scan_events(100.0, "FFFF", "board", "bus-09", None, trip, ["zt-am-2"])
    []
    """
    if rider is None or action not in ("board", "alight"):
        return []
    route_id = trip.route_id if trip else None
    trip_id = trip.trip_id if trip else None
    run_id = trip.run_id if trip else None
    wrong = rider.route_id is None or (
        rider.route_id != trip.route_id if trip else rider.route_id not in vehicle_route_ids)
    details = {"student_id": rider.student_id, "student_name": rider.name, "card_id": card_id,
               "action": action, "expected_route_id": rider.route_id, "wrong_bus": wrong}
    kind = "rider_boarded" if action == "board" else "rider_alighted"
    out = [Event(kind, ts, vehicle_id, route_id, trip_id, run_id, stop_id, details)]
    if wrong:
        out.append(Event("rider_wrong_bus", ts, vehicle_id, route_id, trip_id, run_id, stop_id,
                         details))
    return out


def stop_at(lat: float, lon: float, route: Route, slack_m: float = 50.0) -> str | None:
    """The route stop whose circle (plus ``slack_m``) holds the scan's position, nearest first.

    >>> from routing.model import Place, Route
    >>> r = Route("r", "R", None, ((113.0, 27.0), (113.01, 27.0)), 80.0,
    ...           (Place("a", "A", 27.0, 113.0, 60.0), Place("b", "B", 27.0, 113.01, 60.0)), ())
    >>> stop_at(27.0003, 113.0, r), stop_at(27.0, 113.005, r)
    ('a', None)
    """
    best: tuple[float, str] | None = None
    for place in route.stops:
        d = _distance_m(lat, lon, place.lat, place.lon)
        if d <= place.radius_m + slack_m and (best is None or d < best[0]):
            best = (d, place.id)
    return best[1] if best else None


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Equirectangular distance: exact enough at the scale of a stop circle."""
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    y = math.radians(lat2 - lat1)
    return _EARTH_RADIUS_M * math.hypot(x, y)
