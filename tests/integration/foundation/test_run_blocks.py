"""A bundle's runs may name the vehicle planned to drive them (SPEC v1.1: ``runs[].vehicle_id``,
a bus's block): stored, counted, checked, and handed to the tracker."""

import pytest

from backend.bundle import BundleError, import_bundle
from backend.extensions import db
from backend.models import RouteRun
from backend.tracking_service import build_contexts


def with_runs(bundle, vehicle_id):
    route = bundle["routes"][0]
    times = [s.pop("time") for s in route["stops"]]
    route["runs"] = [{"id": "zt-am-1-a", "times": times, "days": route.pop("days"),
                      "vehicle_id": vehicle_id}]
    return bundle


def test_a_runs_planned_vehicle_is_stored_and_the_tracker_sees_it(app, sample_bundle):
    with app.app_context():
        import_bundle(with_runs(sample_bundle, "bus-07"))
        assert db.session.get(RouteRun, "zt-am-1-a").vehicle_id == "bus-07"
        with db.engine.connect() as conn:
            ctx = build_contexts(conn, ["bus-07"])["bus-07"]
        [run] = next(r for r in ctx.routes if r.id == "zt-am-1").runs
        assert run.vehicle_id == "bus-07"


def test_changing_a_runs_planned_vehicle_is_an_update(app, sample_bundle):
    import copy
    with app.app_context():
        import_bundle(with_runs(copy.deepcopy(sample_bundle), "bus-07"))
        summary = import_bundle(with_runs(sample_bundle, "bus-spare"))
        assert summary.updated["runs"] == 1
        assert db.session.get(RouteRun, "zt-am-1-a").vehicle_id == "bus-spare"


def test_an_unknown_planned_vehicle_is_an_error_with_its_path(app, sample_bundle):
    with app.app_context(), pytest.raises(BundleError) as caught:
        import_bundle(with_runs(sample_bundle, "bus-99"))
    assert 'routes[0].runs[0].vehicle_id: unknown vehicle "bus-99"' in caught.value.lines()
