"""The MQTT edge of the ingest: its subscriber (with :mod:`gps_ingest.mqtt_common` and
:mod:`gps_ingest.mqtt_publish`, the only modules that import paho).

:class:`MqttIngestClient` subscribes with QoS 1 on a persistent session, hands the messages to
``handle_batch`` in batches on one worker thread, and acknowledges (PUBACK) every message of a batch
only after ``handle_batch`` returned — after the pings are committed (SPEC §4, "no ack before
commit"). Downstream code only sees :class:`InboundMessage`.

How the guarantees are kept:

- **Manual acks.** paho runs with ``manual_ack=True``; ``Client.ack(mid, qos)`` only queues a PUBACK
  on paho's outgoing deque and wakes its network thread through a socket pair, so the worker may
  call it. An ack is sent only if the message came in on the *current* connection: after a
  reconnect the broker resends every unacked message (same session), and a packet id from an old
  connection means nothing on a new one. A lock shared with ``on_connect``/``on_disconnect``
  makes that check and the ack one step.
- **Redelivery after a failure.** MQTT resends unacked messages only on a new connection of the same
  session, so when ``handle_batch`` raises, the batch and everything else received on that
  connection is dropped unacked and the connection is closed and reopened, after a backoff that
  doubles with every consecutive failure (``reconnect_min_s`` … ``reconnect_max_s``).
- **Persistent session.** A fixed ``client_id``; MQTT 5 ``clean_start=False`` with
  ``SessionExpiryInterval``, MQTT 3.1.1 ``clean_session=False``. Subscriptions are renewed in
  ``on_connect`` anyway (a broker may have lost the session).
- **Bounded memory.** A QoS 1 broker stops sending when a client holds its in-flight window of
  unacked messages, and we ack only after commit, so at most that window is ever queued here.
  On MQTT 5 we set the window ourselves (``ReceiveMaximum = max_inflight`` in CONNECT); on 3.1.1
  it is the broker's setting (Mosquitto ``max_inflight_messages``, default 20 — which also caps the
  throughput, hence the embedded broker raises it and batches are flushed early when the inflow
  pauses).
- **Reconnects** are driven by one supervisor thread rather than by paho's own retry loop
  (``reconnect_on_failure=False``): the same loop then handles lost connections, the forced
  reconnect after a handler failure, and the MQTT 5 → 3.1.1 fallback, with one exponential
  backoff (the role of paho's ``reconnect_delay_set``).
- **Protocol "auto"** probes once with a throwaway MQTT 5 connection (random id, clean start, no
  properties): amqtt answers it with "unsupported protocol version", while a CONNECT *with*
  properties leaves it waiting for bytes forever. A CONNACK that does not come within
  ``CONNACK_TIMEOUT_S`` counts as a failed attempt.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gps_ingest.mqtt_batches import BatchWorker
from gps_ingest.mqtt_common import (
    CONNACK_TIMEOUT_S,
    DISCONNECT_FLUSH_S,
    KEEPALIVE_S,
    RC_REFUSED_FOR_GOOD,
    RC_UNSUPPORTED_PROTOCOL,
    InboundMessage,
    MqttConfigError,
    _code,
    _wait_until_written,
    new_client,
    parse_mqtt_url,
    speaks_mqtt5,
)
from gps_ingest.mqtt_publish import PublishConnection

log = logging.getLogger(__name__)
#: how often a failed handler's readiness is asked during the back-off
READY_POLL_S = 0.5

__all__ = ["InboundMessage", "MqttConfigError", "MqttIngestClient", "PublishConnection",
           "parse_mqtt_url"]


class MqttIngestClient(BatchWorker):
    """QoS 1 subscriber that acks each batch after ``handle_batch`` returned.

    ``protocol``: ``"auto"`` (MQTT 5, falling back to 3.1.1 when the broker answers "unsupported
    protocol version", as amqtt does), ``"5"`` or ``"3.1.1"``. ``shared_group`` subscribes as
    ``$share/<group>/<topic>`` so several ingest processes split the stream (MQTT 5 only).
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        topics: Sequence[str],
        handle_batch: Callable[[list[InboundMessage]], None],
        batch_max: int = 500,
        batch_ms: int = 50,
        shared_group: str | None = None,
        session_expiry_s: int = 7 * 86400,
        protocol: str = "auto",
        max_inflight: int = 1000,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        start_timeout_s: float = 10.0,
        handler_ready: Callable[[], bool] | None = None,
        may_connect: Callable[[], bool] | None = None,
    ) -> None:
        if protocol not in ("auto", "5", "3.1.1"):
            raise ValueError(f"protocol must be 'auto', '5' or '3.1.1', not {protocol!r}")
        if shared_group is not None and protocol == "3.1.1":
            raise ValueError("shared subscriptions ($share/…) need MQTT 5; protocol is '3.1.1'")
        if not client_id:
            raise ValueError("a fixed client_id is needed for the broker to keep the session")
        if batch_max < 1 or batch_ms < 0 or not 1 <= max_inflight <= 65535:
            raise ValueError("batch_max ≥ 1, batch_ms ≥ 0 and 1 ≤ max_inflight ≤ 65535")
        self.url = url
        self.host, self.port, self._username, self._password, self._tls = parse_mqtt_url(url)
        self.client_id = client_id
        self.topics = tuple(topics)
        self.handle_batch = handle_batch
        self.batch_max = batch_max
        self.batch_s = batch_ms / 1000
        self.shared_group = shared_group
        self.session_expiry_s = session_expiry_s
        self.max_inflight = max_inflight
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.start_timeout_s = start_timeout_s
        #: after a failed batch, asked every READY_POLL_S during the back-off: True (what the
        #: handler needs, e.g. the database, answers again) ends the back-off at once
        self.handler_ready = handler_ready
        #: asked before every connection attempt: False ends the client's connecting for good
        #: (an adopted slot whose own member is back: two clients with one id would take it
        #: from each other in turn, since the broker closes the older one)
        self.may_connect = may_connect
        self._protocol_wanted = protocol
        self._protocol = paho.MQTTv311 if protocol == "3.1.1" else paho.MQTTv5

        self._lock = threading.Lock()  # generation/connected vs. acks
        self._generation = 0  # +1 for every successful CONNACK
        self._connected = False
        self._client: paho.Client | None = None
        self._queue: queue.SimpleQueue[tuple[InboundMessage, int] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._accepting = False
        self._wake = threading.Event()  # the supervisor: connection over, or stop
        self._first_outcome = threading.Event()
        self._disconnected = threading.Event()  # on_disconnect ran: paho's queue is flushed
        self._fatal: str | None = None
        self._reconnect_requested = False
        self._fell_back = False
        self._protocol_resolved = False
        self._handler_failures = 0  # consecutive
        self._discard_through = 0  # generations whose leftover messages are dropped unacked
        self._supervisor: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self._stats = {"received": 0, "acked": 0, "batches": 0, "handler_errors": 0,
                       "reconnects": 0, "connects": 0, "discarded": 0}

    # --- public -------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def protocol(self) -> str:
        """The protocol in use (or being tried): ``"5"`` or ``"3.1.1"``."""
        return "5" if self._protocol == paho.MQTTv5 else "3.1.1"

    @property
    def stats(self) -> dict[str, Any]:
        return {**self._stats, "queued": self._queue.qsize(), "protocol": self.protocol}

    def start(self) -> None:
        """Connect and start consuming; returns once subscribed (or after ``start_timeout_s``).

        Raises :class:`MqttConfigError` when the broker refuses for good (bad credentials, a
        shared group on an MQTT 3.1.1 broker). An unreachable broker is not an error: the client
        keeps trying in the background and :attr:`connected` says when it is up.
        """
        if self._supervisor is not None:
            raise RuntimeError("MqttIngestClient.start() called twice")
        self._accepting = True
        self._worker = threading.Thread(target=self._work, name=f"mqtt-batch-{self.client_id}",
                                        daemon=True)
        self._worker.start()
        self._supervisor = threading.Thread(target=self._supervise,
                                            name=f"mqtt-conn-{self.client_id}", daemon=True)
        self._supervisor.start()
        if not self._first_outcome.wait(self.start_timeout_s):
            log.warning("MQTT broker %s:%d not reachable yet; retrying in the background",
                        self.host, self.port)
        if self._fatal is not None:
            self.stop()
            raise MqttConfigError(self._fatal)

    def stop(self, timeout: float = 10) -> None:
        """Finish (and ack) what was received, then disconnect without unsubscribing.

        The session stays on the broker, which queues what arrives meanwhile for the next start.
        """
        deadline = time.monotonic() + timeout
        self._accepting = False  # what arrives from now on stays unacked: redelivered next time
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(max(0.0, deadline - time.monotonic()))
            if self._worker.is_alive():
                log.warning("MQTT batch handler still busy after %.0f s; stopping anyway", timeout)
            self._worker = None
        self._stop.set()
        self._wake.set()
        if self._supervisor is not None:
            self._supervisor.join(max(1.0, deadline - time.monotonic()))
            self._supervisor = None

    def __enter__(self) -> MqttIngestClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- connection (supervisor thread) -------------------------------------------------
    def _make_client(self) -> paho.Client:
        client = new_client(self.client_id, self._protocol, username=self._username,
                            password=self._password, tls=self._tls, persistent=True,
                            manual_ack=True, reconnect_on_failure=False)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _connect_properties(self) -> Properties | None:
        if self._protocol != paho.MQTTv5:
            return None
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.session_expiry_s
        properties.ReceiveMaximum = self.max_inflight
        return properties

    def _probe_protocol(self) -> bool:
        """``protocol="auto"``: does the broker speak MQTT 5? (:func:`speaks_mqtt5`)"""
        return speaks_mqtt5(self.host, self.port, self.client_id, self._username,
                            self._password, self._tls)

    def _resolve_protocol(self) -> None:
        if self._protocol_wanted != "auto" or self._protocol_resolved:
            return
        if self._probe_protocol():
            self._protocol = paho.MQTTv5
        elif self.shared_group is not None:
            self._fatal = (f"the broker at {self.host}:{self.port} speaks MQTT 3.1.1 only; shared "
                           f"subscriptions (group {self.shared_group!r}) need MQTT 5")
        else:
            log.info("MQTT broker %s:%d refuses MQTT 5; using 3.1.1", self.host, self.port)
            self._protocol = paho.MQTTv311
        self._protocol_resolved = True

    def _supervise(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            self._reconnect_requested = False
            began = time.monotonic()
            if not self._connect_allowed():
                log.info("MQTT client %s: not connecting again (its slot is someone else's)",
                         self.client_id)
                self._first_outcome.set()
                return
            client: paho.Client | None = None
            try:
                self._resolve_protocol()
                if self._fatal is not None:
                    log.error("MQTT: %s", self._fatal)
                    self._first_outcome.set()
                    return
                client = self._make_client()
                self._client = client
                if self._protocol == paho.MQTTv5:
                    client.connect(self.host, self.port, KEEPALIVE_S, clean_start=False,
                                   properties=self._connect_properties())
                else:
                    client.connect(self.host, self.port, KEEPALIVE_S)
            except (OSError, ValueError) as exc:
                log.warning("MQTT connect to %s:%d failed: %s", self.host, self.port, exc)
            if client is not None:
                client.loop_start()
                if not self._wake.wait(CONNACK_TIMEOUT_S) and not self._connected:
                    log.warning("MQTT broker %s:%d sent no CONNACK within %.0f s", self.host,
                                self.port, CONNACK_TIMEOUT_S)
                else:
                    self._wake.wait()
                # paho writes queued packets (our last PUBACKs, then DISCONNECT) from its network
                # thread: stopping that thread at once could drop them, and the broker would
                # resend messages that were processed and acked. Wait until DISCONNECT is out.
                self._disconnected.clear()
                _wait_until_written(client, DISCONNECT_FLUSH_S)
                if client.disconnect() == paho.MQTT_ERR_SUCCESS:
                    self._disconnected.wait(DISCONNECT_FLUSH_S)
                client.loop_stop()
            with self._lock:
                self._connected = False
            if self._fatal is not None:
                log.error("MQTT: %s", self._fatal)
                self._first_outcome.set()
                return
            if self._stop.is_set():
                return
            if self._fell_back:
                self._fell_back = False
                continue  # on_connect switched to MQTT 3.1.1: retry at once
            if self._reconnect_requested:
                delay = self._handler_backoff()
            else:
                failures = 0 if time.monotonic() - began > self.reconnect_max_s else failures + 1
                delay = min(self.reconnect_max_s, self.reconnect_min_s * 2 ** max(0, failures - 1))
            log.info("MQTT reconnecting in %.1f s", delay)
            if self._reconnect_requested and self.handler_ready is not None:
                self._wait_until_ready(delay)
            else:
                self._stop.wait(delay)

    def _connect_allowed(self) -> bool:
        if self.may_connect is None:
            return True
        try:
            return bool(self.may_connect())
        except Exception:  # noqa: BLE001 - a check that fails does not stop the client
            log.exception("MQTT client %s: may_connect failed", self.client_id)
            return True

    def _wait_until_ready(self, delay: float) -> None:
        """The back-off after a failed batch, ended as soon as ``handler_ready`` says that what
        was down answers again: after a long database outage the back-off has grown to
        ``reconnect_max_s``, and the ingest would otherwise resume up to that long after the
        database is back. Only an outage seen ending cuts it short: a batch that fails while
        the database answers keeps its full back-off (no reconnect loop every half second)."""
        deadline = time.monotonic() + delay
        seen_down = False
        while not self._stop.wait(min(READY_POLL_S, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return
            try:
                ready = bool(self.handler_ready())  # type: ignore[misc]
            except Exception:  # noqa: BLE001 - a probe that fails is a "not yet"
                ready = False
            if ready and seen_down:
                return
            seen_down = seen_down or not ready

    def _handler_backoff(self) -> float:
        n = max(1, self._handler_failures)
        return float(min(self.reconnect_max_s, self.reconnect_min_s * 2 ** (n - 1)))

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        code = _code(reason)
        if code != 0:
            if code == RC_UNSUPPORTED_PROTOCOL and self._protocol == paho.MQTTv5 \
                    and self._protocol_wanted == "auto":
                if self.shared_group is not None:
                    self._fatal = (f"the broker at {self.host}:{self.port} speaks MQTT 3.1.1 only; "
                                   f"shared subscriptions (group {self.shared_group!r}) need MQTT 5")
                else:
                    log.info("MQTT broker %s:%d refuses MQTT 5; using 3.1.1", self.host, self.port)
                    self._protocol = paho.MQTTv311
                    self._fell_back = True
            elif code in RC_REFUSED_FOR_GOOD:
                self._fatal = f"broker {self.host}:{self.port} refused the connection: {reason}"
            else:
                log.warning("MQTT connection refused: %s", reason)
            self._wake.set()
            return
        with self._lock:
            self._generation += 1
            self._connected = True
        self._stats["connects"] += 1
        if self._stats["connects"] > 1:
            self._stats["reconnects"] += 1
        log.info("MQTT connected to %s:%d as %s (MQTT %s, session present: %s)", self.host,
                 self.port, self.client_id, self.protocol, flags.session_present)
        prefix = f"$share/{self.shared_group}/" if self.shared_group else ""
        if self._protocol == paho.MQTTv5:
            # retainHandling=1: retained messages only for a new subscription, not every reconnect
            options = SubscribeOptions(qos=1, retainHandling=1)
            client.subscribe([(prefix + topic, options) for topic in self.topics])
        else:
            client.subscribe([(prefix + topic, 1) for topic in self.topics])

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: list[Any],
                      properties: Any) -> None:
        for topic, reason in zip(self.topics, reasons, strict=False):
            if _code(reason) >= 0x80:
                log.error("MQTT subscription to %s refused: %s", topic, reason)
        # start() returns only now: a message published after it is sure to reach us
        self._first_outcome.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        with self._lock:
            self._connected = False
        self._disconnected.set()
        if not self._stop.is_set() and not self._reconnect_requested:
            log.warning("MQTT connection to %s:%d lost: %s", self.host, self.port, reason)
        self._wake.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # paho's network thread: no work here beyond queueing
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = "\ufffd"  # not valid UTF-8: the pipeline rejects it by topic
        self._stats["received"] += 1
        if not self._accepting:
            return
        inbound = InboundMessage(topic, bytes(message.payload), message.mid, message.qos, time.time(),
                                 bool(message.retain), bool(message.dup))
        self._queue.put((inbound, self._generation))

    def _request_reconnect(self) -> None:
        self._reconnect_requested = True
        self._wake.set()
