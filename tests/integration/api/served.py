"""Streams as deployed: ``xiaoche ingest`` and gunicorn as ``xiaoche api`` runs it (workers, and
the stream processes they hand ``/stream`` to), in processes of their own; pings over MQTT,
streams read over HTTP. Helpers for ``test_stream_served.py`` and ``test_stream_limit.py``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson

from backend.timefmt import iso
from gps_ingest.publisher import WindowedPublisher


@dataclass
class SseEvent:
    received: float  # time.monotonic() in this process
    event: str | None
    data: dict | None
    id: str | None


class SseClient:
    """A stream read over real HTTP on a thread of its own (http.client, no extra dependency)."""

    def __init__(self, port: int, token: str, last_event_id: str | None = None):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.connection.connect()
        self.socket = self.connection.sock
        self.local_port = self.socket.getsockname()[1]
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.connection.request("GET", "/api/v1/stream", headers=headers)
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        assert self.response.getheader("Content-Type", "").startswith("text/event-stream")
        self.events: queue.Queue[SseEvent | None] = queue.Queue()
        self.seen: list[SseEvent] = []
        self.last_id: str | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            while line := self.response.readline():
                text = line.decode("utf-8").rstrip("\r\n")
                if text:
                    if not text.startswith(":"):
                        name, _, value = text.partition(":")
                        fields[name] = value.removeprefix(" ")
                    continue
                if fields:
                    data = json.loads(fields["data"]) if "data" in fields else None
                    self.events.put(SseEvent(time.monotonic(), fields.get("event"), data,
                                             fields.get("id")))
                fields = {}
        except (OSError, ValueError, http.client.HTTPException):
            pass  # closed by close()
        finally:
            self.events.put(None)

    def wait_for(self, predicate: Callable[[SseEvent], bool], timeout_s: float = 20) -> SseEvent:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if event is None:
                raise AssertionError(f"the stream closed; seen: {self.seen}")
            self.seen.append(event)
            if event.id is not None:
                self.last_id = event.id
            if predicate(event):
                return event
        raise AssertionError(f"nothing matched within {timeout_s} s; seen: {self.seen}")

    def drain(self, wait_s: float) -> list[SseEvent]:
        out = []
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if event is None:
                break
            self.seen.append(event)
            out.append(event)
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):  # already closed by the server
            self.socket.shutdown(socket.SHUT_RDWR)
        self.thread.join(10)
        self.response.close()
        self.connection.close()
        self.socket.close()  # the response may hold the socket after the connection let go


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    def __init__(self, database_url: str, instance_path: Path, workers: int = 2,
                 **settings: str):
        self.port = free_port()
        self.log = instance_path / "gunicorn.log"
        env = {**os.environ, "XIAOCHE_DATABASE_URL": database_url,
               "XIAOCHE_SECRET_KEY": "stream-e2e", "XIAOCHE_INSTANCE_PATH": str(instance_path),
               "XIAOCHE_STREAM_HEARTBEAT_S": "2", **settings}
        self._handle = open(self.log, "ab")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-w", str(workers),
             "-k", "backend.streams.worker.StreamWorker",  # what `xiaoche api` runs
             "--threads", "8", "-b", f"127.0.0.1:{self.port}",
             "--no-control-socket",  # gunicorn 27's default ~/.gunicorn/gunicorn.ctl is shared
             "--config", "python:backend.streams.gunicorn_conf",  # its stream processes
             "backend.wsgi:app"],
            env=env, stdout=self._handle, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        self.stream_process_count = int(env.get("XIAOCHE_STREAM_PROCESSES", "1"))
        while (len(self.workers()) < workers or not self._answers()
               or len(self.stream_processes()) < self.stream_process_count):
            if self.process.poll() is not None or time.time() > deadline:
                raise AssertionError(f"gunicorn did not come up:\n{self.output()}")
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            return self.request("GET", "/api/v1/openapi.json")[0] == 200
        except OSError:
            return False

    def request(self, method: str, path: str, body: dict | None = None,
                token: str | None = None) -> tuple[int, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            connection.request(method, path, body=json.dumps(body) if body else None,
                               headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def token(self, who: tuple[str, str]) -> str:
        status, body = self.request("POST", "/api/v1/auth/token",
                                    {"username": who[0], "password": who[1]})
        assert status == 200, body
        return body["access_token"]

    def _children(self) -> list[tuple[int, bool]]:
        """(pid, is a stream process) of the master's children."""
        pids = []  # a child started by one of the master's threads is listed under that thread
        for task in Path(f"/proc/{self.process.pid}/task").glob("*"):
            try:
                pids += [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
        found = []
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            found.append((pid, b"backend.streams.stream_server" in cmdline))
        return found

    def workers(self) -> list[int]:
        return [pid for pid, streams in self._children() if not streams]

    def stream_processes(self) -> list[int]:
        """The stream processes listening for hand-overs (their socket is there)."""
        found = []
        for pid, streams in self._children():
            if streams:
                try:
                    path = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[-2]
                except (OSError, IndexError):
                    continue
                if os.path.exists(path):
                    found.append(pid)
        return found

    def worker_serving(self, client_port: int, settle_s: float = 10.0) -> int | None:
        """The pid (a worker or a stream process) holding the server side of the connection from
        ``client_port``. A worker lets go of a connection it handed over once the stream process
        confirmed (milliseconds, or more on a busy machine): until one process alone holds it,
        look again."""
        deadline = time.monotonic() + settle_s
        while True:
            holders = self._holders(client_port)
            if len(holders) <= 1 or time.monotonic() > deadline:
                return holders[0] if len(holders) == 1 else None
            time.sleep(0.05)

    def _holders(self, client_port: int) -> list[int]:
        inodes = {}
        for name in ("tcp", "tcp6"):
            for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
                cols = line.split()
                local, remote = cols[1].rsplit(":", 1)[1], cols[2].rsplit(":", 1)[1]
                if int(local, 16) == self.port and int(remote, 16) == client_port:
                    inodes[cols[9]] = True
        holders = []
        for pid, _ in self._children():
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    holders.append(pid)
                    break
        return holders

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._handle.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def position_at(ts: float) -> Callable[[SseEvent], bool]:
    return lambda e: e.event == "position" and e.data["ts"] == iso(ts)


def open_streams_on_both_workers(api: Gunicorn, token: str, holders: Callable[[], list[int]]
                                 | None = None) -> list[SseClient]:
    """One stream on each of two processes (``holders``: gunicorn's workers by default). The
    kernel hands a connection to whichever worker accepts first, often the same one, so open a
    few at once and keep one per process."""
    kept: dict[int, SseClient] = {}
    try:
        for _ in range(5):
            with ThreadPoolExecutor(4) as pool:
                batch = list(pool.map(lambda _: SseClient(api.port, token), range(4)))
            for stream in batch:
                stream.wait_for(lambda e: e.id is not None and e.event is None)  # retry + id
                worker = api.worker_serving(stream.local_port)
                if worker is not None and worker not in kept:
                    kept[worker] = stream
                else:
                    stream.close()  # its thread is freed at the next heartbeat
            if len(kept) == 2:
                assert set(kept) <= set((holders or api.workers)()), kept
                return list(kept.values())
        raise AssertionError(f"every stream landed on one process of {(holders or api.workers)()}")
    except BaseException:
        for stream in kept.values():
            stream.close()
        raise


def follow_pings_and_resume(mqtt_url: str, port: int, staff_token: str,  # noqa: F811
                            streams: list[SseClient]) -> None:
    topic = "xiaoche/v1/devices/dev-bus-07/pings"
    start = time.time() - 600  # a slow drive somewhere off the routes: every fix passes
    pings = [{"ts": start + 5 * i, "lat": 27.50 + 0.0001 * i, "lon": 113.30, "speed_kmh": 8.0}
             for i in range(25)]
    published: dict[str, float] = {}
    latencies: list[float] = []
    with WindowedPublisher(mqtt_url) as publisher:
        for i, ping in enumerate(pings):
            published[iso(ping["ts"])] = time.monotonic()
            publisher.publish(topic, orjson.dumps(ping))
            publisher.flush(10)
            for s in streams:
                got = s.wait_for(position_at(ping["ts"]))
                assert got.data["vehicle_id"] == "bus-07"
                if i:  # the first one waited for the ingest's cold caches
                    latencies.append(got.received - published[got.data["ts"]])
            time.sleep(0.3)  # off the poll grid, so the latencies sample it
    print(f"\npublish→stream over MQTT, ingest, DB, gunicorn: n={len(latencies)} "
          f"p50={statistics.median(latencies) * 1000:.0f} ms max={max(latencies) * 1000:.0f} ms")
    assert statistics.median(latencies) < 1.0, latencies  # DESIGN: publish→stream p99 < 1 s

    # one client drops, misses three pings, and resumes with Last-Event-ID
    dropped = streams[0]
    left_at = dropped.last_id
    dropped.close()
    later = [{"ts": start + 5 * (25 + i), "lat": 27.50 + 0.0001 * (25 + i), "lon": 113.30,
              "speed_kmh": 8.0} for i in range(3)]
    with WindowedPublisher(mqtt_url) as publisher:
        for ping in later:
            publisher.publish(topic, orjson.dumps(ping))
            publisher.flush(10)
            streams[1].wait_for(position_at(ping["ts"]))
    resumed = SseClient(port, staff_token, last_event_id=left_at)
    try:
        resumed.wait_for(lambda e: e.event == "position")
        positions = [e for e in resumed.seen + resumed.drain(3) if e.event == "position"]
        assert [e.data["ts"] for e in positions] == [iso(later[-1]["ts"])]
    finally:
        resumed.close()
