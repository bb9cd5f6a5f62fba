"""Who read which route's live positions, and when (issue 17: a privacy review under PIPL)."""

from __future__ import annotations

from sqlalchemy import Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.district import ID
from backend.models.tracking import BigId


class AccessEntry(db.Model):
    """Reads of one kind by one user of one route (or of their whole scope) within one flush
    interval of ``backend.access_log``: the first and last read's time and how many there were.
    A parent's app polling ``/live`` every 5 s is one row per interval, not one per request.
    No foreign keys: the log outlives a deleted user or route, which is what a review needs."""

    __tablename__ = "access_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(20))  # route_live, stream, vehicles_live, trip_track, vehicle_track
    route_id: Mapped[str | None] = mapped_column(ID)  # None: every route the caller may see
    first_at: Mapped[float] = mapped_column(Float)
    last_at: Mapped[float] = mapped_column(Float)
    reads: Mapped[int] = mapped_column(Integer)
    __table_args__ = (
        Index("ix_access_log_first_at", "first_at"),
        Index("ix_access_log_user_id_first_at", "user_id", "first_at"),
    )
