"""Teachers' transport subsidies (走教补贴): an append-only ledger.

Every row is written once and never updated. A trip is booked by one ``trip`` row (``approved``
with its amount, or ``pending`` with amount 0 until a logistics user decides); a decision is a
row of its own (``approval`` with the amount granted, ``rejection`` of a pending trip with 0, or
``reversal`` of a granted trip with minus what it had granted). At most one row of each kind per
trip (the unique key), so booking the same trip twice — the live ingest and the nightly audit —
books it once. A teacher's month is the sum of the rows of the trips of that month.
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.district import ID
from backend.models.tracking import BigId

ENTRY_KINDS = ("trip", "approval", "rejection", "reversal")


class SubsidyEntry(db.Model):
    __tablename__ = "subsidy_entries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    trip_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # one of ENTRY_KINDS
    status: Mapped[str] = mapped_column(String(16))  # the trip's status once this row is written
    teacher_id: Mapped[str] = mapped_column(ForeignKey("teachers.id"))
    month: Mapped[str] = mapped_column(String(7))  # local YYYY-MM of the trip
    service_date: Mapped[str] = mapped_column(String(10))
    from_school_id: Mapped[str] = mapped_column(ID)
    to_school_id: Mapped[str] = mapped_column(ID)
    departed_at: Mapped[float] = mapped_column(Float)
    arrived_at: Mapped[float] = mapped_column(Float)
    distance_km: Mapped[float] = mapped_column(Float)
    tier: Mapped[int | None] = mapped_column(Integer)  # 1-based tier of the policy; None: none
    per_trip: Mapped[float] = mapped_column(Float)  # the tier's amount before the monthly cap
    amount: Mapped[float] = mapped_column(Float)  # what this row adds to the month (may be < 0)
    cap_applied: Mapped[bool] = mapped_column(default=False)
    policy_id: Mapped[str | None] = mapped_column(ID)  # the policy version that priced it
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    review_reasons: Mapped[str] = mapped_column(Text, default="")  # why pending, comma-separated
    reason: Mapped[str] = mapped_column(Text, default="")  # a decision's reason
    recorded_by: Mapped[str] = mapped_column(String(64))  # "tracker", "audit" or a username
    recorded_at: Mapped[float] = mapped_column(Float)
    # what the trip was paid on: min(driven, grid distance between its schools); None: driven
    grid_km: Mapped[float | None] = mapped_column(Float, default=None)
    priced_km: Mapped[float | None] = mapped_column(Float, default=None)
    level: Mapped[int | None] = mapped_column(Integer, default=None)  # 三级九等 band of priced_km
    grade: Mapped[int | None] = mapped_column(Integer, default=None)
    # a row booked into a later open month because its trip's month was closed
    corrects_month: Mapped[str | None] = mapped_column(String(7), default=None)
    __table_args__ = (
        UniqueConstraint("trip_id", "kind", name="uq_subsidy_entries_trip_kind"),
        Index("ix_subsidy_entries_teacher_month", "teacher_id", "month"),
    )
