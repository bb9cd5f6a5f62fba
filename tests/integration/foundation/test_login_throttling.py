"""Login throttling: failed logins are limited per username and per client address."""

from __future__ import annotations

import pytest

from tests.conftest import make_test_app

URL = "/api/v1/auth/token"


@pytest.fixture
def throttled(imported, _migrated, tmp_path):
    """A client of an app with the login limits on (the suite's apps have them off)."""
    app = make_test_app(_migrated, tmp_path / "throttled", RATELIMIT_ENABLED=True)
    yield app.test_client()
    from backend.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def attempt(client, username: str, password: str = "wrong-password", ip: str = "10.0.0.1"):
    return client.post(
        URL, json={"username": username, "password": password}, environ_base={"REMOTE_ADDR": ip}
    )


def test_the_eleventh_wrong_login_for_one_username_in_a_minute_is_a_429_problem(throttled):
    for _ in range(10):
        assert attempt(throttled, "houqin.wang").status_code == 401
    response = attempt(throttled, "houqin.wang")
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 429 and body["title"] == "Too Many Requests"
    assert body["type"] and "username" in body["detail"]
    assert 0 < int(response.headers["Retry-After"]) <= 60
    # the right password does not get through either until the window frees
    assert attempt(throttled, "houqin.wang", "demo-logistics-1").status_code == 429


def test_other_usernames_are_not_throttled_by_one_accounts_failures(throttled):
    for _ in range(11):
        attempt(throttled, "houqin.wang")
    assert attempt(throttled, "houqin.chen").status_code == 401
    ok = attempt(throttled, "admin", "demo-admin-1")
    assert ok.status_code == 200 and ok.get_json()["role"] == "admin"


def test_one_address_guessing_across_many_usernames_is_throttled(throttled):
    for k in range(30):
        assert attempt(throttled, f"guess-{k}", ip="10.0.0.9").status_code == 401
    response = attempt(throttled, "admin", "demo-admin-1", ip="10.0.0.9")
    assert response.status_code == 429 and "address" in response.get_json()["detail"]
    assert response.headers["Retry-After"]
    assert attempt(throttled, "admin", "demo-admin-1", ip="10.0.0.10").status_code == 200


def test_successful_logins_do_not_count_towards_the_limits(throttled):
    for _ in range(35):
        assert attempt(throttled, "admin", "demo-admin-1").status_code == 200


def test_the_limits_are_off_in_the_test_suites_apps(client, imported):
    for _ in range(12):
        assert attempt(client, "houqin.wang").status_code == 401
