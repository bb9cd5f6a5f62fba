"""The import summary counts every change, nested things and timetables included, and the CLI
prints it (issue 15, item 2)."""

import copy
import json

import pytest

from backend.bundle import import_bundle
from backend.bundle.schema import parse_schedule_time
from backend.cli.data import import_command
from backend.extensions import db
from backend.models import RouteRun


def _changed(summary) -> dict:
    d = summary.as_dict()
    return {verb: d[verb] for verb in ("created", "updated", "deleted", "deactivated") if d[verb]}


def test_a_changed_stop_time_is_counted_as_an_updated_run_of_an_updated_route(
    app, imported, sample_bundle
):
    sample_bundle["routes"][0]["stops"][1]["time"] = "07:00"
    with app.app_context():
        summary = import_bundle(sample_bundle)
        assert db.session.get(RouteRun, "zt-am-1").times_s[1] == 7 * 3600
    assert _changed(summary) == {"updated": {"routes": 1, "runs": 1}}
    assert summary.unchanged["routes"] == 2 and summary.unchanged["runs"] == 2
    assert summary.unchanged["route_stops"] == 12


def test_a_first_import_counts_every_nested_thing_it_creates(app, sample_bundle):
    with app.app_context():
        summary = import_bundle(sample_bundle)
    created = summary.as_dict()["created"]
    assert created["runs"] == 3 and created["route_stops"] == 12
    assert created["calendar_days"] == 8
    assert created["teacher_assignments"] == 1
    assert created["vehicle_routes"] == sum(len(v["route_ids"]) for v in sample_bundle["vehicles"])
    scopes = sum(len(u.get(k, [])) for u in sample_bundle["users"]
                 for k in ("student_ids", "vehicle_ids", "school_ids"))
    assert created["user_scopes"] == scopes
    assert not _changed(summary).keys() - {"created"}


def test_runs_stops_days_assignments_and_links_the_bundle_no_longer_lists_are_counted_deleted(
    app, imported, sample_bundle
):
    route = sample_bundle["routes"][0]
    times = [s.pop("time") for s in route["stops"]]
    route["runs"] = [{"id": "zt-am-1", "times": times, "days": route.pop("days")}]
    with app.app_context():  # the same timetable written as runs: nothing changes
        assert _changed(import_bundle(copy.deepcopy(sample_bundle))) == {}
    route["runs"].append({"id": "zt-am-1-late", "times": times, "dates": ["2026-11-28"]})
    with app.app_context():
        assert _changed(import_bundle(copy.deepcopy(sample_bundle))) == {
            "created": {"runs": 1}, "updated": {"routes": 1}}
    route["runs"].pop()  # the late run again not listed
    route["stops"].pop(2)  # a stop fewer
    for run in route["runs"]:
        run["times"].pop(2)
    sample_bundle["district"]["calendar"]["holidays"].pop()  # a holiday fewer
    sample_bundle["teachers"][0]["assignments"] = []
    assert sample_bundle["vehicles"][0]["route_ids"] == ["zt-am-1", "zt-pm-1"]
    sample_bundle["vehicles"][0]["route_ids"] = ["zt-am-1"]
    sample_bundle["subsidy_policy"]["id"] = "2027"
    with app.app_context():
        summary = import_bundle(sample_bundle)
    assert _changed(summary) == {
        "created": {"subsidy_policy": 1},
        "updated": {"district": 1, "routes": 1, "runs": 1, "route_stops": 1, "teachers": 1,
                    "vehicles": 1},
        "deleted": {"runs": 1, "route_stops": 1, "calendar_days": 1, "teacher_assignments": 1,
                    "vehicle_routes": 1},  # bus-07 drove zt-am-1 and zt-pm-1
        "deactivated": {"subsidy_policy": 1},
    }


def test_importing_the_same_bundle_again_changes_nothing_and_says_so(
    app, imported, sample_bundle
):
    with app.app_context():
        summary = import_bundle(sample_bundle)
    assert _changed(summary) == {}
    assert summary.unchanged["runs"] == 3 and summary.unchanged["users"] == len(
        sample_bundle["users"])


def test_the_cli_prints_every_verb_and_kind_of_the_summary(app, imported, sample_bundle, tmp_path):
    sample_bundle["routes"][0]["stops"][1]["time"] = "07:00"
    sample_bundle["district"]["calendar"]["holidays"].pop()
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(sample_bundle, ensure_ascii=False), encoding="utf-8")
    result = app.test_cli_runner().invoke(import_command, [str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "updated: district 1, routes 1, runs 1" in lines
    assert "deleted: calendar_days 1" in lines
    assert any(line.startswith("unchanged: ") and "runs 2" in line for line in lines)


@pytest.mark.parametrize("new_route_first", [True, False])
def test_a_run_moves_between_two_routes_of_one_bundle_whichever_comes_first(
    app, imported, sample_bundle, new_route_first
):
    """Runs are written one by one: a run listed under another route of the same bundle moves
    there, whether its new route is written before or after its old one."""
    routes = {r["id"]: r for r in sample_bundle["routes"]}
    for route in routes.values():
        times = [s.pop("time") for s in route["stops"]]
        route["runs"] = [{"id": route["id"], "times": times, "days": route.pop("days")}]
    am, pm = routes["zt-am-1"], routes["zt-pm-1"]
    am["runs"].append({"id": "x-run", "times": am["runs"][0]["times"], "days": [6]})
    with app.app_context():
        import_bundle(copy.deepcopy(sample_bundle))
        assert db.session.get(RouteRun, "x-run").route_id == "zt-am-1"
    am["runs"].pop()
    pm["runs"].append({"id": "x-run", "times": pm["runs"][0]["times"], "days": [6]})
    if new_route_first:
        sample_bundle["routes"] = [pm, am, routes["lf-am-1"]]
    with app.app_context():
        summary = import_bundle(sample_bundle)
        run = db.session.get(RouteRun, "x-run")
        assert run.route_id == "zt-pm-1"
        assert run.times_s[0] == parse_schedule_time(pm["runs"][0]["times"][0])
        assert db.session.query(RouteRun).count() == 4
    assert summary.created["runs"] == 1 and summary.updated["routes"] >= 1
