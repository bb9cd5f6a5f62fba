"""Small instances whose optimum is known, solved exactly by both engines, checked by the
checker."""

import pytest

from routing.planning.checker import check_plan
from routing.planning.model import Instance, Params, Stop
from routing.planning.solver import solve

from .helpers import FT_PER_MIN, benchmark, cut, school

PARAMS = Params()
ENGINES = ["pyvrp", "ortools"]


def planned(instance, engine, params=PARAMS):
    plan = solve(instance, params, time_limit_s=0.5, engine=engine)
    assert check_plan(instance, plan.to_json(), params) == []
    return plan


@pytest.mark.parametrize("engine", ENGINES)
def test_stops_on_a_line_make_one_route_from_the_farthest_in(engine):
    a = school("A", 0, 0, "710")
    stops = tuple(Stop(f"s{k}", k * 3 * FT_PER_MIN, 0, "A", 10) for k in (2, 1, 3))
    plan = planned(Instance("line", (a,), stops), engine)
    assert len(plan.buses) == 1
    assert [v.stop_id for v in plan.routes[0].visits] == ["s3", "s2", "s1"]
    assert plan.routes[0].school_arrival_s == a.bell_s


@pytest.mark.parametrize("engine", ENGINES)
def test_a_full_bus_needs_a_second_route_and_bus_at_the_same_bell(engine):
    a = school("A", 0, 0, "710")
    stops = (Stop("s1", FT_PER_MIN, 0, "A", 40), Stop("s2", 2 * FT_PER_MIN, 0, "A", 40))
    plan = planned(Instance("full", (a,), stops), engine)
    assert (len(plan.routes), len(plan.buses)) == (2, 2)


@pytest.mark.parametrize("engine", ENGINES)
def test_stops_on_either_side_of_the_school_beyond_the_ride_limit_get_a_route_each(engine):
    a = school("A", 0, 0, "710")
    stops = (Stop("e", 20 * FT_PER_MIN, 0, "A", 5), Stop("w", -20 * FT_PER_MIN, 0, "A", 5))
    plan = planned(Instance("apart", (a,), stops), engine)
    assert len(plan.routes) == 2
    one_route = planned(Instance("apart", (a,), stops), engine, Params(max_ride_s=5400))
    assert len(one_route.routes) == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_a_stop_with_more_children_than_a_bus_holds_is_split(engine):
    a = school("A", 0, 0, "710")
    plan = planned(Instance("big", (a,), (Stop("s", FT_PER_MIN, 0, "A", 100),)), engine)
    assert sorted(r.load for r in plan.routes) == [34, 66]


@pytest.mark.parametrize("engine", ENGINES)
def test_schools_an_hour_apart_share_one_bus_and_ten_minutes_apart_do_not(engine):
    a, b = school("A", 0, 0, "710"), school("B", 10 * FT_PER_MIN, 0, "810")
    stops = (Stop("sa", 0, 10 * FT_PER_MIN, "A", 20), Stop("sb", 10 * FT_PER_MIN, 10 * FT_PER_MIN, "B", 20))
    plan = planned(Instance("two", (a, b), stops), engine)
    assert len(plan.buses) == 1
    assert [r.school_id for r in plan.buses[0]] == ["A", "B"]
    close = school("B", 10 * FT_PER_MIN, 0, "720")
    assert len(planned(Instance("two", (a, close), stops), engine).buses) == 2


def test_a_stop_beyond_the_ride_limit_from_its_school_is_refused():
    a = school("A", 0, 0, "710")
    with pytest.raises(ValueError, match="stop far is more than the maximum ride"):
        solve(Instance("far", (a,), (Stop("far", 50 * FT_PER_MIN, 0, "A", 5),)), PARAMS, 0.5)


def test_a_cut_of_a_real_instance_plans_feasibly_with_progress_shown():
    inst = cut(benchmark("RSRB01"), ["200001", "200002", "200003"], 12)
    messages = []
    plan = solve(inst, PARAMS, time_limit_s=1.5, progress=messages.append)
    assert check_plan(inst, plan.to_json(), PARAMS) == []
    assert len(messages) == 4
    assert messages[-1].startswith(f"{len(plan.routes)} routes chained into {len(plan.buses)} buses")


def test_a_variant_the_library_cannot_meet_in_time_is_skipped_and_all_failing_is_an_error(
        monkeypatch):
    from routing.planning import solver
    from routing.planning.routes import NoRoutesFound, build_routes

    def spans_fail(*args, **kwargs):
        if args[7] is not None:  # max_span_s
            raise NoRoutesFound("nothing in time")
        return build_routes(*args, **kwargs)

    a = school("A", 0, 0, "710")
    inst = Instance("skip", (a,), (Stop("s", FT_PER_MIN, 0, "A", 10),))
    monkeypatch.setattr(solver, "build_routes", spans_fail)
    assert len(solve(inst, PARAMS, 0.5).routes) == 1

    def all_fail(*args, **kwargs):
        raise NoRoutesFound("nothing in time")

    monkeypatch.setattr(solver, "build_routes", all_fail)
    with pytest.raises(NoRoutesFound, match="school A: .* give it more time"):
        solve(inst, PARAMS, 0.5)


def test_straight_line_travel_is_euclidean_at_the_folded_speed():
    straight = Params(metric="straight", speed_per_s=10.0)
    assert straight.travel_s(0, 0, 300, 400) == 50.0
    assert Params(speed_per_s=10.0).travel_s(0, 0, 300, 400) == 70.0
