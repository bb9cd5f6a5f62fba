"""The stream hub's polling thread ends when idle and starts again with the next stream
(backend.streams.runner.HubThread): a stream queued just as the thread decides to end must find
a thread running, or it would wait for some other stream to come along."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from flask import Flask

from backend.streams.runner import HubThread


class IdleHub:
    """A hub with no streams; a request to open one is queued while the thread, holding its
    lock, has just seen none waiting."""

    def __init__(self) -> None:
        self.config = SimpleNamespace(poll_s=0.01)
        self.app = Flask(__name__)
        self.open_count = self.opening = 0
        self.waiting = 0
        self.thread: HubThread | None = None
        self.raced = False
        self.armed = False  # once the test's own ensure_started() let go of the lock

    @property
    def requests_waiting(self) -> int:
        seen = self.waiting
        assert self.thread is not None
        if self.armed and not self.raced and self.thread._lock.locked():  # the thread's last look
            self.request = threading.Thread(target=self._request_open)
            self.request.start()
            self.raced = True
            self.request.join(0.5)  # (with the fix it waits for the lock we hold)
        return seen

    def _request_open(self) -> None:  # as StreamHub.request_open does
        self.waiting = 1
        self.thread.ensure_started()
        self.thread.wake()

    def open_pending(self) -> None:
        pass

    def poll(self) -> None:
        pass


def test_a_stream_queued_as_the_idle_thread_ends_finds_a_thread_running():
    hub = IdleHub()
    thread = hub.thread = HubThread(hub)  # type: ignore[arg-type]
    thread.IDLE_EXIT_S = 0.0
    thread.ensure_started()
    hub.armed = True
    deadline = time.monotonic() + 10
    while not hub.raced and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hub.raced
    hub.request.join(10)
    try:
        time.sleep(0.1)
        running = thread._thread
        assert running is not None and running.is_alive()  # the queued stream gets opened
    finally:
        hub.waiting = 0
        thread.stop()
