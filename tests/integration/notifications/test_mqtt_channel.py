"""The MQTT channel against real brokers: the session's (Mosquitto at XIAOCHE_TEST_MQTT_URL, else
embedded), an embedded amqtt (MQTT 3.1.1 only), and a socket that never acknowledges."""

from __future__ import annotations

import json
import queue
import socket
import threading
import uuid
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from backend.dispatch_service import CHANNELS_KEY, close_channels, dispatch_once
from gps_ingest.broker import EmbeddedBroker
from gps_ingest.mqtt_client import parse_mqtt_url
from gps_ingest.mqtt_common import new_client
from notifications.channels import DeliveryError
from notifications.channels.mqtt import MqttChannel

from .conftest import NOON, add_notifications, add_user, deliveries, wait_until

pytestmark = pytest.mark.mqtt


class Subscriber:
    """A real paho client on ``xiaoche/v1/users/<username>/notifications``, QoS 1."""

    def __init__(self, url: str, username: str, protocol=paho.MQTTv311):
        host, port, user, password, tls = parse_mqtt_url(url)
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.topic = f"xiaoche/v1/users/{username}/notifications"
        subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"test-sub-{uuid.uuid4().hex[:10]}",
                                  protocol=protocol)
        if user is not None:
            self.client.username_pw_set(user, password)
        if tls:
            self.client.tls_set()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.connect(host, port, 30)
        self.client.loop_start()
        assert subscribed.wait(10), "no SUBACK"

    def next(self, timeout: float = 10) -> paho.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_app(app, mqtt_url) -> Iterator:
    app.config.update(MQTT_URL=mqtt_url, WEBHOOK_URL=None)
    yield app
    close_channels(app)


def test_the_user_topic_gets_the_item_and_the_connection_survives_a_takeover(mqtt_app, mqtt_url):
    user_id, username = add_user(mqtt_app, {"quiet_hours": None, "channels": ["app", "mqtt"]})
    subscriber = Subscriber(mqtt_url, username)
    try:
        [first] = add_notifications(mqtt_app, user_id, created_at=NOON - 3)
        assert dispatch_once(mqtt_app, now=NOON).sent == 1
        message = subscriber.next()
        assert message.topic == f"xiaoche/v1/users/{username}/notifications"
        assert message.qos == 1
        assert json.loads(message.payload.decode("utf-8")) == {
            "id": first, "kind": "bus_approaching", "title": "标题 0", "body": "正文 0",
            "created_at": "2026-11-22T03:59:57Z", "route_id": "r1", "stop_id": "s1",
            "trip_id": "t1"}
        [row] = deliveries(mqtt_app, first)
        assert (row["channel"], row["state"], row["attempts"]) == ("mqtt", "sent", 1)

        # the connection is lost (another client takes over its id); paho reconnects it
        channel = mqtt_app.extensions[CHANNELS_KEY]["mqtt"]
        client_before = channel._client
        host, port, user, password, _ = parse_mqtt_url(mqtt_url)
        intruder = paho.Client(CallbackAPIVersion.VERSION2, client_id=channel.client_id,
                               reconnect_on_failure=False)
        if user is not None:
            intruder.username_pw_set(user, password)
        intruder.connect(host, port, 30)
        intruder.loop_start()
        try:
            wait_until(lambda: not channel._connected, 10, "the push connection to drop")
            [second] = add_notifications(mqtt_app, user_id, created_at=NOON - 2)
            assert dispatch_once(mqtt_app, now=NOON + 1).sent == 1
        finally:
            intruder.disconnect()
            intruder.loop_stop()
        assert json.loads(subscriber.next().payload)["id"] == second
        assert channel._client is client_before  # one long-lived client, reconnected
    finally:
        subscriber.close()


def test_an_mqtt_3_1_1_broker_is_used_with_3_1_1(tmp_path):
    with EmbeddedBroker(port=0, data_dir=tmp_path / "amqtt", prefer="amqtt") as broker:
        username = f"u-{uuid.uuid4().hex[:10]}"
        subscriber = Subscriber(broker.url, username)
        channel = MqttChannel(parse_mqtt_url(broker.url), new_client, timeout_s=5)
        try:
            channel.send({"id": 7, "kind": "trip_delayed"}, username)
            assert json.loads(subscriber.next().payload) == {"id": 7, "kind": "trip_delayed"}
            assert channel._protocol == paho.MQTTv311
        finally:
            channel.close()
            subscriber.close()


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """Accepts an MQTT 5 connection and then never answers anything (no PUBACK)."""
    server = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conns.append(conn)
            conn.recv(1024)  # CONNECT
            conn.sendall(bytes([0x20, 0x03, 0x00, 0x00, 0x00]))  # CONNACK v5, success

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"mqtt://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for conn in conns:
        conn.close()


def test_no_puback_in_time_is_a_retryable_failure(silent_broker):
    channel = MqttChannel(parse_mqtt_url(silent_broker), new_client, timeout_s=0.5)
    try:
        with pytest.raises(DeliveryError, match="no PUBACK") as caught:
            channel.send({"id": 1}, "someone")
        assert caught.value.retryable
    finally:
        channel.close()


def test_an_unreachable_broker_is_a_retryable_failure():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    channel = MqttChannel(parse_mqtt_url(f"mqtt://127.0.0.1:{port}"), new_client, timeout_s=1)
    with pytest.raises(DeliveryError, match="cannot reach") as caught:
        channel.send({"id": 1}, "someone")
    assert caught.value.retryable
    channel.close()


def test_a_username_that_is_not_a_topic_level_is_not_retried(silent_broker):
    channel = MqttChannel(parse_mqtt_url(silent_broker), new_client, timeout_s=0.5)
    with pytest.raises(DeliveryError) as caught:
        channel.send({"id": 1}, "a/+/b")
    assert not caught.value.retryable
    channel.close()
