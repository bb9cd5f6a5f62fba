"""`xiaoche dispatch` as real processes: killed in the middle of a batch, and several at once on
PostgreSQL. The webhook receiver records which notification ids it answered with a 2xx."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import SECRET, add_notifications, add_user, deliveries, wait_until

WANTS_WEBHOOK = {"quiet_hours": None, "channels": ["app", "webhook"]}


def _env(webhook_server) -> dict[str, str]:
    return {"XIAOCHE_WEBHOOK_URL": webhook_server.url, "XIAOCHE_WEBHOOK_SECRET": SECRET}


@pytest.mark.slow
def test_a_dispatcher_killed_mid_batch_sends_nothing_twice(app, webhook_server,
                                                           dispatch_processes):
    kill_at = 4
    first = dispatch_processes(**_env(webhook_server))

    def responder(request):
        if request.index == kill_at:  # SIGKILL the dispatcher while it waits for this answer
            os.kill(first.pid, signal.SIGKILL)
            first.process.wait(10)
            return None  # never answered
        return 200, {}

    webhook_server.responder = responder
    user_id, _ = add_user(app, WANTS_WEBHOOK)
    ids = add_notifications(app, user_id, created_at=time.time(), count=10)

    first.start()
    wait_until(lambda: first.process.poll() is not None, 60, "the dispatcher to be killed")
    assert first.process.returncode == -signal.SIGKILL
    answered = webhook_server.answered_2xx()
    assert sum(answered.values()) == kill_at - 1
    in_flight = webhook_server.requests[kill_at - 1].delivery_id
    assert in_flight not in answered

    second = dispatch_processes(**_env(webhook_server)).start()
    wait_until(lambda: set(webhook_server.answered_2xx()) == set(ids), 60,
               "every notification to be answered")
    second.stop()
    answered = webhook_server.answered_2xx()
    assert answered == {nid: 1 for nid in ids}, answered  # each exactly once
    # only the one in flight was sent twice (once unanswered)
    tries = [r.delivery_id for r in webhook_server.requests]
    assert len(tries) == len(ids) + 1 and tries.count(in_flight) == 2
    assert {d["state"] for d in deliveries(app)} == {"sent"}


@pytest.mark.slow
def test_several_dispatchers_send_each_notification_once(
        app, webhook_server, dispatch_processes):
    """PostgreSQL: rows taken FOR UPDATE SKIP LOCKED; SQLite: claimed by conditional updates."""
    webhook_server.delay_s = 0.01  # keep each send open a while so the processes overlap
    processes = [dispatch_processes(**_env(webhook_server)).start() for _ in range(3)]
    user_ids = [add_user(app, WANTS_WEBHOOK)[0] for _ in range(4)]
    ids = []
    for user_id in user_ids:  # all at once: the dispatchers are already polling
        ids += add_notifications(app, user_id, created_at=time.time(), count=40)

    wait_until(lambda: len(webhook_server.requests) >= len(ids)
               and all(d["state"] == "sent" for d in deliveries(app)), 90,
               "every notification to be sent")
    time.sleep(0.5)  # would any dispatcher still send one again?
    for process in processes:
        process.stop()
    assert webhook_server.answered_2xx() == {nid: 1 for nid in ids}
    assert len(webhook_server.requests) == len(ids)
    outputs = [p.output() for p in processes]
    assert not any("Traceback" in out for out in outputs), outputs
    # the work was shared: more than one process sent something
    senders = sum("sent" in out for out in outputs)
    assert senders >= 2, outputs


def test_the_dispatcher_refuses_to_start_without_the_webhook_secret(_migrated, tmp_path):
    env = {**os.environ, "XIAOCHE_DATABASE_URL": _migrated, "XIAOCHE_SECRET_KEY": "test",
           "XIAOCHE_INSTANCE_PATH": str(tmp_path), "XIAOCHE_WEBHOOK_URL": "http://127.0.0.1:9/"}
    env.pop("XIAOCHE_WEBHOOK_SECRET", None)
    env.pop("XIAOCHE_MQTT_URL", None)
    done = subprocess.run([sys.executable, "-m", "backend.cli", "dispatch"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "XIAOCHE_WEBHOOK_SECRET is required when XIAOCHE_WEBHOOK_URL is set" in done.stderr
