"""GET /api/v1/me: who the caller is and, for parents, their children and stops."""

from __future__ import annotations

from flask_smorest import Blueprint

from backend.auth import current_user
from backend.extensions import db
from backend.models import School, Stop

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
