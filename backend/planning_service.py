"""A plan for a district from its own bundle: stops, students, school buses → a draft bundle.

The district's children per stop and school become a ``routing.planning`` instance (positions
projected to metres around the district; travel along the roads of an OpenStreetMap extract
when one is given, ``backend/osm_roads.py``, else by straight line × a road factor at a set
speed), the solver plans routes and buses, and the answer is
written back as a **draft bundle** ``xiaoche import`` accepts: the stops used, one route per
planned route (its stops, then the school) with one weekday run whose ``vehicle_id`` is the bus
planned to drive it, and the school buses with their planned routes (new ``plan-bus-N``
vehicles when the district has too few). Plus a report: buses, kilometres, longest ride,
children per bus, and the travel model used.
"""

from __future__ import annotations

import functools
import math
import os
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from routing.planning.checker import check_plan
from routing.planning.model import Instance, Params, Plan, School, Stop
from routing.planning.solver import solve
from routing.planning.travel import TravelMatrix

if TYPE_CHECKING:
    from backend.osm_roads import RoadGraph

Metres = Callable[[float, float, float, float], float]

#: Straight-line distance × this is the road distance: a typical detour factor of rural roads.
ROAD_FACTOR = 1.3
#: A loaded school bus on county and village roads, stops excluded.
SPEED_KMH = 30.0
EARTH_M = 6_371_000.0
WEEKDAYS = [1, 2, 3, 4, 5]


class PlanningError(ValueError):
    """The district cannot be planned as asked (said in words a district admin can act on)."""


def _hhmm(value: str) -> float:
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise PlanningError(f"{value!r} is not a time HH:MM")
    h, m, s = (int(p) for p in (parts + ["0"])[:3])
    if h > 23 or m > 59 or s > 59:
        raise PlanningError(f"{value!r} is not a time HH:MM")
    return float(h * 3600 + m * 60 + s)


def _clock(seconds: float) -> str:
    s = int(math.floor(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def bells_from_routes(bundle: dict[str, Any]) -> dict[str, float]:
    """Each school's bell time as its morning routes reach it now (the earliest arrival at the
    school before noon among the routes that end there)."""
    bells: dict[str, float] = {}
    for route in bundle.get("routes") or []:
        school_id = route.get("school_id")
        stops = route.get("stops") or []
        if not school_id or not stops or stops[-1].get("stop_id") != school_id:
            continue
        times = [r["times"][-1] for r in route.get("runs") or [] if r.get("times")]
        if stops[-1].get("time"):
            times.append(stops[-1]["time"])
        for t in times:
            arrive = _hhmm(t)
            if arrive < 12 * 3600:
                bells[school_id] = min(bells.get(school_id, arrive), arrive)
    return bells


def district_instance(bundle: dict[str, Any], bells: dict[str, float]
                      ) -> tuple[Instance, dict[str, tuple[float, float]]]:
    """The planning instance (ids ``stop@school`` for a stop's children of one school) and each
    planning point's (lat, lon)."""
    schools = {s["id"]: s for s in bundle.get("schools") or []}
    stops = {s["id"]: s for s in bundle.get("stops") or []}
    children: Counter[tuple[str, str]] = Counter()
    for student in bundle.get("students") or []:
        if student.get("stop_id") in stops and student.get("school_id") in schools:
            children[(student["stop_id"], student["school_id"])] += 1
    if not children:
        raise PlanningError("no student has both a stop and a school: nothing to plan")
    wanted = sorted({school for _, school in children})
    missing = [s for s in wanted if s not in bells]
    if missing:
        raise PlanningError(f"no bell time for {', '.join(missing)}: no morning route reaches "
                            f"it; give --bell {missing[0]}=HH:MM")
    points = [(stops[s]["lat"], stops[s]["lon"]) for s, _ in children]
    points += [(schools[s]["lat"], schools[s]["lon"]) for s in wanted]
    lat0 = math.radians(sum(p[0] for p in points) / len(points))

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return (EARTH_M * math.radians(lon) * math.cos(lat0), EARTH_M * math.radians(lat))

    where: dict[str, tuple[float, float]] = {}
    plan_schools = []
    for sid in wanted:
        s = schools[sid]
        plan_schools.append(School(sid, *xy(s["lat"], s["lon"]), bells[sid]))
        where[sid] = (s["lat"], s["lon"])
    plan_stops = []
    for (stop_id, school_id), n in sorted(children.items()):
        s = stops[stop_id]
        plan_stops.append(Stop(f"{stop_id}@{school_id}", *xy(s["lat"], s["lon"]), school_id, n))
        where[f"{stop_id}@{school_id}"] = (s["lat"], s["lon"])
    return Instance(bundle.get("district", {}).get("id", "district"), tuple(plan_schools),
                    tuple(plan_stops)), where


def plan_district(bundle: dict[str, Any], *, max_ride_s: float = 2700.0,
                  time_limit_s: float = 30.0, speed_kmh: float = SPEED_KMH,
                  road_factor: float = ROAD_FACTOR, bells: dict[str, str] | None = None,
                  seats: int | None = None,
                  progress: Callable[[str], None] | None = None,
                  roads: RoadGraph | None = None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(draft bundle, report)`` for the district in ``bundle`` (a loaded bundle document).

    With ``roads`` (``backend.osm_roads.read_roads``) travel follows them; a point too far from
    any road keeps the straight line × ``road_factor`` at ``speed_kmh``."""
    known = bells_from_routes(bundle)
    known.update({k: _hhmm(v) for k, v in (bells or {}).items()})
    instance, where = district_instance(bundle, known)
    buses = [v for v in bundle.get("vehicles") or [] if v.get("kind") == "school_bus"]
    capacity = seats or min((v["seats"] for v in buses if v.get("seats")), default=66)
    params = Params(capacity=capacity, speed_per_s=speed_kmh / 3.6 / road_factor,
                    max_ride_s=max_ride_s, metric="straight")

    def metres(ax: float, ay: float, bx: float, by: float) -> float:
        return math.hypot(ax - bx, ay - by) * road_factor

    travel = f"straight line × {road_factor} at {speed_kmh} km/h (no road network read)"
    if roads is not None:
        matrix, metres = road_matrix(instance, where, roads, params, road_factor)
        params = Params(capacity=capacity, speed_per_s=params.speed_per_s,
                        max_ride_s=max_ride_s, metric="straight", roads=matrix)
        travel = matrix.description
        if progress:
            progress(f"travel: {travel}")
    try:
        plan = solve(instance, params, time_limit_s, progress)
    except ValueError as e:
        raise PlanningError(str(e).replace("@", " for school ")) from None
    problems = check_plan(instance, plan.to_json(), params)
    if problems:  # the solver's own rules broken: a bug, never a draft to import
        raise RuntimeError(f"the plan fails its own check: {problems[:3]}")
    return _draft(bundle, plan, where, buses, capacity), _report(
        plan, params, instance, metres, travel, capacity)


def road_matrix(instance: Instance, where: dict[str, tuple[float, float]], roads: RoadGraph,
                params: Params, road_factor: float) -> tuple[TravelMatrix, Metres]:
    """The road travel times between the instance's points and a metres-along-the-road lookup;
    its description says what was read and how far the points were snapped."""
    from backend.osm_roads import MAX_SNAP_M, road_times

    names: dict[tuple[float, float], str] = {}
    latlon: dict[tuple[float, float], tuple[float, float]] = {}
    for p in (*instance.schools, *instance.stops):
        names.setdefault((p.x, p.y), p.id.split("@")[0])
        latlon[(p.x, p.y)] = where[p.id]
    keys = sorted(latlon)

    def straight(i: int, j: int) -> tuple[float, float]:
        (ax, ay), (bx, by) = keys[i], keys[j]
        return params.travel_s(ax, ay, bx, by), math.hypot(ax - bx, ay - by) * road_factor

    times = road_times(roads, [latlon[k] for k in keys], straight)
    index = {k: i for i, k in enumerate(keys)}
    snapped = [m for m in times.snap_m if m is not None]
    far = [names[k] for k, m in zip(keys, times.snap_m, strict=True) if m is None]
    text = (f"OSM roads from {roads.source}: {roads.nodes} nodes, {roads.edges} edges; "
            f"{len(snapped)} points snapped, farthest {max(snapped, default=0):.0f} m")
    if far:
        text += (f"; {len(far)} more than {MAX_SNAP_M:.0f} m from any road keep the straight "
                 f"line × {road_factor}: {', '.join(far)}")
    matrix = TravelMatrix(index, times.seconds.tolist(), text)

    def metres(ax: float, ay: float, bx: float, by: float) -> float:
        return float(times.metres[index[(ax, ay)], index[(bx, by)]])

    return matrix, metres


def _draft(bundle: dict[str, Any], plan: Plan, where: dict[str, tuple[float, float]],
           buses: list[dict[str, Any]], capacity: int) -> dict[str, Any]:
    schools = {s["id"]: s for s in bundle.get("schools") or []}
    used_stops: set[str] = set()
    routes, vehicles = [], []
    count: Counter[str] = Counter()
    assigned = _vehicles_for(plan, buses, bundle)
    for n, bus_routes in enumerate(plan.buses):
        if assigned[n] is not None:
            vehicle = dict(assigned[n])
            vehicle["route_ids"] = list(vehicle.get("route_ids") or [])  # kept until retired
        else:
            vehicle = {"id": f"plan-bus-{n + 1}", "kind": "school_bus", "seats": capacity,
                       "route_ids": []}
        for r in bus_routes:
            count[r.school_id] += 1
            route_id = f"plan-{r.school_id}-{count[r.school_id]}"
            stop_ids = [v.stop_id.split("@")[0] for v in r.visits]
            used_stops.update(stop_ids)
            coords = [[where[v.stop_id][1], where[v.stop_id][0]] for v in r.visits]
            coords.append([schools[r.school_id]["lon"], schools[r.school_id]["lat"]])
            name = schools[r.school_id].get("name", r.school_id)
            routes.append({
                "id": route_id, "name": f"{name} 规划线路{count[r.school_id]}",
                "school_id": r.school_id,
                "path": {"type": "LineString", "coordinates": coords},
                "stops": [{"stop_id": s} for s in stop_ids] + [{"stop_id": r.school_id}],
                "runs": [{"id": f"{route_id}-am",
                          "times": [_clock(v.arrival_s) for v in r.visits]
                          + [_clock(r.school_arrival_s)],
                          "days": WEEKDAYS, "vehicle_id": vehicle["id"]}],
            })
            vehicle["route_ids"].append(route_id)
        vehicles.append(vehicle)
    stops = [s for s in bundle.get("stops") or [] if s["id"] in used_stops]
    return {"stops": stops, "routes": routes, "vehicles": vehicles}


def _vehicles_for(plan: Plan, buses: list[dict[str, Any]], bundle: dict[str, Any]
                  ) -> list[dict[str, Any] | None]:
    """A district bus for each planned bus, the one that serves the same schools now first (its
    driver knows the way); ``None`` where the district has too few buses."""
    school_of = {r["id"]: r.get("school_id") for r in bundle.get("routes") or []}
    free = list(buses)
    out: list[dict[str, Any] | None] = []
    for bus_routes in plan.buses:
        schools = {r.school_id for r in bus_routes}
        if not free:
            out.append(None)
            continue
        best = max(free, key=lambda v: sum(school_of.get(r) in schools
                                           for r in v.get("route_ids") or []))
        free.remove(best)
        out.append(best)
    return out


def _report(plan: Plan, params: Params, instance: Instance, metres: Metres, travel: str,
            capacity: int) -> dict[str, Any]:
    at = {p.id: (p.x, p.y) for p in (*instance.schools, *instance.stops)}
    route_m = empty_m = 0.0
    longest = 0.0
    for bus in plan.buses:
        for n, r in enumerate(bus):
            legs = [at[v.stop_id] for v in r.visits] + [at[r.school_id]]
            route_m += sum(metres(*a, *b) for a, b in zip(legs, legs[1:], strict=False))
            if n:
                empty_m += metres(*at[bus[n - 1].school_id], *legs[0])
            longest = max(longest, max(r.school_arrival_s - v.arrival_s for v in r.visits))
    return {
        "buses": len(plan.buses),
        "routes": len(plan.routes),
        "km": round((route_m + empty_m) / 1000, 1),
        "empty_km": round(empty_m / 1000, 1),
        "longest_ride_min": round(longest / 60, 1),
        "children_per_bus": [sum(r.load for r in bus) for bus in plan.buses],
        "seats": capacity,
        "travel": travel,
    }


@functools.lru_cache(maxsize=2)
def _roads_of(path: str, mtime_ns: int, size: int) -> RoadGraph:
    from backend.osm_roads import read_roads

    return read_roads(path)


def cached_roads(path: str) -> RoadGraph:
    """The road graph of ``path``, read once per version of the file (a county's extract takes
    seconds to read; plans are asked for again and again while the office tries options)."""
    from backend.osm_roads import OsmError, read_roads

    try:
        stat = os.stat(path)
    except OSError:
        return read_roads(path)  # raises OsmError saying the file is missing
    if not os.path.isfile(path):
        raise OsmError(f"{path}: not a file")
    return _roads_of(path, stat.st_mtime_ns, stat.st_size)


def district_bundle() -> dict[str, Any]:
    """What planning reads of the stored district, in the bundle's own shapes (needs an app
    context): schools, stops, routes with their runs' times, students, vehicles."""
    from sqlalchemy import select

    from backend.extensions import db
    from backend.models import Route, School, Stop, Student, Vehicle

    routes = []
    for route in db.session.scalars(select(Route).order_by(Route.id)):
        stops = [{"stop_id": rs.stop_id or rs.school_id} for rs in route.stops]
        runs = [{"times": [_clock(t) for t in run.times_s if t is not None]}
                for run in route.runs]
        routes.append({"id": route.id, "school_id": route.school_id, "stops": stops,
                       "runs": [r for r in runs if r["times"]]})
    return {
        "schools": [{"id": s.id, "name": s.name, "lat": s.lat, "lon": s.lon}
                    for s in db.session.scalars(select(School).order_by(School.id))],
        "stops": [{"id": s.id, "name": s.name, "lat": s.lat, "lon": s.lon,
                   "radius_m": s.radius_m}
                  for s in db.session.scalars(select(Stop).order_by(Stop.id))],
        "routes": routes,
        "students": [{"school_id": s.school_id, "stop_id": s.stop_id}
                     for s in db.session.scalars(select(Student).order_by(Student.id))],
        "vehicles": [{"id": v.id, "kind": v.kind, "plate": v.plate, "seats": v.seats,
                      "speed_limit_kmh": v.speed_limit_kmh,
                      "route_ids": [r.id for r in v.routes]}
                     for v in db.session.scalars(select(Vehicle).order_by(Vehicle.id))],
    }
