"""Delivering notifications and running clock jobs once.

``NotificationDelivery``: one push of one notification on one channel (MQTT, webhook), with its
retry state: the outbox a dispatcher works through (``notifications.push_state`` says whether a
notification's deliveries were planned yet). ``VehicleWatch``: whether a vehicle's device was reported offline. ``SchedulerLease``: which ``xiaoche scheduler``
process may run jobs now. ``apscheduler_jobs``: APScheduler 3's own ``SQLAlchemyJobStore`` table,
declared here so that migrations, not the job store, create it.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.tracking import BigId

#: ``NotificationDelivery.state``: waiting (first try or a retry at ``next_attempt_at``), done,
#: given up after the last retry (dead letter), or too old to push when its turn came.
DELIVERY_STATES = ("pending", "sent", "dead", "stale")


class NotificationDelivery(db.Model):
    __tablename__ = "notification_deliveries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"))
    channel: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[float | None] = mapped_column(Float)
    __table_args__ = (
        UniqueConstraint("notification_id", "channel"),
        Index("ix_notification_deliveries_due", "state", "next_attempt_at"),
    )


class SchedulerLease(db.Model):
    __tablename__ = "scheduler_leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class VehicleWatch(db.Model):
    """The offline watch of one vehicle (``notifications.offline.OfflineWatch``): the
    ``last_seen`` of the silence reported as ``device_offline``, until it is heard again."""

    __tablename__ = "vehicle_watch"
    vehicle_id: Mapped[str] = mapped_column(ForeignKey("vehicles.id"), primary_key=True)
    silence_from: Mapped[float | None] = mapped_column(Float)
    checked_at: Mapped[float] = mapped_column(Float)


# The columns APScheduler 3.x's SQLAlchemyJobStore creates (apscheduler/jobstores/sqlalchemy.py).
apscheduler_jobs = Table(
    "apscheduler_jobs", db.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
