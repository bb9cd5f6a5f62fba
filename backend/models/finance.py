"""Clusters (教联体 / 学区), their distance grid, and the month-end books of exchange teachers'
allowances (交流补贴).

Like the transport ledger (:mod:`backend.models.subsidies`), what finance decides is kept:
a grid override is a row with who, when and why; a month's closing is a row; a closed month's
allowance lines are frozen as rows and never updated — a later correction is an ``adjustment``
row in the next open month naming the month and the line it corrects.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.district import ID
from backend.models.tracking import BigId

ALLOWANCE_KINDS = ("allowance", "adjustment")


class Cluster(db.Model):
    __tablename__ = "clusters"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    core_school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))


class ClusterMember(db.Model):
    __tablename__ = "cluster_members"
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id"), primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)


class GridOverride(db.Model):
    """Finance sets a member school's distance from the core school, from a local date on."""

    __tablename__ = "grid_overrides"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    distance_km: Mapped[float] = mapped_column(Float)
    effective_from: Mapped[str] = mapped_column(String(10))  # local date
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[float] = mapped_column(Float)


class AttendanceConfirmation(db.Model):
    """A staff member confirms an exchange teacher was at a school on a day (no trip showed it)."""

    __tablename__ = "attendance_confirmations"
    teacher_id: Mapped[str] = mapped_column(ForeignKey("teachers.id"), primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    date: Mapped[str] = mapped_column(String(10), primary_key=True)
    note: Mapped[str] = mapped_column(Text, default="")
    confirmed_by: Mapped[str] = mapped_column(String(64))
    confirmed_at: Mapped[float] = mapped_column(Float)


class MonthClosing(db.Model):
    __tablename__ = "month_closings"
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    closed_by: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[float] = mapped_column(Float)
    # what the month's allowance was priced on, frozen at the close: teacher id → due days
    # [{date, school_id, band}]; None for a month closed before it was kept (migration 0014)
    basis: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class AllowanceEntry(db.Model):
    """A frozen allowance line of a closed month (``allowance``) or a correction of an earlier
    closed month booked into the month being closed (``adjustment``)."""

    __tablename__ = "allowance_entries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # one of ALLOWANCE_KINDS
    teacher_id: Mapped[str] = mapped_column(ForeignKey("teachers.id"))
    month: Mapped[str] = mapped_column(String(7))  # the month whose books it is in
    for_month: Mapped[str] = mapped_column(String(7))  # the month the days were worked
    school_id: Mapped[str] = mapped_column(ID)
    level: Mapped[int] = mapped_column(Integer)
    grade: Mapped[int] = mapped_column(Integer)
    per_month: Mapped[float] = mapped_column(Float)
    days_present: Mapped[int] = mapped_column(Integer)
    days_due: Mapped[int] = mapped_column(Integer)
    amount: Mapped[float] = mapped_column(Float)
    corrects_entry_id: Mapped[int | None] = mapped_column(BigId)
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[float] = mapped_column(Float)
    __table_args__ = (Index("ix_allowance_entries_teacher_month", "teacher_id", "month"),)


class FinanceExport(db.Model):
    """What a month's export said, line by line, so the next one can say what changed."""

    __tablename__ = "finance_exports"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    month: Mapped[str] = mapped_column(String(7), index=True)
    exported_by: Mapped[str] = mapped_column(String(64))
    exported_at: Mapped[float] = mapped_column(Float)
    lines: Mapped[dict[str, Any]] = mapped_column(JSON)  # line key → amount
