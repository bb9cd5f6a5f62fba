"""One ``GET /stream`` connection: :func:`live_stream`, a plain generator of
:class:`~backend.stream_service.Message` with an injected clock and sleep, so a stream is tested
without HTTP; the views only format and send what it yields. What a stream is made of (the wire
format, the resume point, the reads) is :mod:`backend.stream_service`; who polls the database
for every stream of the process is :mod:`backend.streams.hub`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import current_app

from backend.stream_service import HEARTBEAT, Message, StreamConfig
from backend.streams.hub import StreamHub
from backend.streams.subscribers import ThreadSink


def live_stream(user_id: int, token_version: int | None = None, *, resume: str | None = None,
                crs: str = "wgs84", config: StreamConfig | None = None,
                monotonic: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep,
                hub: Any = None) -> Iterator[Message]:
    """The messages of one ``/stream`` connection, until ``config.max_s`` has passed.

    Runs inside an app context. First ``retry`` and the resume point; then ``position``,
    ``eta`` and ``notification`` events, each carrying the new resume point as its ``id``, and a
    keep-alive comment whenever ``heartbeat_s`` passed without a write. ``resume`` is the
    client's ``Last-Event-ID``: missed notifications and the newest position of each vehicle
    since then are sent first; a value we did not give out means "from now". Ends early when
    the user is deleted or their token is revoked (``token_version`` changed).

    ``hub``: the process's :class:`backend.streams.hub.StreamHub`, polled by its own thread;
    this generator then only waits for what it delivers. Without one (tests) the stream gets a
    hub of its own, polled here every ``poll_s`` with the injected clock; no database
    connection is held between polls either way.
    """
    config = config or (hub.config if hub is not None else StreamConfig())
    private = hub is None
    if private:
        hub = StreamHub(current_app._get_current_object(), config, monotonic)
    sub, first = hub.open(user_id, token_version, resume, crs, ThreadSink())
    try:
        yield from first
        began = last_write = monotonic()
        while True:
            if private:
                hub.poll()
            elif not sub.queue and not sub.closed:
                with sub.changed:
                    wait_s = min(config.heartbeat_s - (monotonic() - last_write),
                                 config.max_s - (monotonic() - began))
                    if wait_s > 0 and not sub.queue and not sub.closed:
                        sub.changed.wait(wait_s)
            if sub.closed:
                return  # the user is gone or logged out everywhere
            events = sub.take()
            yield from events
            now = monotonic()
            if events:
                last_write = now
            if now - began >= config.max_s:
                return
            if now - last_write >= config.heartbeat_s:
                yield HEARTBEAT
                last_write = now
            if private:
                sleep(config.poll_s)
    finally:
        hub.close(sub)
