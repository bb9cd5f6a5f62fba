"""The simulated fleet of the sample district (backend/sample/lukou.json), as timelines of legs.

- bus-07 drives 朱亭早班1号线 (zt-am-1) and back as 朱亭晚班1号线 (zt-pm-1), over and over;
- bus-12 drives 龙凤早班1号线 (lf-am-1), then back empty to 太湖村 for the next run; every third
  run it drives one stretch too fast (the staff page's overspeed);
- car-liu, 刘胜's car, drives between 朱亭学校 and 龙凤学校 (走教), a lesson's stay at each;
- truck-01 brings the meals from the central kitchen to 朱亭学校 and 龙凤学校 and goes back.

The first departures are seconds after ``start`` (a trip starts when its bus leaves the first
stop), so something moves at once. All of it is a pure function of the bundle, ``start`` and
``seed``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from backend.demo.geometry import LatLon, along_of, path_lengths
from backend.demo.plan import Leg, RouteShape, drive_leg, run_leg

BUS_KMH = 30.0
BUS_SPEEDING_KMH = 68.0  # the sample buses' limit is 60
CAR_KMH = 42.0
TRUCK_KMH = 36.0
LAYOVER_S = 150.0  # a bus waits this long at the first stop of its next run
# 朱亭学校 → 龙凤学校 by road, and the central kitchen (中心厨房) west of 朱亭学校
SCHOOL_ROAD: tuple[LatLon, ...] = ((27.4301, 113.2052), (27.4365, 113.2160), (27.4440, 113.2265),
                                   (27.4530, 113.2370), (27.4620, 113.2480))
KITCHEN_ROAD: tuple[LatLon, ...] = ((27.4190, 113.1930), (27.4235, 113.1995), (27.4301, 113.2052))


@dataclass(frozen=True)
class DemoDevice:
    device_id: str
    vehicle_id: str
    token: str
    crs: str  # "wgs84" or "gcj02": what the device sends


class Timeline:
    """A vehicle's legs, planned lazily from an endless iterator and forgotten once past."""

    def __init__(self, vehicle_id: str, legs: Iterator[Leg]):
        self.vehicle_id = vehicle_id
        self._legs = legs
        self.planned: list[Leg] = []

    def plan_until(self, t: float) -> list[Leg]:
        """Plan legs until one ends after ``t``; returns the legs newly planned."""
        new = []
        while not self.planned or self.planned[-1].ends_at <= t:
            leg = next(self._legs)
            self.planned.append(leg)
            new.append(leg)
        return new

    def leg_at(self, t: float) -> Leg:
        self.plan_until(t)
        while len(self.planned) > 1 and self.planned[0].ends_at <= t:
            self.planned.pop(0)
        return self.planned[0]

    @property
    def planned_until(self) -> float:
        return self.planned[-1].ends_at if self.planned else float("-inf")


def route_shape(bundle: dict[str, Any], route_id: str, with_riders: bool) -> RouteShape:
    route = next(r for r in bundle["routes"] if r["id"] == route_id)
    path = [(lat, lon) for lon, lat in route["path"]["coordinates"]]
    cum = path_lengths(path)
    places = {p["id"]: (p["lat"], p["lon"]) for p in bundle["stops"] + bundle["schools"]}
    stop_ids = [s["stop_id"] for s in route["stops"]]
    alongs = [along_of(path, cum, places[s]) for s in stop_ids]
    riders = [(s["card_id"], s["stop_id"]) for s in bundle["students"]
              if with_riders and s.get("route_id") == route_id and s.get("stop_id") in stop_ids
              and s.get("card_id")]
    return RouteShape.of(route_id, path, stop_ids, alongs, riders)


def bus_legs(vehicle_id: str, shapes: list[RouteShape], first_departure: float,
             wait_before_s: float, rng: random.Random, speeding_every: int = 0) -> Iterator[Leg]:
    """Run after run of ``shapes`` in turn; when a run ends away from the next one's first stop,
    the bus drives back along the path it came (empty, not a run) first."""
    depart, wait, k = first_departure, wait_before_s, 0
    while True:
        shape = shapes[k % len(shapes)]
        speeding = BUS_SPEEDING_KMH if speeding_every and k % speeding_every == 0 else None
        leg = run_leg(vehicle_id, shape, depart, wait, BUS_KMH, rng, speeding_kmh=speeding)
        yield leg
        k += 1
        end = leg.ends_at
        following = shapes[k % len(shapes)]
        if following.path[0] != shape.path[-1]:
            back = drive_leg(vehicle_id, shape.path, end, 0.0, BUS_KMH + 5, 0.0, reverse=True)
            yield back
            end = back.ends_at
        depart, wait = end + LAYOVER_S, LAYOVER_S


def shuttle_legs(vehicle_id: str, road: tuple[LatLon, ...], start: float, first_wait_s: float,
                 stay_s: float, speed_kmh: float) -> Iterator[Leg]:
    """There and back along ``road`` for ever, staying ``stay_s`` at each end."""
    t, wait, reverse = start, first_wait_s, False
    while True:
        leg = drive_leg(vehicle_id, road, t, wait, speed_kmh, 0.0, reverse=reverse)
        yield leg
        t, wait, reverse = leg.ends_at, stay_s, not reverse


def truck_legs(vehicle_id: str, start: float, first_wait_s: float) -> Iterator[Leg]:
    """Kitchen → 朱亭学校 → 龙凤学校 → back to the kitchen, unloading a few minutes at each."""
    home = KITCHEN_ROAD + SCHOOL_ROAD[1:]
    t, wait = start, first_wait_s
    while True:
        for path, reverse, stay in ((KITCHEN_ROAD, False, 300.0), (SCHOOL_ROAD, False, 300.0),
                                    (home, True, 900.0)):
            leg = drive_leg(vehicle_id, path, t, wait, TRUCK_KMH, 0.0, reverse=reverse)
            yield leg
            t, wait = leg.ends_at, stay


def sample_fleet(bundle: dict[str, Any], start: float,
                 seed: int = 7) -> tuple[list[Timeline], dict[str, DemoDevice]]:
    """The timelines of the demo's vehicles and the device each one reports through."""
    rng = random.Random(seed)
    am, pm = route_shape(bundle, "zt-am-1", True), route_shape(bundle, "zt-pm-1", False)
    lf = route_shape(bundle, "lf-am-1", True)
    timelines = [
        Timeline("bus-07", bus_legs("bus-07", [am, pm], start + 20.0, 20.0, rng)),
        Timeline("bus-12", bus_legs("bus-12", [lf], start + 45.0, 45.0, rng, speeding_every=3)),
        Timeline("car-liu", shuttle_legs("car-liu", SCHOOL_ROAD, start, 60.0, 1200.0, CAR_KMH)),
        Timeline("truck-01", truck_legs("truck-01", start, 30.0)),
    ]
    wanted = {t.vehicle_id for t in timelines}
    devices = {d["vehicle_id"]: DemoDevice(d["id"], d["vehicle_id"], d["token"],
                                           d.get("crs") or "wgs84")
               for d in bundle["devices"] if d["vehicle_id"] in wanted}
    return timelines, devices
