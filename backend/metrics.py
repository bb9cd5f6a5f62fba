"""Prometheus metrics (prometheus-client): what an operator graphs and alerts on.

Counted where the work happens, in the process that does it:

* the ingest (MQTT batches in ``backend.runtime.IngestRunner``, HTTP requests in
  ``backend.ingest.service.ingest_http``): pings stored, duplicates, rejects by reason, batch
  sizes, the time a batch takes to commit, and the lag from receipt to commit;
* read when scraped: open ``/stream`` connections of this process, notification deliveries
  waiting in the outbox, database connections in use.

``GET /metrics`` serves them from the API process (``serve``, each ``xiaoche api`` worker: a
gunicorn worker answers for itself) to the addresses in ``XIAOCHE_METRICS_ALLOW`` (loopback by
default: the API faces parents, the metrics face the operator); ``xiaoche ingest`` serves its own
on ``127.0.0.1:XIAOCHE_METRICS_PORT`` when that is set.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

PINGS = Counter("xiaoche_pings_stored", "Pings and card scans newly stored", ["path"])
DUPLICATES = Counter("xiaoche_pings_duplicate", "Pings received again (stored once)", ["path"])
REJECTS = Counter("xiaoche_rejects", "Messages or items refused, by reason (GET /admin/rejects)",
                  ["reason"])
BATCH_MESSAGES = Histogram("xiaoche_ingest_batch_messages", "MQTT messages per committed batch",
                           buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 4000, 8000))
BATCH_SECONDS = Histogram("xiaoche_ingest_batch_seconds",
                          "Seconds from a batch handed to the pipeline to its commit",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
LAG_SECONDS = Histogram("xiaoche_ingest_lag_seconds",
                        "Seconds from receiving a batch's oldest message to its commit",
                        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))


def count_results(path: str, results: Iterable[Any]) -> None:
    """Pipeline ``MessageResult``s of one batch on ``path`` (http, jt808 in this process)."""
    from backend.ingest.processes import tally

    count_outcome(tally(list(results)), path)


def count_outcome(outcome: dict[str, Any], path: str = "mqtt") -> None:
    """A batch's tally from the pipeline processes (``backend.ingest.processes``)."""
    if outcome["stored"]:
        PINGS.labels(path).inc(outcome["stored"])
    if outcome["duplicates"]:
        DUPLICATES.labels(path).inc(outcome["duplicates"])
    for reason, n in outcome["rejects"].items():
        REJECTS.labels(reason).inc(n)


class _AppCollector(Collector):
    """Gauges read when scraped, of the app this process serves (the latest registered)."""

    def __init__(self) -> None:
        self.app: Flask | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        app = self.app
        if app is None:
            return
        hub = app.extensions.get("xiaoche.stream_hub")
        yield GaugeMetricFamily("xiaoche_streams_open", "Open GET /stream connections",
                                value=hub[0].open_count if hub else 0)
        if hub:
            yield _fanout_family({f"worker-{os.getpid()}": hub[0].fanout.to_json()})
        yield from _stream_processes()
        from backend.extensions import db

        with app.app_context():
            pool = db.engine.pool
            checked_out = getattr(pool, "checkedout", None)
            if callable(checked_out):
                yield GaugeMetricFamily("xiaoche_db_connections_in_use",
                                        "Database connections checked out of the pool",
                                        value=checked_out())
            pending = _outbox_pending(db)
            if pending is not None:
                yield GaugeMetricFamily("xiaoche_outbox_pending",
                                        "Notification deliveries waiting to be pushed",
                                        value=pending)


def _stream_processes() -> Iterator[GaugeMetricFamily]:
    """Under ``xiaoche api``: each stream process's open streams and whether it is up, from the
    status file it rewrites beside its socket (``backend.streams.stream_server``)."""
    import glob
    import json
    import time

    from backend.health import STALE_INTERVALS
    from backend.streams.handoff import SOCKET_ENV

    prefix = os.environ.get(SOCKET_ENV)
    if not prefix:
        return
    up = GaugeMetricFamily("xiaoche_stream_process_up",
                           "1 while a stream process of xiaoche api writes its status",
                           labels=["process"])
    opened = GaugeMetricFamily("xiaoche_stream_process_streams_open",
                               "Open GET /stream connections of a stream process",
                               labels=["process"])
    now = time.time()
    fanouts: dict[str, dict] = {}
    for path in sorted(glob.glob(glob.escape(prefix) + ".*.json")):
        name = "stream-" + path[len(prefix) + 1:-len(".json")]
        try:
            with open(path) as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            continue
        fresh = now - float(state["at"]) <= STALE_INTERVALS * float(state["interval_s"])
        up.add_metric([name], 1.0 if fresh else 0.0)
        opened.add_metric([name], float(state.get("open", 0)) if fresh else 0.0)
        if state.get("fanout"):
            fanouts[name] = state["fanout"]
    yield up
    yield opened
    if fanouts:
        yield _fanout_family(fanouts)


def _fanout_family(by_process: dict[str, dict]) -> HistogramMetricFamily:
    """``xiaoche_stream_fanout_seconds``: change notice (or poll) → the last recipient's frame
    written (``backend.streams.fanout.FanoutHistogram``), per serving process."""
    family = HistogramMetricFamily(
        "xiaoche_stream_fanout_seconds",
        "Stream fan-out: store change notice (or the poll that read it) to the last "
        "recipient's frame written", labels=["process"])
    for name, h in by_process.items():
        family.add_metric([name], [(le, float(n)) for le, n in h["buckets"]], h["sum"])
    return family


def _outbox_pending(db: Any) -> int | None:
    from sqlalchemy import func, select

    from backend.models.outbox import NotificationDelivery

    try:
        return int(db.session.scalar(select(func.count()).select_from(NotificationDelivery)
                                     .where(NotificationDelivery.state == "pending")) or 0)
    except Exception as exc:  # noqa: BLE001 - a scrape must not fail: the database is away
        log.warning("metrics: the outbox could not be counted: %s", str(exc).splitlines()[0])
        return None
    finally:
        db.session.remove()


_COLLECTOR = _AppCollector()
REGISTRY.register(_COLLECTOR)

bp = Blueprint("metrics", __name__)


def init_metrics(app: Flask) -> None:
    _COLLECTOR.app = app
    app.register_blueprint(bp)


def allowed(address: str | None, allow: str) -> bool:
    """Whether ``address`` is in one of the comma-separated networks of ``allow``.

    >>> allowed("127.0.0.1", "127.0.0.1/32,::1/128"), allowed("10.0.0.9", "127.0.0.1/32")
    (True, False)
    """
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net.strip(), strict=False)
               for net in allow.split(",") if net.strip())


@bp.get("/metrics")
def metrics() -> Response:
    if not allowed(request.remote_addr, current_app.config["METRICS_ALLOW"]):
        abort(404)  # as if it were not there: the metrics are the operator's
    return Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST)


def serve_ingest_metrics(port: int) -> None:
    """``xiaoche ingest``'s own metrics on 127.0.0.1:``port`` (0: none)."""
    if port:
        start_http_server(port, addr="127.0.0.1")
        log.info("metrics on http://127.0.0.1:%d/metrics", port)
