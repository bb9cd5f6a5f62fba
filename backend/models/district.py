"""The district's geography and timetable: schools, stops, routes and their runs, calendar."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.extensions import db

ID = String(64)


class District(db.Model):
    __tablename__ = "districts"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    calendar_days: Mapped[list[CalendarDay]] = relationship(
        back_populates="district", cascade="all, delete-orphan", order_by="CalendarDay.date"
    )


class CalendarDay(db.Model):
    """An exception to the weekly timetable: a holiday, or a weekend day worked as a weekday (调休)."""

    __tablename__ = "calendar_days"
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), primary_key=True)
    date: Mapped[str] = mapped_column(String(10), primary_key=True)  # ISO local date
    kind: Mapped[str] = mapped_column(String(16))  # "holiday" | "school_day"
    as_weekday: Mapped[int | None] = mapped_column(Integer)
    district: Mapped[District] = relationship(back_populates="calendar_days")


class School(db.Model):
    __tablename__ = "schools"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[float] = mapped_column(Float, default=150.0)
    boarders_enrolled: Mapped[int] = mapped_column(Integer, default=0)


class Stop(db.Model):
    __tablename__ = "stops"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[float] = mapped_column(Float, default=60.0)


class Route(db.Model):
    __tablename__ = "routes"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    school_id: Mapped[str | None] = mapped_column(ForeignKey("schools.id"))
    path: Mapped[dict[str, Any]] = mapped_column(JSON)  # GeoJSON LineString, [lon, lat]
    corridor_m: Mapped[float] = mapped_column(Float, default=80.0)
    stops: Mapped[list[RouteStop]] = relationship(
        cascade="all, delete-orphan", order_by="RouteStop.sequence"
    )
    runs: Mapped[list[RouteRun]] = relationship(
        cascade="all, delete-orphan", order_by="RouteRun.id"
    )


class RouteStop(db.Model):
    """One stop of a route; exactly one of ``stop_id`` and ``school_id`` is set."""

    __tablename__ = "route_stops"
    route_id: Mapped[str] = mapped_column(ForeignKey("routes.id"), primary_key=True)
    sequence: Mapped[int] = mapped_column(Integer, primary_key=True)
    stop_id: Mapped[str | None] = mapped_column(ForeignKey("stops.id"))
    school_id: Mapped[str | None] = mapped_column(ForeignKey("schools.id"))

    @property
    def place_id(self) -> str:
        return self.stop_id or self.school_id or ""


class RouteRun(db.Model):
    """A departure of a route: one time per stop, on weekdays (calendar-aware) or explicit dates."""

    __tablename__ = "route_runs"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    route_id: Mapped[str] = mapped_column(ForeignKey("routes.id"), index=True)
    times_s: Mapped[list[int | None]] = mapped_column(JSON)  # seconds after local midnight
    days: Mapped[list[int] | None] = mapped_column(JSON)
    dates: Mapped[list[str] | None] = mapped_column(JSON)
    #: the vehicle planned to drive it (a block); the tracker gives it this run first. No
    #: foreign key: a bundle may name a vehicle it creates after its routes.
    vehicle_id: Mapped[str | None] = mapped_column(ID, default=None)
    # who made it, hence who may change or delete it (backend.bundle.importer.OWNS): "bundle",
    # "gtfs", "demo" (the demo's simulated buses) or "substitute"
    source: Mapped[str] = mapped_column(String(16), default="bundle", server_default="bundle")


class SubsidyPolicy(db.Model):
    __tablename__ = "subsidy_policies"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    monthly_cap: Mapped[float | None] = mapped_column(Float)
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # 三级九等: [{name, grades: [{min_km, max_km, per_month, per_trip}] × 3}] × 3; None: tiers only
    levels: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    road_factor: Mapped[float | None] = mapped_column(Float, default=None)
