"""The MQTT edge of the ingest: the only module that imports paho.

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
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger(__name__)
#: how often a failed handler's readiness is asked during the back-off
READY_POLL_S = 0.5

__all__ = ["InboundMessage", "MqttConfigError", "MqttIngestClient", "parse_mqtt_url"]

KEEPALIVE_S = 30
# CONNACK reason codes (MQTT 5 numbering; paho maps 3.1.1 return codes onto them)
RC_UNSUPPORTED_PROTOCOL = 132
RC_REFUSED_FOR_GOOD = {133, 134, 135, 138, 140}  # bad client id, bad credentials, not authorised, banned
# on MQTT 3.1.1 the broker's window is unknown: a batch also closes when the inflow pauses this long
IDLE_FLUSH_S = 0.005
CONNACK_TIMEOUT_S = 5.0
DISCONNECT_FLUSH_S = 5.0
PROTOCOLS = {"5": paho.MQTTv5, "3.1.1": paho.MQTTv311}


def _code(reason: Any) -> int:
    """A paho ReasonCode (MQTT 5) or int (3.1.1) as its number."""
    return int(getattr(reason, "value", reason))


def _wait_until_written(client: paho.Client, timeout_s: float) -> None:
    """Until paho's network thread has written every queued packet (our PUBACKs), or timeout.

    paho has no public call for this (``wait_for_publish`` covers publishes only); its queue is
    read here, in the one module that knows paho.
    """
    deadline = time.monotonic() + timeout_s
    while getattr(client, "_out_packet", None) and time.monotonic() < deadline:
        time.sleep(0.005)


_PUBACK = struct.Struct("!BBH")  # fixed header (PUBACK, remaining length 2) + packet id


def _ack_qos1(client: paho.Client, mids: list[int]) -> None:
    """PUBACK every QoS 1 message id in ``mids``, as one write of paho's network thread.

    ``Client.ack`` queues one packet per message, writes a byte to wake the network thread for
    each, and the thread then sends each PUBACK with a ``send()`` of its own: three system calls
    per message, and GIL hand-overs between the two threads. The PUBACKs of a batch are written
    here as one packet buffer on paho's outgoing queue (MQTT allows any number of packets per
    TCP segment; a PUBACK without a reason code means success in MQTT 5 as in 3.1.1). Draining a
    30 000-message backlog with a no-op handler took 55 µs of CPU per message instead of 59
    (bare paho: 48), medians of 3 on a shared 2-core machine. ``Client.ack`` remains the
    fallback should a paho release change that private queue.
    """
    if not mids:
        return
    queue_packet = getattr(client, "_packet_queue", None)
    if queue_packet is None:
        for mid in mids:
            client.ack(mid, 1)
        return
    pack = _PUBACK.pack
    queue_packet(paho.PUBACK, b"".join([pack(paho.PUBACK, 2, mid) for mid in mids]), 0, 1)


class MqttConfigError(RuntimeError):
    """The broker refused us for a reason that retrying will not fix."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: float  # wall clock (epoch seconds) when paho handed it over
    retain: bool = False
    dup: bool = False  # a redelivery; the store dedupes


def parse_mqtt_url(url: str) -> tuple[str, int, str | None, str | None, bool]:
    """``mqtt://user:pass@host:port`` or ``mqtts://…`` → ``(host, port, username, password, tls)``.

    >>> parse_mqtt_url("mqtt://ingest:s%40cret@127.0.0.1:1884")
    ('127.0.0.1', 1884, 'ingest', 's@cret', False)
    >>> parse_mqtt_url("mqtts://broker.example")
    ('broker.example', 8883, None, None, True)
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, not {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    if not parts.hostname:
        raise ValueError(f"MQTT URL has no host: {url!r}")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ValueError(f"MQTT URL has a bad port: {url!r}") from exc
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return parts.hostname, port, username, password, tls


class MqttIngestClient:
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
        v5 = self._protocol == paho.MQTTv5
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=self._protocol,
            clean_session=None if v5 else False,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        if self._tls:
            client.tls_set()
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
        """``protocol="auto"``: does the broker speak MQTT 5? False: 3.1.1; None: unreachable.

        A throwaway connection (random id, clean start, no properties) rather than the real one:
        amqtt answers such a CONNECT with "unsupported protocol version", but one that carries
        properties it misreads as a 3.1.1 payload and then waits forever for more bytes.
        """
        answer: list[int] = []
        probe = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{self.client_id}-probe",
                            protocol=paho.MQTTv5, reconnect_on_failure=False)
        if self._username is not None:
            probe.username_pw_set(self._username, self._password)
        if self._tls:
            probe.tls_set()
        probe.on_connect = lambda c, u, f, reason, p: answer.append(
            _code(reason))
        probe.connect(self.host, self.port, KEEPALIVE_S, clean_start=True)
        deadline = time.monotonic() + CONNACK_TIMEOUT_S
        while not answer and time.monotonic() < deadline:
            if probe.loop(0.05) != paho.MQTT_ERR_SUCCESS and not answer:
                break
        probe.disconnect()
        if answer and answer[0] == 0:
            return True
        if answer and answer[0] == RC_UNSUPPORTED_PROTOCOL:
            return False
        raise OSError(f"no usable CONNACK from {self.host}:{self.port} ({answer or 'none'})")

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

    # --- batches (worker thread) --------------------------------------------------------
    def _batch_cap(self) -> int:
        if self._protocol == paho.MQTTv5:
            return min(self.batch_max, self.max_inflight)  # the broker sends no more than that
        return self.batch_max

    def _collect(self, first: tuple[InboundMessage, int]) -> tuple[list[Any], bool]:
        """``first`` plus what follows within ``batch_ms`` (at most the batch cap); stop seen?"""
        batch = [first]
        cap = self._batch_cap()
        get = self._queue.get
        deadline = time.monotonic() + self.batch_s
        idle = IDLE_FLUSH_S if self._protocol != paho.MQTTv5 else None
        while len(batch) < cap:
            try:
                item = get(block=False)
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    # on 3.1.1 a pause in the inflow may be the broker's full window: flush
                    item = get(timeout=min(remaining, idle) if idle else remaining)
                except queue.Empty:
                    break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _work(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get()
                if first is None:
                    stopping = True
                    self._drain_for_stop()
                    return
                batch, stopping = self._collect(first)
                self._process(batch)
                if stopping:
                    self._drain_for_stop()
            except Exception:  # never let the worker die
                log.exception("MQTT batch worker error")

    def _drain_for_stop(self) -> None:
        """At stop: handle and ack what was already received (what remains is redelivered)."""
        while True:
            try:
                item = self._queue.get(block=False)
            except queue.Empty:
                return
            if item is None:
                continue
            batch, _ = self._collect(item)
            self._process(batch)

    def _process(self, batch: list[tuple[InboundMessage, int]]) -> None:
        keep = [item for item in batch if item[1] > self._discard_through]
        if len(keep) < len(batch):
            self._stats["discarded"] += len(batch) - len(keep)
        if not keep:
            return
        messages = [m for m, _ in keep]
        try:
            self.handle_batch(messages)
        except Exception:
            self._handler_failures += 1
            self._stats["handler_errors"] += 1
            log.exception("MQTT batch of %d messages (first topic %s) failed; not acked, "
                          "reconnecting so the broker redelivers them",
                          len(messages), messages[0].topic)
            with self._lock:
                self._discard_through = self._generation
            self._request_reconnect()
            return
        self._handler_failures = 0
        self._stats["batches"] += 1
        acked = 0
        with self._lock:
            client = self._client
            if client is not None and self._connected:
                generation = self._generation
                pubacks = [m.mid for m, gen in keep if gen == generation and m.qos == 1]
                _ack_qos1(client, pubacks)
                acked = len(pubacks)
                for message, gen in keep:
                    if gen == generation and message.qos > 1:
                        client.ack(message.mid, message.qos)
                        acked += 1
        self._stats["acked"] += acked

    def _request_reconnect(self) -> None:
        self._reconnect_requested = True
        self._wake.set()


class PublishConnection:
    """A QoS 0/1 publishing connection driven by its caller's thread (no network thread).

    The building block of :class:`gps_ingest.publisher.WindowedPublisher`, kept here so that paho
    stays in this module. paho's own in-flight limit is switched off (``max_inflight=0``): with a
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
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self._client_id,
                             protocol=self._protocol,
                             clean_session=None if self._protocol == paho.MQTTv5 else True)
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        if self._tls:
            client.tls_set()
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
