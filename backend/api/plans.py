"""``POST /api/v1/plans`` (admin): a plan of routes and buses from the stored district."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from backend.api.common import BEARER, Blueprint
from backend.auth import require_role
from backend.errors import ApiError

blp = Blueprint("plans", __name__, description="Route planning (draft bundles)")


class PlanRequestSchema(Schema):
    max_ride_min = fields.Float(load_default=45.0, validate=validate.Range(1, 240),
                                metadata={"description": "longest ride of a child, minutes"})
    time_limit_s = fields.Float(load_default=30.0, validate=validate.Range(1, 300),
                                metadata={"description": "seconds for building routes"})
    speed_kmh = fields.Float(load_default=30.0, validate=validate.Range(5, 120))
    road_factor = fields.Float(load_default=1.3, validate=validate.Range(1, 5),
                               metadata={"description": "road over straight-line distance"})
    bells = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict,
                        metadata={"description": "school id → bell time HH:MM (default: when "
                                                 "its morning routes reach it now)"})
    seats = fields.Integer(load_default=None, allow_none=True,
                           validate=validate.Range(1, 100))


class PlanReportSchema(Schema):
    buses = fields.Integer(required=True)
    routes = fields.Integer(required=True)
    km = fields.Float(required=True, metadata={"description": "routes and empty drives"})
    empty_km = fields.Float(required=True)
    longest_ride_min = fields.Float(required=True)
    children_per_bus = fields.List(fields.Integer(), required=True)
    seats = fields.Integer(required=True)
    travel = fields.String(required=True, metadata={"description": "the travel model used"})


class PlanSchema(Schema):
    report = fields.Nested(PlanReportSchema, required=True)
    draft = fields.Dict(required=True, metadata={
        "description": "a district bundle (SPEC §3) of the planned stops, routes (one weekday "
                       "run each, with its planned vehicle_id) and vehicles, for "
                       "POST /admin/import once reviewed"})


@blp.post("")
@blp.doc(security=BEARER)
@blp.arguments(PlanRequestSchema)
@blp.response(200, PlanSchema)
@blp.problems(400, 401, 403, 422)
@require_role("admin")
def create_plan(body: dict) -> dict:
    """Plan buses and routes for the district's stops, students and school buses (nothing is
    stored: the draft is imported when the office accepts it). Travel follows the roads of
    the server's ``XIAOCHE_PLAN_OSM`` extract when set, else straight line × road factor."""
    from flask import current_app

    from backend import planning_service as ps
    from backend.osm_roads import OsmError

    try:
        osm = current_app.config.get("PLAN_OSM")
        roads = ps.cached_roads(osm) if osm else None
        draft, report = ps.plan_district(
            ps.district_bundle(), max_ride_s=body["max_ride_min"] * 60,
            time_limit_s=body["time_limit_s"], speed_kmh=body["speed_kmh"],
            road_factor=body["road_factor"], bells=body["bells"], seats=body["seats"],
            roads=roads)
    except OsmError as exc:
        raise ApiError(422, f"XIAOCHE_PLAN_OSM: {exc}", title="Cannot read the roads") from exc
    except ps.PlanningError as exc:
        raise ApiError(422, str(exc), title="Cannot plan") from exc
    return {"report": report, "draft": draft}
