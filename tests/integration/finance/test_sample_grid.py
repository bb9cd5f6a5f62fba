"""The sample district's grid as the README shows it: before any trip the straight line × 1.3,
after the replayed October the median of the verified drives: 刘胜's car by the bend (6.17 km) and
the meal truck's direct road (5.51 km), the 20 newest of them."""

from __future__ import annotations

import datetime as dt

from backend.extensions import db
from backend.finance.grid import school_grid


def grid_row(app):
    with app.app_context():
        row = school_grid(db.session.connection(), "longfeng", dt.date(2026, 10, 31))
        return (row["source"], row["samples"], round(row["distance_km"], 2), row["level"],
                row["grade"], row["per_month"], row["per_trip"])


def test_before_any_trip_the_grid_is_the_straight_line_times_the_road_factor(app, imported):
    assert grid_row(app) == ("straight_line", 0, 7.17, 1, 3, 200.0, 10.0)


def test_after_october_the_grid_is_the_median_of_the_verified_drives(october):
    assert grid_row(october) == ("driven", 20, 5.51, 1, 3, 200.0, 10.0)


def test_the_meal_trucks_drives_between_the_schools_count_and_implausible_ones_do_not(october):
    from backend.finance.grid import driven_samples, truck_legs
    from backend.models import Event

    with october.app_context():
        conn = db.session.connection()
        legs = truck_legs(conn, "zhuting", "longfeng", None)
        assert len(legs) == 17 and {km for _, km in legs} == {5.513}  # one a school day
        teachers = [km for km in driven_samples(conn, "zhuting", "longfeng") if km != 5.513]
        assert teachers and set(teachers) == {6.167}
        newest = max(t for t, _ in legs)
        for km, seconds, fixes in ((5.0, 900.0, 90),  # shorter than the straight line
                                   (9.0, 60.0, 6),  # 540 km/h
                                   (25.0, 3600.0, 360),  # by way of the kitchen: 4.5 × the line
                                   (5.6, 900.0, 2)):  # two fixes: a gap may cut the corner
            db.session.add(Event(kind="school_leg_completed", ts=newest + 3600, vehicle_id="truck-01",
                                 stop_id="longfeng", created_at=newest, details={
                                     "from_school_id": "zhuting", "to_school_id": "longfeng",
                                     "departed_at": newest + 3000, "duration_s": seconds,
                                     "path_km": km, "straight_km": 5.5, "ping_count": fixes}))
        db.session.flush()
        assert len(truck_legs(db.session.connection(), "zhuting", "longfeng", None)) == 17
        db.session.rollback()
