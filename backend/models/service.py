"""What staff change about a day's service, and what parents and staff are told.

``RouteSubstitution``: a substitute bus for one route on one local date (``PUT
/routes/{id}/vehicle``); tracking and the parents' live view follow it that day.
``Notification``: one message for one user (in-app list, ``/stream``; the delivery channels of
the notifications issue read the same rows). ``RouteMessage``: what a staff member broadcast to a
route's parents, kept with who sent it.
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.district import ID
from backend.models.tracking import BigId


class RouteSubstitution(db.Model):
    __tablename__ = "route_substitutions"
    route_id: Mapped[str] = mapped_column(ForeignKey("routes.id"), primary_key=True)
    service_date: Mapped[str] = mapped_column(String(10), primary_key=True)  # local ISO date
    vehicle_id: Mapped[str] = mapped_column(ForeignKey("vehicles.id"), index=True)
    set_by: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[float] = mapped_column(Float)


class Notification(db.Model):
    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    route_id: Mapped[str | None] = mapped_column(ID)
    stop_id: Mapped[str | None] = mapped_column(ID)
    trip_id: Mapped[str | None] = mapped_column(String(200))
    # (user, trip, stop, kind) or a message id: the same cause never notifies a user twice
    dedupe_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    # pending: its pushes not planned yet (the dispatcher's queue); planned: deliveries made;
    # stale / quiet_hours / none: kept in the in-app list only, and why
    push_state: Mapped[str] = mapped_column(String(12), default="pending",
                                            server_default="pending")
    __table_args__ = (Index("ix_notifications_user_id", "user_id", "id"),
                      Index("ix_notifications_push_state", "push_state", "id"))


class RouteMessage(db.Model):
    __tablename__ = "route_messages"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    route_id: Mapped[str] = mapped_column(ForeignKey("routes.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    sent_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    recipients: Mapped[int] = mapped_column(default=0)
