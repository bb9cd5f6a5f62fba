"""The ingest pipeline in processes of its own, behind the one MQTT connection of ``xiaoche ingest``.

In one Python process the MQTT client (paho's network thread: reading, parsing, queueing) and the
pipeline (decode, filter, store, track, notify) share one interpreter lock, so the pipeline's
time is taken from the client's and neither uses the second core (bench/ingest.py). With
``XIAOCHE_INGEST_PROCESSES=N`` (N ≥ 1) the ingest process keeps the MQTT connection, the batches
and the acks, and hands each batch to N pipeline processes:

- a message goes to the process of its device (the id in its topic: ``zlib.crc32`` modulo N), so
  one device's messages are always handled by one process, in the order they arrived, as the
  filters (last fix, duplicates) and the tracker expect; a topic that names no device goes to the
  first process, which rejects it as the pipeline always does;
- each process runs its share in one transaction, as ``IngestPipeline.process`` does, and answers
  only after its commit; the batch is acked once every process has answered. If one fails (or
  dies) the batch is not acked: the broker sends it again, and what the others had stored is a
  duplicate the second time (unique on device and ``ts``), so nothing is lost and nothing is
  stored twice — the same promise as with one process;
- a dead process is started again before the next batch; the processes ignore SIGINT/SIGTERM
  (a Ctrl-C reaches the whole process group) and stop once the ingest has finished, acked and
  closed their pipe — or when the ingest process is gone (kill -9): they finish the batch in
  hand, find the pipe closed and exit, and the broker redelivers what was not acked.

They are started with ``spawn`` (a fresh interpreter, nothing inherited from the threads of the
parent) and build their app from the parent's configuration (``create_app``).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import time
import zlib
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from flask import Flask

from gps_ingest.decoders import parse_topic

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # a process is up once its app, its database and its pipeline are
# topic, payload, received_at; the JT/T 808 gateway adds the Message fields MQTT derives from the
# topic (kind, device_id, params) as a fourth element
Item = tuple[str | None, bytes, float] | tuple[str | None, bytes, float, dict[str, Any]]


class PipelineProcessError(RuntimeError):
    """A pipeline process failed a batch or died: the batch must not be acked."""


def default_pipeline(app: Flask):
    from backend.ingest.service import pipeline

    return pipeline(app)


def process_items(pipeline, items: Sequence[Item]) -> dict[str, Any]:
    """Run a batch of (topic, payload, received_at) through ``pipeline`` in one transaction;
    its tally (:func:`tally`): what the metrics count."""
    from gps_ingest.pipeline import Message

    results = pipeline.process([Message(item[1], item[2], item[0], **item[3]) if len(item) > 3
                                else Message(payload=item[1], received_at=item[2], topic=item[0])
                                for item in items])
    return tally(results)


def tally(results: Sequence[Any], into: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"stored", "duplicates", "rejects": {reason: n}}`` of pipeline results (added to
    ``into`` when given: the shares of a batch add up)."""
    out = into if into is not None else {"stored": 0, "duplicates": 0, "rejects": {}}
    for r in results:
        out["stored"] += r.accepted
        out["duplicates"] += r.duplicates
        for reject in r.rejected:
            out["rejects"][reject.reason] = out["rejects"].get(reject.reason, 0) + 1
    return out


class InProcessPipeline:
    """The pipeline in this very process (``XIAOCHE_INGEST_PROCESSES=0``, and ``serve``), with
    the interface of :class:`PipelineProcesses`."""

    def __init__(self, app: Flask, factory: Callable[[Flask], Any] = default_pipeline) -> None:
        self.pipeline = factory(app)

    @property
    def pids(self) -> list[int | None]:
        return []

    def start(self) -> None:
        pass

    def process(self, items: Sequence[Item]) -> dict[str, Any]:
        return process_items(self.pipeline, items)

    def stop(self) -> None:
        pass


def picklable_config(app: Flask) -> dict[str, Any]:
    """What a pipeline process needs to build the same app: every setting and the database."""
    from backend import settings

    keys = {s.key for s in settings.SETTINGS} | {"SQLALCHEMY_DATABASE_URI", "SECRET_KEY",
                                                  "TESTING"}
    return {k: app.config[k] for k in keys if k in app.config}


def shard_of(topic: str | None, count: int, device_id: str | None = None) -> int:
    """The process of the message's device (its id in the topic, or ``device_id`` when the
    message comes with it; 0 for a message that names none)."""
    if count == 1:
        return 0
    if device_id is None:
        parsed = parse_topic(topic or "")
        if parsed is None:
            return 0
        device_id = parsed[1]
    return zlib.crc32(device_id.encode("utf-8", "surrogatepass")) % count


def _serve(conn: Connection, config: dict[str, Any],
           factory: Callable[[Flask], Any]) -> None:
    """A pipeline process: build the pipeline, then run the batches that arrive until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from backend import create_app
    from backend.runtime import freeze_startup_objects

    try:
        app = create_app(config)
        pipeline = factory(app)
        freeze_startup_objects()
    except BaseException as exc:  # noqa: BLE001 — the parent says why it cannot start
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise
    conn.send(("ready", None))
    while True:
        try:
            items = conn.recv()
        except (EOFError, OSError):
            return  # the ingest is gone or done
        if items is None:
            return
        try:
            reply: tuple[str, Any] = ("ok", process_items(pipeline, items))
        except Exception as exc:  # noqa: BLE001 — not acked; the parent reconnects
            log.exception("pipeline process: a batch of %d messages failed", len(items))
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: Connection | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive() and self.conn is not None


class PipelineProcesses:
    """N pipeline processes; :meth:`process` returns once every share of a batch is committed."""

    def __init__(self, app: Flask, count: int,
                 factory: Callable[[Flask], Any] = default_pipeline) -> None:
        if count < 1:
            raise ValueError("at least one pipeline process")
        self.count = count
        self.config = picklable_config(app)
        self.factory = factory
        self._context = multiprocessing.get_context("spawn")
        self._workers = [_Worker(i) for i in range(count)]

    def start(self) -> None:
        for worker in self._workers:
            self._spawn(worker)
        for worker in self._workers:
            self._await_ready(worker)

    def _spawn(self, worker: _Worker) -> None:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(child_end, self.config,
                                                             self.factory),
                                        name=f"xiaoche-pipeline-{worker.index}", daemon=True)
        process.start()
        child_end.close()
        worker.process, worker.conn = process, parent_end

    def _await_ready(self, worker: _Worker) -> None:
        assert worker.conn is not None and worker.process is not None
        if not worker.conn.poll(START_TIMEOUT_S):
            self._discard(worker)
            raise PipelineProcessError(f"pipeline process {worker.index} did not start within "
                                       f"{START_TIMEOUT_S:.0f} s")
        try:
            state, detail = worker.conn.recv()
        except (EOFError, OSError):
            state, detail = "failed", f"exit code {worker.process.exitcode}"
        if state != "ready":
            self._discard(worker)
            raise PipelineProcessError(f"pipeline process {worker.index} could not start: "
                                       f"{detail}")

    def _discard(self, worker: _Worker) -> None:
        if worker.conn is not None:
            worker.conn.close()
        if worker.process is not None:
            worker.process.join(timeout=1)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
        worker.process = worker.conn = None

    def process(self, items: Sequence[Item]) -> dict[str, Any]:
        """Run a batch over the processes; its tally (:func:`tally`), the shares added up.

        Raises :class:`PipelineProcessError` when any share failed: nothing may be acked."""
        shares: list[list[Item]] = [[] for _ in self._workers]
        for item in items:
            device_id = item[3].get("device_id") if len(item) > 3 else None  # type: ignore[misc]
            shares[shard_of(item[0], self.count, device_id)].append(item)
        sent: list[_Worker] = []
        errors: list[str] = []
        for worker, share in zip(self._workers, shares, strict=True):
            if not share:
                continue
            if not worker.alive:
                self._discard(worker)
                log.warning("pipeline process %d is gone; starting it again", worker.index)
                try:
                    self._spawn(worker)
                    self._await_ready(worker)
                except PipelineProcessError as exc:
                    errors.append(str(exc))
                    continue
            try:
                worker.conn.send(share)  # type: ignore[union-attr]
            except (BrokenPipeError, OSError) as exc:
                errors.append(f"pipeline process {worker.index}: {exc}")
                self._discard(worker)
                continue
            sent.append(worker)
        total: dict[str, Any] = {"stored": 0, "duplicates": 0, "rejects": {}}
        for worker in sent:  # every one is waited for, even after another failed
            try:
                state, detail = worker.conn.recv()  # type: ignore[union-attr]
            except (EOFError, OSError):
                exitcode = worker.process.exitcode if worker.process else None
                errors.append(f"pipeline process {worker.index} died (exit code {exitcode})")
                self._discard(worker)
                continue
            if state == "ok":
                total["stored"] += detail["stored"]
                total["duplicates"] += detail["duplicates"]
                for reason, n in detail["rejects"].items():
                    total["rejects"][reason] = total["rejects"].get(reason, 0) + n
            else:
                errors.append(f"pipeline process {worker.index}: {detail}")
        if errors:
            raise PipelineProcessError("; ".join(errors))
        return total

    def stop(self, timeout_s: float = 30.0) -> None:
        """Let each process finish (it has no batch: :meth:`process` waited for every answer)."""
        deadline = time.monotonic() + timeout_s
        for worker in self._workers:
            if worker.conn is not None:
                with contextlib.suppress(BrokenPipeError, OSError):
                    worker.conn.send(None)
        for worker in self._workers:
            if worker.process is not None:
                worker.process.join(timeout=max(0.1, deadline - time.monotonic()))
            self._discard(worker)

    @property
    def pids(self) -> list[int | None]:
        return [w.process.pid if w.process is not None else None for w in self._workers]
