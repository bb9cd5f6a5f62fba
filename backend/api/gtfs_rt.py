"""GTFS-Realtime feeds of the school buses, for staff tools and any transit app.

Both feeds are full ``FeedMessage`` protobufs built from what the live endpoints read (stored
tracker state, the newest fix per vehicle and :func:`backend.live_service.route_live`), limited
to what the caller may see.  Units are GTFS-rt's, not the API's: speed in m/s, times in epoch
seconds.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Response
from google.protobuf import json_format
from google.transit import gtfs_realtime_pb2 as rt
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from backend.api.common import BEARER, Blueprint
from backend.auth import current_user, require_role
from backend.extensions import db
from backend.live_service import RouteLive, clock, current_trip, route_live, tracker_state
from backend.models import LivePosition, Route, User, Vehicle
from backend.scopes import STAFF, visible_route_ids, visible_vehicle_ids
from routing.state import TripState

blp = Blueprint(
    "gtfs_rt",
    __name__,
    description=(
        "GTFS-Realtime feeds (staff). The routes are school buses: `route_type` 712 (extended "
        "route types) in a GTFS static feed of the district."
    ),
)

GTFS_RT_VERSION = "2.0"
PROTOBUF = "application/x-protobuf"
FORMAT_DOC = "`pb` (default) or `json`, the same feed as protobuf JSON, for debugging"
SCHOOL_BUS_NOTE = (
    "Every trip is a school bus run (`route_type` 712 in the district's static GTFS). "
    "Staff see the vehicles and routes of their schools, an admin all. `?format=json` answers "
    "the same feed as JSON (field names as in gtfs-realtime.proto)."
)
FEED_DOC = {"type": "string", "format": "binary"}  # documents the body; never used to dump one


class FeedQuery(Schema):
    format = fields.String(
        load_default="pb",
        validate=validate.OneOf(["pb", "json"]),
        metadata={"description": FORMAT_DOC},
    )


@blp.get("/vehicle-positions.pb")
@blp.arguments(FeedQuery, location="query")
@blp.doc(
    security=BEARER,
    description=(
        "One entity per visible vehicle with a known position: lat/lon, bearing, speed (m/s), "
        "the fix's time, the vehicle (id, plate as label) and, while it drives a run, the trip "
        "(trip_id, route_id, start_date). " + SCHOOL_BUS_NOTE
    ),
)
@blp.response(200, FEED_DOC, description="a GTFS-rt FeedMessage", content_type=PROTOBUF)
@blp.alt_response(200, schema={"type": "object"}, content_type="application/json", success=True,
                  description="`format=json`: the same FeedMessage as protobuf JSON")
@blp.problems(401, 403)
@require_role(*STAFF)
def vehicle_positions(query):
    return feed_response(vehicle_positions_feed(current_user(), clock()), query["format"])


@blp.get("/trip-updates.pb")
@blp.arguments(FeedQuery, location="query")
@blp.doc(
    security=BEARER,
    description=(
        "One entity per run in progress on a visible route: the trip's current delay and a "
        "stop_time_update per stop — the predicted arrival for the stops ahead (the same ETAs as "
        "`/routes/{route_id}/live`), the actual arrival/departure for visited stops, SKIPPED for "
        "missed ones. `stop_sequence` is the 0-based `sequence` of `/live`. " + SCHOOL_BUS_NOTE
    ),
)
@blp.response(200, FEED_DOC, description="a GTFS-rt FeedMessage", content_type=PROTOBUF)
@blp.alt_response(200, schema={"type": "object"}, content_type="application/json", success=True,
                  description="`format=json`: the same FeedMessage as protobuf JSON")
@blp.problems(401, 403)
@require_role(*STAFF)
def trip_updates(query):
    return feed_response(trip_updates_feed(current_user(), clock()), query["format"])


def feed_response(feed: rt.FeedMessage, fmt: str) -> Response:
    if fmt == "json":
        text = json_format.MessageToJson(feed, preserving_proto_field_name=True, indent=1)
        return Response(text, mimetype="application/json")
    return Response(feed.SerializeToString(), mimetype=PROTOBUF)


def new_feed(now: float) -> rt.FeedMessage:
    feed = rt.FeedMessage()
    feed.header.gtfs_realtime_version = GTFS_RT_VERSION
    feed.header.incrementality = rt.FeedHeader.FULL_DATASET
    feed.header.timestamp = int(now)
    return feed


def vehicle_positions_feed(user: User, now: float) -> rt.FeedMessage:
    """Where every vehicle ``user`` may see is, and the run it is on."""
    feed = new_feed(now)
    visible = visible_vehicle_ids(user)
    rows = select(Vehicle, LivePosition).join(LivePosition, LivePosition.vehicle_id == Vehicle.id)
    if visible is not None:
        rows = rows.where(Vehicle.id.in_(sorted(visible)))
    for vehicle, fix in db.session.execute(rows.order_by(Vehicle.id)):
        entity = feed.entity.add(id=vehicle.id)
        position = entity.vehicle
        _describe_vehicle(position.vehicle, vehicle)
        position.position.latitude, position.position.longitude = fix.lat, fix.lon
        if fix.heading_deg is not None:
            position.position.bearing = fix.heading_deg
        if fix.speed_kmh is not None:
            position.position.speed = fix.speed_kmh / 3.6
        position.timestamp = int(fix.ts)
        trip = current_trip(tracker_state(vehicle.id), now)
        if trip is not None:
            _describe_trip(position.trip, trip)
    return feed


def trip_updates_feed(user: User, now: float) -> rt.FeedMessage:
    """The predicted (and past) stop times of every run in progress on the user's routes."""
    feed = new_feed(now)
    for route_id in _route_ids(user):
        live = route_live(route_id, now)
        if live is None or live.view is None or live.vehicle_id is None:
            continue
        state = tracker_state(live.vehicle_id)
        if state is None or state.trip is None or state.trip.trip_id != live.view.trip_id:
            continue
        _add_trip_update(feed.entity.add(id=live.view.trip_id), live, state.trip)
    return feed


def _add_trip_update(entity: rt.FeedEntity, live: RouteLive, trip: TripState) -> None:
    view = live.view
    assert view is not None
    update = entity.trip_update
    _describe_trip(update.trip, trip)
    vehicle = db.session.get(Vehicle, view.vehicle_id)
    if vehicle is not None:
        _describe_vehicle(update.vehicle, vehicle)
    update.timestamp = int(view.as_of)
    update.delay = round(view.delay_s)
    for stop in view.stops:
        stu = update.stop_time_update.add(stop_sequence=stop.sequence, stop_id=stop.stop_id)
        if stop.status == "missed":
            stu.schedule_relationship = rt.TripUpdate.StopTimeUpdate.SKIPPED
        elif stop.status == "visited":
            if stop.arrived_at is not None:
                stu.arrival.time = round(stop.arrived_at)
            if stop.departed_at is not None:
                stu.departure.time = round(stop.departed_at)
        elif stop.eta is not None:
            stu.arrival.time = round(stop.eta)
        else:
            stu.schedule_relationship = rt.TripUpdate.StopTimeUpdate.NO_DATA


def _route_ids(user: User) -> Iterable[str]:
    visible = visible_route_ids(user)
    if visible is None:
        return db.session.scalars(select(Route.id).order_by(Route.id)).all()
    return sorted(visible)


def _describe_vehicle(descriptor: rt.VehicleDescriptor, vehicle: Vehicle) -> None:
    descriptor.id = vehicle.id
    if vehicle.plate:
        descriptor.label = vehicle.plate
        descriptor.license_plate = vehicle.plate


def _describe_trip(descriptor: rt.TripDescriptor, trip: TripState) -> None:
    descriptor.trip_id = trip.trip_id
    descriptor.route_id = trip.route_id
    descriptor.start_date = trip.service_date.replace("-", "")
    descriptor.schedule_relationship = rt.TripDescriptor.SCHEDULED
