"""A publishing MQTT connection driven by its caller's thread (devices' simulators, benches,
the windowed publisher); split from :mod:`gps_ingest.mqtt_client`, whose subscriber it is not."""

from __future__ import annotations

import logging
import time
from typing import Any

import paho.mqtt.client as paho

from gps_ingest.mqtt_common import (
    KEEPALIVE_S,
    RC_UNSUPPORTED_PROTOCOL,
    _code,
    new_client,
    parse_mqtt_url,
)

log = logging.getLogger(__name__)


class PublishConnection:
    """A QoS 0/1 publishing connection driven by its caller's thread (no network thread).

    The building block of :class:`gps_ingest.publisher.WindowedPublisher`, kept beside the
    subscriber so that paho stays in the MQTT edge. paho's own in-flight limit is switched off (``max_inflight=0``): with a
    limit it walks every queued message on each PUBACK, and the caller keeps its own window
    instead. Driving the socket from the publishing thread (no ``loop_start``) avoids waking a
    network thread for every publish: about 8 k msg/s instead of 6 k on 2 cores. Not thread-safe:
    one connection per thread.
    """

    def __init__(self, url: str, *, client_id: str = "", protocol: str = "auto",
                 username: str | None = None, password: str | None = None,
                 connect_timeout_s: float = 10.0) -> None:
        if protocol not in ("auto", "5", "3.1.1"):
            raise ValueError(f"protocol must be 'auto', '5' or '3.1.1', not {protocol!r}")
        self.host, self.port, url_user, url_password, self._tls = parse_mqtt_url(url)
        self._username = username if username is not None else url_user
        self._password = password if password is not None else url_password
        self._client_id = client_id
        self._protocol_wanted = protocol
        self._protocol = paho.MQTTv311 if protocol == "3.1.1" else paho.MQTTv5
        self._connect_timeout_s = connect_timeout_s
        self._unacked: set[int] = set()
        self._last_loop = 0.0
        self._connack: int | None = None
        self._client = self._connect()

    @property
    def protocol(self) -> str:
        return "5" if self._protocol == paho.MQTTv5 else "3.1.1"

    @property
    def unacked(self) -> int:
        return len(self._unacked)

    def _new_client(self) -> paho.Client:
        client = new_client(self._client_id, self._protocol, username=self._username,
                            password=self._password, tls=self._tls)
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        return client

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        self._connack = _code(reason)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        self._unacked.discard(mid)

    def _connect(self) -> paho.Client:
        while True:
            client = self._new_client()
            self._connack = None
            client.connect(self.host, self.port, KEEPALIVE_S)
            deadline = time.monotonic() + self._connect_timeout_s
            while self._connack is None and time.monotonic() < deadline:
                if client.loop(0.05) not in (paho.MQTT_ERR_SUCCESS,) and self._connack is None:
                    break
            if self._connack == 0:
                return client
            client.disconnect()
            if (self._connack == RC_UNSUPPORTED_PROTOCOL and self._protocol == paho.MQTTv5
                    and self._protocol_wanted == "auto"):
                self._protocol = paho.MQTTv311
                continue
            raise ConnectionError(f"MQTT broker {self.host}:{self.port} refused the publisher: "
                                  f"{self._connack if self._connack is not None else 'no CONNACK'}")

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self._client.publish(topic, payload, qos=qos)
        if qos > 0:
            self._unacked.add(info.mid)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            self._reconnect()
        now = time.monotonic()
        if now - self._last_loop > 0.05:
            self.pump(0)

    def pump(self, timeout: float) -> None:
        """Read PUBACKs (and keep the connection alive) for up to ``timeout`` seconds."""
        self._last_loop = time.monotonic()
        if self._client.loop(timeout) != paho.MQTT_ERR_SUCCESS:
            self._reconnect()

    def _reconnect(self) -> None:
        # paho resends what is still unacked (dup flag) once the new connection is up
        log.warning("MQTT publisher lost its connection to %s:%d; reconnecting", self.host,
                    self.port)
        deadline = time.monotonic() + self._connect_timeout_s
        while True:
            try:
                self._client.reconnect()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        self._client.disconnect()
        for _ in range(20):  # let the DISCONNECT out
            if self._client.loop(0.01) != paho.MQTT_ERR_SUCCESS:
                break
