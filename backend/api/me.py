"""GET /api/v1/me: who the caller is and, for parents, their children and stops."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

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


@blp.get("")
@blp.doc(security=[{"bearer": []}])
@blp.response(200)
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


@blp.get("/notifications")
@blp.arguments(NotificationsQuery, location="query")
@blp.doc(security=[{"bearer": []}], description="The caller's notifications, newest first.")
@blp.response(200)
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
