"""The dispatcher and the webhook channel against a real HTTP server on loopback; time is driven
by passing ``now`` to ``dispatch_once`` (no sleeping through backoff)."""

from __future__ import annotations

import logging

import pytest

from backend.dispatch_service import ChannelConfigError, dispatch_once
from notifications.channels import DeliveryError, register
from notifications.channels.registry import unregister
from notifications.channels.webhook import verify

from .conftest import (
    LATE_EVENING,
    NOON,
    SECRET,
    add_notifications,
    add_user,
    deliveries,
    push_state,
)

NO_QUIET = {"quiet_hours": None}


def run_until_idle(app, now: float, rounds: int = 20) -> float:
    """Dispatch, then jump the clock to the next due retry, until nothing is pending."""
    for _ in range(rounds):
        dispatch_once(app, now=now)
        pending = [d for d in deliveries(app) if d["state"] == "pending"]
        if not pending:
            return now
        now = max(now, min(d["next_attempt_at"] for d in pending))
    raise AssertionError(f"still pending after {rounds} rounds: {deliveries(app)}")


def test_retries_after_503s_then_delivers_exactly_once_with_a_valid_signature(
        webhook_app, webhook_server):
    webhook_server.responder = lambda r: (503, {}) if r.index <= 3 else (200, {})
    user_id, username = add_user(webhook_app, NO_QUIET)
    [nid] = add_notifications(webhook_app, user_id, created_at=NOON - 5)

    first = dispatch_once(webhook_app, now=NOON)
    assert (first.planned, first.sent, first.retried) == (1, 0, 1)
    [row] = deliveries(webhook_app, nid)
    assert row["channel"] == "webhook" and row["attempts"] == 1
    assert NOON + 1 <= row["next_attempt_at"] <= NOON + 2  # 2 s, jittered down to half
    assert dispatch_once(webhook_app, now=NOON + 0.5).retried == 0  # not due yet

    done_at = run_until_idle(webhook_app, NOON)
    assert done_at - NOON < 30
    [row] = deliveries(webhook_app, nid)
    assert (row["state"], row["attempts"], row["last_error"]) == ("sent", 4, None)
    assert len(webhook_server.requests) == 4
    assert webhook_server.answered_2xx() == {nid: 1}
    assert dispatch_once(webhook_app, now=done_at + 600).sent == 0  # never again

    request = webhook_server.requests[-1]
    body = request.json()
    assert body == {"id": nid, "kind": "bus_approaching", "title": "标题 0", "body": "正文 0",
                    "created_at": "2026-11-22T03:59:55Z", "route_id": "r1", "stop_id": "s1",
                    "trip_id": "t1", "username": username}
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    stamp = int(request.headers["X-Xiaoche-Timestamp"])
    assert request.headers["X-Xiaoche-Signature"].startswith("sha256=")
    assert verify(SECRET, request.headers, request.body, now=stamp + 10)
    tampered = request.body.replace(username.encode(), b"someone-else")
    assert not verify(SECRET, request.headers, tampered, now=stamp + 10)
    assert not verify(SECRET, request.headers, request.body, now=stamp + 301)  # a replay
    assert not verify("another-secret", request.headers, request.body, now=stamp)
    # every try carries the same idempotency key
    assert {r.delivery_id for r in webhook_server.requests} == {nid}


def test_gives_up_after_max_attempts_as_a_logged_dead_letter(webhook_app, webhook_server,
                                                             caplog):
    webhook_app.config["PUSH_MAX_ATTEMPTS"] = 3
    webhook_server.responder = lambda r: (500, {})
    user_id, _ = add_user(webhook_app, NO_QUIET)
    [nid] = add_notifications(webhook_app, user_id, created_at=NOON)

    with caplog.at_level(logging.WARNING, logger="backend.dispatch_service"):
        run_until_idle(webhook_app, NOON)
    [row] = deliveries(webhook_app, nid)
    assert (row["state"], row["attempts"]) == ("dead", 3)
    assert row["last_error"] == "webhook answered HTTP 500"
    assert len(webhook_server.requests) == 3
    assert any(f"notification {nid}" in r.message and "dead" in r.message
               for r in caplog.records if r.levelno == logging.WARNING)


@pytest.mark.parametrize(("status", "state"), [
    (400, "dead"), (401, "dead"), (404, "dead"), (410, "dead"), (422, "dead"), (301, "dead"),
    (408, "pending"), (429, "pending"), (500, "pending"), (502, "pending"), (504, "pending"),
])
def test_which_answers_are_retried(webhook_app, webhook_server, status, state):
    webhook_server.responder = lambda r: (status, {"Location": "http://127.0.0.1:9/"})
    user_id, _ = add_user(webhook_app, NO_QUIET)
    [nid] = add_notifications(webhook_app, user_id, created_at=NOON)
    result = dispatch_once(webhook_app, now=NOON)
    [row] = deliveries(webhook_app, nid)
    assert (row["state"], row["attempts"]) == (state, 1)
    assert (result.dead, result.retried) == ((1, 0) if state == "dead" else (0, 1))
    assert len(webhook_server.requests) == 1


def test_retry_after_is_honoured(webhook_app, webhook_server):
    webhook_server.responder = lambda r: (429, {"Retry-After": "120"})
    user_id, _ = add_user(webhook_app, NO_QUIET)
    [nid] = add_notifications(webhook_app, user_id, created_at=NOON)
    dispatch_once(webhook_app, now=NOON)
    [row] = deliveries(webhook_app, nid)
    assert row["next_attempt_at"] == NOON + 120


def test_unreachable_receiver_is_retried(app):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app.config.update(WEBHOOK_URL=f"http://127.0.0.1:{port}/", WEBHOOK_SECRET=SECRET,
                      MQTT_URL=None)
    user_id, _ = add_user(app, NO_QUIET)
    [nid] = add_notifications(app, user_id, created_at=NOON)
    assert dispatch_once(app, now=NOON).retried == 1
    [row] = deliveries(app, nid)
    assert row["state"] == "pending" and "refused" in row["last_error"].lower()


def test_a_push_due_after_15_minutes_goes_stale_unsent(webhook_app, webhook_server):
    webhook_server.responder = lambda r: (503, {})
    user_id, _ = add_user(webhook_app, NO_QUIET)
    [nid] = add_notifications(webhook_app, user_id, created_at=NOON)
    assert dispatch_once(webhook_app, now=NOON + 60).retried == 1  # fresh: tried, failed

    result = dispatch_once(webhook_app, now=NOON + 40 * 60)  # its retry comes 40 min late
    assert result.expired == 1 and result.sent == result.retried == 0
    [row] = deliveries(webhook_app, nid)
    assert (row["state"], row["attempts"]) == ("stale", 1)
    assert len(webhook_server.requests) == 1


def test_a_notification_40_minutes_late_never_reaches_the_server(webhook_app, webhook_server):
    user_id, _ = add_user(webhook_app, NO_QUIET)
    [nid] = add_notifications(webhook_app, user_id, created_at=NOON - 40 * 60)
    result = dispatch_once(webhook_app, now=NOON)
    assert result.held_stale == 1 and result.planned == 0
    assert push_state(webhook_app, nid) == "stale"
    assert deliveries(webhook_app, nid) == []
    assert webhook_server.requests == []


def test_quiet_hours_hold_a_staff_message_but_not_a_bus_approaching(webhook_app,
                                                                    webhook_server):
    user_id, _ = add_user(webhook_app)  # default preferences: quiet 22:00-06:00
    [message] = add_notifications(webhook_app, user_id, LATE_EVENING - 30, kind="staff_message")
    [bus] = add_notifications(webhook_app, user_id, LATE_EVENING - 30, kind="bus_approaching")

    result = dispatch_once(webhook_app, now=LATE_EVENING)
    assert (result.held_quiet, result.planned, result.sent) == (1, 1, 1)
    assert push_state(webhook_app, message) == "quiet_hours"
    assert deliveries(webhook_app, message) == []
    assert push_state(webhook_app, bus) == "planned"
    assert webhook_server.answered_2xx() == {bus: 1}


def test_a_user_who_wants_the_app_only_gets_no_delivery_rows(webhook_app, webhook_server):
    user_id, _ = add_user(webhook_app, {"channels": ["app"], "quiet_hours": None})
    [nid] = add_notifications(webhook_app, user_id, created_at=NOON)
    assert dispatch_once(webhook_app, now=NOON).app_only == 1
    assert push_state(webhook_app, nid) == "none"
    assert deliveries(webhook_app) == []
    assert webhook_server.requests == []


def test_an_unconfigured_channel_gets_no_delivery_rows(app):
    app.config.update(WEBHOOK_URL=None, MQTT_URL=None)
    user_id, _ = add_user(app, NO_QUIET)  # wants app, mqtt and webhook
    [nid] = add_notifications(app, user_id, created_at=NOON)
    assert dispatch_once(app, now=NOON).app_only == 1
    assert push_state(app, nid) == "none"
    assert deliveries(app) == []


def test_a_webhook_url_without_a_secret_is_refused(app):
    app.config.update(WEBHOOK_URL="http://127.0.0.1:9/hook", WEBHOOK_SECRET=None, MQTT_URL=None)
    with pytest.raises(ChannelConfigError, match="XIAOCHE_WEBHOOK_SECRET is required"):
        dispatch_once(app, now=NOON)


class Recorder:
    name = "sms"

    def __init__(self, fail_with: Exception | None = None):
        self.sent: list[tuple[dict, str]] = []
        self.fail_with = fail_with
        self.closed = False

    def send(self, item, username):
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((item, username))

    def close(self):
        self.closed = True


@pytest.fixture
def sms(app):
    channel = Recorder()
    register("sms", lambda config: channel if config.get("SMS_ENABLED") else None)
    app.config.update(SMS_ENABLED=True, WEBHOOK_URL=None, MQTT_URL=None)
    yield channel
    unregister("sms")
    from backend.dispatch_service import close_channels

    close_channels(app)


def test_a_registered_channel_is_used_without_touching_the_dispatcher(app, sms):
    user_id, username = add_user(app, {"channels": ["app", "sms"], "quiet_hours": None})
    [nid] = add_notifications(app, user_id, created_at=NOON)
    assert dispatch_once(app, now=NOON).sent == 1
    assert [(item["id"], name) for item, name in sms.sent] == [(nid, username)]
    assert [d["channel"] for d in deliveries(app)] == ["sms"]


def test_a_channel_that_crashes_is_retried_and_the_others_still_go(app, sms, caplog):
    user_id, _ = add_user(app, {"channels": ["app", "sms"], "quiet_hours": None})
    [first, second] = add_notifications(app, user_id, created_at=NOON, count=2)
    calls = []

    def flaky(item, username):
        calls.append(item["id"])
        if item["id"] == first:
            raise ZeroDivisionError("a bug in the plug-in")
        if item["id"] == second and len(calls) == 2:
            raise DeliveryError("gateway busy", retryable=True)

    sms.send = flaky
    with caplog.at_level(logging.ERROR):
        result = dispatch_once(app, now=NOON)
    assert (result.sent, result.retried) == (0, 2)
    rows = {d["notification_id"]: d for d in deliveries(app)}
    assert rows[first]["last_error"] == "ZeroDivisionError: a bug in the plug-in"
    assert rows[second]["last_error"] == "gateway busy"
    assert "push channel sms raised" in caplog.text
