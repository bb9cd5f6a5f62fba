"""Brokers for the MQTT edge tests: real ones, over TCP on loopback.

``broker`` runs each test against the system Mosquitto (``XIAOCHE_TEST_MQTT_URL``, by default
mqtt://127.0.0.1:1883; set it to ``none`` to leave it out — when it is expected and unreachable the
test fails, it is not skipped), an embedded Mosquitto and an embedded amqtt, each on a free port.
Tests use a fresh topic prefix and client ids, so runs sharing the system broker never meet.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from gps_ingest.broker import EmbeddedBroker
from gps_ingest.mqtt_client import InboundMessage, MqttIngestClient, parse_mqtt_url

SYSTEM_URL = os.environ.get("XIAOCHE_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


@dataclass(frozen=True)
class BrokerUnderTest:
    name: str  # system / mosquitto / amqtt
    url: str
    kind: str  # mosquitto / amqtt

    @property
    def is_amqtt(self) -> bool:
        return self.kind == "amqtt"


@pytest.fixture(scope="session")
def embedded_mosquitto(tmp_path_factory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(port=0, data_dir=tmp_path_factory.mktemp("mosquitto"),
                        prefer="mosquitto") as broker:
        yield broker


@pytest.fixture(scope="session")
def embedded_amqtt(tmp_path_factory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(port=0, data_dir=tmp_path_factory.mktemp("amqtt"),
                        prefer="amqtt") as broker:
        yield broker


def _system_broker() -> BrokerUnderTest:
    if SYSTEM_URL.lower() == "none":
        pytest.skip("XIAOCHE_TEST_MQTT_URL=none: no system broker in this run")
    host, port, *_ = parse_mqtt_url(SYSTEM_URL)
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"the system MQTT broker {SYSTEM_URL} is unreachable ({exc}); start it "
                    "(mosquitto -d -c /etc/mosquitto/mosquitto.conf) or set "
                    "XIAOCHE_TEST_MQTT_URL=none")
    return BrokerUnderTest("system", SYSTEM_URL, "mosquitto")


@pytest.fixture(params=["system", "mosquitto", "amqtt"])
def broker(request) -> BrokerUnderTest:
    if request.param == "system":
        return _system_broker()
    embedded = request.getfixturevalue(f"embedded_{request.param}")
    return BrokerUnderTest(request.param, embedded.url, embedded.kind)


@pytest.fixture(params=["system", "mosquitto"])
def mosquitto(request) -> BrokerUnderTest:
    if request.param == "system":
        return _system_broker()
    embedded = request.getfixturevalue("embedded_mosquitto")
    return BrokerUnderTest("mosquitto", embedded.url, embedded.kind)


@pytest.fixture
def amqtt(embedded_amqtt) -> BrokerUnderTest:
    return BrokerUnderTest("amqtt", embedded_amqtt.url, "amqtt")


@pytest.fixture
def prefix() -> str:
    """A topic prefix no other test (or run) uses."""
    return f"xt{uuid.uuid4().hex[:10]}"


def seq_of(payload: bytes) -> int:
    return int(payload.split(b'"seq": ', 1)[1].split(b",", 1)[0])


@dataclass
class Collector:
    """A handle_batch that records what it got; ``fail_first`` batches raise."""

    fail_first: int = 0
    batches: list[list[InboundMessage]] = field(default_factory=list)
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, batch: list[InboundMessage]) -> None:
        with self.lock:
            if self.failed < self.fail_first:
                self.failed += 1
                raise RuntimeError("simulated commit failure")
            self.batches.append(batch)

    @property
    def messages(self) -> list[InboundMessage]:
        with self.lock:
            return [m for batch in self.batches for m in batch]

    def seqs(self) -> list[int]:
        return [seq_of(m.payload) for m in self.messages]

    def wait_for(self, count: int, timeout: float) -> set[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = set(self.seqs())
            if len(seen) >= count:
                return seen
            time.sleep(0.05)
        return set(self.seqs())


@pytest.fixture
def make_client(prefix) -> Iterator[Callable[..., MqttIngestClient]]:
    """Builds MqttIngestClients on ``{prefix}/devices/+/pings``; stops them all at the end."""
    made: list[MqttIngestClient] = []

    def make(url: str, handle_batch: Callable[[list[InboundMessage]], None], *,
             client_id: str | None = None, **kwargs) -> MqttIngestClient:
        kwargs.setdefault("session_expiry_s", 120)
        kwargs.setdefault("reconnect_min_s", 0.2)
        client = MqttIngestClient(url, client_id=client_id or f"{prefix}-ingest",
                                  topics=[f"{prefix}/devices/+/pings"],
                                  handle_batch=handle_batch, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
