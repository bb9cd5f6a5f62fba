"""`xiaoche healthcheck jt808` against a real `xiaoche jt808`: healthy while its event loop
answers and its batches commit; missing (never started, stopped), stale (killed) or naming a
problem (a loop that hangs, batches failing) is unhealthy. The check runs as its own process,
as a container's HEALTHCHECK runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from backend.jt808_health import check_jt808, heartbeat, heartbeat_path, write
from tests.processes import XiaocheProcess

HEARTBEAT_S = "0.5"


def healthcheck(instance_path) -> tuple[int, str]:
    env = {**os.environ, "XIAOCHE_INSTANCE_PATH": str(instance_path)}
    done = subprocess.run([sys.executable, "-m", "backend.cli", "healthcheck", "jt808"],
                          env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout.strip()


def test_a_running_gateway_is_healthy_a_killed_or_stopped_one_is_not(_migrated, tmp_path):
    assert healthcheck(tmp_path) == (1, f"jt808: no heartbeat at {heartbeat_path(tmp_path)}: "
                                        "the JT/T 808 gateway is not running (or uses another "
                                        "XIAOCHE_INSTANCE_PATH)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gateway = XiaocheProcess(["jt808", "--host", "127.0.0.1", "--port", str(port)],
                             "xiaoche: JT/T 808 gateway on", _migrated, tmp_path,
                             XIAOCHE_INGEST_HEARTBEAT_S=HEARTBEAT_S)
    gateway.start()
    try:
        with socket.create_connection(("127.0.0.1", port)):
            time.sleep(3 * float(HEARTBEAT_S))
            code, line = healthcheck(tmp_path)
        assert (code, line) == (0, f"jt808: ok: port {port}, 1 connections (0 authenticated), "
                                   "no batch yet")
        gateway.kill9()  # no handler runs: the file stays, and ages
        time.sleep(4 * float(HEARTBEAT_S))
        code, line = healthcheck(tmp_path)
        assert code == 1 and "stopped or hangs" in line, line
    finally:
        gateway.stop()
    again = XiaocheProcess(["jt808", "--host", "127.0.0.1", "--port", str(port)],
                           "xiaoche: JT/T 808 gateway on", _migrated, tmp_path,
                           XIAOCHE_INGEST_HEARTBEAT_S=HEARTBEAT_S)
    again.start()
    try:
        time.sleep(2 * float(HEARTBEAT_S))
        assert healthcheck(tmp_path)[0] == 0
    finally:
        again.stop()  # a clean stop removes the heartbeat: unhealthy at once
    code, line = healthcheck(tmp_path)
    assert code == 1 and "no heartbeat" in line, line


class FakeGateway:
    def __init__(self, state):
        self.state = state

    def probe(self, timeout_s):
        return self.state


def test_a_loop_that_does_not_answer_or_batches_failing_past_an_interval_are_problems(tmp_path):
    now = 1_800_000_000.0
    state = {"connections": 3, "authenticated": 2, "last_batch_at": now - 1, "positions": 9,
             "failing": None}
    write(tmp_path, heartbeat(FakeGateway(state), 7808, 10.0, now=now))
    assert check_jt808(tmp_path, now=now + 1) == (
        True, "ok: port 7808, 3 connections (2 authenticated), last batch 2 s ago")
    write(tmp_path, heartbeat(FakeGateway(None), 7808, 10.0, now=now))
    assert check_jt808(tmp_path, now=now) == (False, "the gateway's event loop does not answer")
    failing = dict(state, failing=(now - 5, "connection refused"))
    write(tmp_path, heartbeat(FakeGateway(failing), 7808, 10.0, now=now))
    assert check_jt808(tmp_path, now=now)[0]  # a blip shorter than an interval is not a problem
    failing = dict(state, failing=(now - 25, "connection refused"))
    write(tmp_path, heartbeat(FakeGateway(failing), 7808, 10.0, now=now))
    ok, line = check_jt808(tmp_path, now=now)
    assert not ok and line.startswith("batches fail for 25 s") and "connection refused" in line
