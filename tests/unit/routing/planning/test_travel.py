"""A table of road travel times drives the planner, the chaining and the checker alike."""

import pytest

from routing.planning.checker import check_plan
from routing.planning.model import Instance, Params, Stop
from routing.planning.solver import solve
from routing.planning.travel import TravelMatrix

from .helpers import school

SCHOOL = school("east", 0.0, 0.0, "730")
NEAR = Stop("near", 1000.0, 0.0, "east", 3)  # 1 km away as the crow flies
INSTANCE = Instance("river", (SCHOOL,), (NEAR,))
STRAIGHT = Params(metric="straight", speed_per_s=10.0, max_ride_s=3600.0)
#: the road goes round by a bridge: 1200 s each way instead of the straight line's 100 s
ROADS = TravelMatrix({(0.0, 0.0): 0, (1000.0, 0.0): 1}, ((0.0, 1200.0), (1200.0, 0.0)))
ON_ROADS = Params(metric="straight", speed_per_s=10.0, max_ride_s=3600.0, roads=ROADS)


def test_pairs_in_the_table_take_its_time_and_others_the_straight_line():
    assert ON_ROADS.travel_s(1000.0, 0.0, 0.0, 0.0) == 1200.0
    assert ON_ROADS.travel_s(0.0, 0.0, 0.0, 500.0) == 50.0  # a point the table does not hold


def test_a_plan_on_the_roads_leaves_early_enough_to_drive_round_by_the_bridge():
    plan = solve(INSTANCE, ON_ROADS, time_limit_s=1)
    (route,) = plan.routes
    ride_s = route.school_arrival_s - route.visits[0].arrival_s
    assert ride_s == pytest.approx(1200.0 + ON_ROADS.stop_s(3))
    assert check_plan(INSTANCE, plan.to_json(), ON_ROADS) == []


def test_the_checker_rejects_a_straight_line_plan_that_the_roads_cannot_drive():
    straight_plan = solve(INSTANCE, STRAIGHT, time_limit_s=1).to_json()
    assert check_plan(INSTANCE, straight_plan, STRAIGHT) == []
    assert {v.kind for v in check_plan(INSTANCE, straight_plan, ON_ROADS)} == {"travel_time"}


def test_a_ride_longer_than_allowed_on_the_roads_cannot_be_planned():
    with pytest.raises(ValueError, match="more than the maximum ride"):
        solve(INSTANCE, Params(metric="straight", speed_per_s=10.0, max_ride_s=600.0,
                               roads=ROADS), time_limit_s=1)


def test_a_table_that_is_not_square_or_badly_numbered_is_refused():
    with pytest.raises(ValueError, match="square"):
        TravelMatrix({(0.0, 0.0): 0}, ((0.0, 1.0),))
    with pytest.raises(ValueError, match="once each"):
        TravelMatrix({(0.0, 0.0): 0, (1.0, 0.0): 0}, ((0.0, 1.0), (1.0, 0.0)))
