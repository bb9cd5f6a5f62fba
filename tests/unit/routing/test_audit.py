"""The daily audit recomputed from stored pings."""

from routing.audit import audit_day
from routing.calendar import parse_hms

from .helpers import ping, straight
from .simulate import MONDAY, at, bus, make_route

AM = make_route("am", [(0, 0), (4000, 0)], [0, 2000, 4000],
                [parse_hms(t) for t in ("06:50", "06:58", "07:06")])
PM = make_route("pm", [(4000, 0), (0, 0)], [0, 2000, 4000],
                [parse_hms(t) for t in ("16:40", "16:48", "16:56")])


def test_the_audit_lists_each_trip_with_stops_lateness_distance_and_deviations():
    t_am, t_pm = at(MONDAY, "06:45"), at(MONDAY, "16:35")
    am = [ping(t_am, 0, 0, 0.0), *straight(t_am + 300, 0, 0, 1500, 0, 10, 10),
          *straight(t_am + 460, 1500, 300, 2500, 300, 10, 10),  # around the middle stop
          *straight(t_am + 570, 2500, 0, 4000, 0, 10, 10)]
    pm = [ping(t_pm, 4000, 0, 0.0), *straight(t_pm + 300, 4000, 0, 1500, 0, 10, 10)]
    audits = audit_day(bus((AM, PM)), list(reversed(am + pm)))
    assert [a.run_id for a in audits] == ["am-run", "pm-run"]
    morning, evening = audits
    assert [s["status"] for s in morning.stops] == ["visited", "missed", "visited"]
    assert morning.stops[0]["late_s"] == morning.stops[0]["arrived_at"] - at(MONDAY, "06:50")
    assert morning.stops[1]["arrived_at"] is None and morning.stops[1]["late_s"] is None
    assert morning.completed_at is not None and 4.0 < morning.distance_km < 5.0
    assert len(morning.deviations) == 1
    dev = morning.deviations[0]
    assert dev["started_at"] < dev["ended_at"] and dev["max_offset_m"] > 250
    # the evening trip is still under way at the last stored ping
    assert evening.completed_at is None
    assert [s["status"] for s in evening.stops] == ["visited", "visited", "upcoming"]
    assert evening.trip_id == f"{MONDAY:%Y%m%d}-pm-run-bus-07"
    assert audit_day(bus((AM, PM)), am + pm, service_date=MONDAY) == audits
    assert audit_day(bus((AM, PM)), am + pm, service_date=MONDAY.replace(day=24)) == []
