"""Nutrition meals (营养加餐): what each school's logistics staff report for a day.

Reports are never overwritten: a second report for the same school and date is a new row with
the next ``version``, and the audit reads the newest one. The older rows stay, each with who
reported it and when, so what a school claimed and when it changed its mind is on record.
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.tracking import BigId


class MealReport(db.Model):
    __tablename__ = "meal_reports"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    service_date: Mapped[str] = mapped_column(String(10))  # local ISO date
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, …: the highest is the one that counts
    boarders_present: Mapped[int | None] = mapped_column(Integer)  # None: attendance not taken
    meals_served: Mapped[int] = mapped_column(Integer)
    meals_received: Mapped[int] = mapped_column(Integer)
    reported_by: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[float] = mapped_column(Float)
    __table_args__ = (
        UniqueConstraint("school_id", "service_date", "version", name="uq_meal_reports_version"),
    )
