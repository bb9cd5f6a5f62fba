"""GET /api/v1/audit/trips: the daily trip audit (SPEC §5), what `xiaoche audit` computed;
GET /api/v1/audit/access: the access log (admin only, issue 17).

Scope (DESIGN decision 5): a trip belongs to a route, and logistics staff see the routes of their
schools; admin sees every route. A ``route_id`` outside the caller's scope answers 404, as if it
did not exist; without one, trips of other routes are simply not listed.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validates_schema

from backend.api.common import BEARER, Blueprint
from backend.audit_service import eta_report, stored_audits
from backend.auth import current_user, require_role
from backend.errors import not_found
from backend.scopes import STAFF, can_see_route, visible_route_ids
from backend.timefmt import iso

blp = Blueprint("audit", __name__, description="Daily audits (staff)")


class AuditTripsQuery(Schema):
    date = fields.Date(
        required=True, metadata={"description": "local service date YYYY-MM-DD (district timezone)"}
    )
    route_id = fields.String(load_default=None)


class AuditStopSchema(Schema):
    stop_id = fields.String(required=True)
    scheduled_at = fields.String(allow_none=True, required=True)
    arrived_at = fields.String(allow_none=True, required=True)
    departed_at = fields.String(allow_none=True, required=True)
    status = fields.String(required=True)
    late_s = fields.Float(allow_none=True, required=True)


class DeviationSchema(Schema):
    started_at = fields.String(allow_none=True, required=True)
    ended_at = fields.String(allow_none=True, required=True)
    max_offset_m = fields.Float(allow_none=True, required=True)


class TripAuditSchema(Schema):
    trip_id = fields.String(required=True)
    run_id = fields.String(required=True)
    route_id = fields.String(required=True)
    vehicle_id = fields.String(required=True)
    service_date = fields.String(required=True)
    started_at = fields.String(required=True)
    completed_at = fields.String(allow_none=True, required=True)
    distance_km = fields.Float(allow_none=True, required=True)
    max_speed_kmh = fields.Float(allow_none=True, required=True)
    stops = fields.List(fields.Nested(AuditStopSchema), required=True)
    deviations = fields.List(fields.Nested(DeviationSchema), required=True)


@blp.get("/trips")
@blp.arguments(AuditTripsQuery, location="query")
@blp.doc(
    security=BEARER,
    description="Every audited trip of a local date, oldest start first: stops visited, missed "
    "and late, corridor deviations. Refreshed by `xiaoche audit --date D` and nightly.",
)
@blp.response(200, TripAuditSchema(many=True))
@blp.problems(401, 403, 404)
@require_role(*STAFF)
def audit_trips(query):
    return stored_audits(query["date"], _routes_asked(query["route_id"]))


def _routes_asked(route_id: str | None) -> set[str] | None:
    """The routes the caller may see, or only ``route_id`` (a 404 when it may not)."""
    if route_id is None:
        return visible_route_ids(current_user())
    if not can_see_route(current_user(), route_id):
        raise not_found("route")
    return {route_id}


class AuditEtaQuery(Schema):
    date = fields.Date(
        required=True, metadata={"description": "local service date YYYY-MM-DD (district timezone)"}
    )
    route_id = fields.String(load_default=None)


class EtaAheadSchema(Schema):
    stops = fields.Integer(required=True, metadata={"description": "stops ahead (1 = the next)"})
    predictions = fields.Integer(required=True)
    mae_s = fields.Float(allow_none=True, required=True,
                         metadata={"description": "mean absolute error of the ETA, seconds"})
    baseline_mae_s = fields.Float(
        allow_none=True, required=True,
        metadata={"description": "the same for the timetable + current delay"})


class RouteEtaSchema(Schema):
    route_id = fields.String(required=True)
    trips = fields.Integer(required=True)
    stops_ahead = fields.List(fields.Nested(EtaAheadSchema), required=True)


@blp.get("/eta")
@blp.arguments(AuditEtaQuery, location="query")
@blp.doc(
    security=BEARER,
    description="ETA accuracy per route on a local date: every audited trip's predictions, made "
    "per ping as live tracking made them, against its audited arrivals; MAE at 1, 3 and 5 stops "
    "ahead next to the timetable + current-delay baseline. Refreshed with `/audit/trips`.",
)
@blp.response(200, RouteEtaSchema(many=True))
@blp.problems(401, 403, 404)
@require_role(*STAFF)
def audit_eta(query):
    return eta_report(dates=[query["date"]], route_ids=_routes_asked(query["route_id"]))


class AccessQuery(Schema):
    from_ = fields.Date(required=True, data_key="from", metadata={
        "description": "first local date YYYY-MM-DD (district timezone)"})
    to = fields.Date(required=True, metadata={"description": "last local date, included"})
    user = fields.String(load_default=None, metadata={"description": "only this username"})

    @validates_schema
    def _window(self, data, **kwargs):
        if data["to"] < data["from_"]:
            raise ValidationError("to is before from", "to")
        if (data["to"] - data["from_"]).days > MAX_ACCESS_DAYS:
            raise ValidationError(f"at most {MAX_ACCESS_DAYS + 1} days at a time", "to")


MAX_ACCESS_DAYS = 366


class AccessEntrySchema(Schema):
    user_id = fields.Integer(required=True)
    username = fields.String(required=True)
    role = fields.String(required=True)
    kind = fields.String(required=True, metadata={
        "description": "route_live (GET /routes/{id}/live), stream (GET /stream opened), "
                       "vehicles_live (GET /vehicles/live)"})
    route_id = fields.String(allow_none=True, required=True, metadata={
        "description": "the route read; null: every route the caller may see (stream, "
                       "vehicles_live)"})
    first_at = fields.String(required=True, metadata={"description": "ISO-8601 UTC"})
    last_at = fields.String(required=True, metadata={"description": "ISO-8601 UTC"})
    reads = fields.Integer(required=True, metadata={
        "description": "reads from first_at to last_at (one row per user, kind and route "
                       "per XIAOCHE_ACCESS_LOG_FLUSH_S)"})


@blp.get("/access")
@blp.arguments(AccessQuery, location="query")
@blp.doc(
    security=BEARER,
    description="The access log for a privacy review: who read which route's live positions "
    "and when, over local dates `from`–`to` (at most 367 days), oldest first. Kept as long as "
    "raw positions (`XIAOCHE_RETENTION_DAYS`); `xiaoche report access` exports it as CSV/XLSX.",
)
@blp.response(200, AccessEntrySchema(many=True))
@blp.problems(401, 403, 422)
@require_role("admin")
def audit_access(query):
    from flask import current_app

    from backend.access_log import access_log_of, day_window, district_zone, entries

    access_log_of(current_app).flush()  # this process's latest reads too
    since, until = day_window(query["from_"], query["to"], district_zone())
    return [{"user_id": e.user_id, "username": e.username, "role": e.role, "kind": e.kind,
             "route_id": e.route_id, "first_at": iso(e.first_at), "last_at": iso(e.last_at),
             "reads": e.reads} for e in entries(since, until, query["user"])]
