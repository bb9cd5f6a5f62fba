"""School geofences for cars and trucks that drive between schools, and the teacher trips
(走教) they reveal.

A vehicle is *inside* a school once within its ``radius_m`` and *leaves* only beyond
``radius_m + geofence_exit_margin_m`` (hysteresis: a car parked on the edge does not flap). Entry
and exit times are interpolated where the segment between two pings crosses the circle.

A teacher trip runs from leaving one school to entering another within ``teacher_trip_max_s``;
a meal truck's drive between two schools is found the same way (``school_leg_completed``: the
driven distance between schools that the finance grid's median also rests on).
Its ``path_km`` sums the pings' hops from the last ping inside the origin's geofence to the first
inside the destination's, each hop on the ellipsoid (:func:`routing.geometry.segment_m`, within
1e-5 of the geodesic per hop, so the sum is as exact as the pings themselves); ``straight_km`` is
the geodesic between the two schools' centres (``geopy``, once per trip).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
from geopy.distance import geodesic

from routing.calendar import local_date, timetable_weekday
from routing.config import TrackerConfig
from routing.geometry import FloatArray, circle_entry, ellipsoid_radii, local_xy
from routing.model import Place, VehicleContext
from routing.state import GeofenceState, SchoolTrip


def school_distances(schools: tuple[Place, ...], lat: FloatArray, lon: FloatArray) -> FloatArray:
    """Distance in metres of every point from every school centre, a ``(points, schools)`` array."""
    if not schools:
        return np.zeros((len(lat), 0))
    slat = np.array([s.lat for s in schools])
    slon = np.array([s.lon for s in schools])
    radii = [ellipsoid_radii(float(v)) for v in slat]
    m = np.array([r[0] for r in radii])
    n_cos = np.array([r[1] for r in radii]) * np.cos(np.radians(slat))
    dy = np.radians(lat[:, None] - slat[None, :]) * m[None, :]
    dx = np.radians(lon[:, None] - slon[None, :]) * n_cos[None, :]
    return np.asarray(np.hypot(dx, dy), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Crossing:
    """A geofence left or entered, with the interpolated time."""

    school: Place
    at: float


def step_geofence(gs: GeofenceState, schools: tuple[Place, ...], dist_row: FloatArray,
                  prev: tuple[float, float, float] | None, cur: tuple[float, float, float],
                  cfg: TrackerConfig) -> tuple[Crossing | None, Crossing | None]:
    """Advance the geofence state by one ping ``(ts, lat, lon)``; return ``(left, entered)``."""
    left = entered = None
    by_id = {s.id: k for k, s in enumerate(schools)}
    if gs.inside is not None:
        k = by_id.get(gs.inside)
        if k is None or dist_row[k] > schools[k].radius_m + cfg.geofence_exit_margin_m:
            school = schools[k] if k is not None else None
            gs.inside = None
            if school is not None:
                left = Crossing(school, _crossing(school, prev, cur, leaving=True))
    if gs.inside is None and len(schools):
        k = int(np.argmin(dist_row - np.array([s.radius_m for s in schools])))
        if dist_row[k] <= schools[k].radius_m:
            gs.inside = schools[k].id
            entered = Crossing(schools[k], _crossing(schools[k], prev, cur, leaving=False))
    return left, entered


def _crossing(school: Place, prev: tuple[float, float, float] | None,
              cur: tuple[float, float, float], leaving: bool) -> float:
    if prev is None:
        return cur[0]
    xs, ys = local_xy(np.array([prev[1], cur[1]]), np.array([prev[2], cur[2]]),
                      school.lat, school.lon)
    chord = circle_entry(float(xs[0]), float(ys[0]), float(xs[1]), float(ys[1]), 0.0, 0.0,
                         school.radius_m)
    if chord is None:
        return prev[0] if leaving else cur[0]
    return prev[0] + (chord[1] if leaving else chord[0]) * (cur[0] - prev[0])


def matches_assignment(ctx: VehicleContext, from_id: str, to_id: str, departed_at: float) -> bool:
    """Whether a trip is one the teacher's assignments call for.

    True when the service day's timetable weekday (the district calendar: none on a holiday, the
    ``as_weekday`` on an extra school day) is in an assignment whose school is the trip's
    destination (going to teach there) or its origin (coming back from teaching there).
    """
    weekday = timetable_weekday(local_date(departed_at, ctx.calendar), ctx.calendar)
    if weekday is None:
        return False
    return any(weekday in a.weekdays and a.school_id in (from_id, to_id) for a in ctx.assignments)


def step_school_leg(gs: GeofenceState, left: Crossing | None, entered: Crossing | None,
                    ts: float, hop_m: float, cfg: TrackerConfig) -> SchoolTrip | None:
    """Feed one ping's geofence crossings to the drive from one school to another that the
    vehicle may be on; return that drive when this ping completes it (entering another school
    within ``teacher_trip_max_s`` of leaving the first)."""
    if left is not None:
        gs.trip = SchoolTrip(left.school.id, left.at, 0.0, 0)
    trip = gs.trip
    if trip is not None:
        trip.path_m += hop_m
        trip.ping_count += 1
        if ts - trip.departed_at > cfg.teacher_trip_max_s:
            gs.trip = trip = None
    if entered is not None and trip is not None:
        gs.trip = None
        if entered.school.id != trip.from_school_id and \
                entered.at - trip.departed_at <= cfg.teacher_trip_max_s:
            return trip
    return None


def detect_teacher_trip(ctx: VehicleContext, gs: GeofenceState, left: Crossing | None,
                        entered: Crossing | None, ts: float, hop_m: float,
                        cfg: TrackerConfig) -> list[tuple[float, str, dict[str, Any]]]:
    """Feed one ping's geofence crossings; return ``(ts, to_school_id, details)`` of each
    completed trip."""
    trip = step_school_leg(gs, left, entered, ts, hop_m, cfg)
    if trip is None or entered is None:
        return []
    details = leg_details(ctx, trip, entered)
    details["matches_assignment"] = matches_assignment(ctx, trip.from_school_id,
                                                       entered.school.id, trip.departed_at)
    return [(entered.at, entered.school.id, {"teacher_id": ctx.teacher_id, **details})]


def leg_details(ctx: VehicleContext, trip: SchoolTrip, entered: Crossing) -> dict[str, Any]:
    """What a completed drive from one school to another says: where from and to, when, the
    driven ``path_km`` and the ``straight_km`` between the two schools."""
    origin = next(s for s in ctx.schools if s.id == trip.from_school_id)
    dest = entered.school
    straight = geodesic((origin.lat, origin.lon), (dest.lat, dest.lon)).km
    day: dt.date = local_date(trip.departed_at, ctx.calendar)
    return {
        "from_school_id": origin.id, "to_school_id": dest.id,
        "departed_at": trip.departed_at, "arrived_at": entered.at,
        "duration_s": round(entered.at - trip.departed_at, 1),
        "path_km": round(trip.path_m / 1000, 3), "straight_km": round(straight, 3),
        "ping_count": trip.ping_count, "service_date": day.isoformat(),
    }
