"""GET /api/v1/me: who the caller is and, for parents, their children and stops; their
notifications and notification preferences."""

from __future__ import annotations

from flask import request
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select

from backend.api.common import BEARER, Blueprint
from backend.auth import current_user
from backend.errors import ApiError
from backend.extensions import db
from backend.models import Notification, School, Stop
from backend.presenters import notification_item
from backend.timefmt import EventTime
from notifications.model import CHANNELS, DEFAULT_LANGUAGE, LANGUAGES, Preferences

blp = Blueprint("me", __name__, description="The caller")


def place_name(place_id: str | None) -> str | None:
    if place_id is None:
        return None
    place = db.session.get(Stop, place_id) or db.session.get(School, place_id)
    return place.name if place else None


class ChildSchema(Schema):
    student_id = fields.String(required=True)
    name = fields.String(required=True)
    school_id = fields.String(required=True)
    route_id = fields.String(allow_none=True, required=True)
    stop_id = fields.String(allow_none=True, required=True)
    stop_name = fields.String(allow_none=True, required=True)


class MeSchema(Schema):
    username = fields.String(required=True)
    role = fields.String(
        required=True,
        validate=validate.OneOf(["parent", "driver", "teacher", "logistics", "admin"]),
    )
    children = fields.List(fields.Nested(ChildSchema), required=True,
                           metadata={"description": "a parent's children; empty for other roles"})
    school_ids = fields.List(fields.String(), metadata={"description": "logistics only"})
    vehicle_ids = fields.List(fields.String(), metadata={"description": "drivers only"})
    teacher_id = fields.String(allow_none=True, metadata={"description": "teachers only"})


@blp.get("")
@blp.doc(security=BEARER)
@blp.response(200, MeSchema)
@blp.problems(401)
def me():
    user = current_user()
    children = [{"student_id": s.id, "name": s.name, "school_id": s.school_id,
                 "route_id": s.route_id, "stop_id": s.stop_id, "stop_name": place_name(s.stop_id)}
                for s in user.students] if user.role == "parent" else []
    body = {"username": user.username, "role": user.role, "children": children}
    if user.role == "logistics":
        body["school_ids"] = [s.id for s in user.schools]
    if user.role == "driver":
        body["vehicle_ids"] = [v.id for v in user.vehicles]
    if user.role == "teacher":
        body["teacher_id"] = user.teacher_id
    return body


class NotificationsQuery(Schema):
    since = EventTime(load_default=None, metadata={"description": "only those created after"})
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))


class NotificationSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    title = fields.String(required=True)
    body = fields.String(required=True)
    created_at = fields.String(required=True)
    route_id = fields.String(allow_none=True, required=True)
    stop_id = fields.String(allow_none=True, required=True)
    trip_id = fields.String(allow_none=True, required=True)


class NotificationsSchema(Schema):
    items = fields.List(fields.Nested(NotificationSchema), required=True)


@blp.get("/notifications")
@blp.arguments(NotificationsQuery, location="query")
@blp.doc(security=BEARER, description="The caller's notifications, newest first.")
@blp.response(200, NotificationsSchema)
@blp.problems(401)
def my_notifications(query):
    user = current_user()
    rows = db.session.scalars(
        select(Notification).where(Notification.user_id == user.id,
                                   *([Notification.created_at > query["since"]]
                                     if query["since"] is not None else []))
        .order_by(Notification.id.desc()).limit(query["limit"])).all()
    return {"items": [notification_item(n) for n in rows]}


# --- /me/preferences ------------------------------------------------------------------------

_HH_MM = r"^([01]\d|2[0-3]):[0-5]\d$"


class QuietHoursSchema(Schema):
    start = fields.String(required=True, data_key="from", validate=validate.Regexp(_HH_MM),
                          metadata={"description": "local time HH:MM", "example": "22:00"})
    end = fields.String(required=True, data_key="to", validate=validate.Regexp(_HH_MM),
                        metadata={"description": "local time HH:MM", "example": "06:00"})


class PreferencesSchema(Schema):
    notify_before_min = fields.Float(
        load_default=Preferences().notify_before_min, validate=validate.Range(1, 60),
        metadata={"description": "tell me when the bus is this many minutes from my stop"})
    notify_within_m = fields.Float(
        load_default=None, allow_none=True, validate=validate.Range(50, 10_000),
        metadata={"description": "or this many metres from it (null: minutes only)"})
    quiet_hours = fields.Nested(
        QuietHoursSchema, load_default=Preferences().to_json()["quiet_hours"], allow_none=True,
        metadata={"description": "local window in which pushes wait, except those about a bus "
                                 "coming or a child boarding (null: none)"})
    channels = fields.List(
        fields.String(validate=lambda name: _known_channel(name)), load_default=list(CHANNELS),
        validate=validate.Length(max=20),
        metadata={"description": "where to push: app (in-app list and /stream), mqtt, webhook, "
                                 "or a channel the district registered (e.g. sms)"})
    language = fields.String(load_default=DEFAULT_LANGUAGE, validate=validate.OneOf(LANGUAGES))


def _known_channel(name: str) -> bool:
    from notifications.channels import registered

    if name not in ("app", *CHANNELS, *registered()):
        raise ValidationError(f"unknown channel {name!r}; known: "
                              f"{', '.join(dict.fromkeys(('app', *CHANNELS, *registered())))}")
    return True


@blp.get("/preferences")
@blp.doc(security=BEARER, description="The caller's notification preferences (defaults until "
                                      "set).")
@blp.response(200, PreferencesSchema)
@blp.problems(401)
def get_preferences():
    return _preferences_json(Preferences.from_json(current_user().preferences))


@blp.put("/preferences")
@blp.arguments(PreferencesSchema)
@blp.doc(security=BEARER, description="Replace the caller's notification preferences; a field "
                                      "left out takes its default.")
@blp.response(200, PreferencesSchema)
@blp.problems(401, 415)
def put_preferences(body):
    if not request.is_json:
        # every field has a default: a form or text body would otherwise reset them all
        raise ApiError(415, "send the preferences as application/json")
    quiet = body["quiet_hours"]
    if quiet is not None and "start" in quiet:
        quiet = {"from": quiet["start"], "to": quiet["end"]}
    prefs = Preferences.from_json({**body, "quiet_hours": quiet,
                                   "channels": list(dict.fromkeys(body["channels"]))})
    user = current_user()
    user.preferences = prefs.to_json()
    db.session.commit()
    return _preferences_json(prefs)


def _preferences_json(prefs: Preferences) -> dict:
    """``Preferences.to_json`` as the schema dumps it (its quiet hours under attribute names)."""
    body = prefs.to_json()
    if prefs.quiet_hours is not None:
        body["quiet_hours"] = {"start": body["quiet_hours"]["from"],
                               "end": body["quiet_hours"]["to"]}
    return body
