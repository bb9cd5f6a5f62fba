"""The teachers' transport subsidy ledger (SPEC §5 ``GET /subsidies``).

Booking happens inside the ingest transaction: the tracking step hands the events it just
produced to :func:`book_trips`, which prices each ``teacher_trip_completed`` by the district's
active subsidy policy (:mod:`routing.subsidy`) — a query or two per completed trip, none per
ping. The nightly audit recomputes each teacher car's day from the stored pings and books what
the live run missed; a trip already on the ledger (same trip id, or the same teacher leaving
within a minute of it) is never booked twice. The ledger is append-only (see
:mod:`backend.models.subsidies`): approving, rejecting or reversing a trip adds a row.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from backend.errors import ApiError, not_found
from backend.extensions import db
from backend.finance.closing import accounting_month, lock_books, teacher_district
from backend.finance.grid import pair_distance
from backend.finance_export import Sheet, subsidy_sheet
from backend.models import (
    Device,
    District,
    Notification,
    Reject,
    School,
    SubsidyEntry,
    SubsidyPolicy,
    Teacher,
    TeacherAssignment,
    User,
    Vehicle,
    user_schools,
)
from backend.timefmt import iso
from routing import model as rm
from routing.allowance import cap_amount, priced_km, trip_price
from routing.subsidy import review_reasons

ENTRIES = SubsidyEntry.__table__
TRIP_KIND = "teacher_trip_completed"
SAME_TRIP_S = 60.0  # two bookings of one teacher leaving within this are one trip
# filter reasons that mean a real fix of the car was thrown away (not a duplicate or a stale one)
FILTERED_REASONS = ("low_accuracy", "implausible_jump", "null_island")
MOCK_REASONS = ("mock_location",)  # the phone said the fix was simulated (anti-mock)


def trip_id_of(details: dict[str, Any]) -> str:
    departed = dt.datetime.fromtimestamp(float(details["departed_at"]), dt.UTC)
    return f"{details['teacher_id']}-{departed:%Y%m%dT%H%M%SZ}"


def _insert(conn: Connection):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(ENTRIES).on_conflict_do_nothing(index_elements=["trip_id", "kind"])


def month_total(conn: Connection, teacher_id: str, month: str) -> float:
    """What the teacher's trips worked in ``month`` were granted, whatever month's books the
    rows are in: the monthly cap belongs to the month worked, so a late trip of a closed
    month is capped against that month, not against the open month it is booked into."""
    return float(conn.scalar(select(func.coalesce(func.sum(ENTRIES.c.amount), 0.0)).where(
        ENTRIES.c.teacher_id == teacher_id,
        ENTRIES.c.service_date.like(f"{month}-%"))) or 0.0)


def active_policy(conn: Connection, teacher_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(SubsidyPolicy.id, SubsidyPolicy.currency, SubsidyPolicy.monthly_cap,
                              SubsidyPolicy.tiers, SubsidyPolicy.levels)
                       .join(School, School.district_id == SubsidyPolicy.district_id)
                       .join(Teacher, Teacher.home_school_id == School.id)
                       .where(Teacher.id == teacher_id, SubsidyPolicy.active.is_(True))
                       .order_by(SubsidyPolicy.id)).first()
    return dict(row._mapping) if row else None


def filtered_fixes(conn: Connection, teacher_id: str, since: float, until: float,
                   reasons: tuple[str, ...] = FILTERED_REASONS) -> int:
    devices = select(Device.id).join(Teacher, Teacher.vehicle_id == Device.vehicle_id).where(
        Teacher.id == teacher_id)
    return int(conn.scalar(select(func.count()).select_from(Reject).where(
        Reject.device_id.in_(devices), Reject.ts >= since, Reject.ts <= until,
        Reject.reason.in_(reasons))) or 0)


def book_trips(conn: Connection, events: Iterable[rm.Event], recorded_by: str = "tracker",
               now: float | None = None) -> list[str]:
    """Book every ``teacher_trip_completed`` of ``events``; the trip ids newly booked."""
    booked = []
    for event in events:
        details = dict(event.details)
        if event.kind != TRIP_KIND or not details.get("teacher_id"):
            continue
        if book_trip(conn, details, recorded_by, time.time() if now is None else now):
            booked.append(trip_id_of(details))
    return booked


def book_trip(conn: Connection, d: dict[str, Any], recorded_by: str, now: float) -> bool:
    teacher_id, departed = d["teacher_id"], float(d["departed_at"])
    if conn.scalar(select(ENTRIES.c.id).where(
            ENTRIES.c.teacher_id == teacher_id, ENTRIES.c.kind == "trip",
            ENTRIES.c.departed_at.between(departed - SAME_TRIP_S, departed + SAME_TRIP_S))):
        return False
    policy = active_policy(conn, teacher_id) or {}
    service_month = d["service_date"][:7]
    district_id = teacher_district(conn, teacher_id)
    lock_books(conn, district_id)  # a close waits for this booking, or this for the close
    month = accounting_month(conn, district_id, service_month)
    distance, arrived = float(d["path_km"]), float(d["arrived_at"])
    grid = pair_distance(conn, d["from_school_id"], d["to_school_id"],
                         dt.date.fromisoformat(d["service_date"]), before=departed)
    paid_km = priced_km(distance, grid.distance_km if grid else None)
    reasons = review_reasons(d, filtered_fixes(conn, teacher_id, departed, arrived),
                             mock_fixes=filtered_fixes(conn, teacher_id, departed, arrived,
                                                       MOCK_REASONS))
    index, band, per_trip = trip_price(paid_km, policy.get("tiers") or [],
                                       policy.get("levels") or [])
    amount, capped = 0.0, False
    if not reasons:
        amount, capped = cap_amount(per_trip, month_total(conn, teacher_id, service_month),
                                    policy.get("monthly_cap"))
    row = {"trip_id": trip_id_of(d), "kind": "trip", "status": "pending" if reasons else "approved",
           "teacher_id": teacher_id, "month": month, "service_date": d["service_date"],
           "from_school_id": d["from_school_id"], "to_school_id": d["to_school_id"],
           "departed_at": departed, "arrived_at": arrived, "distance_km": distance,
           "tier": None if index is None else index + 1, "per_trip": per_trip, "amount": amount,
           "cap_applied": capped, "policy_id": policy.get("id"),
           "currency": policy.get("currency") or "CNY", "review_reasons": ",".join(reasons),
           "reason": "", "recorded_by": recorded_by, "recorded_at": now,
           "grid_km": grid.distance_km if grid else None, "priced_km": paid_km,
           "level": band.level if band else None, "grade": band.grade if band else None,
           "corrects_month": service_month if month != service_month else None}
    inserted = conn.execute(_insert(conn).returning(ENTRIES.c.id), [row]).first() is not None
    if inserted and reasons:
        _tell_logistics(conn, row, now)
    return inserted


def _tell_logistics(conn: Connection, row: dict[str, Any], now: float) -> None:
    schools = {row["from_school_id"], row["to_school_id"]} | set(conn.scalars(
        select(Teacher.home_school_id).where(Teacher.id == row["teacher_id"])))
    users = sorted(set(conn.scalars(select(User.id).join(
        user_schools, user_schools.c.user_id == User.id).where(
        User.role == "logistics", user_schools.c.school_id.in_(sorted(schools))))))
    if not users:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    table = Notification.__table__
    conn.execute(dialect.insert(table).on_conflict_do_nothing(index_elements=["dedupe_key"]), [{
        "user_id": u, "kind": "subsidy_pending", "created_at": now, "route_id": None,
        "stop_id": row["to_school_id"], "trip_id": row["trip_id"],
        "title": "走教补贴待审核", "body": f"trip {row['trip_id']} waits for approval "
                                      f"({row['review_reasons']})",
        "dedupe_key": f"subsidy_pending:{row['trip_id']}:{u}"} for u in users])


# -- scope -----------------------------------------------------------------------------------

def visible_teacher_ids(user: User) -> set[str] | None:
    """Teachers whose ledger the user may read; None: all (admin). Logistics staff see the
    teachers whose home or assigned school is theirs; a teacher sees themselves; the finance
    office everyone."""
    if user.role in ("admin", "finance"):
        return None
    if user.role == "teacher":
        return {user.teacher_id} if user.teacher_id else set()
    if user.role != "logistics":
        return set()
    schools = [s.id for s in user.schools]
    return set(db.session.scalars(select(Teacher.id).outerjoin(TeacherAssignment).where(or_(
        Teacher.home_school_id.in_(schools), TeacherAssignment.school_id.in_(schools)))))


def teacher_or_404(user: User, teacher_id: str) -> Teacher:
    visible = visible_teacher_ids(user)
    teacher = db.session.get(Teacher, teacher_id)
    if teacher is None or (visible is not None and teacher_id not in visible):
        raise not_found("teacher")
    return teacher


# -- decisions -------------------------------------------------------------------------------

def trip_rows(trip_id: str) -> list[SubsidyEntry]:
    return list(db.session.scalars(select(SubsidyEntry).where(SubsidyEntry.trip_id == trip_id)
                                   .order_by(SubsidyEntry.id)))


def decide(user: User, entry_id: int, approve: bool, reason: str, now: float) -> dict[str, Any]:
    """Approve a pending trip, or reject it (a pending one: a ``rejection`` of 0; an approved
    one: a ``reversal`` of what it was granted). Committed; the trip's rows."""
    entry = db.session.get(SubsidyEntry, entry_id) if 0 < entry_id < 2**63 else None
    if entry is None:
        raise not_found("subsidy entry")
    teacher_or_404(user, entry.teacher_id)
    rows = trip_rows(entry.trip_id)
    trip, status = rows[0], rows[-1].status
    if approve and status != "pending":
        raise ApiError(409, f"trip {trip.trip_id} is {status}, not pending")
    if not approve and status == "rejected":
        raise ApiError(409, f"trip {trip.trip_id} is already rejected")
    conn = db.session.connection()
    district_id = teacher_district(conn, trip.teacher_id)
    lock_books(conn, district_id)  # see book_trip
    base = {c: getattr(trip, c) for c in (
        "trip_id", "teacher_id", "service_date", "from_school_id", "to_school_id",
        "departed_at", "arrived_at", "distance_km", "tier", "per_trip", "policy_id", "currency",
        "review_reasons", "grid_km", "priced_km", "level", "grade")}
    # a decision on a trip of a closed month is booked into the first open month after it
    base["month"] = accounting_month(conn, district_id, trip.month)
    base["corrects_month"] = trip.corrects_month or (
        trip.month if base["month"] != trip.month else None)
    if approve:
        policy = db.session.get(SubsidyPolicy, trip.policy_id) if trip.policy_id else None
        amount, capped = cap_amount(trip.per_trip, month_total(conn, trip.teacher_id,
                                                               trip.service_date[:7]),
                                    policy.monthly_cap if policy else None)
        kind, new_status = "approval", "approved"
    else:
        amount, capped = -sum(r.amount for r in rows), False
        kind, new_status = ("reversal" if status == "approved" else "rejection"), "rejected"
    db.session.add(SubsidyEntry(**base, kind=kind, status=new_status, amount=amount,
                                cap_applied=capped, reason=reason, recorded_by=user.username,
                                recorded_at=now))
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise ApiError(409, f"trip {trip.trip_id} was decided meanwhile") from exc
    return {"trip_id": trip.trip_id, "status": new_status,
            "entries": [entry_body(r) for r in trip_rows(trip.trip_id)]}


# -- reading ---------------------------------------------------------------------------------

def entry_body(r: SubsidyEntry) -> dict[str, Any]:
    return {"entry_id": r.id, "trip_id": r.trip_id, "kind": r.kind, "status": r.status,
            "date": r.service_date, "from_school_id": r.from_school_id,
            "to_school_id": r.to_school_id, "departed_at": iso(r.departed_at),
            "arrived_at": iso(r.arrived_at), "distance_km": r.distance_km, "tier": r.tier,
            "amount": round(r.amount, 2), "cap_applied": r.cap_applied,
            "grid_km": r.grid_km, "priced_km": r.priced_km, "level": r.level, "grade": r.grade,
            "corrects_month": r.corrects_month,
            "policy_id": r.policy_id, "review_reasons": r.review_reasons, "reason": r.reason,
            "recorded_by": r.recorded_by, "recorded_at": iso(r.recorded_at)}


def statement(teacher: Teacher, month: str) -> dict[str, Any]:
    """A teacher's month (SPEC §5): every ledger row of the month's trips, trip by trip."""
    rows = list(db.session.scalars(select(SubsidyEntry).where(
        SubsidyEntry.teacher_id == teacher.id, SubsidyEntry.month == month)
        .order_by(SubsidyEntry.departed_at, SubsidyEntry.id)))
    policy = active_policy(db.session.connection(), teacher.id)
    last_status: dict[str, str] = {r.trip_id: r.status for r in rows}
    from backend.finance.allowances import allowance_of  # it reads the ledger this module books

    total = round(sum(r.amount for r in rows), 2)
    allowance = allowance_of(teacher.id, month)
    return {"teacher_id": teacher.id, "teacher_name": teacher.name, "month": month,
            "currency": rows[0].currency if rows else (policy["currency"] if policy else "CNY"),
            "entries": [entry_body(r) for r in rows],
            "total": total,
            "cap_applied": any(r.cap_applied for r in rows),
            "pending": sum(1 for s in last_status.values() if s == "pending"),
            "closed": allowance["closed"], "allowance": allowance["lines"],
            "allowance_total": allowance["total"],
            "grand_total": round(total + allowance["total"], 2)}


def export_sheet(statements: list[dict[str, Any]], month: str) -> Sheet:
    """The statements as the finance office's sheet: school names and the teacher's car plate
    next to the ids, times in the district's timezone (see :mod:`backend.finance_export`)."""
    schools = dict(db.session.execute(select(School.id, School.name)).all())
    plates = dict(db.session.execute(select(Teacher.id, Vehicle.plate).join(
        Vehicle, Vehicle.id == Teacher.vehicle_id)).all())
    first = statements[0]["teacher_id"] if statements else None
    timezone = db.session.scalar(select(District.timezone).join(
        School, School.district_id == District.id).join(
        Teacher, Teacher.home_school_id == School.id).where(Teacher.id == first)) or \
        db.session.scalar(select(District.timezone).order_by(District.id)) or "Asia/Shanghai"
    return subsidy_sheet(statements, month, schools, plates, ZoneInfo(timezone))


def month_statements(month: str) -> list[dict[str, Any]]:
    teachers = db.session.scalars(select(Teacher).order_by(Teacher.id))
    return [statement(t, month) for t in teachers]
