"""gunicorn settings of ``xiaoche api`` (``-c python:backend.streams.gunicorn_conf``): the master
starts ``XIAOCHE_STREAM_PROCESSES`` stream processes (``backend.streams.stream_server``) next to
its workers, restarts any that dies, and stops them when it stops. The workers hand every
``GET /api/v1/stream`` to them (``backend.streams.handoff``) and answer REST themselves; with
``XIAOCHE_STREAM_PROCESSES=0``, or while a stream process is down, a worker serves the stream
itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from backend.streams.handoff import SOCKET_ENV, socket_paths

log = logging.getLogger("xiaoche.streams")

PROCESSES_ENV = "XIAOCHE_STREAM_PROCESSES"
DEFAULT_PROCESSES = 1
RESTART_PAUSE_S = 1.0  # how often the master looks; also the first restart's delay
RESTART_MAX_S = 30.0
SHORT_LIFE_S = 10.0


def stream_processes(environ=os.environ) -> int:
    raw = environ.get(PROCESSES_ENV, str(DEFAULT_PROCESSES))
    try:
        count = int(raw)
    except ValueError:
        raise SystemExit(f"xiaoche: {PROCESSES_ENV}={raw!r} is not a whole number") from None
    if not 0 <= count <= 64:
        raise SystemExit(f"xiaoche: {PROCESSES_ENV}={count} is out of range (0–64)")
    return count


class StreamProcesses:
    """The stream processes of one gunicorn master, each kept running by a watcher thread."""

    def __init__(self, paths: list[str]):
        self.paths = paths
        self.children: dict[str, subprocess.Popen] = {}
        self.starts = 0
        self.started_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="stream-processes", daemon=True)

    def start(self) -> StreamProcesses:
        for path in self.paths:
            self._spawn(path)
        self._thread.start()
        return self

    def _spawn(self, path: str) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            self.children[path] = subprocess.Popen(
                [sys.executable, "-m", "backend.streams.stream_server", path])
            self.started_at[path] = time.monotonic()
            self.starts += 1

    def _watch(self) -> None:
        pause: dict[str, float] = {}
        due: dict[str, float] = {}
        while not self._stop.wait(RESTART_PAUSE_S):
            now = time.monotonic()
            for path, child in list(self.children.items()):
                if child.poll() is None or self._stop.is_set():
                    continue
                if path not in due:
                    # one that dies soon after its start is not restarted in a tight loop
                    short = now - self.started_at.get(path, now) < SHORT_LIFE_S
                    pause[path] = min(RESTART_MAX_S, 2 * pause.get(path, RESTART_PAUSE_S)
                                      ) if short else RESTART_PAUSE_S
                    due[path] = now + pause[path] - RESTART_PAUSE_S
                    # (gunicorn's master reaps every child, so the exit status is often lost)
                    log.warning("stream process %s (pid %d) ended; starting it again in %.0f s",
                                path, child.pid, pause[path] - RESTART_PAUSE_S)
                if now >= due[path]:
                    del due[path]
                    self._spawn(path)

    def stop(self, timeout_s: float = 10.0) -> None:
        with self._lock:
            self._stop.set()
            children = list(self.children.values())
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout_s)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def on_starting(server) -> None:
    count = stream_processes()
    if count == 0 or server.cfg.worker_class_str != "backend.streams.worker.StreamWorker":
        os.environ.pop(SOCKET_ENV, None)
        return
    folder = tempfile.mkdtemp(prefix="xiaoche-streams-")
    prefix = os.path.join(folder, "s")
    os.environ[SOCKET_ENV] = prefix  # the workers, forked later, find them here
    server.xiaoche_streams = StreamProcesses(socket_paths(prefix, count)).start()
    server.xiaoche_streams_folder = folder


def on_exit(server) -> None:
    processes = getattr(server, "xiaoche_streams", None)
    if processes is not None:
        processes.stop()
        shutil.rmtree(server.xiaoche_streams_folder, ignore_errors=True)
