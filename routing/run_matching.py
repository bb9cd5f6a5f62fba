"""Which run of its routes a vehicle may be starting: the time side of run matching.

A run instance (run x service date) is a candidate while a ping's time is inside its start window
around the first scheduled stop; the tracker then checks the position side (near the route's
start, progressing along it). Service days follow :mod:`routing.calendar`; times past 24:00 belong
to the previous service day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from routing.calendar import DAY_S, is_service_day, local_date, service_day_start
from routing.config import TrackerConfig
from routing.model import Route, Run, VehicleContext


def trip_id_for(vehicle_id: str, run_id: str, service_date: dt.date) -> str:
    """The deterministic id of a vehicle's trip on a run on a service date.

    Live tracking and the audit derive the same id, so their records join.

    Examples
    --------
    >>> trip_id_for("bus-07", "zt-am-1", dt.date(2026, 11, 23))
    '20261123-zt-am-1-bus-07'
    """
    return f"{service_date:%Y%m%d}-{run_id}-{vehicle_id}"


def parse_trip_id(trip_id: str, vehicle_id: str) -> tuple[dt.date, str] | None:
    """``(service_date, run_id)`` back from :func:`trip_id_for` (``None``: not one of its ids).

    >>> parse_trip_id("20261123-zt-am-1-bus-07", "bus-07")
    (datetime.date(2026, 11, 23), 'zt-am-1')
    """
    tail = f"-{vehicle_id}"
    if len(trip_id) < 10 + len(tail) or not trip_id.endswith(tail) or trip_id[8] != "-":
        return None
    try:
        day = dt.datetime.strptime(trip_id[:8], "%Y%m%d").date()
    except ValueError:
        return None
    return day, trip_id[9:-len(tail)]


@dataclass(frozen=True, slots=True)
class RunWindow:
    """A run instance whose start window a ping may fall into."""

    route_index: int
    route: Route
    run: Run
    service_date: dt.date
    scheduled_at: tuple[float, ...]  # epoch seconds of every stop
    opens_at: float
    closes_at: float
    trip_id: str

    @property
    def first_at(self) -> float:
        return self.scheduled_at[0]


def run_windows(ctx: VehicleContext, ts_min: float, ts_max: float,
                cfg: TrackerConfig) -> list[RunWindow]:
    """Every run instance of the vehicle's routes whose start window meets ``[ts_min, ts_max]``.

    Runs whose timetable does not have one time per stop are skipped (a bundle error the import
    should have refused).
    """
    if not ctx.routes:
        return []
    cal = ctx.calendar
    reach_days = max((max(run.times_s, default=0) // DAY_S for route in ctx.routes
                      for run in route.runs), default=0)
    first = local_date(ts_min, cal) - dt.timedelta(days=reach_days + 1)
    last = local_date(ts_max, cal) + dt.timedelta(days=1)
    dates = [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]
    windows = []
    for route_index, route in enumerate(ctx.routes):
        if len(route.stops) < 2:
            continue
        for run in route.runs:
            if len(run.times_s) != len(route.stops):
                continue
            for day in dates:
                if not is_service_day(run, cal, day):
                    continue
                day0 = service_day_start(day, cal)
                first_at = day0 + run.times_s[0]
                opens, closes = first_at - cfg.trip_start_before_s, first_at + cfg.trip_start_after_s
                if closes < ts_min or opens > ts_max:
                    continue
                windows.append(RunWindow(
                    route_index=route_index, route=route, run=run, service_date=day,
                    scheduled_at=tuple(day0 + t for t in run.times_s), opens_at=opens,
                    closes_at=closes, trip_id=trip_id_for(ctx.vehicle_id, run.id, day)))
    windows.sort(key=lambda w: (w.opens_at, w.route_index, w.run.id))
    return windows


def open_windows(windows: list[RunWindow], ts: float, done: set[str]) -> list[RunWindow]:
    """The windows open at ``ts`` and not yet driven, best first: nearest scheduled start, then
    the order of the vehicle's routes."""
    found = [w for w in windows if w.opens_at <= ts <= w.closes_at and w.trip_id not in done]
    found.sort(key=lambda w: (abs(ts - w.first_at), w.route_index, w.run.id))
    return found
