"""Handing a ``GET /api/v1/stream`` connection from an API worker to a stream process.

With ``xiaoche api``, the REST API and the streams used to share each gunicorn worker — and so
its interpreter lock: fifty busy REST requests delayed the hub's fan-out by seconds, and ten
thousand streams' writes delayed the REST answers. Now the workers keep the port and answer
REST; a request for ``/api/v1/stream`` is **handed over**, connection and all, to a stream
process of its own (``backend.streams.stream_server``), which writes the response on that
connection for as long as the stream lives. Both processes run the same Flask app and the same
:class:`~backend.streams.asgi.XiaocheAsgi`; clients see one port and the same answers.

How: the worker has parsed the request (uvicorn); it sends the request's ASGI scope (JSON) and
the connection's file descriptor over a Unix ``SOCK_SEQPACKET`` socket (``SCM_RIGHTS``: the
stream process gets its own descriptor of the same TCP connection), waits for the stream
process's receipt, then drops its own descriptor without writing anything and without shutting
the connection down. Nothing was
written to the client yet, so the stream process answers from the start: the status line and
headers, then the events in chunked encoding, and closes the connection at the end (a stream is
its connection's last request).

When no stream process takes it (none configured; it died, even holding the descriptor before
it confirmed; it is being restarted; its socket is full), the worker serves the stream itself,
as before: a hand-over never loses a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from http import HTTPStatus
from itertools import count
from typing import Any

log = logging.getLogger(__name__)

SOCKET_ENV = "XIAOCHE_STREAM_HANDOFF"  # path prefix of the stream processes' sockets
MAX_SCOPE_BYTES = 64 * 1024

# what of an ASGI http scope crosses over (all JSON-safe once bytes are latin-1 text)
_TEXT_KEYS = ("type", "http_version", "method", "scheme", "path", "root_path")


def scope_to_bytes(scope: dict[str, Any]) -> bytes:
    data = {k: scope[k] for k in _TEXT_KEYS if k in scope}
    data["query_string"] = scope.get("query_string", b"").decode("latin-1")
    data["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
    data["client"] = list(scope["client"]) if scope.get("client") else None
    data["server"] = list(scope["server"]) if scope.get("server") else None
    return json.dumps(data, separators=(",", ":")).encode()


def scope_from_bytes(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw)
    data["query_string"] = data["query_string"].encode("latin-1")
    data["headers"] = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in data["headers"]]
    data["client"] = tuple(data["client"]) if data["client"] else None
    data["server"] = tuple(data["server"]) if data["server"] else None
    data["asgi"] = {"version": "3.0", "spec_version": "2.3"}
    return data


def socket_paths(prefix: str, processes: int) -> list[str]:
    return [f"{prefix}.{n}" for n in range(processes)]


class _Link:
    """A worker's connection to one stream process, and the hand-overs awaiting its receipt."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.waiting: dict[int, asyncio.Future] = {}
        self.reading = False

    def fail_all(self) -> None:
        for future in self.waiting.values():
            if not future.done():
                future.set_result(False)
        self.waiting.clear()


class Handoff:
    """A worker's connections to the stream processes (round robin); used on its event loop.

    Each hand-over waits for the stream process's receipt (the hand-over's number, sent back as
    soon as it holds the descriptor) before the worker lets go of its own: if the stream process
    dies first — even in the milliseconds of its exit, while its end of the Unix socket still
    takes messages — the worker sees the connection end without a receipt and serves the stream
    itself. A stream process that is alive but slow to answer (starting) gets ``RECEIPT_S``;
    after that the worker lets go anyway, since the stream process will serve it."""

    RECEIPT_S = 5.0

    def __init__(self, paths: list[str]):
        self.paths = paths
        self._links: dict[str, _Link] = {}
        self._turn = count()
        self._numbers = count(1)
        self.handed = 0
        self.overflowed = 0  # served by the worker because the stream process was behind

    @classmethod
    def from_env(cls, environ: dict[str, str], processes: int) -> Handoff | None:
        prefix = environ.get(SOCKET_ENV)
        return cls(socket_paths(prefix, processes)) if prefix and processes > 0 else None

    async def give(self, scope: dict[str, Any], send: Any) -> bool:
        """Hand the request's connection over; ``False`` (nothing changed) when it cannot be."""
        cycle = getattr(send, "__self__", None)  # uvicorn's RequestResponseCycle
        transport = getattr(cycle, "transport", None)
        if transport is None or transport.is_closing() or not hasattr(cycle, "disconnected"):
            return False
        sock = transport.get_extra_info("socket")
        if sock is None or transport.get_extra_info("ssl_object") is not None:
            return False  # (TLS ends here: the stream process would write plaintext into it)
        number = next(self._numbers)
        payload = number.to_bytes(8, "big") + scope_to_bytes(scope)
        if len(payload) > MAX_SCOPE_BYTES:
            return False
        loop = asyncio.get_running_loop()
        for _ in range(len(self.paths)):
            path = self.paths[next(self._turn) % len(self.paths)]
            link = self._send(path, payload, sock.fileno())
            if link is None:
                continue
            receipt = link.waiting[number] = loop.create_future()
            self._read_receipts(loop, path, link)
            try:
                taken = await asyncio.wait_for(asyncio.shield(receipt), self.RECEIPT_S)
            except TimeoutError:
                link.waiting.pop(number, None)
                taken = True  # queued in a live process that is slow: it will serve it
            if taken:
                break
            # the process died holding it: nobody will answer; try the next one, or ourselves
        else:
            return False
        # ours is a duplicate now: close it without a word (no shutdown, so the connection
        # stays open in the stream process) and tell uvicorn not to answer for us
        cycle.disconnected = True
        transport.close()
        self.handed += 1
        return True

    def _send(self, path: str, payload: bytes, fd: int) -> _Link | None:
        link = self._links.get(path)
        for _attempt in (0, 1):
            if link is None:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                try:
                    # never blocks the worker's event loop: a full backlog refuses at once
                    conn.setblocking(False)
                    conn.connect(path)
                except OSError:
                    conn.close()
                    return None
                link = self._links[path] = _Link(conn)
            try:
                socket.send_fds(link.sock, [payload], [fd])
                return link
            except BlockingIOError:
                # the stream process is behind (its queue is full): this one stays here, and
                # the worker's loop never waits for it (REST keeps answering)
                self.overflowed += 1
                return None
            except OSError:
                self._drop(path, link)
                link = None  # the stream process restarted: one new connection, then give up
        return None

    def _read_receipts(self, loop: asyncio.AbstractEventLoop, path: str, link: _Link) -> None:
        if link.reading:
            return
        link.reading = True

        def readable() -> None:
            while True:
                try:
                    data = link.sock.recv(64, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    return
                except OSError:
                    data = b""
                if not data:  # the stream process is gone: what it did not confirm, it lost
                    loop.remove_reader(link.sock.fileno())
                    self._drop(path, link)
                    return
                future = link.waiting.pop(int.from_bytes(data[:8], "big"), None)
                if future is not None and not future.done():
                    future.set_result(True)

        loop.add_reader(link.sock.fileno(), readable)

    def _drop(self, path: str, link: _Link) -> None:
        if self._links.get(path) is link:
            del self._links[path]
        if link.reading:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(link.sock.fileno())
            link.reading = False
        link.fail_all()
        link.sock.close()

    def close(self) -> None:
        for link in list(self._links.values()):
            link.fail_all()
            link.sock.close()
        self._links.clear()


# -- the stream process's side: the HTTP/1.1 response on a handed-over connection -------------


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pass  # a stream's client sends nothing more; pipelined requests are not answered

    def eof_received(self) -> bool:
        self.lost.set()
        return False

    def connection_lost(self, exc) -> None:
        self.lost.set()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


class HandedOver:
    """ASGI ``receive``/``send`` over a connection whose request another process parsed."""

    def __init__(self, conn: _Connection):
        self.conn = conn
        self._requested = False
        self._chunked = False
        self.done = False

    async def receive(self) -> dict[str, Any]:
        if not self._requested:
            self._requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.conn.lost.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        transport = self.conn.transport
        if transport is None or self.conn.lost.is_set() or self.done:
            return
        if message["type"] == "http.response.start":
            status = int(message["status"])
            try:
                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = ""
            headers = [(k.lower(), v) for k, v in message.get("headers", [])]
            self._chunked = not any(k == b"content-length" for k, _ in headers)
            lines = [f"HTTP/1.1 {status} {reason}".encode()]
            lines += [k + b": " + v for k, v in headers
                      if k not in (b"connection", b"transfer-encoding")]
            if self._chunked:
                lines.append(b"transfer-encoding: chunked")
            lines.append(b"connection: close")
            transport.write(b"\r\n".join(lines) + b"\r\n\r\n")
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if self._chunked:
                out = (b"%x\r\n%s\r\n" % (len(body), body)) if body else b""
                if not more:
                    out += b"0\r\n\r\n"
            else:
                out = body
            if out:
                transport.write(out)
            if not more:
                self.done = True
                transport.close()
                return
            await self.conn.writable.wait()  # the client reads slowly: wait as uvicorn does

    def write_now(self, body: bytes) -> bool:
        """Write one body chunk now, from the event loop, without a coroutine: False (nothing
        written) unless the response has started, chunked, and the connection takes writes (its
        client reads: the transport's buffer is below its high-water mark)."""
        conn = self.conn
        if (not self._chunked or self.done or conn.transport is None or conn.lost.is_set()
                or not conn.writable.is_set() or not body):
            return False
        conn.transport.write(b"%x\r\n%s\r\n" % (len(body), body))
        return True


async def serve_handed_over(loop: asyncio.AbstractEventLoop, sock: socket.socket,
                            scope: dict[str, Any], app: Any) -> None:
    """Run the ASGI ``app`` for one handed-over connection, then close it."""
    try:
        _, conn = await loop.connect_accepted_socket(_Connection, sock)
    except OSError:
        sock.close()
        return
    exchange = HandedOver(conn)
    scope = {**scope, "extensions": {**(scope.get("extensions") or {}),
                                     "xiaoche.write_now": exchange.write_now}}
    try:
        await app(scope, exchange.receive, exchange.send)
    except Exception:  # noqa: BLE001 — one stream's failure must not end the process
        log.exception("stream process: a handed-over stream failed")
    finally:
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.close()
