"""What tracking produces: events (SPEC §5 kinds) and the daily audit of every trip."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.district import ID
from backend.models.tracking import BigId


class Event(db.Model):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    ts: Mapped[float] = mapped_column(Float)
    vehicle_id: Mapped[str | None] = mapped_column(ID)
    route_id: Mapped[str | None] = mapped_column(ID)
    trip_id: Mapped[str | None] = mapped_column(String(200))
    run_id: Mapped[str | None] = mapped_column(ID)
    stop_id: Mapped[str | None] = mapped_column(ID)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)
    __table_args__ = (
        Index("ix_events_vehicle_ts", "vehicle_id", "ts"),
        Index("ix_events_route_ts", "route_id", "ts"),
        Index("ix_events_kind_ts", "kind", "ts"),
        Index("ix_events_trip", "trip_id"),
    )


class TripAudit(db.Model):
    """One trip of one local day recomputed from the stored pings (``xiaoche audit``)."""

    __tablename__ = "trip_audits"
    trip_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    service_date: Mapped[str] = mapped_column(String(10), index=True)
    route_id: Mapped[str] = mapped_column(ID, index=True)
    run_id: Mapped[str] = mapped_column(ID)
    vehicle_id: Mapped[str] = mapped_column(ID)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_at: Mapped[float] = mapped_column(Float)
