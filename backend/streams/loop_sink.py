"""Delivery of the hub's messages to the streams of one asyncio event loop
(:class:`LoopSink`, used by ``backend.streams.asgi``), and the fan-out latency it observes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from backend.streams.fanout import FanoutHistogram
from backend.streams.subscribers import Sink, Subscriber

MAX_QUEUED = 2000  # messages waiting for a client that does not read: it is dropped (resumes)
TICK_S = 0.5  # heartbeats and ends of life are this late at most


class LoopSink(Sink):
    """Delivers a poll's messages to the streams of one event loop: one callback per poll.

    A stream whose connection can take a write at once (``write_now``: a handed-over
    connection in a stream process, see ``backend.streams.handoff``) gets its frame written
    straight to its transport in that callback's one loop — no coroutine wakes up per stream
    per event. The others (uvicorn's ``send``, or a connection whose client reads slowly) are
    woken and write from their coroutine, as before."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fanout: FanoutHistogram | None = None):
        self.loop = loop
        self.fanout = fanout
        self.events: dict[Subscriber, asyncio.Event] = {}
        self.live: dict[Subscriber, _Live] = {}  # streams that may be written to directly
        # when each stream must wake without a delivery (heartbeat, end of life): one ticker
        # checks them every second instead of a timer per stream and wait
        self.deadlines: dict[Subscriber, float] = {}
        self.awaiting: dict[Subscriber, _Fanout] = {}  # woken streams a fan-out waits for
        self._ticker: asyncio.Task | None = None

    def wait_until(self, sub: Subscriber, deadline: float) -> None:
        self.deadlines[sub] = deadline
        if self._ticker is None or self._ticker.done():
            self._ticker = self.loop.create_task(self._tick())

    def forget(self, sub: Subscriber) -> None:
        self.events.pop(sub, None)
        self.deadlines.pop(sub, None)
        self.live.pop(sub, None)
        self.written(sub)

    def written(self, sub: Subscriber) -> None:
        """A woken stream wrote what it was woken for (or ended)."""
        fanout = self.awaiting.pop(sub, None)
        if fanout is not None:
            fanout.one_done()

    async def _tick(self) -> None:
        while self.events:
            await asyncio.sleep(TICK_S)
            now = self.loop.time()
            due = [sub for sub, deadline in self.deadlines.items() if deadline <= now]
            for sub in due:
                del self.deadlines[sub]
                event = self.events.get(sub)
                if event is not None:
                    event.set()

    def deliver(self, batch, origin=None):
        for sub, messages in batch:
            with sub.changed:
                sub.queue.extend(messages)
        self.loop.call_soon_threadsafe(self._fan_out, [sub for sub, _ in batch],
                                       time.monotonic() if origin is None else origin)

    def closed(self, subscribers):
        self.loop.call_soon_threadsafe(self._wake, list(subscribers))

    def _fan_out(self, subscribers: list[Subscriber], origin: float) -> None:
        woken: list[Subscriber] = []
        live, now = self.live, self.loop.time()
        frames: dict[tuple[int, ...], tuple[list, bytes]] = {}  # the streams at the same point: encoded once
        for sub in subscribers:
            stream = live.get(sub)
            if stream is None or not stream.write(sub, now, frames):
                woken.append(sub)
        fanout = _Fanout(self.fanout, origin, len(woken))
        for sub in woken:
            event = self.events.get(sub)
            if event is None:
                fanout.one_done()
                continue
            previous = self.awaiting.pop(sub, None)
            if previous is not None:
                previous.one_done()
            self.awaiting[sub] = fanout
            event.set()
        fanout.check()

    def _wake(self, subscribers: list[Subscriber]) -> None:
        for sub in subscribers:
            event = self.events.get(sub)
            if event is not None:
                event.set()


class _Live:
    """A stream its event loop may write to without waking its coroutine."""

    __slots__ = ("write_now", "last_write", "size")

    def __init__(self, write_now: Callable[[bytes], bool], last_write: float, size: int):
        self.write_now = write_now
        self.last_write = last_write
        self.size = size

    def write(self, sub: Subscriber, now: float, frames: dict | None = None) -> bool:
        """Write what is queued for ``sub`` now; False (nothing taken) when the connection
        cannot take it at once or too much is queued: its coroutine must deal with it.
        ``frames``: the bytes of message lists already encoded in this callback, by the ids
        of their messages (the hub gives streams at the same point the same objects)."""
        with sub.changed:
            messages = sub.queue
            if not messages:
                return True
            if len(messages) > MAX_QUEUED or sub.closed:
                return False
            key = tuple(map(id, messages))
            found = None if frames is None else frames.get(key)
            if found is None:
                data = "".join(m.encode() for m in messages).encode()
                if frames is not None:  # the messages kept alive with it: no id is reused
                    frames[key] = (messages, data)
            else:
                data = found[1]
            if not self.write_now(data):
                return False
            sub.queue = []
        self.size += len(data)
        self.last_write = now
        return True


class _Fanout:
    """One poll's delivery on one loop: observed when its last stream wrote."""

    __slots__ = ("histogram", "origin", "remaining")

    def __init__(self, histogram: FanoutHistogram | None, origin: float, remaining: int):
        self.histogram = histogram
        self.origin = origin
        self.remaining = remaining

    def one_done(self) -> None:
        self.remaining -= 1
        self.check()

    def check(self) -> None:
        if self.remaining == 0:
            self.remaining = -1  # observed once
            if self.histogram is not None:
                self.histogram.observe(time.monotonic() - self.origin)
