"""`xiaoche healthcheck ingest` against a real `xiaoche ingest`: its heartbeat says it is
connected and committing batches; missing, stale (killed) or naming a problem (no broker) is
unhealthy. The check runs as its own process, as a container's HEALTHCHECK runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import orjson

from backend.health import heartbeat_path
from tests.integration.ingest.conftest import IngestProcess, wait_for_count
from tests.integration.ingest.test_mqtt_ingest import device_pings, publish_all

HEARTBEAT_S = "0.5"


def healthcheck(instance_path) -> tuple[int, str]:
    env = {**os.environ, "XIAOCHE_INSTANCE_PATH": str(instance_path)}
    done = subprocess.run([sys.executable, "-m", "backend.cli", "healthcheck", "ingest"],
                          env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout.strip()


def test_a_running_ingest_is_healthy_a_killed_one_is_not(app, fleet, mqtt_url, _migrated,
                                                        tmp_path):
    assert healthcheck(tmp_path) == (1, f"ingest: no heartbeat at {heartbeat_path(tmp_path)}: "
                                        "the ingest is not running (or uses another "
                                        "XIAOCHE_INSTANCE_PATH)")
    ingest = IngestProcess(_migrated, mqtt_url, tmp_path, client_id=f"xiaoche-test-"
                           f"{uuid.uuid4().hex[:8]}")
    ingest.start(XIAOCHE_INGEST_HEARTBEAT_S=HEARTBEAT_S)
    try:
        code, line = healthcheck(tmp_path)
        assert (code, line) == (0, "ingest: ok: connected to the broker, no batch yet")
        publish_all(mqtt_url, [(f"xiaoche/v1/devices/{fleet[0]}/pings", orjson.dumps(p))
                               for p in device_pings(0, 3, time.time() - 60)])
        assert wait_for_count(app, [fleet[0]], 3, 30, ingest) == 3
        time.sleep(2 * float(HEARTBEAT_S))
        code, line = healthcheck(tmp_path)
        assert code == 0 and "last batch" in line, line

        ingest.kill9()  # no handler runs: the file stays, and ages
        time.sleep(4 * float(HEARTBEAT_S))
        code, line = healthcheck(tmp_path)
        assert code == 1 and "stopped or hangs" in line, line
    finally:
        ingest.stop()


def test_an_ingest_without_its_broker_is_unhealthy_and_a_stopped_one_leaves_no_heartbeat(
        _migrated, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ingest = IngestProcess(_migrated, f"mqtt://127.0.0.1:{port}", tmp_path,
                           client_id=f"xiaoche-test-{uuid.uuid4().hex[:8]}")
    ingest.start(XIAOCHE_INGEST_HEARTBEAT_S=HEARTBEAT_S)  # it says so after its start timeout
    try:
        code, line = healthcheck(tmp_path)
        assert (code, line) == (1, f"ingest: not connected to the MQTT broker 127.0.0.1:{port}")
    finally:
        ingest.stop()
    assert ingest.process.returncode == 0
    assert not heartbeat_path(tmp_path).exists()
    assert healthcheck(tmp_path)[0] == 1
