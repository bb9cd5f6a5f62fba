"""What drives a process's :class:`~backend.streams.hub.StreamHub` in a server: its polling
thread and, on PostgreSQL, a listener that wakes it the moment the ingest commits.

The hub reads the store every ``poll_s`` (250 ms by default) whatever happens, so nothing
depends on the notices: a lost notice, a listener that cannot connect, or a notification written
by some other process (the scheduler, a staff message) is picked up by the next poll. On
PostgreSQL the ingest also sends ``NOTIFY xiaoche_live`` in the transaction that moves a live
position (``backend.ingest.store.upsert_live_positions``; PostgreSQL delivers it at commit, once per
transaction however many vehicles moved), and each serving process keeps one connection
``LISTEN``-ing on that channel (:class:`ChangeListener`). A notice makes the hub poll now instead
of at the next tick — at most once per ``MIN_GAP_S``, so a busy ingest's many small batches cost
no more than ~20 reads a second per process. The wait between a commit and the streams thus
drops from up to ``poll_s`` to a few milliseconds, with one connection per process and no
poll per stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask

from backend.ingest.store import LIVE_CHANNEL
from backend.streams.hub import StreamHub

log = logging.getLogger(__name__)

MIN_GAP_S = 0.05  # between two polls a notice brings forward
RETRY_MAX_S = 30.0


class HubThread:
    """Polls a hub every ``poll_s`` in a daemon thread of its own (one per serving process), and
    sooner when :meth:`poke`\\ d; the thread ends after a while without streams and starts again
    with the next one."""

    IDLE_EXIT_S = 10.0

    def __init__(self, hub: StreamHub):
        self.hub = hub
        hub.refresh_in_background = True  # the polls carry on while scopes are re-read
        self._stop = threading.Event()
        self._wake = threading.Event()  # a stream to open, or a notice: do not wait
        self._poked = False
        self._poked_at: float | None = None  # the first notice since the last poll
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.polls = 0  # how many polls ran (tests, /metrics)

    def ensure_started(self) -> None:
        # always under the lock: a thread seen alive here may be ending for want of streams,
        # having looked at the queue just before this stream was put in it
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="stream-hub",
                                                daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def poke(self) -> None:
        """The store changed: poll as soon as ``MIN_GAP_S`` after the last poll allows."""
        if self._poked_at is None:
            self._poked_at = time.monotonic()
        self._poked = True
        self._wake.set()

    def _run(self) -> None:
        hub = self.hub
        poll_s = hub.config.poll_s
        idle_since = next_poll = time.monotonic()
        last_poll = -MIN_GAP_S
        while not self._stop.is_set():
            now = time.monotonic()
            if hub.open_count or hub.opening or hub.requests_waiting:
                idle_since = now
            elif now - idle_since > self.IDLE_EXIT_S:
                with self._lock:  # a stream opening now finds the thread gone and starts one
                    if not (hub.open_count or hub.opening or hub.requests_waiting):
                        self._thread = None
                        return
            if self._poked:
                self._poked = False
                next_poll = min(next_poll, max(now, last_poll + MIN_GAP_S))
            try:
                with hub.app.app_context():
                    hub.open_pending()
                    if now >= next_poll:
                        next_poll = now + poll_s
                        last_poll = now
                        self.polls += 1
                        origin, self._poked_at = self._poked_at, None
                        hub.poll(origin)
            except Exception:  # noqa: BLE001 — one failed read must not end every stream
                log.exception("stream hub: poll failed; trying again")
            self._wake.wait(max(0.0, next_poll - time.monotonic()))
            self._wake.clear()


class ChangeListener:
    """One PostgreSQL connection ``LISTEN``-ing on :data:`backend.ingest.store.LIVE_CHANNEL` in a
    daemon thread; calls ``on_change()`` for every notice. Reconnects with a growing pause (up to
    ``RETRY_MAX_S``) when the database goes away; meanwhile the hub simply polls."""

    def __init__(self, conninfo: str, on_change: Callable[[], None]):
        self.conninfo = conninfo
        self.on_change = on_change
        self.listening = threading.Event()  # set while a LISTEN is in place
        self.notices = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-changes", daemon=True)

    def start(self) -> ChangeListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import psycopg

        pause = 1.0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {LIVE_CHANNEL}")
                    self.listening.set()
                    pause = 1.0
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.notices += 1
                            self.on_change()
                            if self._stop.is_set():
                                break
            except Exception as exc:  # noqa: BLE001 — the polls carry on without us
                self.listening.clear()
                if self._stop.is_set():
                    break
                log.warning("stream hub: cannot listen for changes (%s); polling only, "
                            "retrying in %.0f s", exc, pause)
                self._stop.wait(pause)
                pause = min(RETRY_MAX_S, pause * 2)
        self.listening.clear()


def listener_conninfo(app: Flask) -> str | None:
    """A libpq URI for the app's PostgreSQL database (its search path included), or ``None`` on
    another database."""
    from backend.extensions import db

    url = db.engine.url
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def hub_of(app: Flask) -> StreamHub:
    """This process's hub (and its polling thread, started on first use; on PostgreSQL also its
    change listener)."""
    app = getattr(app, "_get_current_object", lambda: app)()  # not the current_app proxy
    found = app.extensions.get("xiaoche.stream_hub")
    if found is None:
        with _CREATE:
            found = app.extensions.get("xiaoche.stream_hub")
            if found is None:
                hub = StreamHub(app)
                hub.thread = HubThread(hub)
                with app.app_context():
                    conninfo = listener_conninfo(app)
                if conninfo is not None:
                    hub.listener = ChangeListener(conninfo, hub.thread.poke).start()
                found = app.extensions["xiaoche.stream_hub"] = (hub, hub.thread)
    hub, thread = found
    thread.ensure_started()
    return hub


_CREATE = threading.Lock()
