"""Vehicles and the devices that speak for them."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, ForeignKey, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.extensions import db
from backend.models.district import ID, Route

vehicle_routes = Table(
    "vehicle_routes",
    db.metadata,
    Column("vehicle_id", ForeignKey("vehicles.id"), primary_key=True),
    Column("route_id", ForeignKey("routes.id"), primary_key=True),
)

VEHICLE_KINDS = ("school_bus", "teacher_car", "meal_truck")


class Vehicle(db.Model):
    __tablename__ = "vehicles"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    plate: Mapped[str | None] = mapped_column(String(32))
    seats: Mapped[int | None] = mapped_column(Integer)
    speed_limit_kmh: Mapped[float | None] = mapped_column(Float)
    routes: Mapped[list[Route]] = relationship(secondary=vehicle_routes, order_by="Route.id")


class Device(db.Model):
    """A tracker or phone. Its token is stored only as a PBKDF2 hash in Mosquitto's own format,
    so the same hash authenticates HTTP ingest and goes into the broker's password file."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    vehicle_id: Mapped[str | None] = mapped_column(ForeignKey("vehicles.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(255))
    # 16 bits of SHA-256(token): finds the device of a bare bearer token without trying every
    # hash, while revealing too little to help guess the token.
    token_bucket: Mapped[str] = mapped_column(String(4), index=True)
    crs: Mapped[str] = mapped_column(String(8), default="wgs84")
    osmand: Mapped[bool] = mapped_column(Boolean, default=False)
    # a JT/T 808 terminal's phone number as its frame headers carry it (digits; the gateway
    # compares it without leading zeros: 12 digits in a 2013 header, 20 in a 2019 one)
    jt808_phone: Mapped[str | None] = mapped_column(String(20), index=True)
    # its firmware computes the JT/T 808 check byte wrong: take its frames all the same
    jt808_accept_bad_check: Mapped[bool] = mapped_column(Boolean, default=False)
    # its model (``device_models.id``): what holds for every device of that model
    model: Mapped[str | None] = mapped_column(ID)
    vehicle: Mapped[Vehicle | None] = relationship()
