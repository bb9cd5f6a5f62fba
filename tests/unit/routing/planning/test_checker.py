"""The checker rejects each kind of violation, one test per kind, on an otherwise valid plan."""

import copy

import pytest

from routing.planning.checker import check_plan
from routing.planning.model import Instance, Params, Plan, Stop, schedule_route

from .helpers import FT_PER_MIN, school

A = school("A", 0, 0, "710")
B = school("B", 0, 5 * FT_PER_MIN, "810")
S1 = Stop("s1", 10 * FT_PER_MIN, 0, "A", 20)
S2 = Stop("s2", 5 * FT_PER_MIN, 0, "A", 10)
S3 = Stop("s3", 0, 15 * FT_PER_MIN, "B", 30)
INSTANCE = Instance("hand", (A, B), (S1, S2, S3))
PARAMS = Params()


def valid_plan() -> dict:
    route_a = schedule_route(A, [(S1, 20), (S2, 10)], PARAMS)
    route_b = schedule_route(B, [(S3, 30)], PARAMS)
    return Plan("hand", PARAMS.max_ride_s, ((route_a, route_b),)).to_json()


def kinds(plan, params=PARAMS) -> set[str]:
    return {v.kind for v in check_plan(INSTANCE, plan, params)}


def test_the_valid_plan_passes():
    assert check_plan(INSTANCE, valid_plan(), PARAMS) == []


def test_a_route_over_capacity_is_rejected():
    assert kinds(valid_plan(), Params(capacity=29)) == {"capacity"}


def test_a_child_riding_too_long_is_rejected():
    # s1's children ride 71 + 300 + 45 + 300 = 716 s
    assert kinds(valid_plan(), Params(max_ride_s=700)) == {"ride_time"}


def test_a_school_reached_after_its_bell_is_rejected():
    plan = valid_plan()
    route = plan["buses"][0]["routes"][1]
    for visit in route["stops"]:
        visit["arrival_s"] += 60
    route["school_arrival_s"] += 60
    assert kinds(plan) == {"late_arrival"}


def test_a_stop_reached_sooner_than_the_drive_allows_is_rejected():
    plan = valid_plan()
    plan["buses"][0]["routes"][0]["stops"][1]["arrival_s"] -= 5
    assert kinds(plan) == {"travel_time"}


def test_a_school_reached_sooner_than_the_drive_allows_is_rejected():
    plan = valid_plan()
    plan["buses"][0]["routes"][0]["school_arrival_s"] -= 5
    assert kinds(plan) == {"travel_time"}


def test_a_stop_left_out_is_rejected():
    plan = valid_plan()
    del plan["buses"][0]["routes"][0]["stops"][1]
    assert kinds(plan) == {"students"}


def test_a_stop_picked_up_twice_is_rejected():
    plan = valid_plan()
    twice = copy.deepcopy(plan["buses"][0]["routes"][1])
    plan["buses"].append({"bus": 2, "routes": [twice]})
    assert kinds(plan) == {"students"}


def test_fewer_children_than_the_stop_has_is_rejected():
    plan = valid_plan()
    plan["buses"][0]["routes"][1]["stops"][0]["students"] = 29
    assert kinds(plan) == {"students"}


def test_children_taken_to_another_school_are_rejected():
    plan = valid_plan()
    plan["buses"][0]["routes"][1]["school"] = "A"  # s3 attends B
    assert "wrong_school" in kinds(plan)


def test_a_stop_the_instance_lacks_is_rejected():
    plan = valid_plan()
    plan["buses"][0]["routes"][1]["stops"][0]["stop"] = "s9"
    assert kinds(plan) == {"unknown_stop", "students"}


def test_a_bus_that_cannot_reach_its_next_route_in_time_is_rejected():
    late_b = school("B", 0, 5 * FT_PER_MIN, "730")  # 20 min after A: 15 min empty + 10 + 2.6
    instance = Instance("hand", (A, late_b), (S1, S2, S3))
    route_a = schedule_route(A, [(S1, 20), (S2, 10)], PARAMS)
    route_b = schedule_route(late_b, [(S3, 30)], PARAMS)
    plan = Plan("hand", PARAMS.max_ride_s, ((route_a, route_b),)).to_json()
    assert {v.kind for v in check_plan(instance, plan, PARAMS)} == {"bus_overlap"}
    apart = Plan("hand", PARAMS.max_ride_s, ((route_a,), (route_b,))).to_json()
    assert check_plan(instance, apart, PARAMS) == []


@pytest.mark.parametrize("breakage", [
    lambda p: p.pop("buses"),
    lambda p: p["buses"][0]["routes"][0]["stops"][0].update(arrival_s="07:00"),
    lambda p: p["buses"][0]["routes"][0]["stops"][0].update(students=0),
    lambda p: p["buses"][0]["routes"][0]["stops"][0].update(students=True),
    lambda p: p["buses"][0].update(routes=None),
])
def test_something_that_is_not_a_plan_is_rejected_as_such(breakage):
    plan = valid_plan()
    breakage(plan)
    assert kinds(plan) == {"bad_plan"}
