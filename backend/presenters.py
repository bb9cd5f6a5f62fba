"""What the views and the services both send: a route's live view, a vehicle's position, a
notification, coordinates in the caller's CRS.

Views (``backend.api``) and services (the stream, the push dispatcher, the ``/live`` fast path)
import these from here, so no service imports a view: one shape per thing, whichever way it
leaves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from marshmallow import Schema, fields, validate

from backend.timefmt import iso

if TYPE_CHECKING:
    from backend.live_service import RouteLive
    from backend.models import Notification


class PositionSchema(Schema):
    """A vehicle's newest fix, in the requested crs."""

    lat = fields.Float(required=True)
    lon = fields.Float(required=True)
    ts = fields.String(required=True)
    speed_kmh = fields.Float(allow_none=True, required=True)
    heading_deg = fields.Float(allow_none=True, required=True)


def out_point(lat: float, lon: float, crs: str) -> tuple[float, float]:
    """(lat, lon) in the requested CRS; stored coordinates are WGS-84."""
    if crs == "gcj02":
        from routing.gcj02 import wgs84_to_gcj02

        return wgs84_to_gcj02(lat, lon)
    return lat, lon


def notification_item(n: Notification) -> dict:
    return {"id": n.id, "kind": n.kind, "title": n.title, "body": n.body,
            "created_at": iso(n.created_at), "route_id": n.route_id, "stop_id": n.stop_id,
            "trip_id": n.trip_id}


class StopLiveSchema(Schema):
    stop_id = fields.String(required=True)
    name = fields.String(required=True)
    sequence = fields.Integer(required=True)
    lat = fields.Float(required=True)
    lon = fields.Float(required=True)
    scheduled_at = fields.String(allow_none=True, required=True)
    status = fields.String(required=True, validate=validate.OneOf(
        ["visited", "missed", "upcoming", "unobserved"]))
    arrived_at = fields.String(allow_none=True, required=True)
    departed_at = fields.String(allow_none=True, required=True)
    eta = fields.String(allow_none=True, required=True)
    eta_confidence = fields.Float(allow_none=True, required=True)
    eta_uncertainty_s = fields.Float(allow_none=True, required=True, metadata={
        "description": "one robust standard deviation of `eta`, seconds (from the spread of "
                       "today's drives over the stretches ahead); null with `eta`"})


class LastTripSchema(Schema):
    trip_id = fields.String(required=True)
    completed_at = fields.String(required=True)
    arrived_at_last_stop = fields.String(allow_none=True, required=True, metadata={
        "description": "when the bus reached the route's last stop (the school); null if that "
                       "arrival was not observed"})


class NextRunSchema(Schema):
    run_id = fields.String(required=True)
    service_date = fields.String(required=True, metadata={"description": "local date, ISO"})
    departs_at = fields.String(required=True, metadata={
        "description": "scheduled departure from the route's first stop"})


class RouteLiveSchema(Schema):
    route_id = fields.String(required=True)
    name = fields.String(required=True)
    active = fields.Boolean(required=True)
    trip_id = fields.String(allow_none=True, required=True)
    run_id = fields.String(allow_none=True, required=True)
    vehicle_id = fields.String(allow_none=True, required=True)
    position = fields.Nested(PositionSchema, allow_none=True, required=True)
    next_stop_id = fields.String(allow_none=True, required=True)
    delay_s = fields.Float(allow_none=True, required=True)
    eta_source = fields.String(allow_none=True, required=True)
    as_of = fields.String(allow_none=True, required=True)
    crs = fields.String(required=True)
    stops = fields.List(fields.Nested(StopLiveSchema), required=True)
    last_trip = fields.Nested(LastTripSchema, allow_none=True, required=True, metadata={
        "description": "when no trip is in progress: today's newest completed trip of the "
                       "route (null during a trip or before the first one of the day)"})
    next_run = fields.Nested(NextRunSchema, allow_none=True, required=True, metadata={
        "description": "when no trip is in progress: the next run to leave the first stop, "
                       "later today or on a later service day (null during a trip)"})


_LIVE_SCHEMA = RouteLiveSchema()


def render_route_live(live: RouteLive, crs: str) -> bytes:
    """What ``@blp.response(200, RouteLiveSchema)`` would send for ``route_live_body``: the
    schema's dump, as JSON (keys sorted, as Flask's JSON provider sorts them)."""
    return orjson.dumps(_LIVE_SCHEMA.dump(route_live_body(live, crs)), option=orjson.OPT_SORT_KEYS)


def route_live_body(live: RouteLive, crs: str) -> dict:
    view = live.view
    by_stop = {s.stop_id: s for s in view.stops} if view else {}
    stops = []
    for j, place in enumerate(live.route.stops):
        lat, lon = out_point(place.lat, place.lon, crs)
        s = by_stop.get(place.id) if view else None
        scheduled = s.scheduled_at if s else (live.scheduled_at[j] if live.scheduled_at else None)
        stops.append({
            "stop_id": place.id, "name": place.name, "sequence": j, "lat": lat, "lon": lon,
            "scheduled_at": iso(scheduled), "status": s.status if s else "upcoming",
            "arrived_at": iso(s.arrived_at) if s else None,
            "departed_at": iso(s.departed_at) if s else None,
            "eta": iso(s.eta) if s else None,
            "eta_confidence": s.eta_confidence if s else None,
            "eta_uncertainty_s": s.eta_uncertainty_s if s else None,
        })
    position = None
    if view is not None and view.position.get("lat") is not None:
        lat, lon = out_point(view.position["lat"], view.position["lon"], crs)
        position = {"lat": lat, "lon": lon, "ts": iso(view.position["ts"]),
                    "speed_kmh": view.position.get("speed_kmh"),
                    "heading_deg": view.position.get("heading_deg")}
    return {
        "route_id": live.route.id, "name": live.route.name, "active": view is not None,
        "trip_id": view.trip_id if view else None, "run_id": view.run_id if view else None,
        "vehicle_id": live.vehicle_id, "position": position,
        "next_stop_id": view.next_stop_id if view else None,
        "delay_s": view.delay_s if view else None,
        "eta_source": view.eta_source if view else None,
        "as_of": iso(view.as_of) if view else None, "crs": crs, "stops": stops,
        "last_trip": None if view or live.last_trip is None else {
            "trip_id": live.last_trip.trip_id, "completed_at": iso(live.last_trip.completed_at),
            "arrived_at_last_stop": iso(live.last_trip.arrived_at_last_stop)},
        "next_run": None if view or live.next_run is None else {
            "run_id": live.next_run.run_id, "service_date": live.next_run.service_date.isoformat(),
            "departs_at": iso(live.next_run.departs_at)},
    }
