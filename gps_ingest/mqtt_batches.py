"""The ingest subscriber's batch worker: collect what arrived into batches, hand each to
``handle_batch``, PUBACK its messages only after that returned (after commit).

A mixin of :class:`gps_ingest.mqtt_client.MqttIngestClient`, split out to keep that module
readable; it uses the client's queue, lock, connection generation and statistics.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

from gps_ingest.mqtt_common import IDLE_FLUSH_S, InboundMessage, _ack_qos1

log = logging.getLogger("gps_ingest.mqtt_client")


class BatchWorker:
    """The worker thread's half of the client (see the client's docstring for the rules)."""

    _queue: queue.SimpleQueue[tuple[InboundMessage, int] | None]
    _lock: threading.Lock
    _protocol: int
    _generation: int
    _connected: bool
    _client: paho.Client | None
    _discard_through: int
    _handler_failures: int
    _stats: dict[str, Any]
    batch_max: int
    batch_s: float
    max_inflight: int
    handle_batch: Callable[[list[InboundMessage]], None]

    def _request_reconnect(self) -> None:
        raise NotImplementedError

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
