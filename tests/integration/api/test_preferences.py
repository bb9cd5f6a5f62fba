"""GET/PUT /me/preferences (SPEC §5): defaults until set, replaced as a whole, bad input refused
with a problem that names the field, and what is stored is what the notification rules read."""

from __future__ import annotations

import pytest

from backend.extensions import db
from backend.models import User
from notifications.model import Preferences
from tests.conftest import login

PARENT = ("zhang.lanlan", "demo-parent-1")
SPEC_DEFAULTS = {"notify_before_min": 5.0, "notify_within_m": None,
                 "quiet_hours": {"from": "22:00", "to": "06:00"},
                 "channels": ["app", "mqtt", "webhook"], "language": "zh-CN"}


def test_defaults_until_set(client, imported):
    response = client.get("/api/v1/me/preferences", headers=login(client, *PARENT))
    assert response.status_code == 200
    assert response.get_json() == SPEC_DEFAULTS


def test_put_replaces_and_is_what_the_rules_read(app, client, imported):
    headers = login(client, *PARENT)
    body = {"notify_before_min": 8, "notify_within_m": 500, "quiet_hours": None,
            "channels": ["app", "mqtt", "app"], "language": "en"}
    response = client.put("/api/v1/me/preferences", json=body, headers=headers)
    assert response.status_code == 200, response.get_json()
    expected = {"notify_before_min": 8.0, "notify_within_m": 500.0, "quiet_hours": None,
                "channels": ["app", "mqtt"], "language": "en"}
    assert response.get_json() == expected
    assert client.get("/api/v1/me/preferences", headers=headers).get_json() == expected
    with app.app_context():
        stored = db.session.query(User).filter_by(username=PARENT[0]).one().preferences
    prefs = Preferences.from_json(stored)
    assert (prefs.notify_before_min, prefs.notify_within_m, prefs.quiet_hours,
            prefs.channels, prefs.language) == (8.0, 500.0, None, ("app", "mqtt"), "en")

    # a later PUT replaces the whole document: what it leaves out is back to its default
    response = client.put("/api/v1/me/preferences", json={"language": "en"}, headers=headers)
    assert response.get_json() == {**SPEC_DEFAULTS, "language": "en"}


def test_quiet_hours_round_trip(client, imported):
    headers = login(client, *PARENT)
    body = {"quiet_hours": {"from": "21:30", "to": "05:45"}}
    response = client.put("/api/v1/me/preferences", json=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["quiet_hours"] == {"from": "21:30", "to": "05:45"}


@pytest.mark.parametrize("body, field", [
    ({"notify_before_min": 0}, "notify_before_min"),
    ({"notify_before_min": "soon"}, "notify_before_min"),
    ({"notify_within_m": -5}, "notify_within_m"),
    ({"quiet_hours": {"from": "25:00", "to": "06:00"}}, "quiet_hours"),
    ({"quiet_hours": {"from": "22:00"}}, "quiet_hours"),
    ({"channels": ["sms"]}, "channels"),
    ({"channels": "app"}, "channels"),
    ({"language": "fr"}, "language"),
    ({"unknown": 1}, "unknown"),
])
def test_bad_input_is_a_problem_naming_the_field(client, imported, body, field):
    headers = login(client, *PARENT)
    response = client.put("/api/v1/me/preferences", json=body, headers=headers)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in str(response.get_json())
    # nothing was stored
    assert client.get("/api/v1/me/preferences", headers=headers).get_json() == SPEC_DEFAULTS


def test_not_json_is_refused(client, imported):
    headers = login(client, *PARENT)
    response = client.put("/api/v1/me/preferences", data="notify_before_min=3",
                          headers={**headers, "Content-Type": "text/plain"})
    assert response.status_code in (400, 415, 422)
    assert response.mimetype == "application/problem+json"


def test_needs_a_token(client, imported):
    assert client.get("/api/v1/me/preferences").status_code == 401
    assert client.put("/api/v1/me/preferences", json={}).status_code == 401


def test_a_channel_the_district_registered_can_be_chosen(client, imported):
    from notifications.channels import register
    from notifications.channels.registry import unregister

    headers = login(client, *PARENT)
    assert client.put("/api/v1/me/preferences", json={"channels": ["app", "sms"]},
                      headers=headers).status_code == 422
    register("sms", lambda config: None)
    try:
        response = client.put("/api/v1/me/preferences", json={"channels": ["app", "sms"]},
                              headers=headers)
        assert response.status_code == 200
        assert response.get_json()["channels"] == ["app", "sms"]
    finally:
        unregister("sms")
