"""One vehicle per run of a pool route: three buses at one terminal, a frozen device handed
over to a spare bus (issue 13, causes 2 and 5)."""

from __future__ import annotations

import dataclasses

from routing.audit import audit_fleet
from routing.fleet import ClaimBook, pool_route_ids, track_fleet, with_pools
from routing.model import Run
from routing.state import TrackerState, TripState

from .helpers import kinds, ping, straight
from .simulate import MONDAY, at, bus, make_route

RUN_TIMES = ("07:00", "07:12", "07:24")


def line_with_runs():
    """A 4 km line east with stops every 1 km, three runs 12 minutes apart (7 min each way)."""
    route = make_route("line", [(0, 0), (4000, 0)], [0, 1000, 2000, 3000, 4000],
                       [0, 105, 210, 315, 420], school_last=False)
    base = route.runs[0]
    runs = tuple(Run(f"line-{t.replace(':', '')}",
                     tuple(int(at(MONDAY, t) - at(MONDAY, "00:00")) + s for s in base.times_s),
                     days=base.days) for t in RUN_TIMES)
    return dataclasses.replace(route, runs=runs)


def fleet(route, names):
    return with_pools({n: dataclasses.replace(bus((route,)), vehicle_id=n) for n in names})


def idle_then_drive(arrive: float, depart: float, x_idle: float = -20.0):
    """At the terminal from ``arrive``, leaving at ``depart`` to the end of the line."""
    idle = [ping(t, x_idle, 5.0, 0.0) for t in range(int(arrive), int(depart), 20)]
    return idle + straight(depart, x_idle, 0, 4000, 0, 10.0, 10.0)


def test_three_buses_idling_at_one_terminal_each_take_the_run_they_leave_for():
    route = line_with_runs()
    ctxs = fleet(route, ["bus-a", "bus-b", "bus-c"])
    # all three wait at the terminal from 06:55; they leave 1 min late, one after the other
    pings = {"bus-a": idle_then_drive(at(MONDAY, "06:55"), at(MONDAY, "07:01")),
             "bus-b": idle_then_drive(at(MONDAY, "06:55"), at(MONDAY, "07:13")),
             "bus-c": idle_then_drive(at(MONDAY, "06:55"), at(MONDAY, "07:25"))}
    _, events = track_fleet(ctxs, pings)
    taken = {v: [e.run_id for e in kinds(ev, "trip_started")] for v, ev in events.items()}
    assert taken == {"bus-a": ["line-0700"], "bus-b": ["line-0712"], "bus-c": ["line-0724"]}
    for ev in events.values():
        assert not kinds(ev, "stop_missed")


def test_a_run_another_bus_holds_is_not_taken_even_when_it_fits_better():
    route = line_with_runs()
    ctxs = fleet(route, ["bus-a", "bus-b"])
    # bus-a leaves 5 min late for the 07:00; bus-b leaves at 07:07, nearer to 07:00 than to 07:12
    # by the clock, but 07:00 is bus-a's: bus-b drives the 07:12, early
    pings = {"bus-a": idle_then_drive(at(MONDAY, "06:55"), at(MONDAY, "07:05")),
             "bus-b": idle_then_drive(at(MONDAY, "06:58"), at(MONDAY, "07:07"))}
    _, events = track_fleet(ctxs, pings)
    assert [e.run_id for e in kinds(events["bus-a"], "trip_started")] == ["line-0700"]
    assert [e.run_id for e in kinds(events["bus-b"], "trip_started")] == ["line-0712"]


def test_without_the_pool_each_bus_would_take_the_nearest_run_alone():
    """The control for the test above: the claims are what keeps one bus per run."""
    route = line_with_runs()
    alone = {n: dataclasses.replace(bus((route,)), vehicle_id=n) for n in ("bus-a", "bus-b")}
    pings = {"bus-a": idle_then_drive(at(MONDAY, "06:55"), at(MONDAY, "07:05")),
             "bus-b": idle_then_drive(at(MONDAY, "06:58"), at(MONDAY, "07:04"))}
    _, events = track_fleet(alone, pings)
    assert [e.run_id for e in kinds(events["bus-b"], "trip_started")] == ["line-0700"]
    _, events = track_fleet(with_pools(alone), pings)
    runs = sorted(e.run_id for ev in events.values() for e in kinds(ev, "trip_started"))
    assert runs == ["line-0700", "line-0712"]


def test_a_frozen_device_hands_its_run_over_to_the_spare_bus_that_finishes_it():
    route = line_with_runs()
    ctxs = fleet(route, ["bus-a", "spare"])
    t0 = at(MONDAY, "07:00")
    frozen = idle_then_drive(at(MONDAY, "06:55"), t0)
    frozen = [p for p in frozen if p.ts <= t0 + 150]  # the device dies 1.5 km out
    frozen.append(ping(at(MONDAY, "07:40"), 1500, 0, 0.0))  # and comes back, parked
    spare = straight(t0 + 600, 1600, 0, 4000, 0, 10.0, 10.0)  # the spare joins at 1.6 km
    states, events = track_fleet(ctxs, {"bus-a": frozen, "spare": spare})
    a_done = kinds(events["bus-a"], "trip_completed")
    assert [e.details["reason"] for e in a_done] == ["handed_over"]
    assert a_done[0].details["unobserved"] == [2, 3, 4]  # not missed: the spare served them
    assert not kinds(events["bus-a"], "stop_missed", "route_deviation_started")
    spare_started = kinds(events["spare"], "trip_started")
    assert [e.run_id for e in spare_started] == ["line-0700"]
    assert spare_started[0].details["unobserved"] == [0, 1]
    arrived = [e.stop_id for e in kinds(events["spare"], "stop_arrived")]
    assert arrived == ["line-s2", "line-s3", "line-s4"]
    audits = audit_fleet(ctxs, {"bus-a": frozen, "spare": spare})
    statuses = {v: [s["status"] for s in a[0].stops] for v, a in audits.items()}
    assert statuses == {
        "bus-a": ["visited", "visited", "unobserved", "unobserved", "unobserved"],
        "spare": ["unobserved", "unobserved", "visited", "visited", "visited"]}


def test_pool_routes_are_those_listed_by_more_than_one_vehicle():
    assert pool_route_ids({"a": ["r1", "r2"], "b": ["r2"]}) == {"a": frozenset({"r2"}),
                                                                "b": frozenset({"r2"})}


def test_the_claim_book_keeps_the_first_open_hold_until_it_goes_stale():
    def on(run_id: str, progress_ts: float, vehicle: str) -> TrackerState:
        trip = TripState(trip_id=f"20261123-{run_id}-{vehicle}", route_id="line", run_id=run_id,
                         service_date="2026-11-23", started_at=0.0, scheduled_at=[0.0, 1.0],
                         progress_m=0.0, progress_ts=progress_ts, stops=[])
        return TrackerState(last_ts=progress_ts, trip=trip)

    book = ClaimBook()
    book.update("a", on("r", 100.0, "a"))
    book.update("b", on("r", 150.0, "b"))
    assert book.claims["2026-11-23/r"].vehicle_id == "a"
    book.update("b", on("r", 100.0 + 301.0, "b"))  # a has made no progress for 301 s
    assert book.claims["2026-11-23/r"].vehicle_id == "b"
    done = TrackerState(last_ts=900.0, done_trips=["20261123-r-b"])
    book.update("b", done)
    assert book.claims["2026-11-23/r"].done
