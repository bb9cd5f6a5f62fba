"""A district's own plan (``xiaoche plan --district``) is a draft bundle the import accepts."""

import copy
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from backend.bundle import import_bundle
from backend.cli.plan import plan_command
from backend.extensions import db
from backend.models import Route, RouteRun, Vehicle
from backend.planning_service import PlanningError, plan_district


def seconds(hh_mm_ss: str) -> int:
    h, m, s = (int(p) for p in hh_mm_ss.split(":"))
    return h * 3600 + m * 60 + s


def test_the_sample_districts_plan_imports_with_each_run_on_its_planned_bus(app, imported):
    draft, report = plan_district(imported, time_limit_s=2)
    assert report["buses"] == len(draft["vehicles"]) >= 1
    assert report["routes"] == len(draft["routes"])
    assert sum(report["children_per_bus"]) == 4  # s-003 has no stop: not planned
    assert report["longest_ride_min"] <= 45
    assert "straight line × 1.3 at 30.0 km/h" in report["travel"]
    with app.app_context():
        summary = import_bundle(draft)
        assert summary.created["routes"] == len(draft["routes"])
        for route in draft["routes"]:
            stored = db.session.get(Route, route["id"])
            assert stored.school_id == route["school_id"]
            run = db.session.scalars(select(RouteRun).where(RouteRun.route_id == route["id"])).one()
            assert run.vehicle_id == route["runs"][0]["vehicle_id"]
            # the school is reached at its bell time, read from the district's morning routes
            bell = {"zhuting": "07:20", "longfeng": "07:10"}[route["school_id"]]
            assert route["runs"][0]["times"][-1] == f"{bell}:00"
            # each on the bus that serves that school today (its driver knows the villages)
            today = {"zhuting": "bus-07", "longfeng": "bus-12"}[route["school_id"]]
            assert run.vehicle_id == today
        assert {v.id for v in db.session.scalars(select(Vehicle))} >= {
            v["id"] for v in draft["vehicles"]}
        again = import_bundle(draft)
        assert not again.created and not again.updated
    # the buses keep the routes they drive today, next to the planned ones
    today = {v["id"]: set(v["route_ids"]) for v in imported["vehicles"]}
    for vehicle in draft["vehicles"]:
        assert today[vehicle["id"]] <= set(vehicle["route_ids"])




def test_a_district_with_too_few_buses_gets_new_ones_in_the_draft(app, imported):
    district = copy.deepcopy(imported)
    district["vehicles"] = [v for v in district["vehicles"] if v["id"] != "bus-12"
                            and v["id"] != "bus-spare"]
    draft, report = plan_district(district, time_limit_s=2)
    assert report["buses"] == 2
    assert [v["id"] for v in draft["vehicles"]] == ["bus-07", "plan-bus-2"]
    with app.app_context():
        assert import_bundle(draft).created["vehicles"] == 1


def test_a_school_without_a_bell_time_must_be_given_one(sample_bundle):
    district = copy.deepcopy(sample_bundle)
    district["routes"] = [r for r in district["routes"] if r["school_id"] != "longfeng"]
    with pytest.raises(PlanningError, match="no bell time for longfeng.*--bell longfeng=HH:MM"):
        plan_district(district, time_limit_s=1)
    draft, _ = plan_district(district, time_limit_s=1, bells={"longfeng": "07:45"})
    longfeng = [r for r in draft["routes"] if r["school_id"] == "longfeng"]
    assert longfeng and all(r["runs"][0]["times"][-1] == "07:45:00" for r in longfeng)


def test_the_command_writes_the_draft_and_prints_the_report_and_the_travel_model(
        tmp_path, sample_bundle):
    district, out = tmp_path / "d.json", tmp_path / "draft.json"
    district.write_text(json.dumps(sample_bundle, ensure_ascii=False), encoding="utf-8")
    result = CliRunner().invoke(plan_command, [
        "--district", str(district), "--max-ride-min", "30", "--time-limit", "2",
        "--speed-kmh", "40", "--road-factor", "1.4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "travel: straight line × 1.4 at 40.0 km/h" in result.stdout
    draft = json.loads(out.read_text(encoding="utf-8"))
    for route in draft["routes"]:
        times = [seconds(t) for t in route["runs"][0]["times"]]
        assert times[-1] - times[0] <= 30 * 60


@pytest.mark.parametrize(("args", "message"), [
    (["--bell", "zhuting"], "is not SCHOOL=HH:MM"),
    (["--bell", "zhuting=7h"], "'7h' is not a time HH:MM"),
    (["--max-ride-s", "1800", "--max-ride-min", "30"], "not both"),
])
def test_bad_district_options_are_clear_errors(tmp_path, sample_bundle, args, message):
    district = tmp_path / "d.json"
    district.write_text(json.dumps(sample_bundle, ensure_ascii=False), encoding="utf-8")
    result = CliRunner().invoke(plan_command, ["--district", str(district), *args,
                                               "--out", str(tmp_path / "o.json")])
    assert result.exit_code != 0
    assert message in result.output


def test_post_plans_plans_the_stored_district_for_an_admin_and_the_draft_imports(
        app, client, imported):
    from tests.conftest import login

    admin = login(client, "admin", "demo-admin-1")
    answer = client.post("/api/v1/plans", json={"max_ride_min": 30, "time_limit_s": 2},
                         headers=admin)
    assert answer.status_code == 200, answer.get_json()
    plan = answer.get_json()
    assert plan["report"]["buses"] == len(plan["draft"]["vehicles"])
    assert plan["report"]["longest_ride_min"] <= 30
    imported_again = client.post("/api/v1/admin/import", json=plan["draft"], headers=admin)
    assert imported_again.status_code == 200, imported_again.get_json()
    assert imported_again.get_json()["created"]["routes"] == plan["report"]["routes"]


def test_post_plans_is_for_admins_and_refuses_what_it_cannot_plan(app, client, imported):
    from tests.conftest import login

    staff = login(client, "houqin.wang", "demo-logistics-1")
    assert client.post("/api/v1/plans", json={}, headers=staff).status_code == 403
    admin = login(client, "admin", "demo-admin-1")
    answer = client.post("/api/v1/plans", json={"bells": {"zhuting": "7h20"}}, headers=admin)
    assert answer.status_code == 422
    assert "'7h20' is not a time HH:MM" in answer.get_json()["detail"]
    answer = client.post("/api/v1/plans", json={"time_limit_s": 0}, headers=admin)
    assert answer.status_code == 422
