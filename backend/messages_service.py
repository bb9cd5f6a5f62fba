"""Writing notifications for users: the in-app list and ``/stream`` read these rows.

The notifications issue adds rules (bus approaching, arrived…) and delivery channels on top;
both write through :func:`notify` so the de-duplication key is enforced in one place.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from backend.extensions import db
from backend.models import Notification, RouteMessage, Student, User, user_students


def parents_of_route(route_id: str) -> list[int]:
    """Ids of the parent users with a child riding the route."""
    return sorted(set(db.session.scalars(
        select(User.id).join(user_students, user_students.c.user_id == User.id)
        .join(Student, Student.id == user_students.c.student_id)
        .where(User.role == "parent", Student.route_id == route_id))))


def notify(rows: Iterable[dict]) -> int:
    """Insert notifications, skipping any whose ``dedupe_key`` was used before; returns how
    many are new. Part of the caller's transaction (the request's session)."""
    return insert_notifications(db.session.connection(), rows)


def insert_notifications(conn: Connection, rows: Iterable[dict]) -> int:
    """:func:`notify` on a connection (the ingest's transaction): the outbox rows commit or roll
    back with the events that caused them; the dispatcher pushes them later."""
    rows = [{"created_at": time.time(), "route_id": None, "stop_id": None, "trip_id": None,
             "dedupe_key": None, **r} for r in rows]
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    table = Notification.__table__
    stmt = (dialect.insert(table).on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(table.c.id))
    return len(conn.execute(stmt, rows).all())


def broadcast_to_route(route_id: str, title: str, body: str, sent_by: str) -> RouteMessage:
    """A staff message to every parent of the route's riders, committed."""
    message = RouteMessage(route_id=route_id, title=title, body=body, sent_by=sent_by,
                           created_at=time.time())
    db.session.add(message)
    db.session.flush()
    parents = parents_of_route(route_id)
    message.recipients = notify(
        {"user_id": user_id, "kind": "staff_message", "title": title, "body": body,
         "created_at": message.created_at, "route_id": route_id,
         "dedupe_key": f"staff_message:{message.id}:{user_id}"} for user_id in parents)
    db.session.commit()
    return message
