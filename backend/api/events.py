"""GET /api/v1/events: the tracker's events for staff, filtered, newest first, with a cursor."""

from __future__ import annotations

from marshmallow import Schema, fields, validate
from sqlalchemy import or_, select

from backend.api.common import BEARER, Blueprint, decode_cursor, encode_cursor
from backend.auth import current_user, require_role
from backend.extensions import db
from backend.models import Event, Route
from backend.scopes import STAFF, visible_vehicle_ids
from backend.timefmt import EventTime, iso

blp = Blueprint("events", __name__, description="Tracking events (staff)")


class EventsQuery(Schema):
    vehicle_id = fields.String(load_default=None)
    route_id = fields.String(load_default=None)
    kind = fields.String(load_default=None)
    since = EventTime(load_default=None)
    until = EventTime(load_default=None)
    cursor = fields.String(load_default=None)
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))


class EventSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    ts = fields.String(required=True)
    vehicle_id = fields.String(allow_none=True, required=True)
    route_id = fields.String(allow_none=True, required=True)
    trip_id = fields.String(allow_none=True, required=True)
    run_id = fields.String(allow_none=True, required=True)
    stop_id = fields.String(allow_none=True, required=True)
    details = fields.Dict(required=True)


class EventsPageSchema(Schema):
    items = fields.List(fields.Nested(EventSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True, metadata={
        "description": "pass as `cursor` for the next (older) page; null on the last page"})


@blp.get("")
@blp.arguments(EventsQuery, location="query")
@blp.doc(security=BEARER)
@blp.response(200, EventsPageSchema)
@blp.problems(400, 401, 403)
@require_role(*STAFF)
def list_events(query):
    user = current_user()
    filters = []
    visible = visible_vehicle_ids(user)
    if visible is not None:
        school_ids = [s.id for s in user.schools]
        own_routes = select(Route.id).where(Route.school_id.in_(school_ids))
        filters.append(or_(Event.vehicle_id.in_(sorted(visible)), Event.route_id.in_(own_routes)))
    for name in ("vehicle_id", "route_id", "kind"):
        if query[name]:
            filters.append(getattr(Event, name) == query[name])
    if query["since"] is not None:
        filters.append(Event.ts >= query["since"])
    if query["until"] is not None:
        filters.append(Event.ts <= query["until"])
    cursor = decode_cursor(query["cursor"], ts=float, id=int)
    if cursor is not None:
        ts, event_id = cursor["ts"], cursor["id"]
        filters.append(or_(Event.ts < ts, (Event.ts == ts) & (Event.id < event_id)))
    rows = db.session.scalars(select(Event).where(*filters)
                              .order_by(Event.ts.desc(), Event.id.desc())
                              .limit(query["limit"] + 1)).all()
    more = len(rows) > query["limit"]
    rows = rows[: query["limit"]]
    return {
        "items": [{"id": e.id, "kind": e.kind, "ts": iso(e.ts), "vehicle_id": e.vehicle_id,
                   "route_id": e.route_id, "trip_id": e.trip_id, "run_id": e.run_id,
                   "stop_id": e.stop_id, "details": e.details or {}} for e in rows],
        "next_cursor": encode_cursor({"ts": rows[-1].ts, "id": rows[-1].id}) if more else None,
    }
