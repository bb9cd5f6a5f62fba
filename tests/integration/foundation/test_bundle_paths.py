"""Every mistake of a bundle is reported with its JSON path in the bundle's own numbering.

An item that fails its schema stays in the numbering: a mistake in ``routes[2]`` is reported as
``routes[2]…`` even when ``routes[0]`` is malformed (issue 15, item 2).
"""

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.bundle import BundleError, import_bundle
from backend.extensions import db
from tests.integration.foundation.test_bundle_import import snapshot


def test_three_mistakes_are_reported_with_the_bundles_own_indices_and_nothing_is_written(
    app, imported, sample_bundle
):
    bad = copy.deepcopy(sample_bundle)
    bad["routes"][0]["stops"][1]["time"] = "25:99"  # shape: a time that is no time
    bad["routes"][1]["stops"][0]["stop_id"] = "nowhere"  # reference, behind a malformed route
    bad["stops"][0]["lat"] = 95.0  # shape
    bad["students"][0]["route_id"] = "zt-am-9"  # reference
    bad["students"][1]["name"] = ""  # shape, ahead of the next reference mistake
    bad["students"][2]["school_id"] = "no-school"  # reference, behind a malformed student
    with app.app_context():
        before = snapshot()
        with pytest.raises(BundleError) as caught:
            import_bundle(bad)
        assert snapshot() == before
    assert sorted(caught.value.errors) == [
        "routes[0].stops[1].time",
        "routes[1].stops[0].stop_id",
        "stops[0].lat",
        "students[0].route_id",
        "students[1].name",
        "students[2].school_id",
    ]
    assert caught.value.errors["routes[1].stops[0].stop_id"] == ['unknown stop "nowhere"']
    assert caught.value.errors["students[2].school_id"] == ['unknown school "no-school"']


def test_duplicate_ids_behind_a_malformed_item_name_their_own_indices(app, sample_bundle):
    bad = copy.deepcopy(sample_bundle)
    bad["stops"].insert(0, {"id": "broken"})  # no name, no place
    bad["stops"].append(copy.deepcopy(bad["stops"][1]))  # the same id twice
    last = len(bad["stops"]) - 1
    with app.app_context(), pytest.raises(BundleError) as caught:
        import_bundle(bad)
    assert f"stops[{last}].id" in caught.value.errors
    assert "stops[1].id" in caught.value.errors
    assert "stops[0].name" in caught.value.errors


def _unknown_reference(section: str, item: dict) -> str:
    """Break a reference of ``item`` and return the path of the mistake inside it."""
    if section == "routes":
        item["stops"][0]["stop_id"] = "nowhere"
        return "stops[0].stop_id"
    if section == "vehicles":
        item["route_ids"] = ["no-route"]
        return "route_ids[0]"
    if section == "devices":
        item["vehicle_id"] = "no-vehicle"
        return "vehicle_id"
    if section == "students":
        item["school_id"] = "no-school"
        return "school_id"
    item["home_school_id"] = "no-school"  # teachers
    return "home_school_id"


SECTIONS = ["routes", "vehicles", "devices", "students", "teachers"]


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_broken_item_inserted_anywhere_leaves_every_other_path_where_it_is(
    app, sample_bundle, data
):
    """Insert malformed items at random places; the reference mistake of another item is
    reported at that item's index in the document as sent, and each malformed item at its own."""
    section = data.draw(st.sampled_from(SECTIONS), label="section")
    bundle = copy.deepcopy(sample_bundle)
    items = bundle[section]
    target = data.draw(st.integers(0, len(items) - 1), label="target")
    inner = _unknown_reference(section, items[target])
    marked = items[target]
    broken = data.draw(st.integers(1, 3), label="broken items")
    for n in range(broken):
        at = data.draw(st.integers(0, len(items)), label=f"broken at ({n})")
        items.insert(at, {"id": f"broken-{n}", "unexpected": True})
    where = next(i for i, item in enumerate(items) if item is marked)
    broken_at = [i for i, item in enumerate(items) if "unexpected" in item]
    with app.app_context():
        with pytest.raises(BundleError) as caught:
            import_bundle(bundle)
        db.session.rollback()
    errors = caught.value.errors
    assert errors[f"{section}[{where}].{inner}"], errors
    for i in broken_at:
        assert f"{section}[{i}].unexpected" in errors
    # nothing else is misnumbered: every path of the section names a broken item or the target
    numbered = {path.split("]")[0] + "]" for path in errors if path.startswith(f"{section}[")}
    assert numbered == {f"{section}[{i}]" for i in [*broken_at, where]}
