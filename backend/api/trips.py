"""A trip's track: the pings of the bus between the trip's start and its end (or now)."""

from __future__ import annotations

from flask import current_app
from marshmallow import fields
from sqlalchemy import select

from backend.access_log import record_access
from backend.api.common import BEARER, Blueprint, CrsQuery
from backend.api.vehicles import TrackPropertiesSchema, TrackSchema, line_feature
from backend.auth import current_user, require_role
from backend.errors import not_found
from backend.extensions import db
from backend.live_service import trip_bounds
from backend.models import Ping
from backend.presenters import out_point
from backend.scopes import STAFF, can_see_route, can_see_vehicle

blp = Blueprint("trips", __name__, description="Trips of school buses")


class TripTrackPropertiesSchema(TrackPropertiesSchema):
    trip_id = fields.String(required=True)
    route_id = fields.String(required=True)
    in_progress = fields.Boolean(required=True)


class TripTrackSchema(TrackSchema):
    properties = fields.Nested(TripTrackPropertiesSchema, required=True)


@blp.get("/<trip_id>/track")
@blp.arguments(CrsQuery, location="query")
@blp.doc(security=BEARER, description=(
    "GeoJSON Feature: a LineString of the trip's pings with `properties.times`. Parents of the "
    "route's riders see exactly the trip's span, never the bus before or after it."))
@blp.response(200, TripTrackSchema)
@blp.problems(401, 403, 404)
@require_role("parent", "driver", *STAFF)
def trip_track(query, trip_id: str):
    user = current_user()
    trip = trip_bounds(trip_id)
    if trip is None:
        raise not_found("trip")
    allowed = (can_see_vehicle(user, trip["vehicle_id"]) if user.role in ("driver", "admin")
               else can_see_route(user, trip["route_id"]))
    if not allowed:
        raise not_found("trip")
    record_access(current_app, user.id, "trip_track", trip["route_id"])
    rows = db.session.execute(
        select(Ping.ts, Ping.lat, Ping.lon, Ping.speed_kmh, Ping.heading_deg, Ping.accuracy_m,
               Ping.alt_m)
        .where(Ping.vehicle_id == trip["vehicle_id"], Ping.ts >= trip["started_at"],
               Ping.ts <= trip["until"])
        .order_by(Ping.ts)).all()
    crs = query["crs"]
    points = [(r.ts, *out_point(r.lat, r.lon, crs), r.speed_kmh, r.heading_deg, r.accuracy_m,
               r.alt_m) for r in rows]
    return line_feature(points, {"trip_id": trip_id, "route_id": trip["route_id"],
                                 "vehicle_id": trip["vehicle_id"],
                                 "in_progress": trip["in_progress"], "crs": crs})
