"""Service days and schedule times: which runs operate on which local date, and when.

Schedule times are seconds after local midnight of the *service day*, GTFS style: ``25:10`` is
01:10 on the next calendar date but belongs to the previous service day.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from zoneinfo import ZoneInfo

from routing.model import Calendar, Run

_HMS = re.compile(r"^(\d{1,3}):([0-5]\d)(?::([0-5]\d))?$")
DAY_S = 86400


def parse_hms(text: str) -> int:
    """Turn ``HH:MM`` or ``HH:MM:SS`` (hours past 24 allowed) into seconds after midnight.

    Parameters
    ----------
    text : str
        The schedule time.

    Returns
    -------
    int
        Seconds after local midnight of the service day.

    Raises
    ------
    ValueError
        When the text is not such a time.

    Examples
    --------
    >>> parse_hms("06:50")
    24600
    >>> parse_hms("25:10:30")
    90630
    """
    match = _HMS.match(text.strip())
    if match is None:
        raise ValueError(f"not a schedule time HH:MM[:SS]: {text!r}")
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)


def format_hms(seconds: int) -> str:
    """Format seconds after midnight as ``HH:MM:SS`` (hours may exceed 23).

    Examples
    --------
    >>> format_hms(90630)
    '25:10:30'
    """
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


@lru_cache(maxsize=32)
def zone(name: str) -> ZoneInfo:
    """The (cached) ``ZoneInfo`` of a district timezone."""
    return ZoneInfo(name)


def local_date(ts: float, calendar: Calendar) -> dt.date:
    """The district-local calendar date of an epoch time."""
    return dt.datetime.fromtimestamp(ts, zone(calendar.timezone)).date()


def service_day_start(service_date: dt.date, calendar: Calendar) -> float:
    """Epoch seconds of local midnight starting ``service_date``.

    Schedule times are added to this; on a daylight-saving change day that is off by the shift,
    the usual GTFS simplification (the districts this serves have no DST).
    """
    midnight = dt.datetime.combine(service_date, dt.time(0), tzinfo=zone(calendar.timezone))
    return midnight.timestamp()


def timetable_weekday(service_date: dt.date, calendar: Calendar) -> int | None:
    """The ISO weekday whose timetable runs on a date: ``None`` on a holiday, the ``as_weekday``
    on an extra school day (调休), the date's own weekday otherwise."""
    if service_date in calendar.holidays:
        return None
    extra = calendar.extra_school_days.get(service_date)
    return int(extra) if extra is not None else service_date.isoweekday()


def is_service_day(run: Run, calendar: Calendar, service_date: dt.date) -> bool:
    """Whether ``run`` operates on ``service_date``.

    ``except_dates`` are never served (the day a substitute bus drives the run). Explicit
    ``dates`` are served whatever the calendar says. ``days`` honour the calendar
    (holidays off, extra school days run their ``as_weekday``). A run with neither runs on every
    non-holiday.

    Examples
    --------
    >>> cal = Calendar(holidays=frozenset({dt.date(2026, 10, 1)}),
    ...                extra_school_days={dt.date(2026, 10, 10): 5})
    >>> weekdays = Run("r", (0,), days=frozenset({1, 2, 3, 4, 5}))
    >>> is_service_day(weekdays, cal, dt.date(2026, 10, 1))  # a Thursday, but a holiday
    False
    >>> is_service_day(weekdays, cal, dt.date(2026, 10, 10))  # a Saturday worked as a Friday
    True
    """
    if service_date in run.except_dates:
        return False
    if run.dates is not None and service_date in run.dates:
        return True
    if run.days is None:
        return run.dates is None and service_date not in calendar.holidays
    weekday = timetable_weekday(service_date, calendar)
    return weekday is not None and weekday in run.days


def service_dates_for(run: Run, calendar: Calendar, date: dt.date) -> list[dt.date]:
    """Service dates of ``run`` whose timetable touches the local calendar ``date``.

    That is ``date`` itself when it is a service day, and the day before when it is one and the
    run's times go past 24:00 (far enough to reach ``date``). Oldest first.
    """
    dates = []
    last_s = max(run.times_s, default=0)
    for back in range(last_s // DAY_S, -1, -1):
        candidate = date - dt.timedelta(days=back)
        if is_service_day(run, calendar, candidate):
            dates.append(candidate)
    return dates
