"""Routes as parents and staff see them: the live bus with ETAs, staff broadcasts, substitutes."""

from __future__ import annotations

import datetime as dt
import time

import orjson
from flask import current_app
from marshmallow import Schema, fields, validate

from backend.access_log import record_access
from backend.api.common import BEARER, Blueprint, CrsQuery, PositionSchema, out_point
from backend.auth import cached_caller, current_user, require_role
from backend.errors import ApiError, not_found
from backend.extensions import db
from backend.live_service import RouteLive, clear_caches, clock, route_live_json
from backend.messages_service import broadcast_to_route
from backend.models import Route, RouteSubstitution, Vehicle
from backend.scopes import STAFF, can_see_route
from backend.timefmt import iso
from backend.tracking_service import district_calendar
from routing.calendar import local_date

blp = Blueprint("routes", __name__, description="Routes: live bus, messages, substitute bus")

LIVE_ROLES = ("parent", *STAFF)


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


@blp.get("/<route_id>/live")
@blp.arguments(CrsQuery, location="query")
@blp.doc(security=BEARER, description=(
    "The route's bus while a trip is in progress (position, next stop, delay, ETA per stop); "
    "otherwise `active: false`, `position: null`, today's timetable, today's completed trip "
    "(`last_trip`) and the next run (`next_run`)."))
@blp.response(200, RouteLiveSchema)
@blp.problems(401, 403, 404)
def get_route_live(query, route_id: str):
    # The hottest read of the API (every parent's app polls it): the caller (role, scope) comes
    # from a per-process cache of at most CALLER_TTL_S, and the body is dumped through
    # RouteLiveSchema once per answer and crs (render_route_live), then served as bytes.
    caller = cached_caller(*LIVE_ROLES)
    if caller.route_ids is not None and route_id not in caller.route_ids:
        raise not_found("route")
    body = route_live_json(route_id, query["crs"], render_route_live)
    if body is None:
        raise not_found("route")
    record_access(current_app, caller.user_id, "route_live", route_id)
    return current_app.response_class(body, mimetype="application/json")


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


class MessageSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(1, 200))
    body = fields.String(required=True, validate=validate.Length(1, 2000))


class MessageSentSchema(Schema):
    id = fields.Integer(required=True)
    route_id = fields.String(required=True)
    recipients = fields.Integer(required=True, metadata={"description": "parents notified"})
    created_at = fields.String(required=True)


@blp.post("/<route_id>/messages")
@blp.arguments(MessageSchema)
@blp.doc(security=BEARER, description=(
    "A staff broadcast (a delay, a road closure) to every parent of the route's riders; each "
    "gets a `staff_message` notification."))
@blp.response(201, MessageSentSchema)
@blp.problems(400, 401, 403, 404)
@require_role(*STAFF)
def post_route_message(message, route_id: str):
    user = current_user()
    if not can_see_route(user, route_id):
        raise not_found("route")
    sent = broadcast_to_route(route_id, message["title"], message["body"], user.username)
    return {"id": sent.id, "route_id": route_id, "recipients": sent.recipients,
            "created_at": iso(sent.created_at)}, 201


class SubstituteQuery(Schema):
    date = fields.Date(load_default=None, metadata={"description": "local date; default today"})


class SubstituteBody(Schema):
    vehicle_id = fields.String(required=True, validate=validate.Length(1, 64))


class RouteVehicleSchema(Schema):
    route_id = fields.String(required=True)
    date = fields.String(required=True, metadata={"description": "local date YYYY-MM-DD"})
    substitute = fields.Boolean(required=True)
    vehicle_ids = fields.List(fields.String(), required=True)
    vehicle_id = fields.String(metadata={"description": "the substitute bus (substitutes only)"})
    set_by = fields.String(metadata={"description": "who set it (substitutes only)"})
    set_at = fields.String(metadata={"description": "when it was set (substitutes only)"})


@blp.put("/<route_id>/vehicle")
@blp.arguments(SubstituteQuery, location="query")
@blp.arguments(SubstituteBody)
@blp.doc(security=BEARER, description=(
    "A substitute bus for the route on one local date: tracking and parents follow it that day "
    "(other ingest processes pick the change up within a minute)."))
@blp.response(200, RouteVehicleSchema)
@blp.problems(400, 401, 403, 404)
@require_role(*STAFF)
def put_route_vehicle(query, body, route_id: str):
    user = current_user()
    route = _route_in_scope(route_id)
    date = _service_date(route, query["date"])
    vehicle = db.session.get(Vehicle, body["vehicle_id"])
    if vehicle is None or vehicle.district_id != route.district_id:
        raise ApiError(422, f"no vehicle {body['vehicle_id']!r} in this district",
                       errors={"vehicle_id": ["unknown vehicle"]})
    if vehicle.kind != "school_bus":
        raise ApiError(422, f"{vehicle.id} is a {vehicle.kind}, not a school bus",
                       errors={"vehicle_id": ["not a school bus"]})
    row = db.session.get(RouteSubstitution, (route_id, date.isoformat()))
    if row is None:
        row = RouteSubstitution(route_id=route_id, service_date=date.isoformat())
        db.session.add(row)
    row.vehicle_id, row.set_by, row.set_at = vehicle.id, user.username, time.time()
    db.session.commit()
    clear_caches()
    return _substitution_body(row)


@blp.delete("/<route_id>/vehicle")
@blp.arguments(SubstituteQuery, location="query")
@blp.doc(security=BEARER, description="Cancel the substitute bus of that date.")
@blp.response(204)
@blp.problems(401, 403, 404)
@require_role(*STAFF)
def delete_route_vehicle(query, route_id: str):
    route = _route_in_scope(route_id)
    date = _service_date(route, query["date"])
    row = db.session.get(RouteSubstitution, (route_id, date.isoformat()))
    if row is None:
        raise not_found("substitute bus")
    db.session.delete(row)
    db.session.commit()
    clear_caches()
    return None


@blp.get("/<route_id>/vehicle")
@blp.arguments(SubstituteQuery, location="query")
@blp.doc(security=BEARER, description="Who drives the route on that date.")
@blp.response(200, RouteVehicleSchema)
@blp.problems(401, 403, 404)
@require_role(*STAFF)
def get_route_vehicle(query, route_id: str):
    route = _route_in_scope(route_id)
    date = _service_date(route, query["date"])
    row = db.session.get(RouteSubstitution, (route_id, date.isoformat()))
    if row is not None:
        return _substitution_body(row)
    return {"route_id": route_id, "date": date.isoformat(), "substitute": False,
            "vehicle_ids": [v.id for v in _route_vehicles(route)]}


def _route_vehicles(route: Route) -> list[Vehicle]:
    from sqlalchemy import select

    from backend.models import vehicle_routes

    ids = db.session.scalars(select(vehicle_routes.c.vehicle_id)
                             .where(vehicle_routes.c.route_id == route.id)).all()
    return [db.session.get(Vehicle, i) for i in sorted(ids)]


def _substitution_body(row: RouteSubstitution) -> dict:
    return {"route_id": row.route_id, "date": row.service_date, "substitute": True,
            "vehicle_ids": [row.vehicle_id], "vehicle_id": row.vehicle_id,
            "set_by": row.set_by, "set_at": iso(row.set_at)}


def _route_in_scope(route_id: str) -> Route:
    if not can_see_route(current_user(), route_id):
        raise not_found("route")
    return db.session.get(Route, route_id)


def _service_date(route: Route, date: dt.date | None) -> dt.date:
    calendar = district_calendar(db.session.connection(), route.district_id)
    today = local_date(clock(), calendar)
    if date is None:
        return today
    if date < today:
        raise ApiError(422, "a substitute bus is set for today or a later date",
                       errors={"date": ["in the past"]})
    return date

