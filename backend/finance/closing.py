"""Month-end closing: finance closes a month; from then on its books never change.

Closing a month freezes every exchange teacher's allowance lines of that month as
:class:`~backend.models.AllowanceEntry` rows, together with the adjustments of earlier closed
months that were waiting in it, and what those lines were priced on (each teacher's due days
and their bands: ``month_closings.basis``). Anything learnt later about a closed month — a trip
booked late, a trip approved or reversed, a staff confirmation — goes into the first open
month after it, naming the month it corrects (transport rows:
``corrects_month``; allowance rows: ``for_month`` and ``corrects_entry_id``). What was
decided after the close — an assignment, the policy, a cluster, a grid override — prices open
months only (an override dated into a closed month is refused).

Locking: closing takes the district's row ``FOR NO KEY UPDATE`` (:func:`lock_books`), booking a
trip and deciding one take it ``FOR SHARE`` before they read which months are closed, so a
close waits for the bookings that read the months before it, and a booking that starts during
a close waits for it and then books into the next open month. SQLite has one writer at a time:
there the same call begins the transaction ``IMMEDIATE`` (taking the write lock) unless it
already holds it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, select

from backend.models import District, MonthClosing, School, Teacher

DISTRICTS = District.__table__


def lock_books(conn: Connection, district_id: str | None, *, close: bool = False) -> None:
    """Serialise closing a district's month with bookings into its months (see above):
    ``close`` takes the district's row exclusively, anything else shares it. Held until the
    transaction ends."""
    if district_id is None:
        return
    if conn.dialect.name == "postgresql":
        # NO KEY UPDATE: conflicts with FOR SHARE, not with the FOR KEY SHARE of foreign keys
        conn.execute(select(DISTRICTS.c.id).where(DISTRICTS.c.id == district_id)
                     .with_for_update(read=not close, key_share=close))
    elif conn.dialect.name == "sqlite":
        raw = conn.connection.dbapi_connection
        if raw is not None and not raw.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def month_days(month: str) -> list[dt.date]:
    """The dates of a month; none for a month a calendar cannot hold (year 0000 or 9999-12:
    the API's YYYY-MM lets them through, and nobody was due then)."""
    try:
        first = dt.date.fromisoformat(f"{month}-01")
        last = dt.date.fromisoformat(f"{next_month(month)}-01")
    except ValueError:
        return []
    return [first + dt.timedelta(days=k) for k in range((last - first).days)]


def closed_months(conn: Connection, district_id: str) -> set[str]:
    return set(conn.scalars(select(MonthClosing.month).where(
        MonthClosing.district_id == district_id)))


def is_closed(conn: Connection, district_id: str, month: str) -> bool:
    return month in closed_months(conn, district_id)


def frozen_basis(conn: Connection, district_id: str, month: str) -> dict[str, Any] | None:
    """What a closed month's allowance was priced on, frozen at its close: teacher id → due
    days (``date``, ``school_id``, ``band``). ``None`` for an open month, and for a month
    closed before the basis was kept (its lines are then recomputed as they were)."""
    return conn.scalar(select(MonthClosing.basis).where(MonthClosing.district_id == district_id,
                                                        MonthClosing.month == month))


def accounting_month(conn: Connection, district_id: str | None, month: str) -> str:
    """The month whose books take what happened in ``month``: itself while open, else the
    first open month after it."""
    if district_id is None:
        return month
    closed = closed_months(conn, district_id)
    while month in closed:
        month = next_month(month)
    return month


def teacher_district(conn: Connection, teacher_id: str) -> str | None:
    return conn.scalar(select(School.district_id).join(
        Teacher, Teacher.home_school_id == School.id).where(Teacher.id == teacher_id))


def only_district(conn: Connection) -> str | None:
    ids = list(conn.scalars(select(District.id).order_by(District.id)))
    return ids[0] if len(ids) == 1 else None
