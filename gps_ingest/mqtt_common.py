"""What the MQTT edge's clients share: URLs, reason codes, the inbound message, PUBACK writes.

With :mod:`gps_ingest.mqtt_client` (the ingest's subscriber) and :mod:`gps_ingest.mqtt_publish`
(publishing connections) the only modules that import paho.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

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
    read here, in the MQTT edge that knows paho.
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


def new_client(client_id: str, protocol: int, *, username: str | None = None,
               password: str | None = None, tls: bool = False, persistent: bool = False,
               **options: Any) -> paho.Client:
    """The one way a paho client is built here (the ingest's subscriber, its publishers, the
    protocol probe; the notification channel gets it from the backend): callback API 2, a session
    the broker keeps (``persistent``) or a clean one, as each protocol says it, the URL's
    credentials and TLS. ``options`` go to ``paho.Client`` (``manual_ack``,
    ``reconnect_on_failure``)."""
    v5 = protocol == paho.MQTTv5
    # MQTT 5 says it at CONNECT (clean_start, session expiry); 3.1.1 in the client
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                         clean_session=None if v5 else not persistent, **options)
    if username is not None:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set()
    return client


def speaks_mqtt5(host: str, port: int, client_id: str, username: str | None,
                 password: str | None, tls: bool) -> bool:
    """Does the broker speak MQTT 5? False: 3.1.1 only; OSError: no usable answer.

    A throwaway connection (``{client_id}-probe``, clean start, no properties) rather than the
    real one: amqtt answers such a CONNECT with "unsupported protocol version", but one that
    carries properties it misreads as a 3.1.1 payload and then waits forever for more bytes.
    """
    answer: list[int] = []
    probe = new_client(f"{client_id}-probe", paho.MQTTv5, username=username, password=password,
                       tls=tls, reconnect_on_failure=False)
    probe.on_connect = lambda c, u, f, reason, p: answer.append(_code(reason))
    probe.connect(host, port, KEEPALIVE_S, clean_start=True)
    deadline = time.monotonic() + CONNACK_TIMEOUT_S
    while not answer and time.monotonic() < deadline:
        if probe.loop(0.05) != paho.MQTT_ERR_SUCCESS and not answer:
            break
    probe.disconnect()
    if answer and answer[0] == 0:
        return True
    if answer and answer[0] == RC_UNSUPPORTED_PROTOCOL:
        return False
    raise OSError(f"no usable CONNACK from {host}:{port} ({answer or 'none'})")
