"""Vehicle blocks: a run planned for a vehicle (``Run.vehicle_id``) is its own.

On a pool route the first bus to leave takes the run already due (first come, first served):
right while buses leave in timetable order, wrong twice over when a late bus lets the next one
leave first. With each bus's planned runs known, each keeps its own; a spare bus with no plan
takes what is left, planned-for-nobody runs before another bus's.
"""

from __future__ import annotations

import datetime as dt

from routing.config import DEFAULT
from routing.model import Place, Route, Run
from routing.run_matching import RunWindow
from routing.trip_start import Departure, nearest, run_score
from tests.realdays.generator import DayConfig, Scenarios, generate
from tests.realdays.metrics import evaluate, out_of_order

DAY = dt.date(2026, 11, 23)
STOPS = (Place("a", "A", 27.0, 113.0, 30.0), Place("b", "B", 27.01, 113.0, 30.0))
ROUTE = Route("r", "R", None, ((113.0, 27.0), (113.0, 27.01)), 80.0, STOPS, ())


def departure(run_id: str, first_at: float, departed_at: float,
              planned: str | None) -> Departure:
    run = Run(run_id, (0, 600), dates=frozenset({DAY}), vehicle_id=planned)
    window = RunWindow(0, ROUTE, run, DAY, (first_at, first_at + 600), first_at - 900,
                       first_at + 900, f"trip-{run_id}")
    return Departure(window, 50.0, departed_at, None, run_score(window, departed_at, DEFAULT))


def test_a_bus_that_leaves_first_keeps_its_own_run_although_an_earlier_one_is_due():
    # bus-2 (planned for the 07:10) leaves at 07:09, before bus-1, late for the 07:05
    early, due = departure("r-0710", 1000.0, 940.0, "bus-2"), departure("r-0705", 700.0, 940.0,
                                                                         "bus-1")
    pool = frozenset({"r"})
    assert nearest([due, early], pool, DEFAULT, "bus-2") is early
    # without blocks the due run goes first come, first served: the wrong one for bus-2
    unplanned = [departure("r-0710", 1000.0, 940.0, None), departure("r-0705", 700.0, 940.0,
                                                                     None)]
    assert nearest(unplanned, pool, DEFAULT, "bus-2").window.run.id == "r-0705"


def test_a_spare_takes_an_unplanned_run_before_another_buses_and_anothers_when_alone():
    theirs, free = departure("r-0705", 700.0, 760.0, "bus-1"), departure("r-0706", 760.0,
                                                                          760.0, None)
    assert nearest([theirs, free], frozenset({"r"}), DEFAULT, "spare").window.run.id == "r-0706"
    assert nearest([theirs], frozenset({"r"}), DEFAULT, "spare") is theirs


def test_on_a_hard_day_with_blocks_every_trip_is_on_its_bus_even_when_buses_leave_out_of_order():
    cfg = DayConfig(seed=0, lines=("130",), buses_per_line=10, runs_per_bus=2,
                    scenarios=Scenarios.only("layovers"), history_days=0)
    pool, blocks = generate(cfg), generate(DayConfig(**{**cfg.__dict__, "blocks": True}))
    assert out_of_order(pool) > 0, "the day must have buses leaving out of timetable order"
    assert evaluate(pool).trips_right_vehicle < 1.0  # what blocks are for
    report = evaluate(blocks)
    assert report.trips_right_vehicle == 1.0
    assert report.counts["runs_claimed_by_several_vehicles"] == 0
