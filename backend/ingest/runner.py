"""The MQTT ingest's runner: the broker's messages (of its own slot, and of the slots it adopted)
through the pipeline, acked after commit; what ``xiaoche ingest`` and ``serve`` run.

Split from :mod:`backend.runtime`, the composition root, which re-exports its names.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

log = logging.getLogger("backend.runtime")

INGEST_TOPICS = ("xiaoche/v1/devices/+/pings", "xiaoche/v1/devices/+/scans", "owntracks/+/+")


def database_answers(app: Flask) -> bool:
    """Whether the database answers a ``SELECT 1`` now (a fresh connection from the pool)."""
    from sqlalchemy import text

    from backend.extensions import db

    with app.app_context():
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False


class IngestRunner:
    """MQTT → pipeline; acks each batch only after the pipeline committed it."""

    def __init__(self, app: Flask, mqtt_url: str, processes: int = 0,
                 pipeline_factory: Callable[[Flask], Any] | None = None):
        """``processes`` ≥ 1: the pipeline runs in that many processes of its own
        (``backend.ingest.processes``); 0: here, in this process."""
        from backend.ingest.processes import (
            InProcessPipeline,
            PipelineProcesses,
            default_pipeline,
        )
        factory = pipeline_factory or default_pipeline
        self._pipeline = (PipelineProcesses(app, processes, factory) if processes > 0
                          else InProcessPipeline(app, factory))
        group = app.config.get("INGEST_SHARED_GROUP")
        client_id = app.config["INGEST_CLIENT_ID"]
        self._app = app
        self._mqtt_url = mqtt_url
        self._group = group or None
        #: one batch at a time into the pipeline: the adopted slots' clients share it
        self._pipeline_lock = threading.Lock()
        self.member = None
        #: set to stop ``xiaoche ingest``: by a signal, or when another member took our slot
        self.stopping = threading.Event()
        self.slot_taken = False
        if group and client_id == "xiaoche-ingest":
            # members of one shared group need distinct ids, and every id's broker session a
            # consumer even after its member died for good: group-wide slots, adopted by the
            # survivors (backend.ingest.member)
            from backend.extensions import db
            from backend.ingest.member import GroupMember

            with app.app_context():
                engine = db.engine
            self.member = GroupMember(engine, client_id, group,
                                      float(app.config["INGEST_SLOT_TTL_S"]),
                                      make_client=self._slot_client,
                                      on_lost=self._slot_taken)
        elif group:
            log.warning("ingest group %s with the fixed client id %s: if this member dies for "
                        "good, nobody drains what the broker keeps queueing for it; leave "
                        "XIAOCHE_INGEST_CLIENT_ID unset so the group's members adopt each other's "
                        "slots", group, client_id)
        self.client = self._slot_client(client_id)
        self.last_batch_at: float | None = None  # when the last batch was committed
        self._busy_since: float | None = None  # when the batch in hand began

    def _slot_taken(self) -> None:
        self.slot_taken = True
        self.stopping.set()

    def _slot_client(self, client_id: str, may_connect: Callable[[], bool] | None = None):
        """An MQTT client of this ingest (its own, or one of an adopted slot) on the pipeline."""
        from gps_ingest.mqtt_client import MqttIngestClient

        app = self._app
        return MqttIngestClient(
            self._mqtt_url, client_id=client_id, topics=INGEST_TOPICS,
            handle_batch=self.handle_batch, batch_max=int(app.config["INGEST_BATCH_MAX"]),
            # room for the next batch to arrive while one commits (MQTT 5 Receive Maximum)
            max_inflight=min(65535, max(1000, 2 * int(app.config["INGEST_BATCH_MAX"]))),
            batch_ms=int(app.config["INGEST_BATCH_MS"]), shared_group=self._group,
            session_expiry_s=int(app.config["INGEST_SESSION_EXPIRY_S"]),
            handler_ready=lambda: database_answers(app), may_connect=may_connect)

    def handle_batch(self, messages) -> None:
        from backend import metrics

        with self._pipeline_lock:
            self._handle_batch(messages, metrics)

    def _handle_batch(self, messages, metrics) -> None:
        self._busy_since = time.time()
        try:
            outcome = self._pipeline.process([(m.topic, m.payload, m.received_at)
                                              for m in messages])
            self.last_batch_at = time.time()
            metrics.count_outcome(outcome)
            metrics.BATCH_MESSAGES.observe(len(messages))
            metrics.BATCH_SECONDS.observe(self.last_batch_at - self._busy_since)
            metrics.LAG_SECONDS.observe(self.last_batch_at - min(m.received_at
                                                                 for m in messages))
        finally:
            self._busy_since = None

    def problem(self, stuck_after_s: float, now: float | None = None) -> str | None:
        """What keeps this ingest from storing pings right now, if anything."""
        now = time.time() if now is None else now
        if not self.client.connected:
            return f"not connected to the MQTT broker {self.client.host}:{self.client.port}"
        busy_since = self._busy_since
        if busy_since is not None and now - busy_since > stuck_after_s:
            return (f"a batch has been committing for {now - busy_since:.0f} s "
                    "(is the database reachable?)")
        waiting = self.client.stats["queued"]
        if busy_since is None and waiting and now - (self.last_batch_at or 0) > stuck_after_s:
            return f"{waiting} messages waiting and no batch for {stuck_after_s:g} s"
        return None

    def heartbeat(self, interval_s: float) -> dict[str, Any]:
        """What ``xiaoche healthcheck ingest`` reads (backend.health)."""
        from backend.health import STALE_INTERVALS

        now = time.time()
        return {"at": now, "pid": os.getpid(), "interval_s": interval_s,
                "last_batch_at": self.last_batch_at,
                "problem": self.problem(STALE_INTERVALS * interval_s, now)}

    @property
    def connected(self) -> bool:
        return self.client.connected

    @property
    def pipeline_pids(self) -> list[int | None]:
        """The pipeline processes' ids (empty when the pipeline runs in this process)."""
        return self._pipeline.pids

    def start(self) -> None:
        self._pipeline.start()  # before the first message can arrive
        try:
            if self.member is not None:
                self.client.client_id = self.member.take_slot()
            self.client.start()
            if self.member is not None:
                self.member.start()  # renews our slot, adopts the slots of dead members
        except BaseException:
            self._pipeline.stop()
            raise

    def stop(self) -> None:
        try:
            if self.member is not None:
                self.member.stop()  # adopted slots handed back, drained and acked
        finally:
            try:
                self.client.stop()  # finishes, commits and acks what it received
            finally:
                self._pipeline.stop()
                if self.member is not None:
                    self.member.leave()  # our slot lapses: a survivor adopts its session
