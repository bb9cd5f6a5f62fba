"""A stream process of ``xiaoche api``: serves the ``/api/v1/stream`` connections the API workers
hand over (``backend.streams.handoff``), with its own hub and event loop, so streams and REST never
share an interpreter lock.

    python -m backend.streams.stream_server SOCKET_PATH

It runs the same app as the workers (``backend.wsgi:app``, configured from the environment) and
answers streams exactly as a worker would — the ``XIAOCHE_STREAM_MAX`` limit (here, per stream
process) with its ``503``, ``Last-Event-ID``, scopes, heartbeats. It listens on a Unix
``SOCK_SEQPACKET`` socket for the workers; each message is one request's scope with its
connection's descriptor. Started, watched and restarted by ``xiaoche api``'s gunicorn master
(``backend.streams.gunicorn_conf``); SIGTERM ends every open stream (clients resume elsewhere
with ``Last-Event-ID``) and the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

from backend.streams.handoff import MAX_SCOPE_BYTES, scope_from_bytes, serve_handed_over

log = logging.getLogger(__name__)

ORPHAN_CHECK_S = 2.0


def status_path(socket_path: str) -> str:
    return socket_path + ".json"


class StreamServer:
    def __init__(self, path: str, asgi):
        self.path = path
        self.asgi = asgi
        self.listener: socket.socket | None = None
        self.tasks: set[asyncio.Task] = set()
        self.received = 0
        self.parent = os.getppid()  # read at the start: the master may die while the app loads

    def listen(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a predecessor's, dead (the master restarts us in its place)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(self.path)
        os.chmod(self.path, 0o600)
        listener.listen(64)
        listener.setblocking(False)
        self.listener = listener

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        assert self.listener is not None
        loop.add_reader(self.listener.fileno(), self._accept, loop)
        parent = self.parent
        while not stop.is_set():  # orphaned (the master was killed): end, do not linger
            self.write_status()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ORPHAN_CHECK_S)
            if os.getppid() != parent:
                log.warning("stream process: the gunicorn master is gone; ending")
                break
        with contextlib.suppress(OSError):
            os.unlink(status_path(self.path))
        loop.remove_reader(self.listener.fileno())
        self.listener.close()
        self.asgi.end_streams()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)

    def write_status(self) -> None:
        """``SOCKET.json`` beside the socket, for the workers' ``/metrics``: this process's
        open streams and hand-overs taken, rewritten every ``ORPHAN_CHECK_S``."""
        from backend.health import write_heartbeat

        hub = None if self.asgi is None else self.asgi.app.extensions.get("xiaoche.stream_hub")
        try:
            write_heartbeat(Path(status_path(self.path)), {
                "at": time.time(), "interval_s": ORPHAN_CHECK_S, "pid": os.getpid(),
                "open": hub[0].open_count if hub else 0, "received": self.received,
                "fanout": hub[0].fanout.to_json() if hub else None})
        except OSError as exc:
            log.warning("stream process: cannot write its status (%s)", exc)

    def _accept(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        loop.add_reader(conn.fileno(), self._receive, loop, conn)

    def _receive(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
        try:
            message, fds, _, _ = socket.recv_fds(conn, MAX_SCOPE_BYTES + 1024, 4)
        except BlockingIOError:
            return
        except OSError:
            message, fds = b"", []
        if not message and not fds:  # the worker went away
            loop.remove_reader(conn.fileno())
            conn.close()
            return
        for fd in fds:
            sock = socket.socket(fileno=fd)
            # the receipt: the worker may let go of its descriptor now (see Handoff)
            with contextlib.suppress(OSError):
                conn.send(message[:8], socket.MSG_DONTWAIT)
            try:
                scope = scope_from_bytes(message[8:])
            except (ValueError, KeyError, TypeError):
                log.warning("stream process: a hand-over without a readable request; dropped")
                sock.close()
                continue
            sock.setblocking(False)
            self.received += 1
            task = loop.create_task(serve_handed_over(loop, sock, scope, self.asgi))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m backend.streams.stream_server SOCKET_PATH", file=sys.stderr)
        return 2
    from backend.streams.asgi import XiaocheAsgi, raise_open_files_limit

    raise_open_files_limit()
    # listen before the app is loaded (seconds on a busy machine): the workers' hand-overs wait
    # in the socket's queue meanwhile instead of falling back to the workers
    server = StreamServer(argv[0], None)
    server.listen()
    from backend.wsgi import app

    server.asgi = XiaocheAsgi(app, rest_threads=2)
    try:
        from uvloop import run
    except ImportError:
        run = asyncio.run

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.run(stop)

    run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
