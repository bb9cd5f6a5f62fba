"""The distance grid of each cluster (教联体): every member school's distance from the core
school, and the 三级九等 band it falls in.

A distance is, in order: finance's override in force on the date (a row with its reason), the
median verified driven distance between the two schools over the most recent drives (teachers'
approved trips and meal trucks' drives between the two schools), or the
straight line × the policy's road factor (:func:`routing.allowance.grid_distance`). The same
rule gives the reference distance between any two schools of one cluster, which caps what a
trip between them is paid on (a detour never pays more).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from geopy.distance import geodesic
from sqlalchemy import Connection, or_, select

from backend.errors import ApiError, not_found
from backend.extensions import db
from backend.finance.closing import accounting_month, is_closed, lock_books
from backend.models import (
    Cluster,
    ClusterMember,
    Event,
    GridOverride,
    School,
    SubsidyEntry,
    SubsidyPolicy,
    User,
)
from routing.allowance import DEFAULT_ROAD_FACTOR, GridDistance, band_of, grid_distance
from routing.subsidy import review_reasons

RECENT_TRIPS = 20  # the median rests on at most this many of the newest verified trips
ENTRIES = SubsidyEntry.__table__
EVENTS = Event.__table__
LEG_KIND = "school_leg_completed"
LEG_ROWS = 200  # newest legs into either school read to find a pair's (both schools' deliveries)
MIN_PATH_RATIO = 0.95  # of the straight line between the centres (geofence edges, GPS noise)
MAX_PATH_RATIO = 2.5  # of the straight line: more is a drive by way of somewhere else


@dataclass(frozen=True)
class ClusterOf:
    cluster_id: str
    cluster_name: str
    core_school_id: str
    district_id: str


def cluster_of(conn: Connection, school_id: str) -> ClusterOf | None:
    """The cluster a school belongs to, as member or as core; ``None``: none."""
    row = conn.execute(select(Cluster.id, Cluster.name, Cluster.core_school_id, Cluster.district_id)
                       .outerjoin(ClusterMember, ClusterMember.cluster_id == Cluster.id)
                       .where(or_(ClusterMember.school_id == school_id,
                                  Cluster.core_school_id == school_id))
                       .order_by(Cluster.id)).first()
    return ClusterOf(*row) if row else None


def district_policy(conn: Connection, district_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(SubsidyPolicy.id, SubsidyPolicy.currency, SubsidyPolicy.monthly_cap,
                              SubsidyPolicy.tiers, SubsidyPolicy.levels, SubsidyPolicy.road_factor)
                       .where(SubsidyPolicy.district_id == district_id,
                              SubsidyPolicy.active.is_(True))
                       .order_by(SubsidyPolicy.id)).first()
    return dict(row._mapping) if row else None


def driven_samples(conn: Connection, a: str, b: str, before: float | None = None) -> list[float]:
    """Driven km of the newest verified drives between two schools, either way: teachers' trips
    whose newest ledger row is approved (a pending or rejected trip proves nothing), and meal
    trucks' drives between the two (``school_leg_completed``) that look driven straight there:
    between 0.95 and 2.5 × the straight line, with fixes as dense and an average speed as
    plausible as a teacher's trip needs (:func:`routing.subsidy.review_reasons`)."""
    pair = or_((ENTRIES.c.from_school_id == a) & (ENTRIES.c.to_school_id == b),
               (ENTRIES.c.from_school_id == b) & (ENTRIES.c.to_school_id == a))
    query = select(ENTRIES.c.trip_id, ENTRIES.c.status, ENTRIES.c.kind, ENTRIES.c.distance_km,
                   ENTRIES.c.departed_at).where(pair).order_by(ENTRIES.c.id)
    if before is not None:
        query = query.where(ENTRIES.c.departed_at < before)
    trips: dict[str, tuple[float, float]] = {}
    status: dict[str, str] = {}
    for trip_id, row_status, kind, km, departed in conn.execute(query):
        if kind == "trip":
            trips[trip_id] = (departed, km)
        status[trip_id] = row_status
    verified = [v for t, v in trips.items() if status[t] == "approved"]
    verified += truck_legs(conn, a, b, before)
    return [km for _, km in sorted(verified, reverse=True)[:RECENT_TRIPS]]


def truck_legs(conn: Connection, a: str, b: str, before: float | None) -> list[tuple[float, float]]:
    """``(departed_at, path_km)`` of the newest vehicles' drives between two schools recorded as
    ``school_leg_completed`` events (meal trucks; a bus between schools is on a run through the
    villages, not a drive from one school to the other, and a teacher's car is booked as a trip)."""
    query = (select(EVENTS.c.details).where(EVENTS.c.kind == LEG_KIND,
                                            EVENTS.c.stop_id.in_((a, b)))
             .order_by(EVENTS.c.ts.desc()).limit(LEG_ROWS))
    if before is not None:
        query = query.where(EVENTS.c.ts < before)
    out = []
    for (details,) in conn.execute(query):
        d = details or {}
        if {d.get("from_school_id"), d.get("to_school_id")} != {a, b}:
            continue
        km, straight, seconds = d.get("path_km"), d.get("straight_km"), d.get("duration_s")
        if not all(isinstance(v, int | float) for v in (km, straight, seconds)) or seconds <= 0:
            continue
        if not straight * MIN_PATH_RATIO <= km <= straight * MAX_PATH_RATIO:
            continue  # shorter than the line (less a margin), or a detour (A → kitchen → B)
        # the checks a teacher's trip passes before it counts: fixes dense enough to trust the
        # path (no gap cutting a corner), a plausible average speed
        if review_reasons({**d, "matches_assignment": True}, filtered_fixes=0):
            continue
        out.append((float(d.get("departed_at") or 0.0), float(km)))
    return out


def straight_km(conn: Connection, a: str, b: str) -> float:
    points = {i: (lat, lon) for i, lat, lon in conn.execute(
        select(School.id, School.lat, School.lon).where(School.id.in_([a, b])))}
    return float(geodesic(points[a], points[b]).km)


def override_on(conn: Connection, school_id: str, on: dt.date) -> Any | None:
    """Finance's override of a school's distance in force on a date (the newest set of those
    effective by then): a row with ``distance_km, effective_from, reason, set_by, set_at``."""
    return conn.execute(select(GridOverride.distance_km, GridOverride.effective_from,
                               GridOverride.reason, GridOverride.set_by, GridOverride.set_at)
                        .where(GridOverride.school_id == school_id,
                               GridOverride.effective_from <= on.isoformat())
                        .order_by(GridOverride.effective_from.desc(), GridOverride.id.desc())
                        ).first()


def pair_distance(conn: Connection, a: str, b: str, on: dt.date,
                  before: float | None = None) -> GridDistance | None:
    """The grid distance between two schools of one cluster on a date; ``None`` when they are
    not in one cluster (a trip between them is then paid on what was driven)."""
    if a == b:
        return None
    cluster = cluster_of(conn, a)
    if cluster is None or cluster != cluster_of(conn, b):
        return None
    policy = district_policy(conn, cluster.district_id) or {}
    factor = policy.get("road_factor") or DEFAULT_ROAD_FACTOR
    override = None
    if cluster.core_school_id in (a, b):
        member = b if a == cluster.core_school_id else a
        found = override_on(conn, member, on)
        override = found.distance_km if found else None
    return grid_distance(driven_samples(conn, a, b, before), straight_km(conn, a, b), factor,
                         override)


def school_grid(conn: Connection, school_id: str, on: dt.date,
                before: float | None = None) -> dict[str, Any] | None:
    """A member school's row of the grid on a date, with its band; ``None`` for a school in no
    cluster and for a core school (no allowance is due there). ``before``: only trips that left
    before it count for the driven median (a month's allowance: its own end)."""
    cluster = cluster_of(conn, school_id)
    if cluster is None or cluster.core_school_id == school_id:
        return None
    distance = pair_distance(conn, cluster.core_school_id, school_id, on, before)
    assert distance is not None
    policy = district_policy(conn, cluster.district_id) or {}
    band = band_of(distance.distance_km, policy.get("levels") or [])
    found = override_on(conn, school_id, on) if distance.source == "override" else None
    return {"cluster_id": cluster.cluster_id, "cluster_name": cluster.cluster_name,
            "core_school_id": cluster.core_school_id, "school_id": school_id,
            "distance_km": distance.distance_km, "source": distance.source,
            "samples": distance.samples, "level": band.level if band else None,
            "grade": band.grade if band else None,
            "per_month": band.per_month if band else 0.0,
            "per_trip": band.per_trip if band else 0.0,
            "override": None if found is None else dict(found._mapping),
            "band": None if band is None else asdict(band)}


def grid(on: dt.date, district_ids: set[str] | None = None) -> list[dict[str, Any]]:
    """Every member school of every cluster (of ``district_ids``; None: of every district),
    on a date."""
    conn = db.session.connection()
    query = select(ClusterMember.school_id).join(Cluster, Cluster.id == ClusterMember.cluster_id)
    if district_ids is not None:
        query = query.where(Cluster.district_id.in_(sorted(district_ids)))
    members = db.session.execute(query.order_by(
        ClusterMember.cluster_id, ClusterMember.school_id)).scalars()
    return [row for s in members if (row := school_grid(conn, s, on)) is not None]


def set_override(user: User, school_id: str, distance_km: float, reason: str,
                 effective_from: dt.date, now: float) -> dict[str, Any]:
    """Finance sets a member school's distance from a date on, with a reason. Committed."""
    conn = db.session.connection()
    cluster = cluster_of(conn, school_id)
    if db.session.get(School, school_id) is None:
        raise not_found("school")
    if cluster is None or cluster.core_school_id == school_id:
        raise ApiError(409, f"school {school_id} is no member school of a cluster")
    month = effective_from.isoformat()[:7]
    lock_books(conn, cluster.district_id)  # a close running now decides first (then: 409)
    if is_closed(conn, cluster.district_id, month):
        # a closed month's allowance stays priced on the bands frozen at its close
        first_open = accounting_month(conn, cluster.district_id, month)
        raise ApiError(409, f"{month} is closed: its bands are frozen; set the distance from "
                            f"{first_open}-01 or later")
    db.session.add(GridOverride(school_id=school_id, distance_km=distance_km,
                                effective_from=effective_from.isoformat(), reason=reason,
                                set_by=user.username, set_at=now))
    db.session.commit()
    row = school_grid(db.session.connection(), school_id, effective_from)
    assert row is not None
    return row
