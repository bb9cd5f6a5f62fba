"""Closing a month, and what changed in a month's books since finance last exported them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend.errors import ApiError
from backend.extensions import db
from backend.finance.allowances import allowance_of, basis_of, due_days
from backend.finance.closing import is_closed, lock_books, month_days, only_district
from backend.models import (
    AllowanceEntry,
    District,
    FinanceExport,
    MonthClosing,
    School,
    Teacher,
    User,
)
from backend.tracking_service import district_calendar
from routing.calendar import local_date


def _district(district_id: str | None) -> str:
    conn = db.session.connection()
    if district_id is None:
        district_id = only_district(conn)
        if district_id is None:
            raise ApiError(422, "district_id is required when there is not exactly one district",
                           errors={"district_id": ["required"]})
    if db.session.get(District, district_id) is None:
        raise ApiError(422, f"unknown district {district_id}",
                       errors={"district_id": ["unknown district"]})
    return district_id


def district_teachers(district_id: str) -> list[Teacher]:
    return list(db.session.scalars(select(Teacher).join(
        School, School.id == Teacher.home_school_id).where(
        School.district_id == district_id).order_by(Teacher.id)))


def close_month(user: User, month: str, district_id: str | None, now: float) -> dict[str, Any]:
    """Close a month that is over: freeze each teacher's allowance lines (and the adjustments
    of earlier months waiting in it) with the due days and bands they were priced on, and
    record who closed it. Committed. Waits for the bookings that read the months before it
    (:func:`backend.finance.closing.lock_books`)."""
    district_id = _district(district_id)
    conn = db.session.connection()
    lock_books(conn, district_id, close=True)
    if is_closed(conn, district_id, month):
        raise ApiError(409, f"{month} is already closed")
    today = local_date(now, district_calendar(conn, district_id))
    days = month_days(month)
    if not days:
        raise ApiError(422, f"{month} is not a month of the calendar",
                       errors={"month": ["a month YYYY-MM"]})
    if days[-1] >= today:
        raise ApiError(409, f"{month} is not over yet (today is {today.isoformat()})")
    frozen, basis = 0, {}
    for teacher in district_teachers(district_id):
        basis[teacher.id] = basis_of(due_days(conn, teacher.id, month))
        for line in allowance_of(teacher.id, month)["lines"]:
            db.session.add(AllowanceEntry(
                teacher_id=teacher.id, month=month, recorded_by=user.username,
                recorded_at=now, **{k: v for k, v in line.items() if k != "entry_id"}))
            frozen += 1
    db.session.add(MonthClosing(district_id=district_id, month=month, closed_by=user.username,
                                closed_at=now, basis=basis))
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise ApiError(409, f"{month} was closed meanwhile") from exc
    return month_status(month, district_id) | {"allowance_lines_frozen": frozen}


def month_status(month: str, district_id: str | None = None) -> dict[str, Any]:
    district_id = _district(district_id)
    row = db.session.get(MonthClosing, (district_id, month))
    return {"district_id": district_id, "month": month, "closed": row is not None,
            "closed_by": row.closed_by if row else None,
            "closed_at": row.closed_at if row else None}


# -- exports and what changed since --------------------------------------------------------

def export_lines(month: str) -> dict[str, dict[str, Any]]:
    """Every line of a month's books, by a key that stays the same while the line does."""
    from backend.subsidy_service import month_statements  # it imports this package

    return statement_lines(month_statements(month))


def statement_lines(statements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The lines of :func:`export_lines` from the ``GET /subsidies`` bodies an export wrote: an
    export records what its file holds, not what was booked while it was being written."""
    lines: dict[str, dict[str, Any]] = {}
    for s in statements:
        for e in s["entries"]:
            lines[f"transport:{e['entry_id']}"] = {
                "kind": "transport", "teacher_id": s["teacher_id"], "trip_id": e["trip_id"],
                "entry_kind": e["kind"], "status": e["status"], "amount": round(e["amount"], 2),
                "corrects_month": e["corrects_month"]}
    for s in statements:
        for line in s["allowance"]:
            key = (f"allowance:{s['teacher_id']}:{line['for_month']}:{line['school_id']}:"
                   f"{line['level']}-{line['grade']}:{line['kind']}")
            lines[key] = {"kind": "allowance", "teacher_id": s["teacher_id"],
                          "school_id": line["school_id"], "entry_kind": line["kind"],
                          "for_month": line["for_month"], "level": line["level"],
                          "grade": line["grade"], "days_present": line["days_present"],
                          "amount": line["amount"]}
    return lines


def record_export(month: str, exported_by: str, now: float,
                  statements: list[dict[str, Any]] | None = None) -> None:
    """Record a month's export: the lines of ``statements`` (what the file was written from),
    else the books as they are now."""
    lines = export_lines(month) if statements is None else statement_lines(statements)
    db.session.add(FinanceExport(month=month, exported_by=exported_by, exported_at=now,
                                 lines=lines))
    db.session.commit()


def changes_since_export(month: str) -> dict[str, Any]:
    """What the month's books say now that its last export did not: lines added, removed or
    changed in amount (everything is added when the month was never exported)."""
    last = db.session.scalars(select(FinanceExport).where(FinanceExport.month == month)
                              .order_by(FinanceExport.id.desc())).first()
    before = last.lines if last else {}
    now = export_lines(month)
    added = [{"key": k, **v} for k, v in now.items() if k not in before]
    removed = [{"key": k, **v} for k, v in before.items() if k not in now]
    changed = [{"key": k, **now[k], "amount_before": before[k]["amount"]}
               for k in now if k in before and abs(now[k]["amount"] - before[k]["amount"]) >= 0.005]
    delta = round(sum(v["amount"] for v in now.values())
                  - sum(v["amount"] for v in before.values()), 2)
    return {"month": month,
            "last_export": None if last is None else {
                "exported_at": dt.datetime.fromtimestamp(last.exported_at, dt.UTC)
                .isoformat().replace("+00:00", "Z"), "exported_by": last.exported_by},
            "added": added, "removed": removed, "changed": changed, "total_change": delta}
