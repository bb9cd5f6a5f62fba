"""What parents and staff see of a trip in progress: the live view with its ETAs."""

from __future__ import annotations

from typing import NamedTuple

from routing.config import DEFAULT, TrackerConfig
from routing.eta import Prediction, predict
from routing.geometry import RouteGeometry, route_geometry
from routing.model import LiveStop, LiveView, Route, VehicleContext
from routing.state import TrackerState, TripState


def route_index_of(ctx: VehicleContext, route_id: str) -> int | None:
    return next((i for i, r in enumerate(ctx.routes) if r.id == route_id), None)


def route_of(ctx: VehicleContext, route_id: str) -> Route | None:
    """The vehicle's route with this id, if it still has it."""
    index = route_index_of(ctx, route_id)
    return None if index is None else ctx.routes[index]



class TripPrediction(NamedTuple):
    trip: TripState
    geom: RouteGeometry
    stop_ids: tuple[str, ...]
    pred: Prediction


class TripPredictor:
    """The ETAs of a vehicle's trip as of its latest ping, for an ``on_ping`` that predicts at
    every ping (the ingest's notifications, the audit's ETA accuracy): each route's geometry and
    stop ids looked up once, not a live view (and a hash of the whole Route) per ping."""

    def __init__(self, ctx: VehicleContext, cfg: TrackerConfig = DEFAULT):
        self.ctx, self.cfg = ctx, cfg
        self._routes: dict[str, tuple[RouteGeometry, tuple[str, ...]] | None] = {}

    def __call__(self, state: TrackerState) -> TripPrediction | None:
        trip = state.trip
        if trip is None or state.last_ts is None:
            return None
        if trip.route_id not in self._routes:
            route = route_of(self.ctx, trip.route_id)
            self._routes[trip.route_id] = None if route is None else (
                route_geometry(route), tuple(p.id for p in route.stops))
        known = self._routes[trip.route_id]
        if known is None:
            return None
        geom, stop_ids = known
        pred = predict(trip, geom, state.last_ts, self.ctx.segment_history.get(trip.run_id, ()),
                       self.cfg, self.ctx.segment_observations)
        return TripPrediction(trip, geom, stop_ids, pred)

def live_view(ctx: VehicleContext, state: TrackerState | None,
              cfg: TrackerConfig = DEFAULT) -> LiveView | None:
    """The trip in progress as ``GET /routes/{id}/live`` shows it, with ETAs; ``None`` when the
    vehicle is on no trip.

    ETAs are as of the last processed ping (``as_of``), learned from today's drives
    (``ctx.segment_observations``) and ``ctx.segment_history[run_id]`` (see :mod:`routing.eta`).
    """
    if state is None or state.trip is None or state.last_ts is None:
        return None
    trip = state.trip
    route = route_of(ctx, trip.route_id)
    if route is None:
        return None
    geom = route_geometry(route)
    pred = predict(trip, geom, state.last_ts, ctx.segment_history.get(trip.run_id, ()), cfg,
                   ctx.segment_observations)
    stops = []
    for j, (place, s) in enumerate(zip(route.stops, trip.stops, strict=True)):
        stops.append(LiveStop(
            stop_id=place.id, sequence=j, scheduled_at=trip.scheduled_at[j], status=s.status,
            arrived_at=s.arrived_at, departed_at=s.departed_at, eta=pred.etas[j],
            eta_confidence=pred.confidences[j], eta_uncertainty_s=pred.uncertainties[j]))
    return LiveView(
        route_id=route.id, trip_id=trip.trip_id, run_id=trip.run_id, vehicle_id=ctx.vehicle_id,
        position={"lat": state.last_lat, "lon": state.last_lon, "ts": state.last_ts,
                  "speed_kmh": state.last_speed_kmh, "heading_deg": state.last_heading_deg},
        next_stop_id=route.stops[pred.next_stop].id if pred.next_stop is not None else None,
        delay_s=round(pred.delay_s, 1), eta_source=pred.source, as_of=state.last_ts,
        stops=tuple(stops))
