"""Builds one school's routes with a VRP library (PyVRP by default, OR-Tools to compare).

A morning route ends at the school and every child's ride is bounded from their own stop, so the
route is solved *reversed*: a vehicle leaves the school (the depot), visits stops, and ends
anywhere (the edges back to the depot cost nothing). A stop's time in the reversed route plus
its own stop time is then exactly the ride time of its children, a plain time window
``[0, max_ride - stop time]``. Times are whole tenths of a second rounded up, so a route the
library finds feasible is feasible in exact arithmetic too. Objective: a fixed cost per route
(``route_cost_s``; fewer routes means fewer buses at the same bell time) plus driving time.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from routing.planning.model import Params, School, Stop

TICKS_PER_S = 10
NO_LIMIT = 2**62  # PyVRP's "unbounded" is the largest int64; any bound far past a morning will do
#: One more route costs as much as this much driving: routes at one bell time each need a bus.
ROUTE_COST_S = 3600.0

Piece = tuple[Stop, int]  # a stop and the children of it one route picks up


class NoRoutesFound(ValueError):
    """The library found no feasible routes within its time (not that none exist)."""


def split_stops(stops: Sequence[Stop], params: Params) -> list[Piece]:
    """A stop with more children than a bus holds becomes several pieces of at most a bus."""
    pieces: list[Piece] = []
    for stop in stops:
        left = stop.students
        while left > 0:
            take = min(left, params.capacity)
            pieces.append((stop, take))
            left -= take
    return pieces


def _ticks_up(seconds: float) -> int:
    return math.ceil(seconds * TICKS_PER_S - 1e-9)


def _matrix(school: School, pieces: list[Piece], params: Params) -> list[list[int]]:
    """Travel ticks between node 0 (the school) and nodes 1… (the pieces)."""
    pts = [(school.x, school.y)] + [(s.x, s.y) for s, _ in pieces]
    return [[_ticks_up(params.travel_s(ax, ay, bx, by)) for bx, by in pts] for ax, ay in pts]


def _latest(pieces: list[Piece], params: Params) -> list[int]:
    return [math.floor((params.max_ride_s - params.stop_s(n)) * TICKS_PER_S)
            for _, n in pieces]


def build_routes(school: School, stops: Sequence[Stop], params: Params, time_limit_s: float,
                 engine: str = "pyvrp", route_cost_s: float = ROUTE_COST_S,
                 seed: int = 0, max_span_s: float | None = None) -> list[list[Piece]]:
    """The school's routes, each the pieces in driving order (first pickup first).

    ``max_span_s`` bounds a route from its first stop to the school: shorter routes leave the
    bus free sooner for a later school's route.

    Raises ``ValueError`` if some stop cannot reach the school within the ride time at all."""
    pieces = split_stops(stops, params)
    if not pieces:
        return []
    latest = _latest(pieces, params)
    matrix = _matrix(school, pieces, params)
    for i, (stop, _) in enumerate(pieces, start=1):
        if matrix[0][i] > latest[i - 1]:
            raise ValueError(f"stop {stop.id} is more than the maximum ride from school "
                             f"{school.id}")
    # no span shorter than the longest single-stop route, or that stop has no route at all
    span = None if max_span_s is None else max(_ticks_up(max_span_s), max(
        matrix[0][i] + _ticks_up(params.stop_s(n)) for i, (_, n) in enumerate(pieces, 1)))
    if engine == "pyvrp":
        reversed_routes = _solve_pyvrp(pieces, params, matrix, latest, time_limit_s,
                                       route_cost_s, seed, span)
    elif engine == "ortools":
        reversed_routes = _solve_ortools(pieces, params, matrix, latest, time_limit_s,
                                         route_cost_s, span)
    else:
        raise ValueError(f"unknown engine {engine!r}")
    return [[pieces[i] for i in reversed(route)] for route in reversed_routes]


def _solve_pyvrp(pieces: list[Piece], params: Params, matrix: list[list[int]],
                 latest: list[int], time_limit_s: float, route_cost_s: float,
                 seed: int, span: int | None) -> list[list[int]]:
    import pyvrp
    from pyvrp.exceptions import PenaltyBoundWarning
    from pyvrp.stop import MaxRuntime

    m = pyvrp.Model()
    school_loc = m.add_location(0, 0)
    depot = m.add_depot(school_loc)
    m.add_vehicle_type(num_available=len(pieces), capacity=params.capacity,
                       start_depot=depot, end_depot=depot,
                       fixed_cost=_ticks_up(route_cost_s),
                       shift_duration=NO_LIMIT if span is None else span)
    locs = [school_loc]
    for (_, n), late in zip(pieces, latest, strict=True):
        loc = m.add_location(0, 0)
        m.add_client(loc, delivery=n, service_duration=_ticks_up(params.stop_s(n)),
                     tw_early=0, tw_late=late)
        locs.append(loc)
    for i, a in enumerate(locs):
        for j, b in enumerate(locs):
            if i == j:
                continue
            ticks = 0 if j == 0 else matrix[i][j]  # open route: the way back is free
            m.add_edge(a, b, distance=ticks, duration=ticks)
    with warnings.catch_warnings():
        # a tight instance drives PyVRP's penalties to their bound and it warns; what it found
        # is judged below by feasibility, which is what decides
        warnings.simplefilter("ignore", PenaltyBoundWarning)
        result = m.solve(stop=MaxRuntime(max(time_limit_s, 0.1)), seed=seed, display=False)
    if not result.is_feasible():
        raise NoRoutesFound("the VRP solver found no feasible routes in the time limit")
    # a client activity's idx is its place among the clients, the order pieces were added
    return [[a.idx for a in route if a.is_client()] for route in result.best.routes()]


def _solve_ortools(pieces: list[Piece], params: Params, matrix: list[list[int]],
                   latest: list[int], time_limit_s: float,
                   route_cost_s: float, span: int | None) -> list[list[int]]:
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    n = len(pieces)
    vehicles = min(n, 2 * math.ceil(sum(k for _, k in pieces) / params.capacity) + 5)
    manager = pywrapcp.RoutingIndexManager(n + 1, vehicles, 0)
    model = pywrapcp.RoutingModel(manager)
    service = [0] + [_ticks_up(params.stop_s(k)) for _, k in pieces]

    def drive(i: int, j: int) -> int:
        a, b = manager.IndexToNode(i), manager.IndexToNode(j)
        return 0 if b == 0 else matrix[a][b]

    def clock(i: int, j: int) -> int:  # the end's time is the route's span
        a, b = manager.IndexToNode(i), manager.IndexToNode(j)
        return service[a] + (0 if b == 0 else matrix[a][b])

    model.SetArcCostEvaluatorOfAllVehicles(model.RegisterTransitCallback(drive))
    model.SetFixedCostOfAllVehicles(_ticks_up(route_cost_s))
    time_cb = model.RegisterTransitCallback(clock)
    model.AddDimension(time_cb, 0, max(latest) + max(service), True, "time")
    dim = model.GetDimensionOrDie("time")
    if span is not None:
        for v in range(vehicles):
            dim.CumulVar(model.End(v)).SetMax(span)
    for node in range(1, n + 1):
        dim.CumulVar(manager.NodeToIndex(node)).SetRange(0, latest[node - 1])
    load_cb = model.RegisterUnaryTransitCallback(
        lambda i: 0 if manager.IndexToNode(i) == 0 else pieces[manager.IndexToNode(i) - 1][1])
    model.AddDimensionWithVehicleCapacity(load_cb, 0, [params.capacity] * vehicles, True, "load")
    search = pywrapcp.DefaultRoutingSearchParameters()
    search.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    search.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH)
    search.time_limit.FromMilliseconds(max(int(time_limit_s * 1000), 100))
    solution = model.SolveWithParameters(search)
    if solution is None:
        raise NoRoutesFound("the VRP solver found no feasible routes in the time limit")
    routes = []
    for v in range(vehicles):
        idx = solution.Value(model.NextVar(model.Start(v)))
        route = []
        while not model.IsEnd(idx):
            route.append(manager.IndexToNode(idx) - 1)
            idx = solution.Value(model.NextVar(idx))
        if route:
            routes.append(route)
    return routes
