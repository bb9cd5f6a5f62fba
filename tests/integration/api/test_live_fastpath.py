"""The WSGI fast path of ``GET /routes/{id}/live`` (backend/fastpath.py): request by request the
same status, headers and body as Flask, served in front of it only when the caller and the
answer are cached and everything is as the view would answer 200; all else falls through.

Each comparison sends the request through the fast path, then the same request straight to
Flask's ``wsgi_app`` on the same app (same caches, same clock), and records whether the fast
path answered itself. At the end the tests of the live endpoint and of its caches, and the
authorization matrix's ``/live`` rows, run again with the fast path installed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from functools import partial
from types import SimpleNamespace

import pytest
from flask import Flask
from sqlalchemy import bindparam, create_engine, select, text
from sqlalchemy.exc import OperationalError
from werkzeug.test import Client

import backend.auth
import backend.database
from backend.bundle import import_bundle
from backend.extensions import db
from backend.fastpath import REFRESH_AHEAD, LiveFastPath, install_live_fastpath
from backend.live_service import clear_caches
from backend.models import Student, User
from tests.conftest import SAMPLE_BUNDLE_PATH, _empty_all_tables, login, make_test_app
from tests.drives import local_ts, on_schedule_drive
from tests.integration.api import test_authorization_matrix as matrix
from tests.integration.api import test_live_cache as cache_tests
from tests.integration.api import test_routes_live as routes_tests
from tests.integration.api.test_live_cache import (  # noqa: F401  (at, caller_clock: fixtures)
    FakeMonotonic,
    at,
    caller_clock,
)
from tests.integration.api.test_routes_live import (
    LOGISTICS,
    MONDAY,
    OTHER_LOGISTICS,
    PARENT,
    drive,
)

ADMIN = ("admin", "demo-admin-1")
TEACHER = ("liu.sheng", "demo-teacher-1")
DRIVER = ("driver.zhao", "demo-driver-1")
LIVE = "/api/v1/routes/{}/live"


class CountingFlask:
    """Flask's own WSGI callable, counting the requests that reach it."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.wsgi_app(environ, start_response)


@pytest.fixture(autouse=True)
def _fresh_live_caches(app):
    """live_service's route, driver and answer caches are per process, not per app: a test
    here must not see what an earlier one cached (a substitute bus written to the database
    directly, as one of the tests below does, is otherwise only seen after 30 s)."""
    with app.app_context():
        clear_caches()


@pytest.fixture
def client(app):
    """This module's test client goes through the fast path, installed as ``backend.wsgi`` does
    (so do the tests of the other modules collected here, at the end)."""
    return install_live_fastpath(app).test_client()


@pytest.fixture
def fast(app) -> LiveFastPath:
    """A fast path in front of the app's own Flask ``wsgi_app``, counting what reaches Flask."""
    return LiveFastPath(app, CountingFlask(partial(Flask.wsgi_app, app)))


@pytest.fixture
def on_trip(app, imported, at):  # noqa: F811
    """bus-07 mid-trip on zt-am-1, the API's clock a few seconds after its newest ping."""
    rows = on_schedule_drive(imported, MONDAY)
    until = local_ts(MONDAY, "07:00:00")
    drive(app, "dev-bus-07", [r for r in rows if r[0] <= until])
    at(until + 5)


REQUEST_ID_SENT = "test-request-0001"


def both(fast: LiveFastPath, path: str, headers: dict | None = None, method: str = "GET",
         **kwargs) -> tuple[object, bool]:
    """The request through the fast path and straight to Flask: (the answer, whether the fast
    path answered it itself), after checking that both answers are the same (each is given the
    same request id: a new one would differ)."""
    headers = {"X-Request-ID": REQUEST_ID_SENT, **(headers or {})}
    before = fast.flask_app.calls
    via_fast = Client(fast).open(path, method=method, headers=headers or {}, **kwargs)
    served_fast = fast.flask_app.calls == before
    via_flask = Client(fast.flask_app).open(path, method=method, headers=headers or {}, **kwargs)
    assert via_fast.status == via_flask.status
    assert list(via_fast.headers.items()) == list(via_flask.headers.items())
    assert via_fast.data == via_flask.data
    return via_fast, served_fast


# -- what the fast path answers -----------------------------------------------------------------


@pytest.mark.parametrize("who", [PARENT, LOGISTICS, ADMIN], ids=lambda w: w[0])
@pytest.mark.parametrize("query", ["", "?crs=wgs84", "?crs=gcj02"])
def test_a_cached_caller_in_scope_is_answered_by_the_fast_path_as_flask_would(
        client, fast, on_trip, who, query):
    headers = login(client, *who)
    first, served_fast = both(fast, LIVE.format("zt-am-1") + query, headers)
    assert not served_fast  # the caller is not cached yet: Flask reads and caches it
    assert first.status_code == 200 and first.get_json()["active"] is True
    again, served_fast = both(fast, LIVE.format("zt-am-1") + query, headers)
    assert served_fast and again.data == first.data
    assert list(again.headers.items()) == [("Content-Type", "application/json"),
                                           ("Content-Length", str(len(first.data))),
                                           ("X-Request-ID", REQUEST_ID_SENT)]
    assert again.get_json()["crs"] == (query.partition("=")[2] or "wgs84")


def test_the_fast_path_gives_a_request_id_as_flask_does(client, fast, on_trip):
    headers = login(client, *PARENT)
    both(fast, LIVE.format("zt-am-1"), headers)  # cached now
    answer = Client(fast).get(LIVE.format("zt-am-1"), headers=headers)
    assert fast.flask_app.calls and len(answer.headers["X-Request-ID"]) == 32
    odd = Client(fast).get(LIVE.format("zt-am-1"), headers={**headers, "X-Request-ID": "a b"})
    assert odd.headers["X-Request-ID"] != "a b"


def test_the_timetable_before_a_trip_is_served_too(client, fast, imported, at):  # noqa: F811
    at(local_ts(MONDAY, "06:00:00"))
    headers = login(client, *PARENT)
    both(fast, LIVE.format("zt-am-1"), headers)
    idle, served_fast = both(fast, LIVE.format("zt-am-1"), headers)
    assert served_fast and idle.get_json()["active"] is False


def test_a_new_ping_shows_at_once_through_the_fast_path(client, app, fast, imported, at):  # noqa: F811
    rows = on_schedule_drive(imported, MONDAY)
    until = local_ts(MONDAY, "07:00:00")
    driven = [r for r in rows if r[0] <= until]
    drive(app, "dev-bus-07", driven[:-6])
    at(until + 5)
    headers = login(client, *PARENT)
    both(fast, LIVE.format("zt-am-1"), headers)
    before, served_fast = both(fast, LIVE.format("zt-am-1"), headers)
    assert served_fast
    drive(app, "dev-bus-07", driven[-6:])
    after, served_fast = both(fast, LIVE.format("zt-am-1"), headers)
    assert served_fast
    assert after.get_json()["position"]["ts"] > before.get_json()["position"]["ts"]


# -- what goes to Flask, answered as Flask answers it -------------------------------------------


def _bearer(headers: dict) -> str:
    return headers["Authorization"].partition(" ")[2]


FALLTHROUGH = {
    # (who logs in and is cached first, route, query, headers from the token, method, status)
    "another family's route": (PARENT, "lf-am-1", "", None, "GET", 404),
    "another school's staff": (OTHER_LOGISTICS, "zt-am-1", "", None, "GET", 404),
    "a parent, a route that does not exist": (PARENT, "no-such-route", "", None, "GET", 404),
    "admin, a route that does not exist": (ADMIN, "no-such-route", "", None, "GET", 404),
    "a teacher": (TEACHER, "zt-am-1", "", None, "GET", 403),
    "a driver": (DRIVER, "zt-am-1", "", None, "GET", 403),
    "no token": (PARENT, "zt-am-1", "", lambda t: {}, "GET", 401),
    "a token that is not one": (PARENT, "zt-am-1", "", lambda t: {
        "Authorization": "Bearer not-a-token"}, "GET", 401),
    "a tampered token": (PARENT, "zt-am-1", "", lambda t: {
        "Authorization": "Bearer " + t[:-2] + ("AA" if not t.endswith("AA") else "BB")},
        "GET", 401),
    "another scheme": (PARENT, "zt-am-1", "", lambda t: {"Authorization": "Basic " + t},
                       "GET", 401),
    "bearer in lower case": (PARENT, "zt-am-1", "", lambda t: {"Authorization": "bearer " + t},
                             "GET", 200),
    "a space after the token": (PARENT, "zt-am-1", "", lambda t: {
        "Authorization": f"Bearer {t} "}, "GET", 200),
    "a bad crs": (PARENT, "zt-am-1", "?crs=mars", None, "GET", 422),
    "crs in capitals": (PARENT, "zt-am-1", "?crs=WGS84", None, "GET", 422),
    "an empty crs": (PARENT, "zt-am-1", "?crs=", None, "GET", 422),
    "crs twice": (PARENT, "zt-am-1", "?crs=wgs84&crs=gcj02", None, "GET", 200),
    "another parameter": (PARENT, "zt-am-1", "?crs=wgs84&x=1", None, "GET", 200),
    "a NUL in the query": (PARENT, "zt-am-1", "?crs=wgs84%00", None, "GET", 400),
    "HEAD": (PARENT, "zt-am-1", "", None, "HEAD", 200),
    "OPTIONS": (PARENT, "zt-am-1", "", None, "OPTIONS", 200),
    "POST": (PARENT, "zt-am-1", "", None, "POST", 405),
}


@pytest.mark.parametrize("case", FALLTHROUGH.values(), ids=FALLTHROUGH.keys())
def test_everything_else_goes_to_flask_and_gets_flasks_answer(client, fast, on_trip, case):
    who, route, query, make_headers, method, status = case
    headers = login(client, *who)
    both(fast, LIVE.format("zt-am-1"), headers)  # the caller is cached (the view ran for it)
    if make_headers is not None:
        headers = make_headers(_bearer(headers))
    answer, served_fast = both(fast, LIVE.format(route) + query, headers, method=method)
    assert not served_fast
    assert answer.status_code == status
    if status >= 400:
        assert answer.mimetype == "application/problem+json"
    if status == 401:
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="xiaoche"'


@pytest.mark.parametrize("path", [
    "/api/v1/routes/zt-am-1/live/",
    "/api/v1//routes/zt-am-1/live",
    "/api/v1/routes/zt%20am/live",
    "/api/v1/routes/zt-am-1/live/x",
    "/api/v1/routes/%E6%9C%B1/live",
    "/api/v1/routes//live",
])
def test_other_paths_go_to_flask(client, fast, on_trip, path):
    headers = login(client, *PARENT)
    both(fast, LIVE.format("zt-am-1"), headers)
    _, served_fast = both(fast, path, headers)
    assert not served_fast


def test_a_request_with_a_body_goes_to_flask(client, fast, on_trip):
    headers = login(client, *PARENT)
    both(fast, LIVE.format("zt-am-1"), headers)
    answer, served_fast = both(fast, LIVE.format("zt-am-1"), headers, data=b'{"a": "\\u0000"}',
                               content_type="application/json")
    assert not served_fast and answer.status_code == 400  # refuse_nul_characters
    answer, served_fast = both(fast, LIVE.format("zt-am-1"), headers, data=b"{}",
                               content_type="application/json")
    assert not served_fast and answer.status_code == 200


def test_an_expired_token_goes_to_flask_while_its_entry_is_fresh(client, app, fast, on_trip,
                                                                 caller_clock):  # noqa: F811
    headers = login(client, *PARENT)
    both(fast, LIVE.format("zt-am-1"), headers)
    assert both(fast, LIVE.format("zt-am-1"), headers)[1]
    app.config["TOKEN_TTL_S"] = 1
    time.sleep(2.1)  # itsdangerous timestamps have one-second resolution; the cache's clock stood
    expired, served_fast = both(fast, LIVE.format("zt-am-1"), headers)
    assert not served_fast
    assert expired.status_code == 401 and "expired" in expired.get_json()["detail"]


def entry(app, headers) -> tuple[float, int, backend.auth.Caller]:
    return app.extensions[backend.auth._CALLERS][_bearer(headers)]


def test_an_entry_past_half_its_ttl_is_read_again_by_the_next_request(
        client, app, fast, on_trip, caller_clock):  # noqa: F811
    headers = login(client, *PARENT)
    both(fast, LIVE.format("zt-am-1"), headers)
    read_at, _, cached = entry(app, headers)
    with app.app_context():
        db.session.get(Student, "s-001").route_id = "lf-am-1"  # 李明 now rides lf-am-1
        db.session.commit()
    caller_clock.now += backend.auth.CALLER_TTL_S * REFRESH_AHEAD - 0.1
    served, served_fast = both(fast, LIVE.format("zt-am-1"), headers)
    assert served_fast and served.status_code == 200  # the entry as it was: fresh enough
    assert entry(app, headers)[0] == read_at
    caller_clock.now += 0.1
    moved, served_fast = both(fast, LIVE.format("zt-am-1"), headers)
    assert not served_fast and moved.status_code == 404  # read again: no longer in scope
    assert entry(app, headers)[0] == caller_clock.now
    assert entry(app, headers)[2] == backend.auth.Caller(cached.user_id, cached.username,
                                                         "parent", frozenset({"lf-am-1"}))
    now_own, served_fast = both(fast, LIVE.format("lf-am-1"), headers)
    assert served_fast and now_own.status_code == 200


@pytest.mark.parametrize("who", [PARENT, LOGISTICS, ADMIN, TEACHER], ids=lambda w: w[0])
def test_what_is_read_again_is_what_cached_caller_reads(client, app, fast, on_trip,
                                                        caller_clock, who):  # noqa: F811
    headers = login(client, *who)
    both(fast, LIVE.format("zt-am-1"), headers)
    caller_clock.now += backend.auth.CALLER_TTL_S * REFRESH_AHEAD
    Client(fast).get(LIVE.format("zt-am-1"), headers=headers)
    reread = entry(app, headers)
    assert reread[0] == caller_clock.now
    app.extensions[backend.auth._CALLERS].pop(_bearer(headers))
    Client(fast.flask_app).get(LIVE.format("zt-am-1"), headers=headers)
    assert entry(app, headers) == reread


def test_a_token_revoked_meanwhile_loses_its_entry_when_read_again(
        client, app, fast, on_trip, caller_clock):  # noqa: F811
    headers = login(client, *PARENT)
    both(fast, LIVE.format("zt-am-1"), headers)
    with app.app_context():
        db.session.scalars(select(User).filter_by(username=PARENT[0])).one().token_version += 1
        db.session.commit()
    caller_clock.now += backend.auth.CALLER_TTL_S * REFRESH_AHEAD
    refused, served_fast = both(fast, LIVE.format("zt-am-1"), headers)
    assert not served_fast and refused.status_code == 401
    assert refused.get_json()["detail"] == "the token is no longer valid; log in again"
    assert _bearer(headers) not in app.extensions[backend.auth._CALLERS]


def test_a_failed_read_goes_to_flask_and_keeps_the_entry(client, app, fast, on_trip,
                                                         caller_clock, monkeypatch):  # noqa: F811
    headers = login(client, *PARENT)
    ok, _ = both(fast, LIVE.format("zt-am-1"), headers)
    read_at = entry(app, headers)[0]
    caller_clock.now += backend.auth.CALLER_TTL_S * REFRESH_AHEAD
    user_of = backend.auth._user_of
    failures = []

    def fails_once(*args):
        if not failures:
            failures.append(args)
            raise RuntimeError("database gone")
        return user_of(*args)

    monkeypatch.setattr(backend.auth, "_user_of", fails_once)
    answer, served_fast = both(fast, LIVE.format("zt-am-1"), headers)
    assert failures and not served_fast and answer.data == ok.data  # Flask's own answer
    assert entry(app, headers)[0] == read_at  # Flask's cached_caller found it fresh
    again, served_fast = both(fast, LIVE.format("zt-am-1"), headers)
    assert served_fast and again.data == ok.data and entry(app, headers)[0] == caller_clock.now


def test_one_request_reads_again_while_the_others_are_served_from_the_entry(
        client, app, fast, on_trip, caller_clock, monkeypatch):  # noqa: F811
    headers = login(client, *PARENT)
    expected, _ = both(fast, LIVE.format("zt-am-1"), headers)
    caller_clock.now += backend.auth.CALLER_TTL_S * REFRESH_AHEAD
    user_of = backend.auth._user_of
    reading, release = threading.Event(), threading.Event()
    reads = []

    def slow_user_of(*args):
        reads.append(args)
        reading.set()
        assert release.wait(10)
        return user_of(*args)

    monkeypatch.setattr(backend.auth, "_user_of", slow_user_of)
    answers: list[tuple[int, bytes]] = []
    reader = threading.Thread(target=lambda: answers.append(
        (lambda r: (r.status_code, r.data))(Client(fast).get(LIVE.format("zt-am-1"),
                                                              headers=headers))))
    reader.start()
    assert reading.wait(10)
    before = fast.flask_app.calls
    for _ in range(5):  # meanwhile: served from the entry, nobody else reads
        response = Client(fast).get(LIVE.format("zt-am-1"), headers=headers)
        assert (response.status_code, response.data) == (200, expected.data)
    assert len(reads) == 1 and fast.flask_app.calls == before
    release.set()
    reader.join(10)
    assert answers == [(200, expected.data)] and len(reads) == 1


def test_a_role_change_within_the_ttl_goes_to_flask(client, app, fast, on_trip,
                                                    caller_clock):  # noqa: F811
    headers = login(client, *LOGISTICS)
    both(fast, LIVE.format("zt-am-1"), headers)
    with app.app_context():
        db.session.scalars(select(User).filter_by(username=LOGISTICS[0])).one().role = "teacher"
        db.session.commit()
    caller_clock.now += backend.auth.CALLER_TTL_S
    forbidden, served_fast = both(fast, LIVE.format("zt-am-1"), headers)
    assert not served_fast and forbidden.status_code == 403
    again, served_fast = both(fast, LIVE.format("zt-am-1"), headers)
    assert not served_fast and again.status_code == 403  # cached as a teacher: still Flask's


def test_an_import_that_changes_a_password_is_refused_at_once(client, app, fast, on_trip,
                                                              imported, caller_clock):  # noqa: F811
    old = login(client, *PARENT)
    both(fast, LIVE.format("zt-am-1"), old)
    assert both(fast, LIVE.format("zt-am-1"), old)[1]
    user = next(u for u in imported["users"] if u["username"] == PARENT[0])
    user["password"] = "a-new-password"
    assert client.post("/api/v1/admin/import", json=imported,
                       headers=login(client, *ADMIN)).status_code == 200
    refused, served_fast = both(fast, LIVE.format("zt-am-1"), old)
    assert not served_fast and refused.status_code == 401


def test_an_error_in_the_answer_goes_to_flask(client, fast, on_trip, monkeypatch):
    headers = login(client, *PARENT)
    ok, _ = both(fast, LIVE.format("zt-am-1"), headers)

    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(fast, "route_live_json", broken)
    answer, served_fast = both(fast, LIVE.format("zt-am-1"), headers)
    assert not served_fast and answer.status_code == 200 and answer.data == ok.data


def test_concurrent_requests_get_the_same_answer(client, fast, on_trip):
    headers = login(client, *PARENT)
    expected, _ = both(fast, LIVE.format("zt-am-1"), headers)
    before = fast.flask_app.calls
    answers: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def poll() -> None:
        client = Client(fast)
        for _ in range(25):
            response = client.get(LIVE.format("zt-am-1"), headers=headers)
            with lock:
                answers.append((response.status_code, response.data))

    threads = [threading.Thread(target=poll) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers == [(200, expected.data)] * 200
    assert fast.flask_app.calls == before


# -- installing it ------------------------------------------------------------------------------


def test_it_is_installed_unless_switched_off(app):
    flask_wsgi = app.wsgi_app
    app.config["LIVE_FASTPATH"] = 0
    assert install_live_fastpath(app).wsgi_app == flask_wsgi
    app.config["LIVE_FASTPATH"] = 1
    app.config["SERVER_NAME"] = "xiaoche.example"  # Flask would match on the host: not here
    assert install_live_fastpath(app).wsgi_app == flask_wsgi
    app.config["SERVER_NAME"] = None
    installed = install_live_fastpath(app).wsgi_app
    assert isinstance(installed, LiveFastPath) and installed.flask_app == flask_wsgi


def test_the_setting_comes_from_the_environment():
    from backend.settings import from_environment

    assert from_environment({})["LIVE_FASTPATH"] == 1
    assert from_environment({"XIAOCHE_LIVE_FASTPATH": "0"})["LIVE_FASTPATH"] == 0


# -- the live endpoint's own tests, with the fast path installed --------------------------------


LIVE_CASES = [c for c in matrix.MATRIX if c.rule == "/api/v1/routes/<route_id>/live"]


@pytest.mark.parametrize("case", LIVE_CASES, ids=str)
def test_the_authorization_matrix_of_live_holds_through_the_fast_path(client, app, imported,
                                                                      case):
    # twice: in the second round every caller is cached, so the fast path gets its chance
    for _ in range(2):
        matrix.test_each_role_gets_the_expected_status_in_and_out_of_its_scope(
            client, app, imported, case)


# The tests of the endpoint and of its caches, collected here once more: with this module's
# ``client`` they run through the installed fast path. Not test_live_cache's
# test_a_parent_whose_child_moves_to_another_route_loses_it_within_the_ttl: it checks that the
# old scope is still served just before the TTL, which the read ahead makes fresher (see
# test_an_entry_past_half_its_ttl_is_read_again_by_the_next_request).
test_before_any_trip_the_parent_sees_the_timetable_and_no_position = (
    routes_tests.test_before_any_trip_the_parent_sees_the_timetable_and_no_position)
test_mid_trip_the_parent_sees_the_bus_the_visited_stops_and_etas_for_the_rest = (
    routes_tests.test_mid_trip_the_parent_sees_the_bus_the_visited_stops_and_etas_for_the_rest)
test_after_the_trip_the_parent_no_longer_sees_the_bus = (
    routes_tests.test_after_the_trip_the_parent_no_longer_sees_the_bus)
test_a_bus_silent_past_its_trip_timeout_is_not_shown_as_live = (
    routes_tests.test_a_bus_silent_past_its_trip_timeout_is_not_shown_as_live)
test_routes_outside_the_callers_scope_answer_404_and_other_roles_403 = (
    routes_tests.test_routes_outside_the_callers_scope_answer_404_and_other_roles_403)
test_tracking_and_parents_follow_the_substitute_bus_that_day = (
    routes_tests.test_tracking_and_parents_follow_the_substitute_bus_that_day)
test_the_fast_path_sends_what_the_schema_validated_slow_path_would = (
    cache_tests.test_the_fast_path_sends_what_the_schema_validated_slow_path_would)
test_a_new_ping_shows_at_once_and_each_crs_gets_its_own_body = (
    cache_tests.test_a_new_ping_shows_at_once_and_each_crs_gets_its_own_body)
test_a_bounded_staleness_is_only_there_when_configured = (
    cache_tests.test_a_bounded_staleness_is_only_there_when_configured)
test_a_token_whose_version_was_bumped_is_refused_within_the_ttl = (
    cache_tests.test_a_token_whose_version_was_bumped_is_refused_within_the_ttl)
test_an_import_that_changes_a_password_logs_the_old_token_out_at_once = (
    cache_tests.test_an_import_that_changes_a_password_logs_the_old_token_out_at_once)
test_a_role_change_is_seen_within_the_ttl = cache_tests.test_a_role_change_is_seen_within_the_ttl
test_an_expired_token_is_refused_even_while_its_entry_is_fresh = (
    cache_tests.test_an_expired_token_is_refused_even_while_its_entry_is_fresh)
test_the_cache_never_answers_for_another_token = (
    cache_tests.test_the_cache_never_answers_for_another_token)


# -- the pool of the API under gunicorn: a ping only after a second in the pool -----------------

postgres_only = pytest.mark.skipif(not os.environ.get("XIAOCHE_TEST_DATABASE_URL", "")
                                   .startswith("postgresql"),
                                   reason="SQLite connections are never pinged")


@pytest.fixture
def pool_clock(monkeypatch) -> FakeMonotonic:
    """The clock ``database.ping_when_idle`` measures a connection's time in the pool with."""
    clock = FakeMonotonic()
    monkeypatch.setattr(backend.database, "time", SimpleNamespace(monotonic=clock))
    return clock


@pytest.fixture
def gunicorn_app(_migrated, tmp_path, pool_clock):
    """An app as backend.wsgi creates it (POOL_PING_IDLE_S), with the sample district."""
    app = make_test_app(_migrated, tmp_path / "instance", POOL_PING_IDLE_S=1.0)
    with app.app_context():
        _empty_all_tables()
        import_bundle(json.loads(SAMPLE_BUNDLE_PATH.read_text(encoding="utf-8")))
        clear_caches()
    yield install_live_fastpath(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _backend_pid(conn) -> int:
    return conn.connection.dbapi_connection.info.backend_pid


def _terminate(url, pids: set[int]) -> None:
    """Have the server end these connections (as a restart would), from a connection of its own."""
    # autocommit: PostgreSQL keeps pg_stat_activity's snapshot until the transaction ends, so in
    # one transaction a backend seen once would never be seen gone
    probe = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with probe.connect() as conn:
            for pid in pids:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            deadline = time.monotonic() + 5
            while conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid IN :pids")
                              .bindparams(bindparam("pids", expanding=True)),
                              {"pids": list(pids)}):
                assert time.monotonic() < deadline, "the server did not end them"
                time.sleep(0.02)
    finally:
        probe.dispose()


@postgres_only
def test_a_connection_that_died_in_the_pool_is_replaced_on_checkout(gunicorn_app, pool_clock):
    with gunicorn_app.app_context():
        engine = db.engine
        assert not engine.pool._pre_ping
        with engine.connect() as conn:
            pid = _backend_pid(conn)
        _terminate(engine.url, {pid})
        pool_clock.now += 1.0  # a second in the pool: pinged on checkout, found dead, replaced
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT 1")) == 1 and _backend_pid(conn) != pid


@postgres_only
def test_a_connection_that_died_while_busy_fails_once_then_the_pool_reconnects(gunicorn_app,
                                                                               pool_clock):
    with gunicorn_app.app_context():
        engine = db.engine
        with engine.connect() as conn:
            pid = _backend_pid(conn)
        _terminate(engine.url, {pid})
        pool_clock.now += 0.9  # given back less than a second ago: used without a ping
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.scalar(text("SELECT 1"))
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT 1")) == 1 and _backend_pid(conn) != pid


@postgres_only
def test_live_answers_through_connections_that_died_while_busy(gunicorn_app, pool_clock):
    client = gunicorn_app.test_client()
    headers = login(client, *PARENT)
    first = client.get(LIVE.format("zt-am-1"), headers=headers)
    again = client.get(LIVE.format("zt-am-1"), headers=headers)
    assert first.status_code == again.status_code == 200
    with gunicorn_app.app_context():
        engine = db.engine
        with engine.connect() as a, engine.connect() as b:
            pids = {_backend_pid(a), _backend_pid(b)}
        _terminate(engine.url, pids)
    fast = gunicorn_app.wsgi_app
    fast.flask_app = CountingFlask(fast.flask_app)
    # the fast path's read fails on a dead connection, and Flask reads again on a new one
    after = client.get(LIVE.format("zt-am-1"), headers=headers)
    assert after.status_code == 200 and after.data == first.data
    assert fast.flask_app.calls == 1
    assert client.get(LIVE.format("zt-am-1"), headers=headers).data == first.data
    assert fast.flask_app.calls == 1  # and the fast path is back


def test_only_the_api_under_gunicorn_gives_up_pool_pre_ping(app, _migrated, tmp_path):
    with app.app_context():
        dialect, default = db.engine.dialect.name, db.engine.pool._pre_ping
    gunicorn = make_test_app(_migrated, tmp_path / "gunicorn", POOL_PING_IDLE_S=1.0)
    with gunicorn.app_context():
        pinged = db.engine.pool._pre_ping
        db.engine.dispose()
    assert default is (dialect == "postgresql")  # create_app's default (SQLite: never pinged)
    assert pinged is False


# -- Flask-Limiter looks only at the endpoints that have limits ---------------------------------


def test_every_endpoint_with_a_limit_is_one_the_limiter_looks_at(app):
    from flask_limiter.util import get_qualified_name

    from backend.extensions import LIMITED_ENDPOINTS, limiter

    with app.app_context():
        limited = {endpoint for endpoint, view in app.view_functions.items()
                   if limiter.limit_manager.decorated_limits(get_qualified_name(view))}
        assert not limiter.limit_manager.default_limits
        assert not limiter.limit_manager.application_limits
    assert limited == LIMITED_ENDPOINTS == {"auth.token"}
