"""三级九等 (routing/allowance.py): bands, the grid distance, what a trip is paid on, and the
monthly allowance pro-rated by verified days."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.allowance import (
    Band,
    DueDay,
    band_of,
    bands,
    cap_amount,
    check_levels,
    due_dates,
    grid_distance,
    monthly_allowance,
    priced_km,
    trip_price,
)
from routing.subsidy import IMPLAUSIBLE_SPEED, MOCK_LOCATION, review_reasons

EDGES = [0, 3, 5, 8, 11, 15, 20, 25, 30, None]
PER_MONTH = [100, 150, 200, 300, 350, 400, 500, 550, 600]
PER_TRIP = [0, 0, 10, 10, 10, 20, 20, 20, 20]
LEVELS = [{"name": name, "grades": [
    {"min_km": EDGES[3 * i + g], "max_km": EDGES[3 * i + g + 1],
     "per_month": PER_MONTH[3 * i + g], "per_trip": PER_TRIP[3 * i + g]} for g in range(3)]}
    for i, name in enumerate(["一级", "二级", "三级"])]
TIERS = [{"min_km": 0, "max_km": 5, "per_trip": 0},
         {"min_km": 5, "max_km": 15, "per_trip": 10},
         {"min_km": 15, "max_km": None, "per_trip": 20}]
distances = st.floats(min_value=0, max_value=200, allow_nan=False)


@pytest.mark.parametrize(("km", "level", "grade"), [
    (0.0, 1, 1), (2.999, 1, 1), (3.0, 1, 2), (7.99, 1, 3), (8.0, 2, 1), (14.99, 2, 2),
    (15.0, 2, 3), (20.0, 3, 1), (29.99, 3, 2), (30.0, 3, 3), (400.0, 3, 3)])
def test_a_boundary_distance_falls_into_the_grade_that_starts_there(km, level, grade):
    band = band_of(km, LEVELS)
    assert (band.level, band.grade) == (level, grade)


def test_the_sample_levels_are_valid_and_broken_ones_say_why():
    assert check_levels(LEVELS) == []
    assert check_levels(LEVELS[:2]) == ["levels: 3 levels of 3 grades each (三级九等)"]
    gap = [dict(level, grades=[dict(g) for g in level["grades"]]) for level in LEVELS]
    gap[1]["grades"][0]["min_km"] = 9
    assert check_levels(gap) == ["the grade after level 1 grade 3 must start where it ends"]
    open_early = [dict(level, grades=[dict(g) for g in level["grades"]]) for level in LEVELS]
    open_early[0]["grades"][2]["max_km"] = None
    assert "level 1 grade 3: only the last grade of level 3 may be open-ended" in \
        check_levels(open_early)


@given(distances)
def test_every_distance_has_exactly_one_band(km):
    assert sum(1 for b in bands(LEVELS) if b.min_km <= km and
               (b.max_km is None or km < b.max_km)) == 1
    assert band_of(km, LEVELS) is not None


@given(distances, distances)
def test_a_farther_school_never_earns_less(a, b):
    near, far = sorted((a, b))
    assert band_of(near, LEVELS).per_month <= band_of(far, LEVELS).per_month


@given(distances, distances)
def test_a_detour_never_pays_more_than_the_direct_drive(direct_km, extra_km):
    """A trip driven the long way round is paid no more than the same trip driven direct,
    when the grid distance is what the direct drives measure."""
    grid = direct_km
    direct = trip_price(priced_km(direct_km, grid), TIERS, LEVELS)[2]
    detour = trip_price(priced_km(direct_km + extra_km, grid), TIERS, LEVELS)[2]
    assert detour <= direct
    assert priced_km(direct_km + extra_km, grid) <= grid


def test_the_grid_prefers_the_override_then_the_driven_median_then_the_straight_line():
    assert grid_distance([6.2, 16.0, 6.3], 5.5, 1.3).distance_km == 6.3
    assert grid_distance([6.2, 16.0, 6.3], 5.5, 1.3, override_km=16.0).source == "override"
    fallback = grid_distance([], 5.5, 1.3)
    assert (fallback.distance_km, fallback.source) == (7.15, "straight_line")


@given(st.lists(st.floats(min_value=0.1, max_value=100), min_size=1, max_size=30))
def test_one_wild_detour_among_many_trips_barely_moves_the_grid(trips):
    with_detour = grid_distance([*trips, *trips, 500.0], 5.0, 1.3).distance_km
    assert min(trips) - 0.0005 <= with_detour <= max(trips) + 0.0005  # kept to the metre


def test_trip_price_uses_the_levels_when_the_policy_has_them_and_the_tiers_otherwise():
    assert trip_price(16.0, TIERS, LEVELS)[1:] == (Band(2, 3, 15, 20, 400, 20), 20.0)
    assert trip_price(16.0, TIERS, []) == (2, None, 20.0)
    assert cap_amount(20.0, 590.0, 600) == (10.0, True)


def test_the_allowance_is_each_due_day_at_its_own_band_paid_when_verified():
    """Issue 18's month: 8 due days; 龙凤 at 200 verified 3 of 4, 山河 at 350 verified 1 of 2,
    then (finance's change) at 400 verified 2 of 2."""
    near, mid, far = Band(1, 3, 5, 8, 200, 10), Band(2, 2, 11, 15, 350, 10), \
        Band(2, 3, 15, 20, 400, 20)
    days = ([DueDay(dt.date(2026, 11, d), "longfeng", near, d != 17) for d in (3, 10, 17, 24)]
            + [DueDay(dt.date(2026, 11, 5), "shanhe", mid, True),
               DueDay(dt.date(2026, 11, 12), "shanhe", mid, False),
               DueDay(dt.date(2026, 11, 19), "shanhe", far, True),
               DueDay(dt.date(2026, 11, 26), "shanhe", far, True)])
    lines = monthly_allowance(days)
    assert [(x.school_id, x.grade, x.days_present, x.days_due, x.amount) for x in lines] == [
        ("longfeng", 3, 3, 4, 75.0), ("shanhe", 2, 1, 2, 43.75), ("shanhe", 3, 2, 2, 100.0)]


@given(st.lists(st.tuples(st.sampled_from(range(9)), st.booleans()), min_size=1, max_size=25))
def test_the_allowance_never_exceeds_the_highest_monthly_amount_and_is_full_when_all_verified(
        picks):
    flat = bands(LEVELS)
    days = [DueDay(dt.date(2026, 11, 1) + dt.timedelta(days=i), f"s{b}", flat[b], present)
            for i, (b, present) in enumerate(picks)]
    total = sum(x.amount for x in monthly_allowance(days))
    assert 0 <= total <= max(flat[b].per_month for b, _ in picks) + 0.01 * len(flat)
    everywhere = [DueDay(d.date, d.school_id, flat[0], True) for d in days]
    assert sum(x.amount for x in monthly_allowance(everywhere)) == pytest.approx(100.0, abs=0.005 * 9)  # ½ fen a line


def test_due_dates_follow_the_timetable_weekday():
    days = [dt.date(2026, 10, d) for d in (6, 10, 13)]  # a holiday, a 调休 Saturday, a Tuesday
    assert due_dates(days, [2, 5], {days[0]: None, days[1]: 5, days[2]: 2}) == days[1:]


def test_mock_fixes_and_an_impossible_speed_keep_a_trip_for_review():
    ok = {"matches_assignment": True, "duration_s": 900, "ping_count": 30, "path_km": 6.2}
    assert review_reasons(ok, 0) == []
    assert review_reasons(ok, 0, mock_fixes=2) == [MOCK_LOCATION]
    assert review_reasons({**ok, "duration_s": 60, "ping_count": 3, "path_km": 6.2}, 0) == \
        [IMPLAUSIBLE_SPEED]
