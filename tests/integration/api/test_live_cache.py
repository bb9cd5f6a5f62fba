"""The caches behind ``GET /routes/{id}/live``: the per-process caller cache (auth.cached_caller),
the body served as bytes (live_service.route_live_json) and the shared newest-ping read
(live_service.SharedRead) — same answers as the uncached path, nothing another family may not
see, and no staleness beyond what each cache states."""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import select

import backend.auth
from backend.extensions import db
from backend.live_service import SharedRead, route_live
from backend.models import Student, User
from backend.presenters import RouteLiveSchema, route_live_body
from tests.conftest import login
from tests.drives import local_ts, on_schedule_drive
from tests.integration.api.test_routes_live import (
    LOGISTICS,
    MONDAY,
    OTHER_PARENT,
    PARENT,
    drive,
)

ADMIN = ("admin", "demo-admin-1")


@pytest.fixture
def at(app):
    """Set the API's clock: ``at(ts)``."""
    def set_clock(ts: float) -> None:
        app.config["CLOCK"] = lambda: ts
    return set_clock


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def caller_clock(monkeypatch) -> FakeMonotonic:
    """The caller cache's clock, moved by the test (the TTL is backend.auth.CALLER_TTL_S)."""
    clock = FakeMonotonic()
    monkeypatch.setattr(backend.auth, "monotonic", clock)
    return clock


def get_live(client, headers, route="zt-am-1", **params):
    return client.get(f"/api/v1/routes/{route}/live", headers=headers, query_string=params)


def slow_path(app, route_id: str, crs: str) -> dict:
    """What ``@blp.response(200, RouteLiveSchema)`` sends for the same answer: the schema's dump
    through Flask's JSON provider, read back."""
    with app.test_request_context():
        dumped = RouteLiveSchema().dump(route_live_body(route_live(route_id), crs))
        assert RouteLiveSchema().validate(dumped) == {}
        return json.loads(app.json.dumps(dumped))


# -- the body served as bytes -------------------------------------------------------------------


@pytest.mark.parametrize("crs", ["wgs84", "gcj02"])
def test_the_fast_path_sends_what_the_schema_validated_slow_path_would(client, app, imported,
                                                                       at, crs):
    headers = login(client, *PARENT)
    at(local_ts(MONDAY, "06:00:00"))  # no trip yet: the timetable
    idle = get_live(client, headers, crs=crs)
    assert idle.status_code == 200 and idle.mimetype == "application/json"
    assert idle.get_json() == slow_path(app, "zt-am-1", crs)
    assert idle.get_json()["active"] is False

    rows = on_schedule_drive(imported, MONDAY)
    until = local_ts(MONDAY, "07:00:00")
    drive(app, "dev-bus-07", [r for r in rows if r[0] <= until])
    at(until + 5)
    first = get_live(client, headers, crs=crs)
    again = get_live(client, headers, crs=crs)  # served from the cached bytes
    assert first.get_json()["active"] is True
    assert first.get_json() == slow_path(app, "zt-am-1", crs)
    assert again.data == first.data
    assert set(first.get_json()) == set(RouteLiveSchema().fields)


def test_a_new_ping_shows_at_once_and_each_crs_gets_its_own_body(client, app, imported, at):
    headers = login(client, *PARENT)
    rows = on_schedule_drive(imported, MONDAY)
    until = local_ts(MONDAY, "07:00:00")
    driven = [r for r in rows if r[0] <= until]
    drive(app, "dev-bus-07", driven[:-6])
    at(until + 5)
    before = get_live(client, headers).get_json()
    drive(app, "dev-bus-07", driven[-6:])
    after = get_live(client, headers).get_json()
    assert before["position"]["ts"] < after["position"]["ts"]
    assert after["position"]["lat"] == pytest.approx(driven[-1][1])
    gcj = get_live(client, headers, crs="gcj02").get_json()
    assert gcj["crs"] == "gcj02" and gcj["position"]["lat"] != after["position"]["lat"]


def test_a_bounded_staleness_is_only_there_when_configured(client, app, imported, at):
    headers = login(client, *PARENT)
    rows = on_schedule_drive(imported, MONDAY)
    until = local_ts(MONDAY, "07:00:00")
    driven = [r for r in rows if r[0] <= until]
    drive(app, "dev-bus-07", driven[:-6])
    at(until + 5)
    app.config["LIVE_MARKS_MAX_AGE_S"] = 60.0
    before = get_live(client, headers).get_json()
    drive(app, "dev-bus-07", driven[-6:])
    assert get_live(client, headers).get_json() == before  # a read a minute old will do
    app.config["LIVE_MARKS_MAX_AGE_S"] = 0.0
    assert get_live(client, headers).get_json()["position"]["ts"] > before["position"]["ts"]


# -- the caller cache ---------------------------------------------------------------------------


def test_a_parent_whose_child_moves_to_another_route_loses_it_within_the_ttl(
        client, app, imported, caller_clock):
    headers = login(client, *PARENT)
    assert get_live(client, headers).status_code == 200
    assert get_live(client, headers, route="lf-am-1").status_code == 404
    with app.app_context():
        db.session.get(Student, "s-001").route_id = "lf-am-1"  # 李明 now rides lf-am-1
        db.session.commit()
    caller_clock.now += backend.auth.CALLER_TTL_S - 0.1
    assert get_live(client, headers).status_code == 200  # what the cache states: up to the TTL
    caller_clock.now += 0.1
    assert get_live(client, headers).status_code == 404
    assert get_live(client, headers, route="lf-am-1").status_code == 200


def test_a_token_whose_version_was_bumped_is_refused_within_the_ttl(client, app, imported,
                                                                    caller_clock):
    old = login(client, *PARENT)
    assert get_live(client, old).status_code == 200
    with app.app_context():
        db.session.scalars(select(User).filter_by(username=PARENT[0])).one().token_version += 1
        db.session.commit()
    new = login(client, *PARENT)
    assert get_live(client, new).status_code == 200  # its own entry, read fresh
    caller_clock.now += backend.auth.CALLER_TTL_S
    refused = get_live(client, old)
    assert refused.status_code == 401
    assert refused.get_json()["detail"] == "the token is no longer valid; log in again"
    assert get_live(client, new).status_code == 200


def test_an_import_that_changes_a_password_logs_the_old_token_out_at_once(
        client, app, imported, sample_bundle, caller_clock):
    old = login(client, *PARENT)
    assert get_live(client, old).status_code == 200
    user = next(u for u in sample_bundle["users"] if u["username"] == PARENT[0])
    user["password"] = "a-new-password"
    imported_ok = client.post("/api/v1/admin/import", json=sample_bundle,
                              headers=login(client, *ADMIN))
    assert imported_ok.status_code == 200
    # the clock has not moved: the importing process dropped its cache (clear_caches)
    assert get_live(client, old).status_code == 401
    assert get_live(client, login(client, PARENT[0], "a-new-password")).status_code == 200


def test_a_role_change_is_seen_within_the_ttl(client, app, imported, caller_clock):
    headers = login(client, *LOGISTICS)
    assert get_live(client, headers).status_code == 200
    with app.app_context():
        db.session.scalars(select(User).filter_by(username=LOGISTICS[0])).one().role = "teacher"
        db.session.commit()
    caller_clock.now += backend.auth.CALLER_TTL_S
    forbidden = get_live(client, headers)
    assert forbidden.status_code == 403
    assert forbidden.get_json()["detail"] == "this needs the role parent or logistics or admin"


def test_an_expired_token_is_refused_even_while_its_entry_is_fresh(client, app, imported,
                                                                   caller_clock):
    headers = login(client, *PARENT)
    assert get_live(client, headers).status_code == 200
    app.config["TOKEN_TTL_S"] = 1
    time.sleep(2.1)  # itsdangerous timestamps have one-second resolution; the cache's clock stood
    expired = get_live(client, headers)
    assert expired.status_code == 401 and "expired" in expired.get_json()["detail"]


def test_the_cache_never_answers_for_another_token(client, app, imported, caller_clock):
    parent, other = login(client, *PARENT), login(client, *OTHER_PARENT)
    assert get_live(client, parent).status_code == 200
    assert get_live(client, other).status_code == 404  # 刘洋 rides lf-am-1
    assert get_live(client, other, route="lf-am-1").status_code == 200
    assert get_live(client, parent, route="lf-am-1").status_code == 404
    tampered = {"Authorization": parent["Authorization"][:-2] + (
        "AA" if not parent["Authorization"].endswith("AA") else "BB")}
    assert get_live(client, tampered).status_code == 401


# -- SharedRead ---------------------------------------------------------------------------------


def wait_for_waiters(shared: SharedRead, key: str, count: int) -> None:
    """Until ``count`` callers wait on ``key`` (a CPython Condition keeps its waiters' locks)."""
    deadline = time.monotonic() + 5
    while len(shared._slots[key].changed._waiters) < count:
        assert time.monotonic() < deadline, "the callers never waited"
        time.sleep(0.001)


def test_a_shared_read_never_hands_out_a_read_that_began_before_the_call():
    shared = SharedRead()
    started, release = threading.Event(), threading.Event()
    reads: list[str] = []
    results: dict[str, object] = {}

    def slow_read(value: str):
        def read():
            reads.append(value)
            started.set()
            release.wait(5)
            return value
        return read

    first = threading.Thread(target=lambda: results.update(a=shared.get("k", slow_read("old"))))
    first.start()
    assert started.wait(5)
    started.clear()
    # called while "old" is being read: it must wait for a read of its own time
    second = threading.Thread(target=lambda: results.update(b=shared.get("k", slow_read("new"))))
    second.start()
    wait_for_waiters(shared, "k", 1)
    assert reads == ["old"]  # it waits instead of reading alongside
    release.set()
    first.join(5)
    second.join(5)
    assert results == {"a": "old", "b": "new"} and reads == ["old", "new"]


def test_callers_arriving_during_a_read_share_the_next_one():
    shared = SharedRead()
    in_read, release = threading.Event(), threading.Event()
    count = 0

    def read():
        nonlocal count
        count += 1
        in_read.set()
        release.wait(5)
        return count

    first = threading.Thread(target=shared.get, args=("k", read))
    first.start()
    assert in_read.wait(5)
    answers: list[int] = []
    waiters = [threading.Thread(target=lambda: answers.append(shared.get("k", read)))
               for _ in range(5)]
    for t in waiters:
        t.start()
    wait_for_waiters(shared, "k", 5)
    release.set()
    for t in [first, *waiters]:
        t.join(5)
    assert answers == [2] * 5 and count == 2  # five callers, one more read


def test_a_failed_shared_read_is_retried_by_a_waiter_not_handed_out():
    shared = SharedRead()
    in_read, release = threading.Event(), threading.Event()
    calls = 0

    def read():
        nonlocal calls
        calls += 1
        if calls == 1:
            in_read.set()
            release.wait(5)
            raise RuntimeError("database gone")
        return "ok"

    errors: list[Exception] = []

    def first_call():
        try:
            shared.get("k", read)
        except RuntimeError as exc:
            errors.append(exc)

    first = threading.Thread(target=first_call)
    first.start()
    assert in_read.wait(5)
    answer: list[str] = []
    second = threading.Thread(target=lambda: answer.append(shared.get("k", read)))
    second.start()
    wait_for_waiters(shared, "k", 1)
    release.set()
    first.join(5)
    second.join(5)
    assert len(errors) == 1 and answer == ["ok"] and calls == 2


def test_a_caller_that_may_not_wait_reads_itself():
    shared = SharedRead()
    in_read, release = threading.Event(), threading.Event()

    def slow():
        in_read.set()
        release.wait(5)
        return "shared"

    first = threading.Thread(target=shared.get, args=("k", slow))
    first.start()
    assert in_read.wait(5)
    assert shared.get("k", lambda: "own", share=False) == "own"  # does not wait for "shared"
    release.set()
    first.join(5)
    assert shared.get("k", lambda: "later", max_age_s=60) == "own"  # fresh enough, no read
