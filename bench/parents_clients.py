"""The parents of ``bench/parents.py``: asyncio clients of ``GET /api/v1/stream`` spread over
client processes, each parsing as little as it can (a byte search per read), timing every
``position`` event from its publish to its arrival."""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from typing import Any


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# -- the parents -----------------------------------------------------------------------------------


class _Stream(asyncio.Protocol):
    """One parent's ``GET /stream``: the status read once, then only a byte search per read for
    the ``vehicle_id`` and ``ts`` of each ``position`` event (no JSON parse, no SSE parser)."""

    def __init__(self, client: _Client, token: str, began: float) -> None:
        self.client, self.token, self.began = client, token, began
        self.transport: asyncio.Transport | None = None
        self.status: int | None = None
        self.head = b""
        self.buffer = b""
        self.first = True
        self.seen_position = False
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(f"GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
                        f"Bearer {self.token}\r\nAccept: text/event-stream\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        c = self.client
        if self.status is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            self.status = int(self.head.split(b" ", 2)[1])
            data, self.head = self.head[end + 4:], b""
            if self.status != 200:
                c.refused[self.status] = c.refused.get(self.status, 0) + 1
                c.count(1, 1)
                self.transport.close()
                return
            c.count(0, 1)
            c.count(3, 1)
        if not data:
            return
        if self.first:
            c.first_bytes_s.append(now - self.began)
            self.first = False
        buf = self.buffer + data
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self.buffer = buf
            return
        self.buffer = buf[cut + 2:]
        pos = 0
        while True:
            i = buf.find(b"event: position\n", pos, cut)
            if i < 0:
                break
            v = buf.find(b'"vehicle_id":"', i) + 14
            t = buf.find(b'"ts":"', i) + 6
            pos = buf.find(b'"', t)
            c.events.append((buf[v:buf.find(b'"', v)], buf[t:pos], now))
            if not self.seen_position:
                c.first_event_s.append(now - self.began)
                self.seen_position = True

    def connection_lost(self, exc) -> None:
        if self.status == 200:
            self.client.count(3, -1)
        if not self.done.done():
            self.done.set_result(None)


class _Client:
    """The parents of one client process (``--client-processes``): every ``K``-th of them."""

    def __init__(self, port: int, counts: Any, slot: int) -> None:
        self.port = port
        self.counts, self.slot = counts, slot  # shared: connected, refused, failed, open now
        self.refused: dict[int, int] = {}
        self.failed: dict[str, int] = {}
        self.first_bytes_s: list[float] = []
        self.first_event_s: list[float] = []
        self.events: list[tuple[bytes, bytes, float]] = []  # (vehicle_id, ts, received at)
        self.streams: list[_Stream] = []

    def count(self, what: int, n: int) -> None:
        self.counts[self.slot * 4 + what] += n

    async def one(self, token: str) -> None:
        loop = asyncio.get_running_loop()
        began = time.monotonic()
        stream = None
        try:
            _, stream = await asyncio.wait_for(loop.create_connection(
                lambda: _Stream(self, token, began), "127.0.0.1", self.port), 30)
            self.streams.append(stream)
            await asyncio.wait_for(asyncio.shield(stream.done), 60)  # answered within 60 s?
            if stream.status is None:
                self._fail("ConnectionError")  # closed before answering
        except TimeoutError:
            if stream is not None and stream.status is not None:
                return  # answered: it lives until the level ends
            self._fail("TimeoutError")
        except Exception as exc:  # noqa: BLE001 — counted, not raised
            self._fail(type(exc).__name__)

    def _fail(self, name: str) -> None:
        self.failed[name] = self.failed.get(name, 0) + 1
        self.count(2, 1)


def client_process(port: int, tokens_: list[tuple[int, str]], total: int, ramp_s: float,
                   counts: Any, slot: int, pipe: Any) -> None:
    """A client process: opens its parents at their turn of the common pace (``began`` from
    the pipe), keeps them until told to stop, then sends back what they measured."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    raise_nofile()

    async def run() -> None:
        client = _Client(port, counts, slot)
        loop = asyncio.get_running_loop()
        pipe.send("ready")
        began = await loop.run_in_executor(None, pipe.recv)
        tasks = []
        for index, token in tokens_:
            delay = began + ramp_s * index / max(1, total) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(loop.create_task(client.one(token)))
        await loop.run_in_executor(None, pipe.recv)  # "stop"
        for stream in client.streams:
            if stream.transport is not None:
                stream.transport.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pipe.send({"refused": client.refused, "failed": client.failed,
                   "first_bytes_s": client.first_bytes_s, "first_event_s": client.first_event_s,
                   "events": client.events})

    asyncio.run(run())


class Parents:
    """``count`` SSE clients spread over ``processes`` client processes; what they measured."""

    def __init__(self, port: int, buses: Any, token_list: list[str], ramp_s: float,
                 processes: int) -> None:

        ctx = multiprocessing.get_context("spawn")  # this process has threads: no fork
        self.buses = buses
        self.k = max(1, min(processes, len(token_list)))
        self.shared = ctx.RawArray("i", 4 * self.k)
        self.pipes, self.processes = [], []
        for slot in range(self.k):
            mine = [(i, t) for i, t in enumerate(token_list) if i % self.k == slot]
            ours, theirs = ctx.Pipe()
            process = ctx.Process(target=client_process, name=f"parents-{slot}", daemon=True,
                                  args=(port, mine, len(token_list), ramp_s, self.shared, slot,
                                        theirs))
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)
        for pipe in self.pipes:
            if not pipe.poll(60) or pipe.recv() != "ready":
                raise RuntimeError("a client process did not start")
        self.refused: dict[int, int] = {}
        self.failed: dict[str, int] = {}
        self.first_bytes_s: list[float] = []
        self.first_event_s: list[float] = []
        self.latencies: list[tuple[float, float]] = []  # (received at, latency s)
        self.by_ping: dict[tuple[str, str], list[float]] = {}  # latencies of each ping

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def _sum(self, what: int) -> int:
        return sum(self.shared[slot * 4 + what] for slot in range(self.k))

    @property
    def connected(self) -> int:
        return self._sum(0)

    @property
    def answered(self) -> int:
        return self._sum(0) + self._sum(1) + self._sum(2)

    @property
    def open_now(self) -> int:
        return self._sum(3)

    def go(self, began: float) -> None:
        for pipe in self.pipes:
            pipe.send(began)

    def stop(self) -> None:
        """Every stream closed, the clients' measurements gathered (``ts`` matched here)."""
        for pipe in self.pipes:
            pipe.send("stop")
        sent = self.buses.sent
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            result = pipe.recv() if pipe.poll(120) else None
            process.join(10)
            if result is None:
                self.failed["client process lost"] = 1
                continue
            for status, n in result["refused"].items():
                self.refused[status] = self.refused.get(status, 0) + n
            for name, n in result["failed"].items():
                self.failed[name] = self.failed.get(name, 0) + n
            self.first_bytes_s += result["first_bytes_s"]
            self.first_event_s += result["first_event_s"]
            for vehicle, ts, now in result["events"]:
                key = (vehicle.decode(), ts.decode())
                at = sent.get(key)
                if at is not None:
                    self.latencies.append((now, now - at))
                    self.by_ping.setdefault(key, []).append(now - at)


