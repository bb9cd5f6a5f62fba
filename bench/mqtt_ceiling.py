"""How close MqttIngestClient gets to a bare paho QoS 1 subscriber (the ceiling).

    .venv/bin/python bench/mqtt_ceiling.py [--url mqtt://127.0.0.1:1883] [--count 30000] [--runs 3]

Without ``--url`` an embedded Mosquitto (large queues) is started on a free loopback port. Two
measurements, each the median of ``--runs``:

- **backlog**: the messages are published while the subscriber is away (persistent session), then
  the time from connect to the last message is taken: the subscriber's own pace, independent of
  the publisher's.
- **live**: a WindowedPublisher in a separate process streams while the subscriber consumes.

The bare subscriber is paho with automatic acks and nothing in ``on_message``; MqttIngestClient
runs with a no-op ``handle_batch``. Numbers only, no assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as paho  # noqa: E402  (the bench measures bare paho on purpose)
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from gps_ingest.broker import EmbeddedBroker  # noqa: E402
from gps_ingest.mqtt_client import MqttIngestClient, parse_mqtt_url  # noqa: E402
from gps_ingest.publisher import publish_stream, publish_stream_in_subprocess  # noqa: E402


class BareSubscriber:
    """paho, QoS 1, automatic acks, a counter in on_message: the ceiling."""

    def __init__(self, url: str, client_id: str, topic: str) -> None:
        host, port, username, password, _tls = parse_mqtt_url(url)
        self.count = 0
        self.last_at = 0.0
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 600
        properties.ReceiveMaximum = 1000
        self.client.connect(host, port, 30, clean_start=False, properties=properties)

    def _on_message(self, client: paho.Client, userdata: object, message: object) -> None:
        self.count += 1
        self.last_at = time.perf_counter()

    def start(self) -> None:
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class IngestSubscriber:
    def __init__(self, url: str, client_id: str, topic: str) -> None:
        self.count = 0
        self.last_at = 0.0
        self.client = MqttIngestClient(url, client_id=client_id, topics=[topic],
                                       handle_batch=self._handle, session_expiry_s=600)

    def _handle(self, batch: list) -> None:
        self.count += len(batch)
        self.last_at = time.perf_counter()

    def start(self) -> None:
        self.client.start()

    def stop(self) -> None:
        self.client.stop()


def wait_for(subscriber: BareSubscriber | IngestSubscriber, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while subscriber.count < count and time.monotonic() < deadline:
        time.sleep(0.005)
    if subscriber.count < count:
        print(f"  (only {subscriber.count} of {count} arrived)", file=sys.stderr)


def backlog_rate(url: str, kind: Callable[..., BareSubscriber | IngestSubscriber],
                 count: int) -> float:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topic, client_id = f"{prefix}/devices/+/pings", f"bench-{prefix}"
    subscriber = kind(url, client_id, topic)  # create the session and its subscription
    subscriber.start()
    time.sleep(0.5)
    subscriber.stop()
    publish_stream(url, prefix, count)
    subscriber = kind(url, client_id, topic)
    started = time.perf_counter()
    subscriber.start()
    wait_for(subscriber, count, 300)
    subscriber.stop()
    return subscriber.count / (subscriber.last_at - started)


def live_rate(url: str, kind: Callable[..., BareSubscriber | IngestSubscriber],
              count: int) -> tuple[float, float]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    subscriber = kind(url, f"bench-{prefix}", f"{prefix}/devices/+/pings")
    subscriber.start()
    time.sleep(0.5)
    started = time.perf_counter()
    publisher = publish_stream_in_subprocess(url, prefix, count)
    wait_for(subscriber, count, 300)
    out, _ = publisher.communicate()
    subscriber.stop()
    return subscriber.count / (subscriber.last_at - started), float(out or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=None)
    parser.add_argument("--count", type=int, default=30000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    broker = None
    url = args.url
    if url is None:
        broker = EmbeddedBroker(port=0, prefer="mosquitto")
        broker.start()
        url = broker.url
    try:
        print(f"broker {url}, {args.count} messages of ~150 bytes, QoS 1, median of {args.runs}")
        results: dict[str, float] = {}
        for name, kind in (("bare paho", BareSubscriber), ("MqttIngestClient", IngestSubscriber)):
            backlog = [backlog_rate(url, kind, args.count) for _ in range(args.runs)]
            live = [live_rate(url, kind, args.count) for _ in range(args.runs)]
            results[f"{name} backlog"] = statistics.median(backlog)
            results[f"{name} live"] = statistics.median(r for r, _ in live)
            print(f"{name:17s} backlog {statistics.median(backlog):8.0f} msg/s   "
                  f"live {statistics.median(r for r, _ in live):8.0f} msg/s   "
                  f"(publisher {statistics.median(p for _, p in live):.0f} msg/s)", flush=True)
        for mode in ("backlog", "live"):
            ratio = results[f"MqttIngestClient {mode}"] / results[f"bare paho {mode}"]
            print(f"ratio MqttIngestClient / bare paho, {mode}: {ratio:.2f}")
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
