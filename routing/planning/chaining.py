"""Chains routes into buses: the fewest buses exactly, then the least empty driving.

Route ``b`` may follow route ``a`` on one bus when the bus, free at ``a``'s school after
unloading, can drive empty to ``b``'s first stop by the time ``b`` starts. Those pairs form an
acyclic graph (time only moves forward); a fleet is a cover of all routes by paths, and the
fewest paths is the number of routes minus the largest matching of "a is followed by b" pairs
(König / Fulkerson). One min-cost flow finds that matching and, among the largest, the one with
the least empty driving: every route may instead go straight to the sink at a cost larger than
all empty drives together, so each pair matched saves a bus before it costs a second.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Leg:
    """What chaining needs of a route: when and where it starts, when and where the bus is free."""

    start_s: float
    start_x: float
    start_y: float
    free_s: float
    end_x: float
    end_y: float


def chain(legs: Sequence[Leg], travel_s: Callable[[float, float, float, float], float]
          ) -> tuple[list[list[int]], float]:
    """``(buses, empty driving in seconds)``: each bus the indices of its legs in time order.

    ``travel_s(ax, ay, bx, by)`` is the empty drive's duration."""
    from ortools.graph.python import min_cost_flow

    n = len(legs)
    if n == 0:
        return [], 0.0
    pairs: list[tuple[int, int, int]] = []  # (a, b, empty drive in whole seconds, rounded up)
    for a, la in enumerate(legs):
        for b, lb in enumerate(legs):
            if a == b:
                continue
            drive = travel_s(la.end_x, la.end_y, lb.start_x, lb.start_y)
            if la.free_s + drive <= lb.start_s:
                pairs.append((a, b, math.ceil(drive)))
    skip_cost = sum(c for _, _, c in pairs) + 1
    # nodes: 0 source, 1..n "a ends", n+1..2n "b starts", 2n+1 sink
    source, sink = 0, 2 * n + 1
    flow = min_cost_flow.SimpleMinCostFlow()
    for a in range(n):
        flow.add_arc_with_capacity_and_unit_cost(source, 1 + a, 1, 0)
        flow.add_arc_with_capacity_and_unit_cost(1 + a, sink, 1, skip_cost)
        flow.add_arc_with_capacity_and_unit_cost(1 + n + a, sink, 1, 0)
    arcs = {}
    for a, b, cost in pairs:
        arcs[flow.add_arc_with_capacity_and_unit_cost(1 + a, 1 + n + b, 1, cost)] = (a, b)
    flow.set_node_supply(source, n)
    flow.set_node_supply(sink, -n)
    if flow.solve() != flow.OPTIMAL:
        raise RuntimeError("min-cost flow did not solve")  # cannot happen: skipping is feasible
    follows: dict[int, int] = {}
    for arc, (a, b) in arcs.items():
        if flow.flow(arc):
            follows[a] = b
    followed = set(follows.values())
    buses = []
    for a in sorted((i for i in range(n) if i not in followed), key=lambda i: legs[i].start_s):
        bus = [a]
        while bus[-1] in follows:
            bus.append(follows[bus[-1]])
        buses.append(bus)
    empty = sum(travel_s(legs[a].end_x, legs[a].end_y, legs[b].start_x, legs[b].start_y)
                for a, b in follows.items())
    return buses, empty
