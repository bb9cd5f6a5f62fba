"""The demo's runs as bundle runs: dated, timed to the second, the route's own runs kept."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.bundle.schema import RouteSchema
from backend.demo.plan import Leg
from backend.demo.runs import existing_run_entry, keep_run, route_document, run_entry
from routing.model import Calendar

CAL = Calendar(timezone="Asia/Shanghai", holidays=frozenset(), extra_school_days={})


def at(local: str) -> float:
    return dt.datetime.fromisoformat(local).replace(
        tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()


def leg(route_id: str | None, *times: float) -> Leg:
    return Leg("bus-07", (), (), ((times[0], 0.0),) if times else ((0.0, 0.0),), route_id,
               tuple(times))


def test_a_run_is_dated_the_day_it_leaves_and_timed_to_the_second():
    entry = run_entry(leg("zt-am-1", at("2026-11-23T09:35:00"), at("2026-11-23T09:41:40.6")), CAL)
    assert entry == {"id": "demo-zt-am-1-20261123-093500", "times": ["09:35:00", "09:41:41"],
                     "dates": ["2026-11-23"]}


def test_a_run_that_crosses_midnight_keeps_its_service_day_gtfs_style():
    entry = run_entry(leg("zt-pm-1", at("2026-11-23T23:55:00"), at("2026-11-24T00:05:00")), CAL)
    assert entry["dates"] == ["2026-11-23"] and entry["times"] == ["23:55:00", "24:05:00"]


def test_only_a_leg_on_a_route_is_a_run():
    with pytest.raises(ValueError):
        run_entry(leg(None, at("2026-11-23T09:35:00")), CAL)


def test_the_routes_own_runs_stay_and_old_demo_runs_go():
    own = existing_run_entry("zt-am-1", [24600, 25080, 25560, 26400], [1, 2, 3, 4, 5], None)
    assert own == {"id": "zt-am-1", "times": ["06:50:00", "06:58:00", "07:06:00", "07:20:00"],
                   "days": [1, 2, 3, 4, 5]}
    old = existing_run_entry("demo-zt-am-1-20261120-093500", [34500] * 4, None, ["2026-11-20"])
    yesterday = existing_run_entry("demo-zt-am-1-20261122-093500", [34500] * 4, None,
                                   ["2026-11-22"])
    keep_since = dt.date(2026, 11, 22)
    assert keep_run(own, keep_since) and keep_run(yesterday, keep_since)
    assert not keep_run(old, keep_since)
    new = {"id": "demo-zt-am-1-20261123-093500", "times": ["09:35:00"] * 4,
           "dates": ["2026-11-23"]}
    route = {"id": "zt-am-1", "name": "朱亭早班1号线", "school_id": "zhuting",
             "path": {"type": "LineString", "coordinates": [[113.231, 27.452],
                                                            [113.2052, 27.4301]]},
             "corridor_m": 80.0,
             "stops": [{"stop_id": s} for s in ("longfeng-cun", "shitang-cun", "dongan-cun",
                                                "zhuting")]}
    document = route_document(route, [own, old, yesterday], [new], keep_since)
    assert [r["id"] for r in document["runs"]] == [
        "demo-zt-am-1-20261122-093500", "demo-zt-am-1-20261123-093500", "zt-am-1"]
    # a demo starting again drops what an earlier one planned and did not drive
    ahead = {"id": "demo-zt-am-1-20261123-113500", "times": ["11:35:00"] * 4,
             "dates": ["2026-11-23"]}
    assert keep_run(ahead, keep_since) and keep_run(new, keep_since)
    assert not keep_run(ahead, keep_since, at("2026-11-23T10:00:00"), CAL)
    assert keep_run(new, keep_since, at("2026-11-23T10:00:00"), CAL)  # left at 09:35
    assert keep_run(own, keep_since, at("2026-11-23T10:00:00"), CAL)
    loaded = RouteSchema().load(document)  # a valid bundle route (SPEC §3)
    assert [r["dates"] is None for r in loaded["runs"]] == [False, False, True]
