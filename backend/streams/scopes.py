"""What each open stream's user may see, read at connect (:func:`user_scope`) and again for all
open streams at once (:func:`bulk_scopes`, a handful of queries however many parents)."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from backend.extensions import db
from backend.models import User
from backend.models.people import Student, user_students
from backend.scopes import LiveScope, live_scope, visible_route_ids

CHUNK = 500  # ids per IN (…) of the bulk scope refresh


def user_scope(user_id: int, token_version: int | None, candidates: bool = True
                ) -> LiveScope | None:
    """The user's scope; a parent's without the buses that may drive their routes unless
    ``candidates`` (only the catch-up of a resumed stream narrows its read with them)."""
    user = db.session.get(User, user_id)
    if user is None or (token_version is not None and user.token_version != token_version):
        return None
    if user.role == "parent" and not candidates:
        return LiveScope(vehicle_ids=frozenset(),
                         trip_route_ids=frozenset(visible_route_ids(user) or ()),
                         candidate_vehicle_ids=None)
    return live_scope(user)


def bulk_scopes(users: list[tuple[int, int | None]]
                 ) -> dict[tuple[int, int | None], LiveScope | None]:
    """Every open stream's scope read again, in a few queries for all parents at once (staff,
    drivers and teachers are few: each is read as at connect). None: the user is gone or
    logged out everywhere (its ``token_version`` changed)."""
    ids = sorted({user_id for user_id, _ in users})
    found: dict[int, tuple[int, str]] = {}
    routes: dict[int, set[str]] = defaultdict(set)
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        for user_id, version, role in db.session.execute(
                select(User.id, User.token_version, User.role).where(User.id.in_(chunk))):
            found[user_id] = (version, role)
        for user_id, route_id in db.session.execute(
                select(user_students.c.user_id, Student.route_id)
                .join(Student, Student.id == user_students.c.student_id)
                .where(user_students.c.user_id.in_(chunk), Student.route_id.is_not(None))):
            routes[user_id].add(route_id)
    scopes: dict[tuple[int, int | None], LiveScope | None] = {}
    for user_id, version in users:
        known = found.get(user_id)
        if known is None or (version is not None and known[0] != version):
            scopes[(user_id, version)] = None
        elif known[1] == "parent":
            scopes[(user_id, version)] = LiveScope(
                vehicle_ids=frozenset(), trip_route_ids=frozenset(routes.get(user_id, ())),
                candidate_vehicle_ids=None)
        else:
            scopes[(user_id, version)] = live_scope(db.session.get(User, user_id))
    return scopes
