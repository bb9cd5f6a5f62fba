"""Publishing each notification to its user's MQTT topic, ``xiaoche/v1/users/{username}/notifications``.

The payload is the ``/me/notifications`` item as UTF-8 JSON; QoS 1, and a send returns only once
the broker's PUBACK came (or raises a retryable :class:`DeliveryError` after ``timeout_s``). One
connection (``XIAOCHE_MQTT_URL``, the service account, which may write ``xiaoche/v1/users/#``;
the backend, which wires the channels, parses the URL into a :class:`Broker`) is opened on the first send and reused; paho's network thread reconnects it when it is lost, and
a send waits up to ``timeout_s`` for that. MQTT 5 is tried first, 3.1.1 when the broker refuses it
(amqtt). The client id is random per process, so two dispatchers never take over each other's
connection, and the session is clean: nothing is queued for us while we are away.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from typing import Any, NamedTuple, Protocol

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from notifications.channels.base import DeliveryError

log = logging.getLogger(__name__)

TOPIC = "xiaoche/v1/users/{username}/notifications"
KEEPALIVE_S = 30
RC_UNSUPPORTED_PROTOCOL = 132
# PUBACK reason codes that retrying the same publish cannot fix: not authorized, topic name
# invalid, packet too large, payload format invalid
PUBACK_FOR_GOOD = frozenset({135, 144, 149, 153})
_TOPIC_LEVEL = re.compile(r"[^/+#\x00]+")


class Broker(NamedTuple):
    """Where to publish, and as whom (``XIAOCHE_MQTT_URL``, parsed by the backend)."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool


def _code(reason: Any) -> int:
    """A paho ReasonCode (MQTT 5) or int (3.1.1) as its number."""
    return int(getattr(reason, "value", reason))


def _reason_name(code: int, packet: str) -> str:
    from paho.mqtt.packettypes import PacketTypes

    try:
        return str(ReasonCode(getattr(PacketTypes, packet), identifier=code))
    except Exception:
        return str(code)


def topic_for(username: str) -> str:
    if not _TOPIC_LEVEL.fullmatch(username):
        raise DeliveryError(f"username {username!r} cannot be an MQTT topic level",
                            retryable=False)
    return TOPIC.format(username=username)


class ClientFactory(Protocol):
    """How a paho client is built: the project has one way (``gps_ingest.mqtt_common.new_client``,
    which the backend hands over when it wires the channels; notifications does not import the
    device edge)."""

    def __call__(self, client_id: str, protocol: int, *, username: str | None,
                 password: str | None, tls: bool, persistent: bool) -> paho.Client: ...


class MqttChannel:
    """QoS 1 publisher with one long-lived connection (see the module docstring)."""

    name = "mqtt"

    def __init__(self, broker: Broker | tuple[str, int, str | None, str | None, bool],
                 client_factory: ClientFactory, timeout_s: float = 10.0,
                 client_id: str | None = None):
        self.host, self.port, self._username, self._password, self._tls = broker
        self._new_client = client_factory
        self.timeout_s = timeout_s
        self.client_id = client_id or f"xiaoche-push-{uuid.uuid4().hex[:12]}"
        self._protocol = paho.MQTTv5
        self._client: paho.Client | None = None
        self._send_lock = threading.Lock()
        self._state = threading.Condition()
        self._connack: int | None = None
        self._connected = False
        self._pubacks: dict[int, int] = {}

    # --- paho callbacks (its network thread) ---------------------------------------------
    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        with self._state:
            self._connack = _code(reason)
            self._connected = self._connack == 0
            self._state.notify_all()
        if self._connack != 0:
            log.warning("MQTT broker %s:%d refused the push connection: %s", self.host,
                        self.port, reason)

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        with self._state:
            was = self._connected
            self._connected = False
            self._state.notify_all()
        if was:
            log.warning("push connection to %s:%d lost (%s); reconnecting", self.host,
                        self.port, reason)

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        with self._state:
            self._pubacks[mid] = _code(reason)

    # --- connection ---------------------------------------------------------------------
    def _make_client(self) -> paho.Client:
        client = self._new_client(self.client_id, self._protocol, username=self._username,
                                  password=self._password, tls=self._tls, persistent=False)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _open(self) -> paho.Client:
        """Connect and start paho's network thread; wait for a successful CONNACK."""
        for _ in range(2):  # MQTT 5, then 3.1.1 if the broker does not speak 5
            with self._state:
                self._connack = None
                self._connected = False
            client = self._make_client()
            try:
                client.connect(self.host, self.port, KEEPALIVE_S)
            except OSError as exc:
                raise DeliveryError(f"cannot reach the MQTT broker {self.host}:{self.port}: "
                                    f"{exc}", retryable=True) from exc
            client.loop_start()
            with self._state:
                self._state.wait_for(lambda: self._connack is not None, self.timeout_s)
                code = self._connack
            if code == 0:
                return client
            self._shut(client)
            if code == RC_UNSUPPORTED_PROTOCOL and self._protocol == paho.MQTTv5:
                log.info("MQTT broker %s:%d refuses MQTT 5; pushing with 3.1.1", self.host,
                         self.port)
                self._protocol = paho.MQTTv311
                continue
            what = "no CONNACK" if code is None else _reason_name(code, "CONNACK")
            raise DeliveryError(f"MQTT broker {self.host}:{self.port} did not accept the "
                                f"connection: {what}", retryable=True)
        raise DeliveryError("MQTT broker speaks neither MQTT 5 nor 3.1.1", retryable=True)

    @staticmethod
    def _shut(client: paho.Client) -> None:
        try:
            client.disconnect()
        finally:
            client.loop_stop()

    def _connected_client(self) -> paho.Client:
        if self._client is None:
            self._client = self._open()
            return self._client
        with self._state:  # lost: paho's network thread is reconnecting
            if not self._state.wait_for(lambda: self._connected, self.timeout_s):
                raise DeliveryError(f"not connected to the MQTT broker {self.host}:{self.port}",
                                    retryable=True)
        return self._client

    # --- Channel ------------------------------------------------------------------------
    def send(self, item: dict[str, Any], username: str) -> None:
        topic = topic_for(username)
        payload = json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        with self._send_lock:
            client = self._connected_client()
            with self._state:
                self._pubacks.clear()  # late PUBACKs of sends that timed out
            info = client.publish(topic, payload, qos=1)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                raise DeliveryError(f"MQTT publish failed: {paho.error_string(info.rc)}",
                                    retryable=True)
            info.wait_for_publish(self.timeout_s)
            if not info.is_published():
                raise DeliveryError(f"no PUBACK from the MQTT broker within {self.timeout_s:g} s",
                                    retryable=True)
            with self._state:
                code = self._pubacks.pop(info.mid, 0)
        if code >= 128:  # MQTT 5 only; 3.1.1 brokers acknowledge even what they drop
            raise DeliveryError(f"MQTT broker refused the publish: {_reason_name(code, 'PUBACK')}",
                                retryable=code not in PUBACK_FOR_GOOD)

    def close(self) -> None:
        with self._send_lock:
            client, self._client = self._client, None
            if client is not None:
                self._shut(client)
