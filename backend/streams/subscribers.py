"""The open streams of a :class:`~backend.streams.hub.StreamHub` and where their messages go:
a :class:`Subscriber` per stream, a :class:`Sink` per server kind (blocking WSGI readers:
:class:`ThreadSink`; the asyncio stream server: ``backend.streams.loop_sink.LoopSink``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from backend.scopes import LiveScope
from backend.stream_service import Message, ResumePoint


class Sink:
    """Where a poll's messages go; called with the hub's lock held, so it must not block."""

    def deliver(self, batch: list[tuple[Subscriber, list[Message]]],
                origin: float | None = None) -> None:
        """``origin``: when the change was first known (the store's notice, or the poll that
        read it; ``time.monotonic()``), for the fan-out histogram."""
        raise NotImplementedError

    def closed(self, subscribers: list[Subscriber]) -> None:
        raise NotImplementedError


class ThreadSink(Sink):
    """Each subscriber keeps a queue that a blocking reader waits on (WSGI, tests)."""

    def deliver(self, batch, origin=None):
        for sub, messages in batch:
            with sub.changed:
                sub.queue.extend(messages)
                sub.changed.notify_all()

    def closed(self, subscribers):
        for sub in subscribers:
            with sub.changed:
                sub.changed.notify_all()


@dataclass(eq=False)
class Subscriber:
    """One open stream: whose, what it may see, where it stands."""

    user_id: int
    token_version: int | None
    crs: str
    sink: Sink
    start: ResumePoint = ResumePoint(0.0, 0)
    scope: LiveScope | None = None
    received_mark: float = 0.0
    notification_mark: int = 0
    closed: bool = False
    # deliveries that arrived while the catch-up was read; merged once it is sent
    pending: list[tuple] | None = field(default_factory=list)
    # what the catch-up sent, so the first polls do not send it again
    caught_up: set = field(default_factory=set)
    queue: list[Message] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    opened_at: float = 0.0

    def point(self) -> str:
        return ResumePoint(self.received_mark, self.notification_mark).encode()

    def take(self) -> list[Message]:
        """What was delivered since the last take (for :class:`ThreadSink` readers)."""
        with self.changed:
            out, self.queue = self.queue, []
            return out


@dataclass(eq=False)
class OpenRequest:
    """A stream to open in the hub's next batch (:meth:`StreamHub.open_pending`): the caller's
    token was checked already (signature and age); ``done(subscriber, first messages)`` is
    called from the hub's thread, with ``None`` when the user or the token version does not
    hold (or the batch failed): the caller then lets the Flask view answer, as it would."""

    username: str
    token_version: int
    resume: str | None
    crs: str
    sink: Sink
    done: Callable[[Subscriber | None, list[Message]], None]
