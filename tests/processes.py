"""``xiaoche`` commands run as real subprocesses on the test database, for the tests that kill,
restart or run two of them: the ingest, the dispatcher, the scheduler."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path


class XiaocheProcess:
    """``python -m backend.cli ARGS`` with the test database, its output in a log file.

    ``ready`` is the line the command prints once it is working; :meth:`start` waits for it.
    """

    def __init__(self, args: list[str], ready: str, database_url: str, instance_path: Path,
                 **env: str):
        self.args = args
        self.ready = ready
        self.env = {**os.environ, "XIAOCHE_DATABASE_URL": database_url,
                    "XIAOCHE_SECRET_KEY": "test", "XIAOCHE_INSTANCE_PATH": str(instance_path),
                    **env}
        self.log = instance_path / f"{args[0]}-{uuid.uuid4().hex[:6]}.log"
        self.process: subprocess.Popen | None = None
        self._handle = None

    def start(self, wait: bool = True, timeout_s: float = 60.0, **env: str):
        """Start it (``env`` adds variables); with ``wait``, return once it printed ``ready``."""
        self.env.update(env)
        self._close()
        self._handle = open(self.log, "ab")  # noqa: SIM115  (closed in stop/kill9)
        self.process = subprocess.Popen([sys.executable, "-m", "backend.cli", *self.args],
                                        env=self.env, stdout=self._handle,
                                        stderr=subprocess.STDOUT)
        deadline = time.time() + timeout_s
        while wait and self.ready not in self.output():
            if self.process.poll() is not None or time.time() > deadline:
                raise AssertionError(f"{' '.join(self.args)} did not come up:\n{self.output()}")
            time.sleep(0.05)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it; SIGKILL if it is not gone after 15 s."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close()

    def kill9(self) -> None:
        """Die at once, mid-work: no handler runs, nothing is flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._close()

    def output(self, tail: int | None = None) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-tail:] if tail else text

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
