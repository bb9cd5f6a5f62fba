"""Routes as parents and staff see them: the live bus with ETAs, staff broadcasts, substitutes."""

from __future__ import annotations

from flask import current_app
from marshmallow import Schema, fields, validate

from backend.access_log import record_access
from backend.api.common import BEARER, Blueprint, CrsQuery
from backend.auth import cached_caller, current_user, require_role
from backend.errors import not_found
from backend.extensions import db
from backend.live_service import LIVE_ROLES, route_live_json
from backend.messages_service import broadcast_to_route
from backend.models import Route, RouteSubstitution
from backend.presenters import RouteLiveSchema, render_route_live
from backend.scopes import STAFF, can_see_route
from backend.substitutes import (
    cancel_substitute,
    route_vehicles,
    service_date,
    set_substitute,
    substitute_on,
)
from backend.timefmt import iso

blp = Blueprint("routes", __name__, description="Routes: live bus, messages, substitute bus")


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
    route = _route_in_scope(route_id)
    row = set_substitute(route, service_date(route, query["date"]), body["vehicle_id"],
                         current_user().username)
    return _substitution_body(row)


@blp.delete("/<route_id>/vehicle")
@blp.arguments(SubstituteQuery, location="query")
@blp.doc(security=BEARER, description="Cancel the substitute bus of that date.")
@blp.response(204)
@blp.problems(401, 403, 404)
@require_role(*STAFF)
def delete_route_vehicle(query, route_id: str):
    route = _route_in_scope(route_id)
    cancel_substitute(route, service_date(route, query["date"]))
    return None


@blp.get("/<route_id>/vehicle")
@blp.arguments(SubstituteQuery, location="query")
@blp.doc(security=BEARER, description="Who drives the route on that date.")
@blp.response(200, RouteVehicleSchema)
@blp.problems(401, 403, 404)
@require_role(*STAFF)
def get_route_vehicle(query, route_id: str):
    route = _route_in_scope(route_id)
    date = service_date(route, query["date"])
    row = substitute_on(route, date)
    if row is not None:
        return _substitution_body(row)
    return {"route_id": route_id, "date": date.isoformat(), "substitute": False,
            "vehicle_ids": [v.id for v in route_vehicles(route)]}


def _substitution_body(row: RouteSubstitution) -> dict:
    return {"route_id": row.route_id, "date": row.service_date, "substitute": True,
            "vehicle_ids": [row.vehicle_id], "vehicle_id": row.vehicle_id,
            "set_by": row.set_by, "set_at": iso(row.set_at)}


def _route_in_scope(route_id: str) -> Route:
    if not can_see_route(current_user(), route_id):
        raise not_found("route")
    return db.session.get(Route, route_id)
