"""What each role may see, in one place (DESIGN decision 5: outside scope answers 404)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from backend.extensions import db
from backend.models import (
    Route,
    RouteSubstitution,
    Teacher,
    TeacherAssignment,
    User,
    Vehicle,
    vehicle_routes,
)

STAFF = ("logistics", "admin")
FINANCE = ("finance", "admin")  # the district's finance office: grid overrides, month closing


def is_staff(user: User) -> bool:
    return user.role in STAFF


def visible_vehicle_ids(user: User, session: Session | None = None) -> set[str] | None:
    """Vehicle ids the user may see; None means every vehicle (admin). ``session``: another
    than the request's (the ingest's notification step works on its own connection)."""
    session = session or db.session
    if user.role == "admin":
        return None
    if user.role == "driver":
        return {v.id for v in user.vehicles}
    if user.role == "teacher":
        teacher = session.get(Teacher, user.teacher_id) if user.teacher_id else None
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
        set(session.scalars(buses))
        | set(session.scalars(teachers_cars))
        | set(session.scalars(trucks))
    )
    return {i for i in ids if i}


def can_see_vehicle(user: User, vehicle_id: str) -> bool:
    visible = visible_vehicle_ids(user)
    return (visible is None or vehicle_id in visible) and db.session.get(
        Vehicle, vehicle_id
    ) is not None


def visible_route_ids(user: User, session: Session | None = None) -> set[str] | None:
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
    return set((session or db.session).scalars(
        select(Route.id).where(Route.school_id.in_(school_ids))))


def can_see_route(user: User, route_id: str) -> bool:
    visible = visible_route_ids(user)
    return (visible is None or route_id in visible) and db.session.get(Route, route_id) is not None


@dataclass(frozen=True)
class LiveScope:
    """Whose live position and ETAs a caller may follow on ``/stream``.

    Staff, drivers and teachers follow their vehicles at any time; a parent follows a bus only
    while it is on a trip in progress of one of their children's routes (DESIGN decision 5).
    ``candidate_vehicle_ids`` narrows the rows worth reading (None: every vehicle); the trip
    check in :meth:`may_follow` is what decides.
    """

    vehicle_ids: frozenset[str] | None  # always followed; None = every vehicle (admin)
    trip_route_ids: frozenset[str]  # followed only while on a trip in progress of these routes
    candidate_vehicle_ids: frozenset[str] | None

    def may_follow(self, vehicle_id: str, route_id_of_trip_in_progress: str | None) -> bool:
        if self.vehicle_ids is None or vehicle_id in self.vehicle_ids:
            return True
        return route_id_of_trip_in_progress in self.trip_route_ids


def live_scope(user: User) -> LiveScope:
    """The :class:`LiveScope` of a user (what ``/stream`` sends of positions and ETAs)."""
    if user.role != "parent":
        visible = visible_vehicle_ids(user)
        ids = None if visible is None else frozenset(visible)
        return LiveScope(vehicle_ids=ids, trip_route_ids=frozenset(), candidate_vehicle_ids=ids)
    route_ids = frozenset(visible_route_ids(user) or ())
    # the buses that may drive these routes: their own, and any substitute ever set for them
    own = select(vehicle_routes.c.vehicle_id).where(vehicle_routes.c.route_id.in_(route_ids))
    substitutes = select(RouteSubstitution.vehicle_id).where(
        RouteSubstitution.route_id.in_(route_ids))
    candidates = frozenset(db.session.scalars(own)) | frozenset(db.session.scalars(substitutes))
    return LiveScope(vehicle_ids=frozenset(), trip_route_ids=route_ids,
                     candidate_vehicle_ids=candidates)
