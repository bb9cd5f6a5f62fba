"""`xiaoche scheduler` as real subprocesses sharing the test database, with a short lease and a
fast dispatcher so that fail-overs happen within seconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.processes import XiaocheProcess

LEASE_S = "3"
DISPATCH_INTERVAL_S = "0.3"


class SchedulerProcess(XiaocheProcess):
    """``xiaoche scheduler`` at DEBUG: its log has a line per job run ("scheduler: ran
    dispatch_outbox"), which is how these tests count runs."""

    def __init__(self, database_url: str, instance_path: Path, **env: str):
        super().__init__(["scheduler"], "xiaoche: scheduler", database_url, instance_path,
                         XIAOCHE_LOG_LEVEL="DEBUG", XIAOCHE_SCHEDULER_LEASE_S=LEASE_S,
                         XIAOCHE_DISPATCH_INTERVAL_S=DISPATCH_INTERVAL_S, **env)
        self.env.pop("XIAOCHE_MQTT_URL", None)

    @property
    def holder(self) -> str:
        """``host:pid:random``, as it announced itself."""
        for line in self.output().splitlines():
            if line.startswith("xiaoche: scheduler "):
                return line.split()[2]
        raise AssertionError(f"it did not say who it is:\n{self.output(4000)}")

    def runs(self, job_id: str = "dispatch_outbox") -> int:
        return self.output().count(f"scheduler: ran {job_id}")

    def holding(self) -> bool:
        return "scheduler: holding the lease" in self.output()

    def standby(self) -> bool:
        return "standby: scheduler" in self.output()

    def wait_for(self, condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
        deadline = time.time() + timeout_s
        while not condition():
            if self.process is not None and not self.running:
                raise AssertionError(f"{self.holder} exited before {what}:\n{self.output(4000)}")
            if time.time() > deadline:
                raise AssertionError(f"timed out waiting {what}:\n{self.output(4000)}")
            time.sleep(0.1)


@pytest.fixture
def scheduler_processes(_migrated, tmp_path) -> Iterator[Callable[..., SchedulerProcess]]:
    """``start(**env)`` → a running SchedulerProcess; all are stopped at the end."""
    started: list[SchedulerProcess] = []

    def start(**env: str) -> SchedulerProcess:
        process = SchedulerProcess(_migrated, tmp_path, **env)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
