"""A commit wakes the serving process's stream hub at once (PostgreSQL ``LISTEN``/``NOTIFY``);
the poll carries on regardless, and a notice never makes the hub read more than ~20 times a
second."""

from __future__ import annotations

import time

from backend.extensions import db
from backend.streams.runner import MIN_GAP_S, hub_of
from backend.streams.subscribers import ThreadSink
from tests.integration.api.test_routes_live import drive
from tests.integration.api.test_stream import PARENT, mid_trip_rows
from tests.integration.api.test_stream_hub import user_id

LONG_POLL_MS = 600_000  # ten minutes: within a test, only a wake-up delivers anything


def _wait_for(sub, event: str, timeout_s: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with sub.changed:
            sub.changed.wait(0.1)
        seen += [m.event for m in sub.take()]
        if event in seen:
            break
    return seen


def test_a_committed_ping_reaches_an_open_stream_without_waiting_for_the_next_poll(app, imported):
    app.config["STREAM_POLL_MS"] = LONG_POLL_MS
    with app.app_context():
        on_postgresql = db.engine.dialect.name == "postgresql"
    rows = mid_trip_rows(imported)
    app.config["CLOCK"] = lambda: rows[-1][0] + 5
    hub = hub_of(app)
    try:
        with app.app_context():
            sub, _ = hub.open(user_id(app, PARENT[0]), None, None, "wgs84", ThreadSink())
        if on_postgresql:
            assert hub.listener is not None
            assert hub.listener.listening.wait(10), "the hub's LISTEN connection never came up"
        else:
            assert hub.listener is None  # SQLite has no notices: the poll alone delivers
        time.sleep(0.3)  # the thread's first poll (at its start) is behind us
        polls_before = hub.thread.polls
        drive(app, "dev-bus-07", rows)
        if not on_postgresql:
            hub.thread.poke()  # what a notice does, by hand
        seen = _wait_for(sub, "position", timeout_s=15)
        assert "position" in seen, f"nothing delivered within 15 s (got {seen})"
        # the drive is ~10 batches, each its own transaction and notice, yet the hub read the
        # store at most once per MIN_GAP_S meanwhile (plus the one the notices brought forward)
        assert hub.thread.polls - polls_before >= 1
        if on_postgresql:
            assert hub.listener.notices >= 1
        hub.close(sub)
    finally:
        hub.thread.stop()
        if hub.listener is not None:
            hub.listener.stop()


def test_pokes_in_a_burst_bring_one_poll_forward_not_one_each(app, imported):
    app.config["STREAM_POLL_MS"] = LONG_POLL_MS
    hub = hub_of(app)
    try:
        with app.app_context():
            sub, _ = hub.open(user_id(app, PARENT[0]), None, None, "wgs84", ThreadSink())
        time.sleep(0.3)
        before = hub.thread.polls
        started = time.monotonic()
        for _ in range(200):  # 200 notices as fast as they come
            hub.thread.poke()
        time.sleep(0.5)
        elapsed = time.monotonic() - started
        # without the gap each poke could be a read of the store: 200 of them
        assert 1 <= hub.thread.polls - before <= elapsed / MIN_GAP_S + 2
        hub.close(sub)
    finally:
        hub.thread.stop()
        if hub.listener is not None:
            hub.listener.stop()
