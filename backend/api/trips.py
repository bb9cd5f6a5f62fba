"""A trip's track: the pings of the bus between the trip's start and its end (or now)."""

from __future__ import annotations

from flask_smorest import Blueprint
from sqlalchemy import select

from backend.api.common import CrsQuery, out_point
from backend.api.vehicles import line_feature
from backend.auth import current_user, require_role
from backend.errors import not_found
from backend.extensions import db
from backend.live_service import trip_bounds
from backend.models import Ping
from backend.scopes import STAFF, can_see_route, can_see_vehicle

blp = Blueprint("trips", __name__, description="Trips of school buses")


@blp.get("/<trip_id>/track")
@blp.arguments(CrsQuery, location="query")
@blp.doc(security=[{"bearer": []}], description=(
    "GeoJSON Feature: a LineString of the trip's pings with `properties.times`. Parents of the "
    "route's riders see exactly the trip's span, never the bus before or after it."))
@blp.response(200)
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
