"""The JT/T 808 gateway's pieces that are not its protocol handling: its configuration, the
state of one connection, the auth code, and running the gateway's event loop in a thread.

Split from :mod:`gps_ingest.jt808_gateway` (which re-exports what others import) to keep each
module readable; nothing here knows the pipeline or the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gps_ingest.jt808.frame import FrameReader
from gps_ingest.jt808.reassembly import Reassembler

if TYPE_CHECKING:
    from gps_ingest.pipeline import Message


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port (tests, the bench)
    secret: bytes = b""  # signs the auth codes
    batch_max: int = 2000
    batch_ms: int = 50
    idle_timeout_s: float = 180.0
    max_connections: int = 10_000
    max_inflight: int = 64
    max_bad_frames: int = 50
    text_poll_s: float = 1.0  # how often the texts queued for the terminals here are looked for


@dataclass
class Pending:
    message: Message
    future: asyncio.Future[None]


@dataclass(eq=False)  # one per connection, kept in a set by identity
class Session:
    writer: asyncio.StreamWriter
    peer: str
    frames: FrameReader = field(default_factory=FrameReader)
    packages: Reassembler = field(default_factory=Reassembler)
    phone: str | None = None  # the authenticated terminal's phone, as its headers carry it
    device_id: str | None = None
    accept_bad_check: bool = False  # the device's firmware gets the check byte wrong
    serial: int = 0  # the platform's own message serial
    bad_in_a_row: int = 0
    inflight: int = 0  # locations handed to the pipeline, not answered yet
    room: asyncio.Future[None] | None = None  # set when inflight drops below the maximum
    last_read: float = 0.0  # loop time
    version: int | None = None  # the authenticated terminal's header version (2019: 1)
    texts: dict[int, int] = field(default_factory=dict)  # serial → id of a text not answered

    def next_serial(self) -> int:
        self.serial = (self.serial + 1) & 0xFFFF
        return self.serial


def seen(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def auth_code(secret: bytes, phone: str) -> str:
    """The auth code of a terminal: stable across restarts, useless for another phone."""
    digest = hmac.new(secret, b"jt808:" + phone.lstrip("0").encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


class LoopThread:
    """``start_in_thread`` / ``stop_thread`` for a gateway whose ``start()`` binds and whose
    ``close()`` ends it (``serve`` and ``xiaoche jt808`` run it beside other work)."""

    _loop: asyncio.AbstractEventLoop | None
    _thread: threading.Thread | None
    _stopped: asyncio.Event | None

    async def start(self) -> int:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def start_in_thread(self) -> int:
        """Run the gateway on an event loop of its own in a daemon thread (``serve``); the port
        bound, or the bind's error raised here."""
        started: dict[str, object] = {}
        ready = threading.Event()

        def run() -> None:
            async def main() -> None:
                try:
                    started["port"] = await self.start()
                except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                    started["error"] = exc
                    ready.set()
                    return
                ready.set()
                assert self._stopped is not None
                await self._stopped.wait()

            asyncio.run(main())

        self._thread = threading.Thread(target=run, name="jt808-gateway", daemon=True)
        self._thread.start()
        ready.wait()
        if "error" in started:
            raise started["error"]  # type: ignore[misc]
        return started["port"]  # type: ignore[return-value]

    def stop_thread(self, timeout_s: float = 30.0) -> None:
        if self._loop is None or self._thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self.close(), self._loop)
        with contextlib.suppress(Exception):
            future.result(timeout_s)
        self._thread.join(timeout_s)
