"""What devices produce: pings, rider scans, rejected input, and each vehicle's live position.

Time columns hold epoch seconds (float, UTC): the tracker works in event time on these numbers,
the hot path inserts them without datetime conversion, and the API renders ISO-8601 ``Z``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.district import ID

# BIGINT on PostgreSQL (billions of pings); INTEGER on SQLite, the only type it auto-increments.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Ping(db.Model):
    __tablename__ = "pings"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ID)
    vehicle_id: Mapped[str | None] = mapped_column(ID)
    ts: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    speed_kmh: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    alt_m: Mapped[float | None] = mapped_column(Float)
    battery_pct: Mapped[float | None] = mapped_column(Float)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[float] = mapped_column(Float)
    __table_args__ = (
        UniqueConstraint("device_id", "ts", name="uq_pings_device_ts"),  # redelivery is harmless
        Index("ix_pings_vehicle_ts", "vehicle_id", "ts"),
    )


class LivePosition(db.Model):
    """Newest fix per vehicle by the device's own time: a late backlog never moves it back."""

    __tablename__ = "live_positions"
    vehicle_id: Mapped[str] = mapped_column(ID, primary_key=True)
    device_id: Mapped[str] = mapped_column(ID)
    ts: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    speed_kmh: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[float] = mapped_column(Float)


class Scan(db.Model):
    """A rider card tapped on a bus reader."""

    __tablename__ = "scans"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ID)
    vehicle_id: Mapped[str | None] = mapped_column(ID, index=True)
    ts: Mapped[float] = mapped_column(Float)
    card_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(8))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[float] = mapped_column(Float)
    __table_args__ = (UniqueConstraint("device_id", "ts", "card_id", name="uq_scans_device_ts"),)


class Reject(db.Model):
    """Input that was not stored as a position, kept with its reason (GET /admin/rejects)."""

    __tablename__ = "rejects"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[float] = mapped_column(Float, index=True)
    device_id: Mapped[str | None] = mapped_column(String(200), index=True)
    topic: Mapped[str | None] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(String(40), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    item_index: Mapped[int | None] = mapped_column(Integer)
    ts: Mapped[float | None] = mapped_column(Float)  # a filtered ping's own time
    payload_head: Mapped[str] = mapped_column(Text, default="")  # first 1 KB, as text


class TrackerState(db.Model):
    """Per-vehicle tracking state, so any ingest process can take a vehicle's next batch."""

    __tablename__ = "tracker_states"
    vehicle_id: Mapped[str] = mapped_column(ForeignKey("vehicles.id"), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    last_ts: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
