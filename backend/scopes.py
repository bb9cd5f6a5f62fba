"""What each role may see, in one place (DESIGN decision 5: outside scope answers 404)."""

from __future__ import annotations

from sqlalchemy import or_, select

from backend.extensions import db
from backend.models import Route, Teacher, TeacherAssignment, User, Vehicle, vehicle_routes

STAFF = ("logistics", "admin")


def is_staff(user: User) -> bool:
    return user.role in STAFF


def visible_vehicle_ids(user: User) -> set[str] | None:
    """Vehicle ids the user may see; None means every vehicle (admin)."""
    if user.role == "admin":
        return None
    if user.role == "driver":
        return {v.id for v in user.vehicles}
    if user.role == "teacher":
        teacher = db.session.get(Teacher, user.teacher_id) if user.teacher_id else None
        return {teacher.vehicle_id} if teacher and teacher.vehicle_id else set()
    if user.role != "logistics":
        return set()
    school_ids = [s.id for s in user.schools]
    buses = (
        select(vehicle_routes.c.vehicle_id)
        .join(Route, Route.id == vehicle_routes.c.route_id)
        .where(Route.school_id.in_(school_ids))
    )
    teachers_cars = (
        select(Teacher.vehicle_id)
        .outerjoin(TeacherAssignment)
        .where(
            or_(Teacher.home_school_id.in_(school_ids), TeacherAssignment.school_id.in_(school_ids))
        )
    )
    # A meal truck serves every school of the district: each school's logistics staff sees it.
    trucks = select(Vehicle.id).where(Vehicle.kind == "meal_truck")
    ids = (
        set(db.session.scalars(buses))
        | set(db.session.scalars(teachers_cars))
        | set(db.session.scalars(trucks))
    )
    return {i for i in ids if i}


def can_see_vehicle(user: User, vehicle_id: str) -> bool:
    visible = visible_vehicle_ids(user)
    return (visible is None or vehicle_id in visible) and db.session.get(
        Vehicle, vehicle_id
    ) is not None


def visible_route_ids(user: User) -> set[str] | None:
    """Route ids the user may read live; None means every route (admin).

    A parent sees the routes their children ride; logistics staff the routes of their schools
    (and the routes of the buses they see); a driver the routes of their vehicles.
    """
    if user.role == "admin":
        return None
    if user.role == "parent":
        return {s.route_id for s in user.students if s.route_id}
    if user.role == "driver":
        return {r.id for v in user.vehicles for r in v.routes}
    if user.role != "logistics":
        return set()
    school_ids = [s.id for s in user.schools]
    return set(db.session.scalars(select(Route.id).where(Route.school_id.in_(school_ids))))


def can_see_route(user: User, route_id: str) -> bool:
    visible = visible_route_ids(user)
    return (visible is None or route_id in visible) and db.session.get(Route, route_id) is not None
