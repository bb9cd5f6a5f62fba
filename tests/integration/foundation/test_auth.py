"""Tokens, roles and problem+json errors."""

import time

from backend.security import issue_user_token
from tests.conftest import login


def test_a_user_logs_in_and_gets_a_bearer_token(client, imported):
    response = client.post(
        "/api/v1/auth/token", json={"username": "houqin.wang", "password": "demo-logistics-1"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["role"] == "logistics"
    assert body["expires_in"] > 0 and body["access_token"]


def test_a_wrong_password_is_a_401_problem(client, imported):
    response = client.post(
        "/api/v1/auth/token", json={"username": "houqin.wang", "password": "nope-nope"}
    )
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 401 and body["title"] and "password" in body["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_login_without_a_password_is_a_422_naming_the_field(client, imported):
    response = client.post("/api/v1/auth/token", json={"username": "admin"})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "password" in response.get_json()["errors"]


def test_a_tampered_token_is_a_401(client, imported):
    headers = login(client, "admin", "demo-admin-1")
    token = headers["Authorization"][:-2] + (
        "AA" if not headers["Authorization"].endswith("AA") else "BB"
    )
    response = client.post("/api/v1/admin/import", json={}, headers={"Authorization": token})
    assert response.status_code == 401
    assert response.get_json()["detail"] == "the token is invalid"


def test_an_expired_token_is_a_401(app, client, imported):
    token = issue_user_token(app.config["SECRET_KEY"], "admin", 0)
    app.config["TOKEN_TTL_S"] = 1
    time.sleep(2.1)  # itsdangerous timestamps have one-second resolution
    response = client.post(
        "/api/v1/admin/import", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert "expired" in response.get_json()["detail"]


def test_no_token_is_a_401(client, imported):
    response = client.post("/api/v1/admin/import", json={})
    assert response.status_code == 401


def test_a_non_admin_import_is_a_403(client, imported):
    headers = login(client, "houqin.wang", "demo-logistics-1")
    response = client.post("/api/v1/admin/import", json={"schools": []}, headers=headers)
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"


def test_an_admin_imports_over_http_and_gets_every_problem_back(client, imported, sample_bundle):
    headers = login(client, "admin", "demo-admin-1")
    ok = client.post("/api/v1/admin/import", json=sample_bundle, headers=headers)
    assert ok.status_code == 200
    assert ok.get_json()["unchanged"]["routes"] == 3
    sample_bundle["routes"][0]["stops"][0]["stop_id"] = "x"
    sample_bundle["students"][0]["school_id"] = "y"
    bad = client.post("/api/v1/admin/import", json=sample_bundle, headers=headers)
    assert bad.status_code == 422
    errors = bad.get_json()["errors"]
    assert errors["routes[0].stops[0].stop_id"] == ['unknown stop "x"']
    assert errors["students[0].school_id"] == ['unknown school "y"']


def test_a_body_that_is_not_json_is_a_400(client, imported):
    headers = login(client, "admin", "demo-admin-1")
    response = client.post(
        "/api/v1/admin/import", data="{not json", headers=headers, content_type="application/json"
    )
    assert response.status_code == 400


def test_healthz_answers_ok_when_the_database_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_an_unknown_path_is_a_404_problem(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
