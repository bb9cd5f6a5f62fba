"""Meal reports and the daily meal audit (SPEC §5 ``POST /meals/reports``, ``GET /audit/meals``).

A report is never overwritten: the next one for the same school and date gets the next version
and the audit reads the newest, listing the ones it replaced with who sent them and when.
Delivery proof is the ``meal_delivery_arrived`` event the tracker emits when a meal truck enters
the school's geofence (its ``stop_id`` is the school). Only the district calendar's school days
expect a report and a delivery (holidays off, 调休 make-up weekend days on).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from backend.errors import ApiError, not_found
from backend.extensions import db
from backend.finance_export import Sheet, meal_sheet
from backend.messages_service import notify
from backend.models import Event, MealReport, School, User, Vehicle, user_schools
from backend.timefmt import iso
from backend.tracking_service import district_calendar
from routing import model as rm
from routing.calendar import local_date, service_day_start, timetable_weekday
from routing.meal_audit import meal_flags

REMINDER_KIND = "meal_report_missing"


def visible_school_ids(user: User) -> set[str] | None:
    """Schools whose meals the user reports and audits; None: every school (admin)."""
    if user.role == "admin":
        return None
    return {s.id for s in user.schools} if user.role == "logistics" else set()


def school_in_scope(user: User, school_id: str) -> School:
    visible = visible_school_ids(user)
    school = db.session.get(School, school_id)
    if school is None or (visible is not None and school_id not in visible):
        raise ApiError(404, f"no school {school_id!r} among the schools you report for",
                       errors={"school_id": ["unknown school or not yours"]})
    return school


def calendar_of(school: School) -> rm.Calendar:
    return district_calendar(db.session.connection(), school.district_id)


def is_school_day(day: dt.date, calendar: rm.Calendar) -> bool:
    """A weekday that is no holiday, or a weekend day worked as a weekday (调休)."""
    weekday = timetable_weekday(day, calendar)
    return weekday is not None and weekday <= 5


def not_in_future(day: dt.date, calendar: rm.Calendar | None, now: float) -> None:
    if calendar is None:
        school = db.session.scalars(select(School).order_by(School.id)).first()
        calendar = calendar_of(school) if school is not None else rm.Calendar()
    today = local_date(now, calendar)
    if day > today:
        raise ApiError(422, f"{day.isoformat()} is in the future (today is {today.isoformat()} "
                            "in the district)", errors={"date": ["in the future"]})


def submit_report(user: User, body: dict[str, Any], now: float) -> dict[str, Any]:
    """Store a school's report for a day (the next version if one exists); committed."""
    school = school_in_scope(user, body["school_id"])
    day: dt.date = body["date"]
    not_in_future(day, calendar_of(school), now)
    latest = current_report(school.id, day)
    row = MealReport(school_id=school.id, service_date=day.isoformat(),
                     version=(latest.version + 1) if latest else 1,
                     boarders_present=body.get("boarders_present"),
                     meals_served=body["meals_served"], meals_received=body["meals_received"],
                     reported_by=user.username, reported_at=now)
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError as exc:  # another report of the same school and day got in first
        db.session.rollback()
        raise ApiError(409, "another report for this school and date was just stored; "
                            "send yours again") from exc
    return report_body(row, replaces=latest)


def current_report(school_id: str, day: dt.date) -> MealReport | None:
    return db.session.scalars(select(MealReport).where(
        MealReport.school_id == school_id, MealReport.service_date == day.isoformat())
        .order_by(MealReport.version.desc())).first()


def report_body(row: MealReport, replaces: MealReport | None = None) -> dict[str, Any]:
    body = {"school_id": row.school_id, "date": row.service_date, "version": row.version,
            "boarders_present": row.boarders_present, "meals_served": row.meals_served,
            "meals_received": row.meals_received, "reported_by": row.reported_by,
            "reported_at": iso(row.reported_at)}
    if replaces is not None or row.version == 1:
        body["replaces_version"] = replaces.version if replaces else None
    return body


def deliveries(day: dt.date, calendar: rm.Calendar) -> dict[str, float]:
    """First ``meal_delivery_arrived`` of each school on the local day (school id → ts)."""
    start = service_day_start(day, calendar)
    end = service_day_start(day + dt.timedelta(days=1), calendar)
    rows = db.session.execute(select(Event.stop_id, func.min(Event.ts)).where(
        Event.kind == "meal_delivery_arrived", Event.ts >= start, Event.ts < end)
        .group_by(Event.stop_id)).all()
    return {school_id: ts for school_id, ts in rows if school_id}


def audit_rows(school_ids: Iterable[str] | None, day: dt.date,
               attendance_factor: float | None = None) -> list[dict[str, Any]]:
    """One row per school (``None``: every school) for the local date, SPEC §5 shape, plus the
    reports the current one replaced (``replaced``)."""
    factor = attendance_factor if attendance_factor is not None else float(
        current_app.config.get("MEAL_ATTENDANCE_FACTOR", 0.95))
    query = select(School).order_by(School.id)
    if school_ids is not None:
        query = query.where(School.id.in_(sorted(school_ids)))
    schools = list(db.session.scalars(query))
    if not schools:
        return []
    calendar = calendar_of(schools[0])
    arrived = deliveries(day, calendar)
    reports: dict[str, list[MealReport]] = {}
    for r in db.session.scalars(select(MealReport).where(
            MealReport.service_date == day.isoformat(),
            MealReport.school_id.in_([s.id for s in schools])).order_by(MealReport.version)):
        reports.setdefault(r.school_id, []).append(r)
    school_day = is_school_day(day, calendar)
    out = []
    for school in schools:
        history = reports.get(school.id, [])
        report = history[-1] if history else None
        flags = meal_flags(
            school_day, school.boarders_enrolled,
            report.boarders_present if report else None, report.meals_served if report else None,
            report.meals_received if report else None, school.id in arrived, report is not None,
            factor)
        out.append({
            "school_id": school.id, "date": day.isoformat(), "school_day": school_day,
            "boarders_enrolled": school.boarders_enrolled,
            "boarders_present": report.boarders_present if report else None,
            "meals_served": report.meals_served if report else None,
            "meals_received": report.meals_received if report else None,
            "delivery_arrived_at": iso(arrived.get(school.id)), "flags": flags,
            "reported_by": report.reported_by if report else None,
            "reported_at": iso(report.reported_at) if report else None,
            "replaced": [report_body(r) for r in history[:-1]],
        })
    return out


def month_rows(month: str) -> list[dict[str, Any]]:
    """Every school's audit row of every day of ``YYYY-MM`` (for finance)."""
    first = dt.date.fromisoformat(f"{month}-01")
    rows = []
    day = first
    while day.month == first.month:
        rows.extend(audit_rows(None, day))
        day += dt.timedelta(days=1)
    return rows


def logistics_of(school_id: str) -> list[int]:
    return sorted(db.session.scalars(
        select(User.id).join(user_schools, user_schools.c.user_id == User.id)
        .where(User.role == "logistics", user_schools.c.school_id == school_id)))


def remind_missing_reports(app: Flask, now: float | None = None) -> int:
    """At the cut-off: a ``meal_report_missing`` notification to each logistics user of each
    school without today's report (school days only); returns how many were new."""
    with app.app_context():
        try:
            now = time.time() if now is None else now
            schools = list(db.session.scalars(select(School).order_by(School.id)))
            if not schools:
                return 0
            calendar = calendar_of(schools[0])
            today = local_date(now, calendar)
            if not is_school_day(today, calendar):
                return 0
            rows = []
            for school in schools:
                if current_report(school.id, today) is not None:
                    continue
                for user_id in logistics_of(school.id):
                    rows.append({
                        "user_id": user_id, "kind": REMINDER_KIND, "created_at": now,
                        "title": f"{school.name}: 今日营养餐报告未提交",
                        "body": f"{school.name} has not reported the meals of "
                                f"{today.isoformat()} yet",
                        "stop_id": school.id,
                        "dedupe_key": f"{REMINDER_KIND}:{school.id}:{today.isoformat()}:{user_id}"})
            sent = notify(rows)
            db.session.commit()
            return sent
        finally:
            db.session.remove()


def school_or_404(user: User, school_id: str) -> School:
    visible = visible_school_ids(user)
    school = db.session.get(School, school_id)
    if school is None or (visible is not None and school_id not in visible):
        raise not_found("school")
    return school


def delivery_plates(day: dt.date, calendar: rm.Calendar) -> dict[str, str | None]:
    """The plate of the truck whose ``meal_delivery_arrived`` is each school's delivery of the
    local day (the first one, as :func:`deliveries` counts it): school id → plate."""
    start = service_day_start(day, calendar)
    end = service_day_start(day + dt.timedelta(days=1), calendar)
    plates: dict[str, str | None] = {}
    for school_id, vehicle_id, plate in db.session.execute(
            select(Event.stop_id, Event.vehicle_id, Vehicle.plate)
            .outerjoin(Vehicle, Vehicle.id == Event.vehicle_id)
            .where(Event.kind == "meal_delivery_arrived", Event.ts >= start, Event.ts < end)
            .order_by(Event.ts, Event.id)):
        if school_id and school_id not in plates:
            plates[school_id] = plate or vehicle_id
    return plates


def export_sheet(month: str) -> Sheet:
    """Every school's audit of every day of ``YYYY-MM`` as the finance office's sheet: school
    names, the truck's plate, times in the district's timezone (:mod:`backend.finance_export`)."""
    rows = month_rows(month)
    schools = list(db.session.scalars(select(School).order_by(School.id)))
    calendar = calendar_of(schools[0]) if schools else rm.Calendar()
    trucks: dict[tuple[str, str], str | None] = {}
    for day in sorted({dt.date.fromisoformat(r["date"]) for r in rows}):
        trucks.update({(day.isoformat(), school): plate
                       for school, plate in delivery_plates(day, calendar).items()})
    return meal_sheet(rows, month, {s.id: s.name for s in schools}, trucks,
                      ZoneInfo(calendar.timezone))
