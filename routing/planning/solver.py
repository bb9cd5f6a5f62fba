"""One plan for an instance: each school's routes (a VRP library), then buses (exact chaining).

The time limit is shared among the schools in proportion to their stops; the chaining is exact
and takes well under a second. ``progress(message)`` is called as each school is done.
"""

from __future__ import annotations

from collections.abc import Callable

from routing.planning.chaining import Leg, chain
from routing.planning.model import Instance, Params, Plan, Route, schedule_route
from routing.planning.routes import ROUTE_COST_S, build_routes

Progress = Callable[[str], None]


def solve(instance: Instance, params: Params, time_limit_s: float = 60.0,
          progress: Progress | None = None, engine: str = "pyvrp",
          route_cost_s: float = ROUTE_COST_S, seed: int = 0) -> Plan:
    say = progress or (lambda _message: None)
    total_stops = max(len(instance.stops), 1)
    routes: list[Route] = []
    for k, school in enumerate(sorted(instance.schools, key=lambda s: s.bell_s), start=1):
        stops = instance.stops_of(school.id)
        share = time_limit_s * len(stops) / total_stops
        built = build_routes(school, stops, params, share, engine, route_cost_s, seed)
        routes.extend(schedule_route(school, pieces, params) for pieces in built)
        say(f"school {school.id} ({k}/{len(instance.schools)}): {len(stops)} stops, "
            f"{len(built)} routes in {share:.1f} s")
    stops_by_id = {s.id: s for s in instance.stops}
    legs = []
    for r in routes:
        first = stops_by_id[r.visits[0].stop_id]
        school = instance.school(r.school_id)
        legs.append(Leg(r.start_s, first.x, first.y, r.school_arrival_s + params.school_dwell_s,
                        school.x, school.y))
    buses, empty_s = chain(legs, params.travel_s)
    say(f"{len(routes)} routes chained into {len(buses)} buses "
        f"({empty_s / 3600:.1f} h of empty driving between routes)")
    return Plan(instance.name, params.max_ride_s,
                tuple(tuple(routes[i] for i in bus) for bus in buses), empty_s,
                {"routes": len(routes), "engine": engine, "time_limit_s": time_limit_s})
