"""The sample district's grid as the README shows it: before any trip the straight line × 1.3,
after the replayed October the median of the verified drives."""

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
    assert grid_row(october) == ("driven", 13, 6.17, 1, 3, 200.0, 10.0)
