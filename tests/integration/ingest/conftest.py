"""An MQTT broker for ingest tests, and `xiaoche ingest` run as a real subprocess.

The broker is Mosquitto at XIAOCHE_TEST_MQTT_URL when that is set (CI's second run), otherwise an
embedded broker on a free loopback port (what `xiaoche serve` starts on a fresh machine). Device
ids and client ids are unique per test, so runs sharing one broker never see each other's pings.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from backend.bundle import import_bundle
from backend.extensions import db
from backend.models import Ping
from tests.processes import XiaocheProcess


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory) -> Iterator[str]:
    url = os.environ.get("XIAOCHE_TEST_MQTT_URL")
    if url:
        yield url
        return
    from gps_ingest.broker import EmbeddedBroker

    broker = EmbeddedBroker(host="127.0.0.1", port=0,
                            data_dir=tmp_path_factory.mktemp("broker"))
    broker.start()
    try:
        yield broker.url
    finally:
        broker.stop()


@pytest.fixture
def fleet(app, imported):
    """50 fresh devices (one vehicle each) with ids unique to this test."""
    prefix = f"t{uuid.uuid4().hex[:6]}"
    vehicles = [{"id": f"{prefix}-v{i:02d}", "kind": "school_bus", "route_ids": []}
                for i in range(50)]
    devices = [{"id": f"{prefix}-d{i:02d}", "vehicle_id": f"{prefix}-v{i:02d}",
                "token": f"token-{prefix}-{i:02d}"} for i in range(50)]
    with app.app_context():
        import_bundle({"vehicles": vehicles, "devices": devices})
    return [d["id"] for d in devices]


class IngestProcess(XiaocheProcess):
    """`xiaoche ingest` on the test database and broker, with a fixed client id (its session)."""

    def __init__(self, database_url: str, mqtt_url: str, instance_path, client_id: str):
        # a new client id has no session yet: what is published before it subscribed is lost,
        # hence start() waits for the subscription
        super().__init__(["ingest"], "xiaoche: ingest subscribed", database_url, instance_path,
                         XIAOCHE_MQTT_URL=mqtt_url, XIAOCHE_INGEST_CLIENT_ID=client_id,
                         XIAOCHE_INGEST_SESSION_EXPIRY_S="300")

    def output(self, tail: int | None = 4000) -> str:
        return super().output(tail)


@pytest.fixture
def ingest_process(_migrated, mqtt_url, tmp_path) -> Iterator[IngestProcess]:
    process = IngestProcess(_migrated, mqtt_url, tmp_path,
                            client_id=f"xiaoche-test-{uuid.uuid4().hex[:8]}")
    yield process
    process.stop()


def count_pings(app, device_ids) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Ping)
                                  .where(Ping.device_id.in_(device_ids)))
        db.session.rollback()
        return count


def wait_for_count(app, device_ids, expected: int, timeout_s: float, process=None) -> int:
    deadline = time.time() + timeout_s
    count = -1
    while time.time() < deadline:
        count = count_pings(app, device_ids)
        if count >= expected:
            return count
        if process is not None and process.process.poll() is not None:
            raise AssertionError(f"ingest exited early:\n{process.output()}")
        time.sleep(0.2)
    return count
