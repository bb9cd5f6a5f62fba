"""The demo's runs: each simulated bus run becomes a run of its route dated that day, imported
through the ordinary bundle import (SPEC §3), so the tracker matches the simulated drive to a
trip exactly as it matches a real bus to its timetable.

The demo imports as its own source (``import_bundle(…, source="demo")``): its runs are stored
with ``source = "demo"``, and each import replaces the demo's runs of a route only, carrying the
demo runs still worth keeping (today's and yesterday's, for the nightly audit) and the new ones.
The route's own runs (a bundle's) are not the demo's to change: they stay as they are, and a
bundle imported while the demo runs leaves the demo's runs alone in turn. Demo run ids start
with ``demo-`` (how rows stored before ``source`` existed were told apart).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from backend.demo.plan import Leg
from routing.calendar import format_hms, local_date, parse_hms, service_day_start
from routing.model import Calendar

DEMO_RUN_PREFIX = "demo-"


def run_entry(leg: Leg, calendar: Calendar) -> dict[str, Any]:
    """The bundle run (``{id, times, dates}``) of a leg that drives a route.

    >>> import datetime as dt
    >>> from backend.demo.plan import Leg
    >>> cal = Calendar(timezone="Asia/Shanghai", holidays=frozenset(), extra_school_days={})
    >>> at = dt.datetime(2026, 11, 23, 9, 35, 0, tzinfo=dt.UTC).timestamp()  # 17:35 local
    >>> leg = Leg("bus-07", (), (), ((at, 0.0),), "zt-am-1", (at, at + 400.4, at + 901))
    >>> run_entry(leg, cal)
    {'id': 'demo-zt-am-1-20261123-173500', 'times': ['17:35:00', '17:41:40', '17:50:01'], 'dates': ['2026-11-23']}
    """
    if leg.route_id is None or not leg.stop_times:
        raise ValueError("only a leg that drives a route is a run")
    day = local_date(leg.stop_times[0], calendar)
    day0 = service_day_start(day, calendar)
    seconds = [round(t - day0) for t in leg.stop_times]
    return {
        "id": f"{DEMO_RUN_PREFIX}{leg.route_id}-{day:%Y%m%d}-{format_hms(seconds[0]).replace(':', '')}",
        "times": [format_hms(s) for s in seconds],
        "dates": [day.isoformat()],
    }


def is_demo_run(run_id: str) -> bool:
    return run_id.startswith(DEMO_RUN_PREFIX)


def runs_by_route(legs: Iterable[Leg], calendar: Calendar) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for leg in legs:
        if leg.route_id is not None:
            out[leg.route_id].append(run_entry(leg, calendar))
    return dict(out)


def existing_run_entry(run_id: str, times_s: list[int | None], days: list[int] | None,
                       dates: list[str] | None) -> dict[str, Any]:
    """A stored run as the bundle writes it (``runs[]``), so that re-importing it changes nothing."""
    entry: dict[str, Any] = {"id": run_id, "times": [format_hms(int(t or 0)) for t in times_s]}
    if dates is not None:
        entry["dates"] = list(dates)
    else:
        entry["days"] = list(days or [])
    return entry


def departs_at(entry: dict[str, Any], calendar: Calendar) -> float | None:
    """When a dated run leaves its first stop (epoch seconds); ``None`` for a weekly run."""
    if not entry.get("dates"):
        return None
    day = dt.date.fromisoformat(entry["dates"][0])
    return service_day_start(day, calendar) + parse_hms(entry["times"][0])


def keep_run(entry: dict[str, Any], keep_since: dt.date,
             drop_after: float | None = None, calendar: Calendar | None = None) -> bool:
    """The route's own runs always; a demo run while one of its dates is ``keep_since`` or
    later — and, with ``drop_after``, only if it left before then (a new demo's fleet replaces
    the runs an earlier demo planned ahead)."""
    if not is_demo_run(entry["id"]):
        return True
    if drop_after is not None and calendar is not None:
        leaves = departs_at(entry, calendar)
        if leaves is not None and leaves >= drop_after:
            return False
    return any(dt.date.fromisoformat(d) >= keep_since for d in entry.get("dates") or [])


def route_document(route: dict[str, Any], current_runs: list[dict[str, Any]],
                   new_runs: list[dict[str, Any]], keep_since: dt.date,
                   drop_after: float | None = None,
                   calendar: Calendar | None = None) -> dict[str, Any]:
    """The bundle route (SPEC §3) ``route`` (``id, name, school_id, path, corridor_m, stops``)
    with its runs: ``current_runs`` that :func:`keep_run` keeps, then ``new_runs`` (by id, the
    new one wins)."""
    runs = {r["id"]: r for r in current_runs if keep_run(r, keep_since, drop_after, calendar)}
    runs.update({r["id"]: r for r in new_runs})
    return {**route, "runs": sorted(runs.values(), key=lambda r: r["id"])}


def import_demo_runs(legs: Iterable[Leg], now: float, fresh_start: bool = False) -> int:
    """Import the runs of ``legs`` (inside an app context); returns how many runs were new.

    Demo runs dated before yesterday are dropped on the way; with ``fresh_start`` (a demo
    starting) so are the demo runs of an earlier start that have not left yet. The process's
    caches of routes and vehicle contexts are cleared, so its ingest and its live views see the
    runs at once.
    """
    from backend.bundle import import_bundle
    from backend.extensions import db
    from backend.live_service import clear_caches
    from backend.models import District, Route
    from backend.tracking_service import district_calendar

    legs = list(legs)
    route_ids = sorted({leg.route_id for leg in legs if leg.route_id})
    if not route_ids:
        return 0
    routes = {r.id: r for r in db.session.query(Route).filter(Route.id.in_(route_ids))}
    missing = sorted(set(route_ids) - set(routes))
    if missing:
        raise LookupError(f"the demo drives routes that are not in the database: {missing}")
    district = db.session.get(District, next(iter(routes.values())).district_id)
    calendar = district_calendar(db.session.connection(), district.id)
    keep_since = local_date(now, calendar) - dt.timedelta(days=1)
    wanted = runs_by_route(legs, calendar)
    documents, new = [], 0
    for route_id in route_ids:
        route = routes[route_id]
        current = [existing_run_entry(r.id, r.times_s, r.days, r.dates) for r in route.runs
                   if r.source == "demo"]
        known = {r["id"] for r in current}
        new += sum(r["id"] not in known for r in wanted[route_id])
        documents.append(route_document(
            {"id": route.id, "name": route.name, "school_id": route.school_id,
             "path": route.path, "corridor_m": route.corridor_m,
             "stops": [{"stop_id": s.place_id} for s in route.stops]},
            current, wanted[route_id], keep_since, now if fresh_start else None, calendar))
    import_bundle({"district": {"id": district.id, "name": district.name,
                                "timezone": district.timezone},
                   "routes": documents}, source="demo")
    clear_caches()
    return new
