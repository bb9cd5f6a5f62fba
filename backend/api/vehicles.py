"""Staff's view of vehicles: the stored track of a vehicle (GeoJSON, CSV, GPX)."""

from __future__ import annotations

import csv
import io
import time

import gpxpy.gpx
from flask import Response, current_app
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import select

from backend.access_log import record_access
from backend.api.common import BEARER, Blueprint, CrsQuery
from backend.auth import current_user, require_role
from backend.errors import ApiError, not_found
from backend.extensions import db
from backend.models import LivePosition, Ping, Vehicle
from backend.presenters import PositionSchema, out_point
from backend.scopes import STAFF, can_see_vehicle, visible_vehicle_ids
from backend.timefmt import EventTime, iso
from backend.tracking_service import live_trip

blp = Blueprint("vehicles", __name__, description="Vehicles (staff)")

MAX_TRACK_POINTS = 200_000
DEFAULT_WINDOW_S = 24 * 3600


class TrackQuery(CrsQuery):
    since = EventTime(load_default=None)
    until = EventTime(load_default=None)
    format = fields.String(
        load_default="geojson", validate=validate.OneOf(["geojson", "csv", "gpx"])
    )

    @validates_schema
    def _window(self, data, **kwargs):
        if (
            data["since"] is not None
            and data["until"] is not None
            and data["since"] > data["until"]
        ):
            raise ValidationError("since is after until", "since")


class VehicleLiveSchema(Schema):
    vehicle_id = fields.String(required=True)
    kind = fields.String(
        required=True, validate=validate.OneOf(["school_bus", "teacher_car", "meal_truck"])
    )
    plate = fields.String(allow_none=True, required=True)
    online = fields.Boolean(required=True)
    last_seen = fields.String(allow_none=True, required=True)
    route_id = fields.String(allow_none=True, required=True)
    trip_id = fields.String(allow_none=True, required=True)
    position = fields.Nested(PositionSchema, allow_none=True, required=True)


# A track can be 200 000 points: its arrays are passed through as built (fields.Raw), and
# documented by hand, rather than dumped value by value.
def raw_array(items: dict, description: str) -> fields.Raw:
    return fields.Raw(required=True, metadata={
        "type": "array", "items": items, "description": description})


class LineStringSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(["LineString"]))
    coordinates = raw_array(
        {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "[lon, lat] of every ping (GeoJSON order)")


class TrackPropertiesSchema(Schema):
    vehicle_id = fields.String(required=True)
    crs = fields.String(required=True, validate=validate.OneOf(["wgs84", "gcj02"]))
    count = fields.Integer(required=True)
    times = raw_array({"type": "string"}, "the time of each point (ISO-8601 UTC)")
    speeds_kmh = raw_array({"type": "number", "nullable": True}, "the speed at each point")


class TrackSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(["Feature"]))
    geometry = fields.Nested(LineStringSchema, allow_none=True, required=True, metadata={
        "description": "null below two points (a LineString needs two)"})
    properties = fields.Nested(TrackPropertiesSchema, required=True)


TEXT = {"type": "string"}
TRACK_FORMATS = ("`format=geojson` (default): a GeoJSON Feature; `format=csv`: "
                 "ts,lat,lon,speed_kmh,heading_deg,accuracy_m,alt_m rows; `format=gpx`: GPX 1.1")
ONLINE_WITHIN_S = 180  # a device silent for 3 min is offline (the notifications' default too)


@blp.get("/live")
@blp.arguments(CrsQuery, location="query")
@blp.doc(security=BEARER)
@blp.response(200, VehicleLiveSchema(many=True))
@blp.problems(401, 403)
@require_role(*STAFF)
def vehicles_live(query):
    record_access(current_app, current_user().id, "vehicles_live")
    visible = visible_vehicle_ids(current_user())
    vehicles = select(Vehicle).order_by(Vehicle.id)
    if visible is not None:
        vehicles = vehicles.where(Vehicle.id.in_(sorted(visible)))
    live = {p.vehicle_id: p for p in db.session.scalars(select(LivePosition))}
    now = time.time()
    out = []
    for vehicle in db.session.scalars(vehicles):
        position = live.get(vehicle.id)
        trip = live_trip(vehicle.id)
        out.append({
            "vehicle_id": vehicle.id, "kind": vehicle.kind, "plate": vehicle.plate,
            "online": position is not None and now - position.received_at <= ONLINE_WITHIN_S,
            "last_seen": iso(position.received_at) if position else None,
            "route_id": trip.get("route_id") if trip else None,
            "trip_id": trip.get("trip_id") if trip else None,
            "position": position_body(position, query["crs"]) if position else None,
        })
    return out


def position_body(position, crs: str) -> dict:
    lat, lon = out_point(position.lat, position.lon, crs)
    return {"lat": lat, "lon": lon, "ts": iso(position.ts), "speed_kmh": position.speed_kmh,
            "heading_deg": position.heading_deg}


@blp.get("/<vehicle_id>/track")
@blp.arguments(TrackQuery, location="query")
@blp.doc(
    security=BEARER,
    description="Every stored ping of the vehicle in [since, until] (default: the 24 h "
    "before until, which defaults to now), in the device's time order.",
)
@blp.response(200, TrackSchema, description=TRACK_FORMATS)
@blp.alt_response(200, schema=TEXT, content_type="text/csv", success=True,
                  description=TRACK_FORMATS)
@blp.alt_response(200, schema=TEXT, content_type="application/gpx+xml", success=True,
                  description=TRACK_FORMATS)
@blp.problems(401, 403, 404)
@require_role(*STAFF)
def vehicle_track(query, vehicle_id: str):
    if not can_see_vehicle(current_user(), vehicle_id):
        raise not_found("vehicle")
    record_access(current_app, current_user().id, "vehicle_track")
    until = query["until"] if query["until"] is not None else time.time()
    since = query["since"] if query["since"] is not None else until - DEFAULT_WINDOW_S
    rows = db.session.execute(
        select(
            Ping.ts,
            Ping.lat,
            Ping.lon,
            Ping.speed_kmh,
            Ping.heading_deg,
            Ping.accuracy_m,
            Ping.alt_m,
        )
        .where(Ping.vehicle_id == vehicle_id, Ping.ts >= since, Ping.ts <= until)
        .order_by(Ping.ts)
        .limit(MAX_TRACK_POINTS + 1)
    ).all()
    if len(rows) > MAX_TRACK_POINTS:
        raise ApiError(422, f"more than {MAX_TRACK_POINTS} pings in the window; ask for less")
    crs = query["crs"]
    points = [
        (r.ts, *out_point(r.lat, r.lon, crs), r.speed_kmh, r.heading_deg, r.accuracy_m, r.alt_m)
        for r in rows
    ]
    if query["format"] == "csv":
        return _csv(points, vehicle_id)
    if query["format"] == "gpx":
        return _gpx(points, vehicle_id)
    return line_feature(points, {"vehicle_id": vehicle_id, "crs": crs})


def line_feature(points, properties: dict) -> dict:
    """GeoJSON Feature of a track; ``geometry`` is null below two points (a LineString needs 2)."""
    coordinates = [[p[2], p[1]] for p in points]
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": coordinates}
        if len(coordinates) >= 2
        else None,
        "properties": {
            **properties,
            "count": len(points),
            "times": [iso(p[0]) for p in points],
            "speeds_kmh": [p[3] for p in points],
        },
    }


def _csv(points, vehicle_id: str) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["ts", "lat", "lon", "speed_kmh", "heading_deg", "accuracy_m", "alt_m"])
    for p in points:
        writer.writerow([iso(p[0]), *("" if v is None else v for v in p[1:])])
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{vehicle_id}-track.csv"'},
    )


def _gpx(points, vehicle_id: str) -> Response:
    from datetime import UTC, datetime

    gpx = gpxpy.gpx.GPX()
    track = gpxpy.gpx.GPXTrack(name=vehicle_id)
    segment = gpxpy.gpx.GPXTrackSegment()
    for ts, lat, lon, speed_kmh, _heading, _acc, alt in points:
        point = gpxpy.gpx.GPXTrackPoint(
            lat, lon, elevation=alt, time=datetime.fromtimestamp(ts, tz=UTC)
        )
        if speed_kmh is not None:
            point.speed = speed_kmh / 3.6
        segment.points.append(point)
    track.segments.append(segment)
    gpx.tracks.append(track)
    return Response(
        gpx.to_xml(version="1.1"),
        mimetype="application/gpx+xml",
        headers={"Content-Disposition": f'attachment; filename="{vehicle_id}-track.gpx"'},
    )
