import datetime as dt

import pytest

from routing.calendar import (
    format_hms,
    is_service_day,
    local_date,
    parse_hms,
    service_dates_for,
    service_day_start,
)
from routing.model import Calendar, Run

CAL = Calendar(holidays=frozenset({dt.date(2026, 10, 1)}),
               extra_school_days={dt.date(2026, 10, 10): 5})
WEEKDAYS = Run("r", (24600, 25080), days=frozenset({1, 2, 3, 4, 5}))


def test_schedule_times_parse_with_and_without_seconds_and_past_midnight():
    assert parse_hms("06:50") == 6 * 3600 + 50 * 60
    assert parse_hms("07:31:00") == 7 * 3600 + 31 * 60
    assert parse_hms("25:10:30") == 25 * 3600 + 10 * 60 + 30
    assert format_hms(parse_hms("25:10:30")) == "25:10:30"


@pytest.mark.parametrize("text", ["6h50", "06:60", "", "07:31:61", "-1:00"])
def test_malformed_schedule_times_are_refused(text):
    with pytest.raises(ValueError):
        parse_hms(text)


def test_a_holiday_on_a_weekday_has_no_service():
    assert not is_service_day(WEEKDAYS, CAL, dt.date(2026, 10, 1))
    assert is_service_day(WEEKDAYS, CAL, dt.date(2026, 9, 30))


def test_an_extra_school_day_runs_the_timetable_of_its_weekday():
    saturday = dt.date(2026, 10, 10)
    assert is_service_day(WEEKDAYS, CAL, saturday)
    fridays_only = Run("f", (0, 1), days=frozenset({5}))
    mondays_only = Run("m", (0, 1), days=frozenset({1}))
    assert is_service_day(fridays_only, CAL, saturday)
    assert not is_service_day(mondays_only, CAL, saturday)
    assert not is_service_day(WEEKDAYS, CAL, dt.date(2026, 10, 11))  # a plain Sunday


def test_explicit_dates_are_served_whatever_the_calendar_says():
    run = Run("x", (0, 1), dates=frozenset({dt.date(2026, 10, 1), dt.date(2026, 11, 28)}))
    assert is_service_day(run, CAL, dt.date(2026, 10, 1))  # a holiday
    assert is_service_day(run, CAL, dt.date(2026, 11, 28))  # a Saturday
    assert not is_service_day(run, CAL, dt.date(2026, 11, 27))


def test_times_past_midnight_belong_to_the_previous_service_day():
    night = Run("n", (parse_hms("23:30"), parse_hms("24:40")), days=frozenset({5}))
    saturday = dt.date(2026, 11, 28)
    assert service_dates_for(night, Calendar(), saturday) == [dt.date(2026, 11, 27)]
    assert service_dates_for(WEEKDAYS, Calendar(), saturday) == []
    assert service_dates_for(WEEKDAYS, Calendar(), dt.date(2026, 11, 27)) == [dt.date(2026, 11, 27)]


def test_service_day_starts_at_local_midnight_in_the_district_timezone():
    start = service_day_start(dt.date(2026, 11, 23), Calendar())
    assert dt.datetime.fromtimestamp(start, dt.UTC).isoformat() == "2026-11-22T16:00:00+00:00"
    assert local_date(start, Calendar()) == dt.date(2026, 11, 23)
    assert local_date(start - 1, Calendar()) == dt.date(2026, 11, 22)
