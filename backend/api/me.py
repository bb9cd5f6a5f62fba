"""GET /api/v1/me: who the caller is and, for parents, their children and stops."""

from __future__ import annotations

from marshmallow import Schema, fields, validate
from sqlalchemy import select

from backend.api.common import BEARER, Blueprint
from backend.auth import current_user
from backend.extensions import db
from backend.models import Notification, School, Stop
from backend.timefmt import EventTime, iso

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


def notification_item(n: Notification) -> dict:
    return {"id": n.id, "kind": n.kind, "title": n.title, "body": n.body,
            "created_at": iso(n.created_at), "route_id": n.route_id, "stop_id": n.stop_id,
            "trip_id": n.trip_id}
