"""The district bundle: idempotent, transactional, every mistake reported with its JSON path."""

import copy

import pytest
from sqlalchemy import select

from backend.bundle import BundleError, import_bundle
from backend.extensions import db
from backend.models import Device, Route, RouteRun, User


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every table, as comparable tuples."""
    rows = {}
    for table in db.metadata.sorted_tables:
        result = db.session.execute(select(table)).all()
        rows[table.name] = sorted(tuple(map(repr, row)) for row in result)
    return rows


def test_importing_the_sample_bundle_twice_gives_the_same_rows(app, sample_bundle):
    with app.app_context():
        first = import_bundle(copy.deepcopy(sample_bundle))
        after_first = snapshot()
        second = import_bundle(copy.deepcopy(sample_bundle))
        after_second = snapshot()
    assert after_first == after_second
    assert sum(first.created.values()) > 0
    assert not second.created and not second.updated
    assert after_first["route_runs"] and after_first["user_students"]


def test_sample_bundle_carries_the_whole_district(app, imported):
    with app.app_context():
        route = db.session.get(Route, "zt-am-1")
        assert [s.place_id for s in route.stops] == [
            "longfeng-cun",
            "shitang-cun",
            "dongan-cun",
            "zhuting",
        ]
        assert route.stops[-1].school_id == "zhuting"
        run = db.session.get(RouteRun, "zt-am-1")
        assert run.times_s == [
            6 * 3600 + 50 * 60,
            6 * 3600 + 58 * 60,
            7 * 3600 + 6 * 60,
            7 * 3600 + 20 * 60,
        ]
        assert run.days == [1, 2, 3, 4, 5]


def test_a_route_with_several_runs_and_explicit_dates_is_imported(app, imported):
    bundle = {
        "stops": [
            {"id": "kz-1", "name": "客站1", "lat": 27.70, "lon": 113.14},
            {"id": "kz-2", "name": "客站2", "lat": 27.69, "lon": 113.16},
        ],
        "routes": [
            {
                "id": "xian-3",
                "name": "县城3路",
                "school_id": None,
                "path": {
                    "type": "LineString",
                    "coordinates": [[113.140, 27.700], [113.160, 27.690]],
                },
                "corridor_m": 100,
                "stops": [{"stop_id": "kz-1"}, {"stop_id": "kz-2"}],
                "runs": [
                    {"id": "x3-0705", "times": ["07:05:00", "07:31:00"], "days": [1, 2, 3, 4, 5]},
                    {"id": "x3-late", "times": ["23:50", "24:20"], "dates": ["2026-11-28"]},
                ],
            }
        ],
    }
    with app.app_context():
        import_bundle(bundle)
        runs = {r.id: r for r in db.session.get(Route, "xian-3").runs}
    assert runs["x3-late"].times_s == [23 * 3600 + 50 * 60, 24 * 3600 + 20 * 60]
    assert runs["x3-late"].dates == ["2026-11-28"] and runs["x3-late"].days is None


def test_a_bundle_with_five_mistakes_reports_all_five_with_paths_and_writes_nothing(
    app, imported, sample_bundle
):
    bad = copy.deepcopy(sample_bundle)
    bad["routes"][1]["stops"][0]["stop_id"] = "nowhere"  # 1 unknown stop
    bad["stops"][2]["lat"] = 95.0  # 2 latitude out of range
    bad["vehicles"][0]["kind"] = "tractor"  # 3 bad enum
    bad["students"][0]["stop_id"] = "taihu-cun"  # 4 stop not on the route
    bad["users"][0]["student_ids"] = ["s-999"]  # 5 unknown student
    bad["schools"][0]["name"] = "改名了"  # a valid change, not written
    with app.app_context():
        before = snapshot()
        with pytest.raises(BundleError) as caught:
            import_bundle(bad)
        assert snapshot() == before
    assert caught.value.lines() == [
        "stops[2].lat: Must be greater than or equal to -90 and less than or equal to 90.",
        "vehicles[0].kind: Must be one of: school_bus, teacher_car, meal_truck.",
        'routes[1].stops[0].stop_id: unknown stop "nowhere"',
        'students[0].stop_id: stop "taihu-cun" is not on route "zt-am-1"',
        'users[0].student_ids[0]: unknown student "s-999"',
    ]


def test_every_mistake_of_shape_and_reference_is_reported_in_one_go_when_shapes_are_fine(
    app, imported, sample_bundle
):
    bad = copy.deepcopy(sample_bundle)
    bad["routes"][1]["stops"][0]["stop_id"] = "nowhere"
    bad["vehicles"][1]["route_ids"] = ["zt-am-1", "no-route"]
    bad["devices"].append({"id": "dev-new", "vehicle_id": "bus-07"})  # no token
    bad["teachers"][0]["vehicle_id"] = "bus-07"  # not a teacher car
    bad["students"][1]["card_id"] = "04A1B2C3"  # s-001's card
    with app.app_context(), pytest.raises(BundleError) as caught:
        import_bundle(bad)
    assert sorted(caught.value.errors) == sorted(
        [
            "routes[1].stops[0].stop_id",
            "vehicles[1].route_ids[1]",
            "devices[5].token",
            "teachers[0].vehicle_id",
            "students[1].card_id",
        ]
    )


@pytest.mark.parametrize(
    "mutate, path",
    [
        (lambda b: b["routes"][0]["stops"][1].update(time="25:99"), "routes[0].stops[1].time"),
        (lambda b: b["routes"][0].update(extra=1), "routes[0].extra"),
        (lambda b: b["district"].update(timezone="Mars/Olympus"), "district.timezone"),
        (lambda b: b["subsidy_policy"]["tiers"][1].update(min_km=6), "subsidy_policy.tiers"),
        (
            lambda b: b["routes"][0]["path"].update(coordinates=[[1, 2]]),
            "routes[0].path.coordinates",
        ),
        (lambda b: b["stops"].append(dict(b["stops"][0])), "stops[6].id"),
        (
            lambda b: b["users"][0].update(role="parent", school_ids=["zhuting"]),
            "users[0].school_ids",
        ),
    ],
)
def test_each_kind_of_mistake_names_its_path(app, sample_bundle, mutate, path):
    mutate(sample_bundle)
    with app.app_context(), pytest.raises(BundleError) as caught:
        import_bundle(sample_bundle)
    assert path in caught.value.errors, caught.value.errors


def test_passwords_and_device_tokens_are_stored_only_as_salted_hashes(app, imported):
    with app.app_context():
        user = db.session.scalars(select(User).filter_by(username="zhang.lanlan")).one()
        device = db.session.get(Device, "dev-bus-07")
        everything = repr(snapshot())
    assert "demo-parent-1" not in everything and "demo-token-bus-07" not in everything
    assert user.password_hash.startswith(("scrypt:", "pbkdf2:"))
    assert device.token_hash.startswith("$7$")


def test_changing_a_password_logs_out_old_tokens(app, client, imported, sample_bundle):
    from tests.conftest import login

    headers = login(client, "admin", "demo-admin-1")
    assert client.get("/api/v1/admin/rejects", headers=headers).status_code in (200, 404)
    sample_bundle["users"][-1]["password"] = "a-new-password"
    with app.app_context():
        import_bundle(sample_bundle)
    response = client.post("/api/v1/admin/import", json={}, headers=headers)
    assert response.status_code == 401
