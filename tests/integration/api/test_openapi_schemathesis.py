"""The OpenAPI document tells the truth: Schemathesis generates requests from
``/api/v1/openapi.json`` and sends them to the real app — the sample district on the test
database, with a bus mid-trip from pings stored through the real ingest pipeline — and every
answer must be no 5xx, a documented status, a documented content type and a body that matches
the documented schema (errors included: ``application/problem+json``).

Each caller sees a different API (scopes, roles), so the read API runs once as the admin and once
as a parent. The device endpoints run with a device token. ``/stream`` never ends, so it is left
out; ``POST /admin/import`` rewrites the district, so it runs alone, on a district of its own.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend.api.common import encode_cursor
from backend.extensions import db
from backend.ingest.pipeline import IngestPipeline
from backend.ingest.steps import tracking_step
from gps_ingest.filters import FilterConfig
from gps_ingest.pipeline import Message
from tests.conftest import login
from tests.drives import local_ts, on_schedule_drive

MONDAY = dt.date(2026, 11, 9)
ADMIN = ("admin", "demo-admin-1")
PARENT = ("zhang.lanlan", "demo-parent-1")  # 李明 rides zt-am-1, the route bus-07 is driving
DEVICE_TOKEN = "demo-token-bus-07"
KNOWN_IDS = {"route_id": "zt-am-1", "vehicle_id": "bus-07", "trip_id": "20261109-zt-am-1-bus-07",
             "entry_id": 1, "school_id": "longfeng", "month": "2026-10", "text_id": 1}

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Moderate and reproducible: the suite runs twice in CI (SQLite and PostgreSQL).
EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    # the app and its data are set up once per caller and shared by every generated request
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def store_pings(app, device_id: str, pings: list[dict]) -> None:
    """Store ``pings`` through the ingest pipeline (with tracking), 6 a batch."""
    with app.app_context():
        pipeline = IngestPipeline(db.engine, FilterConfig(max_age_s=0),
                                  after_store=[tracking_step()])
    for k in range(0, len(pings), 6):
        pipeline.process([Message(payload=orjson.dumps(pings[k:k + 6]), received_at=time.time(),
                                  kind="pings", device_id=device_id)])


@pytest.fixture
def district(app, imported):
    """The sample district at 07:00 on a Monday, bus-07 between 石塘村 and 东安村 on zt-am-1,
    with its events, a notification or two and a rejected ping behind it."""
    until = local_ts(MONDAY, "07:00:00")
    rows = [r for r in on_schedule_drive(imported, MONDAY) if r[0] <= until]
    pings = [{"ts": ts, "lat": lat, "lon": lon, "speed_kmh": v} for ts, lat, lon, v in rows]
    pings.append({"ts": until, "lat": 95.0, "lon": 113.2})  # rejected: bad_lat
    store_pings(app, "dev-bus-07", pings)
    app.config["CLOCK"] = lambda: until + 5
    return app


@pytest.fixture
def as_admin(app, imported):
    return login(app.test_client(), *ADMIN)


@pytest.fixture
def as_parent(app, imported):
    return login(app.test_client(), *PARENT)


DEVICE = {"Authorization": f"Bearer {DEVICE_TOKEN}"}
# endless; rewrites the district; seconds to minutes per request (fuzzed alone, below)
NOT_GENERATED = r"^/api/v1/(stream|admin/import|plans)$"


def openapi_of(app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


def failures_of(schema, headers: dict[str, str]) -> list[str]:
    """Run every operation of ``schema`` with valid and invalid generated requests; the report
    of each operation and mode that failed (Hypothesis stops an operation at its first failure).

    Random path ids only ever find 404s, so operations with ids in their path also run with the
    district's own (its bus, its route, the trip in progress) and generated everything else.
    Schemathesis' own pytest integration (``from_fixture``) does not run on this pytest, so
    the operations are looped here, one Hypothesis test each.
    """
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        caller = DEVICE if operation.path.startswith("/api/v1/ingest/") else headers
        ids = {name: KNOWN_IDS[name] for name in re.findall(r"{(\w+)}", operation.path)}
        runs = [(GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None)]
        if ids:
            runs.append((GenerationMode.POSITIVE, ids))
        for mode, path_parameters in runs:
            label = f"{operation.label} ({mode.value}{', known ids' if path_parameters else ''})"
            try:
                send_generated(operation, mode, caller, path_parameters)
            except FailureGroup as failed:
                failures.append(f"{label}: {failed.message}")
            except Unsatisfiable:
                # no parameter or body to make invalid (`GET /me`): nothing to send
                assert mode is GenerationMode.NEGATIVE, label
    return failures


def send_generated(operation, mode: GenerationMode, headers: dict[str, str],
                   path_parameters: dict[str, str] | None) -> None:
    @EXAMPLES
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def send(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    send()


def test_every_answer_to_the_admin_is_documented(district, as_admin):
    schema = openapi_of(district).exclude(path_regex=NOT_GENERATED)
    failures = failures_of(schema, as_admin)
    assert not failures, "\n\n".join(failures)


def test_every_answer_to_a_parent_is_documented(district, as_parent):
    schema = (openapi_of(district).exclude(path_regex=NOT_GENERATED)
              .exclude(path_regex=r"^/api/v1/ingest/"))
    failures = failures_of(schema, as_parent)
    assert not failures, "\n\n".join(failures)


def test_every_answer_to_a_plan_request_is_documented(district, as_admin, monkeypatch):
    """``POST /plans`` takes its ``time_limit_s`` (up to 300 s) per request by design: here the
    solver gets a fraction of a second, whatever was asked — the answers' shapes are the point."""
    from backend import planning_service

    real = planning_service.plan_district
    monkeypatch.setattr(planning_service, "plan_district",
                        lambda *a, **kw: real(*a, **{**kw, "time_limit_s": 0.2}))
    schema = openapi_of(district).include(path="/api/v1/plans", method="POST")
    failures = failures_of(schema, as_admin)
    assert not failures, "\n\n".join(failures)


def test_every_answer_to_a_bundle_import_is_documented(app, as_admin):
    schema = openapi_of(app).include(path="/api/v1/admin/import", method="POST")
    failures = failures_of(schema, as_admin)
    assert not failures, "\n\n".join(failures)


def test_the_openapi_document_and_its_docs_page_are_served(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json()["openapi"].startswith("3.")
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and docs.mimetype == "text/html"
    assert b"/api/v1/openapi.json" in docs.data


@pytest.mark.parametrize("path, cursor", [
    ("/api/v1/events", {"ts": "x", "id": 1}),
    ("/api/v1/events", {"ts": 1.0, "id": [1]}),
    ("/api/v1/events", {"ts": 1.0}),
    ("/api/v1/admin/rejects", {"before": "x"}),
    ("/api/v1/admin/rejects", {"before": 10**30}),
    ("/api/v1/admin/rejects", ["before", 1]),
])
def test_a_cursor_the_api_did_not_give_out_is_a_400_problem(client, as_admin, path, cursor):
    """Found by hand next to Schemathesis (it cannot forge base64 JSON): these were 500s."""
    response = client.get(path, headers=as_admin, query_string={"cursor": encode_cursor(cursor)})
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert response.get_json()["detail"] == "the cursor is not one this API gave out"


@pytest.mark.parametrize("method, path, body", [
    ("get", "/api/v1/routes/zt%00/live", None),
    ("get", "/api/v1/events?vehicle_id=bus%00", None),
    ("put", "/api/v1/routes/zt-am-1/vehicle", '{"vehicle_id": "bus\\u0000"}'),
])
def test_a_nul_character_is_a_400_problem_not_a_database_error(client, as_admin, method, path,
                                                               body):
    """Found by Schemathesis on PostgreSQL, whose text cannot hold NUL: these were 500s."""
    response = getattr(client, method)(path, headers=as_admin, data=body,
                                       content_type="application/json" if body else None)
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert "NUL" in response.get_json()["detail"]


def test_a_device_payload_with_a_nul_byte_is_kept_as_a_reject(client, app, imported, as_admin):
    """Found by Schemathesis on PostgreSQL: storing the reject of such a payload was a 500."""
    response = client.post("/api/v1/ingest/pings", data=b"\x00", content_type="application/json",
                           headers={"Authorization": f"Bearer {DEVICE_TOKEN}"})
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    rejects = client.get("/api/v1/admin/rejects", headers=as_admin).get_json()["items"]
    assert rejects[0]["payload_head"] == "\ufffd"
