"""The whole HTTP API on one port, with streams where thousands of idle connections are cheap.

:class:`XiaocheAsgi` is an ASGI application around the Flask app (run by uvicorn: in ``xiaoche
serve`` and ``demo`` in-process, under ``xiaoche api`` as gunicorn's worker class
``backend.streams.worker.StreamWorker``):

- ``GET /api/v1/stream``: past ``STREAM_MAX`` open streams in this process a ``503``
  problem+json with ``Retry-After`` is answered at once, from the event loop (no thread, no
  database: a storm of reconnects costs next to nothing). Otherwise the Flask view authenticates
  the caller and opens the stream on the process's hub (``backend.streams.hub``) in a small pool
  of handshake threads of its own; from then on the stream is a coroutine waiting for what the
  hub delivers — no thread, no database connection, a few kB of memory.
- everything else: the Flask app (with ``/live``'s fast path) in a thread pool of its own
  (``rest_threads``), the request body read first and the answer sent whole, one hop between
  the event loop and a thread per request. Streams never take a thread of this pool, so logins
  and REST keep answering whatever the number of streams.

Access lines go to the ``xiaoche.access`` logger with the path only: ``/stream?access_token=…``
never lands in a log.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask

from backend.access_log import record_access
from backend.logs import request_id
from backend.security import TokenError, read_user_token
from backend.streams.handoff import Handoff
from backend.streams.loop_sink import MAX_QUEUED, LoopSink, _Live
from backend.streams.runner import hub_of
from backend.streams.subscribers import OpenRequest, Sink, Subscriber

STREAM_PATH = "/api/v1/stream"
DETACH = "xiaoche.stream.detach"  # environ key: the view opens the stream for this server
HEARTBEAT = b": keep-alive\n\n"
# ASGI scope extension: a ``write_now(bytes) -> bool`` that writes a body chunk at once if the
# connection takes it (``backend.streams.handoff``), so the sink need not wake the coroutine
WRITE_NOW = "xiaoche.write_now"
# what the Flask view answers a stream with (Flask adds the charset to text/* types)
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"),
               (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
OPEN_TIMEOUT_S = 30.0

access_log = logging.getLogger("xiaoche.access")


class Detach:
    """Handed to the Flask view in the environ: it opens the stream on the hub with this sink
    and leaves the subscriber here instead of streaming in its thread."""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.subscriber: Subscriber | None = None


class XiaocheAsgi:
    """ASGI: ``/api/v1/stream`` on the event loop, the rest of the Flask app in threads."""

    def __init__(self, app: Flask, rest_threads: int = 64, handshake_threads: int = 2,
                 log_access: bool = True, handoff: Handoff | None = None):
        self.app = app
        self.handoff = handoff  # stream processes to hand /stream connections to (xiaoche api)
        self.rest = ThreadPoolExecutor(rest_threads, thread_name_prefix="rest")
        self.handshakes = ThreadPoolExecutor(handshake_threads, thread_name_prefix="stream-open")
        self.log_access = log_access
        self._sink: LoopSink | None = None
        self.stopping = False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        began = time.monotonic()
        if scope["path"] == STREAM_PATH and scope["method"] == "GET":
            if self.handoff is not None and await self.handoff.give(scope, send):
                return  # a stream process answers it (and logs it)
            status, size = await self._stream(scope, receive, send)
        else:
            status, size = await self._rest(scope, receive, send)
        if self.log_access and access_log.isEnabledFor(logging.INFO):
            client = scope.get("client") or ("-", 0)
            access_log.info('%s "%s %s HTTP/%s" %d %d %.6f', client[0], scope["method"],
                            scope["path"], scope["http_version"], status, size,
                            time.monotonic() - began)

    # -- REST -----------------------------------------------------------------------------

    async def _rest(self, scope: dict, receive: Any, send: Any) -> tuple[int, int]:
        body = await _read_body(receive)
        if body is None:
            return 499, 0  # the client left before it finished its request
        environ = _environ(scope, body)
        loop = asyncio.get_running_loop()
        status, headers, chunks = await loop.run_in_executor(self.rest, self._call, environ)
        return await _send_whole(send, status, headers, chunks)

    def _call(self, environ: dict) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
        """The WSGI app called in a thread, its answer collected whole."""
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
            started[:] = [status, headers]
            return chunks.append

        iterable = self.app(environ, start_response)
        try:
            for chunk in iterable:
                if chunk:
                    chunks.append(chunk)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        status, headers = started
        return (int(status.split(" ", 1)[0]),
                [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
                chunks)

    # -- streams --------------------------------------------------------------------------

    def _sink_here(self) -> LoopSink:
        loop = asyncio.get_running_loop()
        if self._sink is None or self._sink.loop is not loop:
            self._sink = LoopSink(loop, hub_of(self.app).fanout)
        return self._sink

    async def _stream(self, scope: dict, receive: Any, send: Any) -> tuple[int, int]:
        hub = hub_of(self.app)
        config = hub.config
        if self.stopping or hub.full():
            return await _refuse(send, config.retry_after_s, hub.open_count)
        sink = self._sink_here()
        loop = asyncio.get_running_loop()
        sub, headers, chunks = None, [*SSE_HEADERS, _request_id(scope)], []
        caller = self._token_caller(scope)
        if caller is not None:  # the common case: opened in the hub's next batch
            hub.opening += 1
            try:
                sub, messages = await _open_in_batch(hub, loop, sink, *caller)
            finally:
                hub.opening -= 1
            chunks = ["".join(m.encode() for m in messages).encode()]
        if sub is None:  # anything else, and every doubt: the Flask view answers, as always
            detach = Detach(sink)
            environ = _environ(scope, b"")
            environ[DETACH] = detach
            hub.opening += 1
            try:
                status, headers, chunks = await loop.run_in_executor(self.handshakes,
                                                                     self._call, environ)
            finally:
                hub.opening -= 1
            sub = detach.subscriber
            if sub is None or status != 200:
                if sub is not None:
                    hub.close(sub)
                return await _send_whole(send, status, headers, chunks)
        record_access(self.app, sub.user_id, "stream")
        event = sink.events[sub] = asyncio.Event()
        gone = asyncio.Event()
        watcher = asyncio.ensure_future(_watch_disconnect(receive, gone, event))
        write_now = (scope.get("extensions") or {}).get(WRITE_NOW)
        live = None
        size = 0
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(k, v) for k, v in headers if k != b"content-length"]})
            first = b"".join(chunks)
            size += len(first)
            await send({"type": "http.response.body", "body": first, "more_body": True})
            began = last_write = loop.time()
            if write_now is not None:  # from now on the sink writes this stream's events
                live = sink.live[sub] = _Live(write_now, last_write, 0)
            while True:
                if live is not None:
                    last_write = max(last_write, live.last_write)
                messages = sub.take()
                if len(messages) > MAX_QUEUED:
                    break  # a client this far behind resumes with Last-Event-ID instead
                if messages:
                    data = "".join(m.encode() for m in messages).encode()
                    size += len(data)
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                    last_write = loop.time()
                sink.written(sub)
                if sub.closed or gone.is_set() or self.stopping:
                    break
                now = loop.time()
                if now - began >= config.max_s:
                    break
                if now - last_write >= config.heartbeat_s:
                    size += len(HEARTBEAT)
                    await send({"type": "http.response.body", "body": HEARTBEAT,
                                "more_body": True})
                    last_write = now
                    if live is not None:
                        live.last_write = now
                    continue
                event.clear()
                if sub.queue or sub.closed:
                    continue
                sink.wait_until(sub, min(last_write + config.heartbeat_s, began + config.max_s))
                await event.wait()
            if not gone.is_set():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            hub.close(sub)
            sink.forget(sub)
            watcher.cancel()
        if live is not None:
            size += live.size
        return 200, size

    def _token_caller(self, scope: dict) -> tuple[str, int, str | None, str] | None:
        """(username, token version, Last-Event-ID, crs) of a stream request the view would
        accept as far as can be told without the database (a signed, unexpired token; no
        other query than ``crs`` and ``access_token``), else None."""
        try:
            query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True,
                              strict_parsing=bool(scope["query_string"]))
        except ValueError:
            return None
        params = dict(query)
        if len(params) != len(query) or not set(params) <= {"crs", "access_token"}:
            return None
        crs = params.get("crs", "wgs84")
        if crs not in ("wgs84", "gcj02"):
            return None
        headers = {}
        for name, value in scope["headers"]:
            if name in (b"authorization", b"last-event-id"):
                if name in headers:
                    return None
                headers[name] = value.decode("latin-1")
        if b"authorization" in headers:
            kind, _, token = headers[b"authorization"].partition(" ")
            if kind.lower() != "bearer":
                return None
        else:
            token = params.get("access_token", "")
        token = token.strip()
        if not token:
            return None
        config = self.app.config
        try:
            username, version = read_user_token(config["SECRET_KEY"], token,
                                                int(config["TOKEN_TTL_S"]))
        except TokenError:
            return None
        return username, version, headers.get(b"last-event-id"), crs

    def end_streams(self) -> None:
        """Shutting down: every open stream ends now (its client resumes elsewhere or later)."""
        self.stopping = True
        if self._sink is not None:
            for event in list(self._sink.events.values()):
                event.set()


async def _open_in_batch(hub: Any, loop: asyncio.AbstractEventLoop, sink: LoopSink,
                         username: str, version: int, resume: str | None, crs: str
                         ) -> tuple[Subscriber | None, list]:
    future: asyncio.Future = loop.create_future()

    def resolve(sub: Subscriber | None, messages: list) -> None:
        if future.done():  # the request gave up waiting: nobody reads this stream
            if sub is not None:
                hub.close(sub)
            return
        future.set_result((sub, messages))

    def done(sub: Subscriber | None, messages: list) -> None:  # the hub's thread
        loop.call_soon_threadsafe(resolve, sub, messages)

    hub.request_open(OpenRequest(username, version, resume, crs, sink, done))
    try:
        return await asyncio.wait_for(asyncio.shield(future), OPEN_TIMEOUT_S)
    except TimeoutError:
        future.cancel()
        return None, []


async def _watch_disconnect(receive: Any, gone: asyncio.Event, wake: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            wake.set()
            return


async def _refuse(send: Any, retry_after_s: int, open_count: int) -> tuple[int, int]:
    body = json.dumps({
        "type": "about:blank", "title": "Service Unavailable", "status": 503,
        "detail": f"this server holds as many live streams as it may ({open_count}); try "
                  f"again in {retry_after_s} s, and poll GET /api/v1/routes/{{id}}/live "
                  "meanwhile"}).encode()
    return await _send_whole(send, 503, [
        (b"content-type", b"application/problem+json"),
        (b"retry-after", str(retry_after_s).encode()),
        (b"content-length", str(len(body)).encode())], [body])


async def _send_whole(send: Any, status: int, headers: list[tuple[bytes, bytes]],
                      chunks: list[bytes]) -> tuple[int, int]:
    body = b"".join(chunks)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
    return status, len(body)


async def _read_body(receive: Any) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _environ(scope: dict, body: bytes) -> dict[str, Any]:
    """The WSGI environ of an ASGI request whose body was read (PEP 3333)."""
    path = scope["path"].encode("utf-8").decode("latin-1")
    root = scope.get("root_path", "").encode("utf-8").decode("latin-1")
    if root and path.startswith(root):
        path = path[len(root):]
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root,
        "PATH_INFO": path,
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] or 0),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1")
        if name == "content-length":
            key = "CONTENT_LENGTH"
        elif name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if key in environ:
            value = f"{environ[key]},{value}"
        environ[key] = value
    if body and "CONTENT_LENGTH" not in environ:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def raise_open_files_limit() -> int:
    """Each stream is a socket: lift this process's soft limit on open files to the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            return soft
    return soft


def _request_id(scope: dict[str, Any]) -> tuple[bytes, bytes]:
    """The ``X-Request-ID`` header Flask's answers carry (:func:`backend.logs.request_id`)."""
    given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
    return b"x-request-id", request_id(given).encode("latin-1")
