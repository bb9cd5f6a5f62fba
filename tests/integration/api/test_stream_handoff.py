"""A worker hands a stream's connection to a stream process only against a receipt: a stream
process that dies holding it (before confirming) leaves the connection to the worker, a live one
takes it and answers on it, and none listening changes nothing."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path

from backend.streams.handoff import Handoff, scope_from_bytes
from tests.loops import run

SCOPE = {"type": "http", "http_version": "1.1", "method": "GET", "scheme": "http",
         "path": "/api/v1/stream", "root_path": "", "query_string": b"crs=wgs84",
         "headers": [(b"authorization", b"Bearer t")], "client": ("127.0.0.1", 5),
         "server": ("127.0.0.1", 8000)}


class Cycle:
    """What the worker finds behind uvicorn's ``send``: the request's transport."""

    def __init__(self, transport: asyncio.Transport):
        self.transport = transport
        self.disconnected = False

    async def send(self, message) -> None:  # never called by a hand-over
        raise AssertionError(message)


class FakeStreamProcess(threading.Thread):
    """Accepts one worker, takes one hand-over; ``receipt``: confirm it and answer on the
    connection, else die holding it (close everything without a word)."""

    def __init__(self, path: Path, receipt: bool):
        super().__init__(daemon=True)
        self.receipt = receipt
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.scope: dict | None = None

    def run(self) -> None:
        conn, _ = self.listener.accept()
        message, fds, _, _ = socket.recv_fds(conn, 70_000, 1)
        client = socket.socket(fileno=fds[0])
        self.scope = scope_from_bytes(message[8:])
        if self.receipt:
            conn.send(message[:8])
            client.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
        client.close()
        conn.close()
        self.listener.close()


class TlsLooking:
    """A plain transport as asyncio's TLS one looks to the worker (``ssl_object`` set)."""

    def __init__(self, transport: asyncio.Transport):
        self._transport = transport

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()

    def get_extra_info(self, name, default=None):
        if name == "ssl_object":
            return object()
        return self._transport.get_extra_info(name, default)


async def _handover(path: Path, tls: bool = False) -> tuple[bool, Cycle, bytes]:
    """A real TCP request to a local server whose handler hands its connection over; what
    ``give`` said, the request's cycle, and what the client read."""
    results: dict = {}
    done = asyncio.Event()

    class Server(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):  # the request is in (as when uvicorn calls the app)
            transport = self.transport
            cycle = Cycle(TlsLooking(transport) if tls else transport)  # type: ignore[arg-type]

            async def hand():
                results["given"] = await Handoff([str(path)]).give(SCOPE, cycle.send)
                results["cycle"] = cycle
                if not results["given"]:
                    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n"
                                    b"connection: close\r\n\r\nworker")
                    transport.close()
                done.set()

            asyncio.ensure_future(hand())

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n\r\n")
    await done.wait()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    server.close()
    return results["given"], results["cycle"], answer


def test_a_stream_process_that_confirms_takes_the_connection_and_answers_on_it(tmp_path):
    process = FakeStreamProcess(tmp_path / "s.0", receipt=True)
    process.start()
    given, cycle, answer = run(_handover(tmp_path / "s.0"))
    process.join(10)
    assert given and cycle.disconnected and cycle.transport.is_closing()
    assert answer.endswith(b"hello")  # written by the stream process, after the worker let go
    assert process.scope["path"] == "/api/v1/stream"
    assert process.scope["headers"] == [(b"authorization", b"Bearer t")]


def test_a_stream_process_that_dies_holding_the_connection_leaves_it_to_the_worker(tmp_path):
    process = FakeStreamProcess(tmp_path / "s.0", receipt=False)
    process.start()
    given, cycle, answer = run(_handover(tmp_path / "s.0"))
    process.join(10)
    assert given is False and not cycle.disconnected
    assert answer.endswith(b"worker")  # the client still got its answer


def test_without_a_stream_process_listening_nothing_changes(tmp_path):
    (tmp_path / "s.0").touch()  # a dead process's socket file: connection refused
    os.chmod(tmp_path / "s.0", 0o600)
    given, cycle, answer = run(_handover(tmp_path / "s.0"))
    assert given is False and answer.endswith(b"worker")


def test_a_tls_connection_stays_with_the_worker(tmp_path, monkeypatch):
    """gunicorn run with a certificate (GUNICORN_CMD_ARGS=--certfile …): TLS ends in the worker,
    so a stream process writing on the raw connection would send plaintext into a TLS session."""
    monkeypatch.setattr(Handoff, "RECEIPT_S", 0.2)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(tmp_path / "s.0"))
    listener.listen(1)  # a live stream process that would take it
    try:
        given, cycle, answer = run(_handover(tmp_path / "s.0", tls=True))
    finally:
        listener.close()
    assert given is False and not cycle.disconnected
    assert answer.endswith(b"worker")
