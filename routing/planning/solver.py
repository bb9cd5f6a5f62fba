"""One plan for an instance: each school's routes (a VRP library), then buses (exact chaining).

Each school's routes are built in a few *variants* (a route's fixed cost against driving, and
a bound on its span from first stop to school): fewer routes need fewer buses at one bell time,
shorter ones free their bus sooner for a later school. Which variant each school uses is then
chosen by coordinate descent on the exact chaining's (buses, empty driving). The time limit is
shared among schools in proportion to their stops and among the variants equally; the choice
adds a few seconds of chaining. ``progress(message)`` is called as each school is done and as
the choice improves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from routing.planning.chaining import Leg, chain
from routing.planning.model import Instance, Params, Plan, Route, schedule_route
from routing.planning.routes import ROUTE_COST_S, NoRoutesFound, build_routes

Progress = Callable[[str], None]
#: (route cost in seconds of driving, longest route span in seconds or None): see module doc.
Variant = tuple[float, float | None]
#: Fewest routes (a route costs 20 000 s of driving) or a balance (3 600 s), each unbounded or
#: with spans of at most 40 or 30 min; on CSCB03 (60 s) one variant gave 68 buses, these six 66.
VARIANTS: tuple[Variant, ...] = tuple((cost, span) for cost in (20000.0, ROUTE_COST_S)
                                      for span in (None, 2400.0, 1800.0))


def solve(instance: Instance, params: Params, time_limit_s: float = 60.0,
          progress: Progress | None = None, engine: str = "pyvrp",
          variants: Sequence[Variant] = VARIANTS, seed: int = 0) -> Plan:
    say = progress or (lambda _message: None)
    total_stops = max(len(instance.stops), 1)
    schools = sorted(instance.schools, key=lambda s: (s.bell_s, s.id))
    options: list[list[list[Route]]] = []  # per school, per variant: its routes
    for k, school in enumerate(schools, start=1):
        stops = instance.stops_of(school.id)
        share = time_limit_s * len(stops) / total_stops / len(variants)
        per_variant = []
        for cost_s, span_s in variants:
            try:
                built = build_routes(school, stops, params, share, engine, cost_s, seed, span_s)
            except NoRoutesFound:
                continue  # a bounded span the library could not meet in time: other variants
            per_variant.append([schedule_route(school, pieces, params) for pieces in built])
        if not per_variant:
            raise NoRoutesFound(f"school {school.id}: the VRP solver found no feasible routes "
                                f"in {share * len(variants):.1f} s; give it more time")
        options.append(per_variant)
        say(f"school {school.id} ({k}/{len(schools)}): {len(stops)} stops, "
            f"{'/'.join(str(len(v)) for v in per_variant)} routes in "
            f"{share * len(variants):.1f} s")
    stops_by_id = {s.id: s for s in instance.stops}
    schools_by_id = {s.id: s for s in instance.schools}

    def leg(r: Route) -> Leg:
        first = stops_by_id[r.visits[0].stop_id]
        school = schools_by_id[r.school_id]
        return Leg(r.start_s, first.x, first.y, r.school_arrival_s + params.school_dwell_s,
                   school.x, school.y)

    def evaluate(choice: list[int]) -> tuple[int, float, list[Route], list[list[int]]]:
        routes = [r for opts, c in zip(options, choice, strict=True) for r in opts[c]]
        buses, empty_s = chain([leg(r) for r in routes], params.travel_s)
        return len(buses), empty_s, routes, buses

    choice = [0] * len(schools)
    best = evaluate(choice)
    improved = len(variants) > 1
    while improved:
        improved = False
        for s in range(len(schools)):
            for v in range(len(options[s])):
                if v == choice[s]:
                    continue
                trial = choice.copy()
                trial[s] = v
                result = evaluate(trial)
                if result[:2] < best[:2]:
                    choice, best, improved = trial, result, True
                    say(f"school {schools[s].id} takes its routes #{v + 1}: {best[0]} buses")
    n_buses, empty_s, routes, buses = best
    say(f"{len(routes)} routes chained into {n_buses} buses "
        f"({empty_s / 3600:.1f} h of empty driving between routes)")
    return Plan(instance.name, params.max_ride_s,
                tuple(tuple(routes[i] for i in bus) for bus in buses), empty_s,
                {"routes": len(routes), "engine": engine, "time_limit_s": time_limit_s})
