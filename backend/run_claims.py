"""Which vehicle holds which run of a pool route, for the ingest's tracking step.

A route several vehicles list (a depot's pool, a spare bus) has each run driven by one of them a
day (:mod:`routing.fleet`). Live, the holds come from the stored tracker states of the vehicles
sharing the batch's pool routes — one statement for the partners outside the batch — and the
batch's own states as the tracking step advances them, vehicle by vehicle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, func, select

from backend.models import vehicle_routes
from backend.tracker_states import load_states
from routing import model as rm
from routing.config import TrackerConfig
from routing.fleet import ClaimBook
from routing.state import TrackerState as RoutingState


def pooled_routes(conn: Connection, route_ids: Sequence[str]) -> frozenset[str]:
    """The routes of ``route_ids`` that more than one vehicle lists."""
    if not route_ids:
        return frozenset()
    rows = conn.execute(select(vehicle_routes.c.route_id)
                        .where(vehicle_routes.c.route_id.in_(sorted(set(route_ids))))
                        .group_by(vehicle_routes.c.route_id)
                        .having(func.count(vehicle_routes.c.vehicle_id) > 1)).scalars()
    return frozenset(rows)


def claim_book(conn: Connection, contexts: Mapping[str, rm.VehicleContext],
               states: Mapping[str, RoutingState | None], cfg: TrackerConfig) -> ClaimBook | None:
    """The holds on the pool runs of the batch's vehicles (``None``: none has a pool route).

    ``states`` are the batch's own (already read and locked); the partners' are read here, as
    committed (a partner in another process's batch right now is seen at its last commit).
    """
    pool = sorted({r for ctx in contexts.values() for r in ctx.pool_route_ids})
    if not pool:
        return None
    partners = set(conn.execute(select(vehicle_routes.c.vehicle_id).distinct()
                                .where(vehicle_routes.c.route_id.in_(pool))).scalars())
    others = sorted(partners - set(states))
    known: dict[str, RoutingState | None] = dict(states)
    if others:
        known.update(load_states(conn, others))
    return ClaimBook.of(known, cfg)
