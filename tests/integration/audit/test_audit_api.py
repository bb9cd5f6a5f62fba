"""GET /api/v1/audit/trips (SPEC §5): staff only, scoped to their schools' routes, problem+json."""

from __future__ import annotations

import pytest

from backend.audit_service import audit_date
from tests.conftest import login
from tests.integration.audit.conftest import MONDAY

URL = "/api/v1/audit/trips"


@pytest.fixture
def audited(app, monday_drive):
    with app.app_context():
        audit_date(MONDAY)


def get(client, headers, **query):
    return client.get(URL, headers=headers, query_string=query)


def test_admin_gets_the_days_trips_in_the_spec_shape(client, audited):
    admin = login(client, "admin", "demo-admin-1")
    response = get(client, admin, date="2026-11-23")
    assert response.status_code == 200
    [trip] = response.get_json()
    assert trip["trip_id"] == "20261123-zt-am-1-bus-07"
    assert (trip["run_id"], trip["route_id"], trip["vehicle_id"]) == (
        "zt-am-1",
        "zt-am-1",
        "bus-07",
    )
    assert trip["started_at"] == "2026-11-22T22:40:00Z"
    assert set(trip["stops"][0]) == {
        "stop_id",
        "scheduled_at",
        "arrived_at",
        "departed_at",
        "status",
        "late_s",
    }
    assert [s["status"] for s in trip["stops"]] == ["visited"] * 4
    assert isinstance(trip["distance_km"], float) and trip["deviations"] == []
    assert get(client, admin, date="2026-11-24").get_json() == []


def test_trips_are_listed_oldest_start_first(client, app, audited):
    from backend.extensions import db
    from backend.models import TripAudit

    with app.app_context():
        later = dict(db.session.get(TripAudit, "20261123-zt-am-1-bus-07").result)
        # half a second later, yet "…40:00.500Z" sorts before "…40:00Z" as text, and its
        # trip id before bus-07's: only ordering by time puts it second
        later.update(trip_id="20261123-zt-am-1-bus-00", started_at="2026-11-22T22:40:00.500Z")
        db.session.add(
            TripAudit(
                trip_id=later["trip_id"],
                service_date="2026-11-23",
                route_id="zt-am-1",
                run_id="zt-am-1",
                vehicle_id="bus-00",
                result=later,
                computed_at=0.0,
            )
        )
        db.session.commit()
    admin = login(client, "admin", "demo-admin-1")
    trips = get(client, admin, date="2026-11-23").get_json()
    assert [t["trip_id"] for t in trips] == ["20261123-zt-am-1-bus-07", "20261123-zt-am-1-bus-00"]


def test_logistics_of_the_routes_school_sees_its_trips(client, audited):
    zhuting = login(client, "houqin.wang", "demo-logistics-1")
    assert [t["route_id"] for t in get(client, zhuting, date="2026-11-23").get_json()] == [
        "zt-am-1"
    ]
    response = get(client, zhuting, date="2026-11-23", route_id="zt-am-1")
    assert response.status_code == 200 and len(response.get_json()) == 1


def test_logistics_of_another_school_sees_none_and_the_route_is_a_404(client, audited):
    longfeng = login(client, "houqin.chen", "demo-logistics-2")
    assert get(client, longfeng, date="2026-11-23").get_json() == []
    response = get(client, longfeng, date="2026-11-23", route_id="zt-am-1")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_a_parent_may_not_read_the_audit(client, audited):
    parent = login(client, "zhang.lanlan", "demo-parent-1")
    response = get(client, parent, date="2026-11-23")
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"


def test_without_a_token_the_audit_is_a_401(client, audited):
    assert get(client, {}, date="2026-11-23").status_code == 401


@pytest.mark.parametrize(
    "query", [{}, {"date": "2026-13-01"}, {"date": "23/11/2026"}, {"date": ""}]
)
def test_a_missing_or_bad_date_is_a_422_naming_the_field(client, audited, query):
    admin = login(client, "admin", "demo-admin-1")
    response = get(client, admin, **query)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 422 and "date" in body["errors"]


def test_an_unknown_route_is_a_404(client, audited):
    admin = login(client, "admin", "demo-admin-1")
    response = get(client, admin, date="2026-11-23", route_id="no-such-route")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
