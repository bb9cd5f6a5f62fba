"""Exchange teachers' monthly allowance (交流补贴), pro-rated by the days they were verifiably
at the member schools they are assigned to.

A teacher is due at an assigned member school on each school day of the month whose timetable
weekday is one of the assignment's weekdays (holidays off, 调休 days as their ``as_weekday``).
A due day is verified by a trip of theirs arriving there that day (approved: a trip pending for
a mock location or an impossible speed proves nothing), a scan of their card inside the
school's radius that day, or a staff confirmation. Each due day
is worth ``per_month / due days of the month`` at its school's band on that day, so a grade
changed mid-month by finance counts from its date on (:func:`routing.allowance.monthly_allowance`).

An open month's lines are computed when asked; a closed month's are the frozen rows.

Closing a month also freezes what its allowance was priced on: per teacher, each due day with
its school and band (``month_closings.basis``). Later recomputation of a closed month (the
adjustments booked into the next open month) re-reads only the evidence — trips approved or
booked late, scans, confirmations — against those frozen days and bands, so an assignment,
policy or cluster changed after the close never re-prices the closed month.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from geopy.distance import geodesic
from sqlalchemy import Connection, select

from backend.errors import ApiError, not_found
from backend.extensions import db
from backend.finance.closing import (
    accounting_month,
    closed_months,
    frozen_basis,
    is_closed,
    month_days,
    teacher_district,
)
from backend.finance.grid import school_grid
from backend.models import (
    AllowanceEntry,
    AttendanceConfirmation,
    Scan,
    School,
    SubsidyEntry,
    Teacher,
    TeacherAssignment,
    User,
)
from backend.tracking_service import district_calendar
from routing.allowance import Band, DueDay, monthly_allowance
from routing.calendar import local_date, service_day_start, timetable_weekday

ENTRIES = SubsidyEntry.__table__


def verified_days(conn: Connection, teacher_id: str, month: str,
                  schools: list[str] | None = None) -> set[tuple[str, str]]:
    """``(school_id, date)`` the teacher was verifiably at in the month (scans: inside one of
    ``schools``, by default the schools the teacher is assigned to now)."""
    status: dict[str, str] = {}
    arrivals: dict[str, tuple[str, str]] = {}
    for trip_id, kind, row_status, to_school, day in conn.execute(
            select(ENTRIES.c.trip_id, ENTRIES.c.kind, ENTRIES.c.status, ENTRIES.c.to_school_id,
                   ENTRIES.c.service_date)
            .where(ENTRIES.c.teacher_id == teacher_id,
                   ENTRIES.c.service_date.like(f"{month}-%")).order_by(ENTRIES.c.id)):
        status[trip_id] = row_status
        if kind == "trip":
            arrivals[trip_id] = (to_school, day)
    days = {arrivals[t] for t, s in status.items() if s == "approved" and t in arrivals}
    days |= set(conn.execute(select(AttendanceConfirmation.school_id, AttendanceConfirmation.date)
                             .where(AttendanceConfirmation.teacher_id == teacher_id,
                                    AttendanceConfirmation.date.like(f"{month}-%"))).all())
    return {(s, d) for s, d in days} | scanned_days(conn, teacher_id, month, schools)


def scanned_days(conn: Connection, teacher_id: str, month: str,
                 school_ids: list[str] | None = None) -> set[tuple[str, str]]:
    """``(school_id, date)`` of the teacher's card scans made inside an assigned school's
    radius (a reader at the gate, or the bus that brought them, standing in the school);
    ``school_ids``: these schools instead of today's assignments."""
    card = conn.scalar(select(Teacher.card_id).where(Teacher.id == teacher_id))
    district_id = teacher_district(conn, teacher_id)
    days = month_days(month)
    if not card or district_id is None or not days:
        return set()
    calendar = district_calendar(conn, district_id)
    query = select(School.id, School.lat, School.lon, School.radius_m)
    if school_ids is None:
        query = query.join(TeacherAssignment, TeacherAssignment.school_id == School.id).where(
            TeacherAssignment.teacher_id == teacher_id)
    else:
        query = query.where(School.id.in_(school_ids))
    schools = conn.execute(query).all()
    start = service_day_start(days[0], calendar)
    end = service_day_start(days[-1], calendar) + 86400.0
    found = set()
    for ts, lat, lon in conn.execute(select(Scan.ts, Scan.lat, Scan.lon).where(
            Scan.card_id == card, Scan.ts >= start, Scan.ts < end)):
        if lat is None or lon is None:
            continue
        for school_id, s_lat, s_lon, radius_m in schools:
            if geodesic((lat, lon), (s_lat, s_lon)).m <= radius_m:
                found.add((school_id, local_date(ts, calendar).isoformat()))
    return found


def due_days(conn: Connection, teacher_id: str, month: str) -> list[DueDay]:
    """The teacher's due days of the month with their bands and whether each is verified: of a
    month closed with a basis, the frozen days and bands (only the evidence is read again);
    else from today's assignments, calendar, cluster and policy."""
    district_id = teacher_district(conn, teacher_id)
    if district_id is None:
        return []
    basis = frozen_basis(conn, district_id, month)
    if basis is not None:
        return frozen_due_days(conn, teacher_id, month, basis.get(teacher_id, []))
    calendar = district_calendar(conn, district_id)
    present = verified_days(conn, teacher_id, month)
    days = month_days(month)
    # the grid of a month rests on the trips up to its end: a later month's drives must not
    # re-price (and so "correct") a month already closed
    month_end = service_day_start(days[-1], calendar) + 86400.0 if days else None
    out = []
    for school_id, weekdays in conn.execute(select(
            TeacherAssignment.school_id, TeacherAssignment.weekdays).where(
            TeacherAssignment.teacher_id == teacher_id).order_by(TeacherAssignment.school_id)):
        for day in days:
            if timetable_weekday(day, calendar) not in set(weekdays):
                continue
            row = school_grid(conn, school_id, day, month_end)
            if row is None or row["band"] is None:
                continue  # the core school, or a school in no cluster: no allowance is due
            out.append(DueDay(day, school_id, Band(**row["band"]),
                              (school_id, day.isoformat()) in present))
    return out


def basis_of(days: list[DueDay]) -> list[dict[str, Any]]:
    """Due days as stored with a closing (JSON)."""
    return [{"date": d.date.isoformat(), "school_id": d.school_id, "band": asdict(d.band)}
            for d in days]


def frozen_due_days(conn: Connection, teacher_id: str, month: str,
                    frozen: list[dict[str, Any]]) -> list[DueDay]:
    """A closed month's due days as frozen at its close, each verified by the evidence known
    now (a trip approved or booked late, a scan, a confirmation)."""
    schools = sorted({row["school_id"] for row in frozen})
    present = verified_days(conn, teacher_id, month, schools) if frozen else set()
    return [DueDay(dt.date.fromisoformat(row["date"]), row["school_id"], Band(**row["band"]),
                   (row["school_id"], row["date"]) in present) for row in frozen]


def live_lines(conn: Connection, teacher_id: str, month: str) -> list[dict[str, Any]]:
    return [{"kind": "allowance", "for_month": month, "school_id": line.school_id,
             "level": line.level, "grade": line.grade, "per_month": line.per_month,
             "days_present": line.days_present, "days_due": line.days_due,
             "amount": line.amount, "corrects_entry_id": None}
            for line in monthly_allowance(due_days(conn, teacher_id, month))]


def _key(line: dict[str, Any]) -> tuple[str, int, int]:
    return line["school_id"], line["level"], line["grade"]


def pending_adjustments(conn: Connection, teacher_id: str, month: str) -> list[dict[str, Any]]:
    """Corrections of the closed months whose first open month is ``month``: each line now
    computed minus what the books already hold for it."""
    district_id = teacher_district(conn, teacher_id)
    if district_id is None:
        return []
    out = []
    for closed in sorted(closed_months(conn, district_id)):
        if closed >= month or accounting_month(conn, district_id, closed) != month:
            continue
        booked: dict[tuple[str, int, int], list[AllowanceEntry]] = {}
        for entry in db.session.scalars(select(AllowanceEntry).where(
                AllowanceEntry.teacher_id == teacher_id, AllowanceEntry.for_month == closed)
                .order_by(AllowanceEntry.id)):
            booked.setdefault((entry.school_id, entry.level, entry.grade), []).append(entry)
        now = {_key(line): line for line in live_lines(conn, teacher_id, closed)}
        for key in sorted(set(now) | set(booked)):
            line = now.get(key)
            held = round(sum(e.amount for e in booked.get(key, [])), 2)
            delta = round((line["amount"] if line else 0.0) - held, 2)
            if abs(delta) < 0.005:
                continue
            first = booked[key][0] if key in booked else None
            out.append({"kind": "adjustment", "for_month": closed, "school_id": key[0],
                        "level": key[1], "grade": key[2],
                        "per_month": line["per_month"] if line else first.per_month,
                        "days_present": line["days_present"] if line else 0,
                        "days_due": line["days_due"] if line else 0, "amount": delta,
                        "corrects_entry_id": first.id if first else None})
    return out


def frozen_lines(teacher_id: str, month: str) -> list[dict[str, Any]]:
    return [{"entry_id": e.id, "kind": e.kind, "for_month": e.for_month,
             "school_id": e.school_id, "level": e.level, "grade": e.grade,
             "per_month": e.per_month, "days_present": e.days_present,
             "days_due": e.days_due, "amount": e.amount,
             "corrects_entry_id": e.corrects_entry_id}
            for e in db.session.scalars(select(AllowanceEntry).where(
                AllowanceEntry.teacher_id == teacher_id, AllowanceEntry.month == month)
                .order_by(AllowanceEntry.id))]


def allowance_of(teacher_id: str, month: str) -> dict[str, Any]:
    """A teacher's allowance lines of a month: frozen if closed, computed if open."""
    conn = db.session.connection()
    district_id = teacher_district(conn, teacher_id)
    closed = district_id is not None and is_closed(conn, district_id, month)
    if closed:
        lines = frozen_lines(teacher_id, month)
    else:
        lines = [{"entry_id": None, **line} for line in
                 live_lines(conn, teacher_id, month) + pending_adjustments(conn, teacher_id,
                                                                          month)]
    return {"closed": closed, "lines": lines,
            "total": round(sum(line["amount"] for line in lines), 2)}


def confirm_attendance(user: User, teacher_id: str, school_id: str, day: dt.date, note: str,
                       now: float) -> dict[str, Any]:
    """A staff member confirms a teacher was at a school on a day. Committed; idempotent."""
    if db.session.get(Teacher, teacher_id) is None:
        raise not_found("teacher")
    if db.session.get(School, school_id) is None:
        raise not_found("school")
    assigned = db.session.get(TeacherAssignment, (teacher_id, school_id))
    if assigned is None:
        raise ApiError(409, f"teacher {teacher_id} is not assigned to school {school_id}")
    district_id = teacher_district(db.session.connection(), teacher_id)
    if district_id is not None:  # a day not yet come cannot have been seen: it would pay ahead
        today = local_date(now, district_calendar(db.session.connection(), district_id))
        if day > today:
            raise ApiError(422, f"{day.isoformat()} is after today ({today.isoformat()})",
                           errors={"date": ["not after today"]})
    key = (teacher_id, school_id, day.isoformat())
    if db.session.get(AttendanceConfirmation, key) is None:
        db.session.add(AttendanceConfirmation(
            teacher_id=teacher_id, school_id=school_id, date=day.isoformat(), note=note,
            confirmed_by=user.username, confirmed_at=now))
        db.session.commit()
    row = db.session.get(AttendanceConfirmation, key)
    return {"teacher_id": teacher_id, "school_id": school_id, "date": row.date,
            "note": row.note, "confirmed_by": row.confirmed_by}
