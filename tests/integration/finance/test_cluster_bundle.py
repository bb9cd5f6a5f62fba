"""Clusters and 三级九等 levels in the district bundle: what a wrong one says, and that
importing twice is importing once."""

from __future__ import annotations

import copy

import pytest

from backend.bundle import BundleError, import_bundle
from backend.extensions import db
from backend.models import Cluster, ClusterMember
from tests.conftest import login


def errors_of(app, bundle: dict) -> dict[str, list[str]]:
    with app.app_context(), pytest.raises(BundleError) as caught:
        import_bundle(bundle)
    return caught.value.errors


def test_a_cluster_naming_an_unknown_school_or_a_school_of_another_cluster_is_refused(
        app, imported):
    bad = {"clusters": [{"id": "x", "name": "X", "core_school_id": "longfeng",
                         "member_school_ids": ["nowhere"]}]}
    errors = errors_of(app, bad)
    assert errors["clusters[0].member_school_ids[0]"] == ['unknown school "nowhere"']
    assert errors["clusters[0].core_school_id"] == [
        'school "longfeng" is already in cluster "zhuting-jlt"']
    itself = {"clusters": [{"id": "y", "name": "Y", "core_school_id": "zhuting",
                            "member_school_ids": ["zhuting"]}]}
    assert errors_of(app, itself)["clusters[0].member_school_ids"] == [
        "the core school is not one of its own members"]


def test_levels_must_be_three_by_three_and_tile_the_distance(app, imported, sample_bundle):
    policy = copy.deepcopy(sample_bundle["subsidy_policy"])
    policy["levels"] = policy["levels"][:2]
    assert errors_of(app, {"subsidy_policy": policy})["subsidy_policy.levels"] == [
        "levels: 3 levels of 3 grades each (三级九等)"]
    policy = copy.deepcopy(sample_bundle["subsidy_policy"])
    policy["levels"][2]["grades"][0]["min_km"] = 21
    assert errors_of(app, {"subsidy_policy": policy})["subsidy_policy.levels"] == [
        "the grade after level 2 grade 3 must start where it ends"]
    bare = {"id": "bare", "currency": "CNY"}
    assert errors_of(app, {"subsidy_policy": bare})["subsidy_policy.tiers"] == [
        "a policy has tiers, levels or both"]


def test_a_policy_of_levels_alone_is_valid(app, imported, sample_bundle):
    policy = {k: v for k, v in sample_bundle["subsidy_policy"].items() if k != "tiers"}
    with app.app_context():
        import_bundle({"subsidy_policy": {**policy, "id": "2027"}})


def test_importing_a_cluster_twice_is_importing_it_once_and_members_follow_the_bundle(
        app, imported, sample_bundle):
    with app.app_context():
        again = import_bundle(copy.deepcopy(sample_bundle))
        assert again.unchanged["clusters"] == 1 and not again.updated.get("clusters")
        import_bundle({"clusters": [{**sample_bundle["clusters"][0], "name": "朱亭学区"}]})
        assert db.session.get(Cluster, "zhuting-jlt").name == "朱亭学区"
        assert db.session.query(ClusterMember).count() == 1


def test_a_bad_cluster_over_http_is_a_422_problem(client, imported):
    response = client.post("/api/v1/admin/import", headers=login(client, "admin", "demo-admin-1"),
                           json={"clusters": [{"id": "z", "name": "Z", "core_school_id": "x",
                                               "member_school_ids": []}]})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
