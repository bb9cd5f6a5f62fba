"""Running the roles: MQTT ingest, the JT/T 808 gateway, and the all-in-one ``serve`` process.

The composition root: this is where the broker, the MQTT client, the pipeline and the HTTP
server meet; nothing below it knows about the others.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask

from backend.ingest.runner import INGEST_TOPICS, IngestRunner, database_answers

if TYPE_CHECKING:
    from backend.streams.serve import HttpServer

log = logging.getLogger(__name__)
# the ingest's runner lives in backend.ingest.runner; its names stay importable from here
__all__ = ["INGEST_TOPICS", "IngestRunner", "database_answers", "mqtt_url_or_embedded",
           "freeze_startup_objects", "run_ingest", "Jt808Service", "driver_card_event",
           "start_jt808", "run_jt808", "run_scheduler", "run_all_in_one"]


def mqtt_url_or_embedded(app: Flask):
    """The configured broker URL, or start the embedded broker: (url, broker or None)."""
    url = app.config.get("MQTT_URL")
    if url:
        return url, None
    from gps_ingest.broker import BrokerPortInUse, EmbeddedBroker

    data_dir = Path(app.instance_path) / "broker"
    port = int(app.config["EMBEDDED_MQTT_PORT"])
    broker = EmbeddedBroker(host="127.0.0.1", port=port, data_dir=data_dir)
    try:
        broker.start()
    except BrokerPortInUse:
        log.warning("port %d is taken; the embedded broker takes a free port instead (devices "
                    "must be pointed at it)", port)
        broker = EmbeddedBroker(host="127.0.0.1", port=0, data_dir=data_dir)
        broker.start()
    log.info("embedded MQTT broker (%s) on %s", broker.kind, broker.url)
    return broker.url, broker


def freeze_startup_objects() -> None:
    """Move everything allocated at start-up (modules, the app, SQLAlchemy's mappers) out of
    the cyclic garbage collector's view: its collections otherwise rescan them all every few
    thousand allocations, which cost the ingest a quarter of its throughput (bench/ingest.py)."""
    gc.collect()
    gc.freeze()


def run_ingest(app: Flask, pipeline_factory: Callable[[Flask], Any] | None = None) -> None:
    """``xiaoche ingest``: run until SIGTERM/SIGINT (the pipeline in ``INGEST_PROCESSES``
    processes of its own; ``pipeline_factory`` builds it there, by default the app's own)."""
    from backend.ingest.processes import PipelineProcessError

    url, broker = mqtt_url_or_embedded(app)
    processes = int(app.config.get("INGEST_PROCESSES", 0))
    if processes < 0:
        raise SystemExit("xiaoche: XIAOCHE_INGEST_PROCESSES must be 0 or more")
    runner = IngestRunner(app, url, processes, pipeline_factory)
    from backend.metrics import serve_ingest_metrics

    serve_ingest_metrics(int(app.config.get("METRICS_PORT") or 0))
    freeze_startup_objects()
    app.extensions["xiaoche.ingest"] = runner
    stop = runner.stopping
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        runner.start()
    except PipelineProcessError as exc:
        if broker is not None:
            broker.stop()
        raise SystemExit(f"xiaoche: {exc}") from exc
    pids = ", ".join(str(pid) for pid in runner.pipeline_pids)
    where = (f", {processes} pipeline process{'es' if processes > 1 else ''} (pid {pids})"
             if processes else "")
    print(f"xiaoche: ingest subscribed on {url.split('@')[-1]} as {runner.client.client_id}"
          f"{where}", flush=True)
    from backend.health import heartbeat_path, write_heartbeat

    beat = heartbeat_path(app.instance_path)
    interval_s = float(app.config["INGEST_HEARTBEAT_S"])
    try:
        while True:
            try:
                write_heartbeat(beat, runner.heartbeat(interval_s))
            except OSError as exc:
                log.warning("could not write the heartbeat %s: %s", beat, exc)
            if stop.wait(interval_s):
                break
    finally:
        beat.unlink(missing_ok=True)  # stopped: unhealthy at once, not three intervals later
        runner.stop()
        if broker is not None:
            broker.stop()
    if runner.slot_taken:
        raise SystemExit("xiaoche: another member of the shared group took this ingest's slot "
                         "(was the database unreachable for longer than "
                         "XIAOCHE_INGEST_SLOT_TTL_S?); start it again to take a free one")


class Jt808Service:
    """The JT/T 808 gateway on the app's pipeline (the one MQTT and HTTP use), knowing
    terminals by ``devices.jt808_phone``; with ``processes`` ≥ 1 the pipeline runs in that
    many processes of its own (``backend.ingest.processes``, each terminal's messages always in
    the same one), as in ``xiaoche ingest``; 0: in this process, as in ``serve``."""

    def __init__(self, app: Flask, port: int | None = None, host: str | None = None,
                 processes: int = 0) -> None:
        from backend import metrics
        from backend.extensions import db
        from backend.ingest.devices import PhoneDirectory
        from backend.ingest.processes import PipelineProcesses
        from backend.ingest.service import pipeline
        from backend.jt808_texts import TextOutbox
        from gps_ingest.jt808_gateway import GatewayConfig, Jt808Gateway

        with app.app_context():
            directory = PhoneDirectory(db.engine)
        self.processes = PipelineProcesses(app, processes) if processes > 0 else None
        if self.processes is not None:
            shards = self.processes

            def process(messages):
                metrics.count_outcome(shards.process([
                    (m.topic, m.payload, m.received_at,
                     {"kind": m.kind, "device_id": m.device_id,
                      "params": dict(m.params) if m.params else None})
                    for m in messages]), "jt808")
        else:
            ingest = pipeline(app)

            def process(messages):
                with app.app_context():
                    metrics.count_results("jt808", ingest.process(messages))

        config = GatewayConfig(
            host=host if host is not None else app.config["JT808_HOST"],
            port=int(port if port is not None else app.config["JT808_PORT"]),
            secret=str(app.config["SECRET_KEY"]).encode(),
            batch_max=int(app.config["INGEST_BATCH_MAX"]),
            batch_ms=int(app.config["INGEST_BATCH_MS"]),
            idle_timeout_s=float(app.config["JT808_IDLE_S"]),
            max_connections=int(app.config["JT808_MAX_CONNECTIONS"]),
            text_poll_s=float(app.config["JT808_TEXT_POLL_S"]))
        with app.app_context():
            texts = TextOutbox(db.engine)
        self.gateway = Jt808Gateway(process, directory.device_of, config,
                                    driver_cards=lambda *card: driver_card_event(app, *card),
                                    texts=texts)
        self.port: int | None = None

    def start(self) -> int:
        """Start the pipeline processes, then the gateway in a thread of its own: the port
        bound, or SystemExit saying why not."""
        from backend.ingest.processes import PipelineProcessError

        if self.processes is not None:
            try:
                self.processes.start()
            except PipelineProcessError as exc:
                raise SystemExit(f"xiaoche: {exc}") from exc
        config = self.gateway.config
        try:
            self.port = self.gateway.start_in_thread()
        except OSError as exc:
            if self.processes is not None:
                self.processes.stop()
            raise SystemExit(f"xiaoche: the JT/T 808 gateway cannot listen on "
                             f"{config.host}:{config.port}: {exc.strerror}") from exc
        return self.port

    def stop(self) -> None:
        try:
            self.gateway.stop_thread()  # the batch in hand commits
        finally:
            if self.processes is not None:
                self.processes.stop()

    @property
    def pids(self) -> list[int | None]:
        return self.processes.pids if self.processes is not None else []


DRIVER_CARD = "driver_card"


def driver_card_event(app: Flask, device_id: str, driver, received_at: float) -> None:
    """Who drives: a JT/T 808 driver card put in or taken out (0x0702) as an event
    ``driver_card`` of the device's vehicle, committed before the terminal is answered."""
    from sqlalchemy import select

    from backend.extensions import db
    from backend.models import Device, Event

    with app.app_context():
        vehicle_id = db.session.scalar(select(Device.vehicle_id).where(Device.id == device_id))
        details = {"device_id": device_id, "inserted": driver.inserted}
        if driver.read_ok:
            details.update(name=driver.name, certificate=driver.certificate,
                           authority=driver.authority, valid_until=driver.valid_until)
        db.session.add(Event(kind=DRIVER_CARD, ts=driver.ts or received_at,
                             vehicle_id=vehicle_id, details=details, created_at=time.time()))
        db.session.commit()


def start_jt808(app: Flask, port: int | None = None, host: str | None = None,
                processes: int = 0) -> Jt808Service:
    service = Jt808Service(app, port, host, processes)
    service.start()
    app.extensions["xiaoche.jt808"] = service
    return service


def run_jt808(app: Flask, port: int | None = None, host: str | None = None) -> None:
    """``xiaoche jt808``: the JT/T 808 gateway alone, until SIGTERM/SIGINT, its pipeline in
    ``XIAOCHE_INGEST_PROCESSES`` processes of its own."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    processes = int(app.config.get("INGEST_PROCESSES", 0))
    if processes < 0:
        raise SystemExit("xiaoche: XIAOCHE_INGEST_PROCESSES must be 0 or more")
    service = start_jt808(app, port, host, processes)
    freeze_startup_objects()
    where = (f", {processes} pipeline process{'es' if processes > 1 else ''} (pid "
             f"{', '.join(str(p) for p in service.pids)})" if processes else "")
    print(f"xiaoche: JT/T 808 gateway on {service.gateway.config.host}:{service.port}{where}",
          flush=True)
    from backend import jt808_health

    interval_s = float(app.config["INGEST_HEARTBEAT_S"])
    beat = jt808_health.heartbeat_path(app.instance_path)
    try:
        while True:
            try:  # `xiaoche healthcheck jt808` reads it
                jt808_health.write(app.instance_path,
                                   jt808_health.heartbeat(service.gateway, service.port or 0,
                                                          interval_s))
            except OSError as exc:
                log.warning("could not write the heartbeat %s: %s", beat, exc)
            if stop.wait(interval_s):
                break
    finally:
        beat.unlink(missing_ok=True)  # stopped: unhealthy at once
        service.stop()


def run_scheduler(app: Flask) -> None:
    """``xiaoche scheduler``: run the scheduled jobs until SIGTERM/SIGINT — while this process
    holds the scheduler lease; on standby otherwise (backend.scheduler.LeasedScheduler)."""
    from backend.scheduler import LeasedScheduler

    try:
        scheduler = LeasedScheduler(app)
    except ValueError as exc:
        raise SystemExit(f"xiaoche: {exc}") from exc
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    scheduler.start()
    print(f"xiaoche: scheduler {scheduler.lease.holder} up; it runs the jobs while it holds "
          "the lease", flush=True)
    try:
        stop.wait()
    finally:
        scheduler.stop()


def run_all_in_one(app: Flask, host: str, port: int, server: HttpServer | None = None) -> None:
    """``xiaoche serve``: broker (if embedded) + ingest + scheduler + HTTP API in one process.

    The HTTP port is bound first (or already, as ``server``): a port in use stops the start
    with a clear message before anything else runs or is announced."""
    from backend.scheduler import LeasedScheduler
    from backend.streams import serve

    if server is None:
        server = serve.HttpServer(app, host, port)  # streams on its event loop, the rest in threads

    try:  # the clock jobs; a bad setting fails here, before anything has started
        scheduler = LeasedScheduler(app)
    except ValueError as exc:
        raise SystemExit(f"xiaoche: {exc}") from exc
    url, broker = mqtt_url_or_embedded(app)
    if broker is not None:
        # the app's MQTT push channel (notifications to xiaoche/v1/users/…) uses the embedded
        # broker too: drop the channels built before it was up, so the next dispatch has it
        from backend.dispatch_service import close_channels

        app.config["MQTT_URL"] = url
        close_channels(app)
    runner = None
    jt808_service = None
    try:
        runner = IngestRunner(app, url)
        app.extensions["xiaoche.ingest"] = runner
        freeze_startup_objects()
        runner.start()
        jt808 = ""
        if app.config.get("JT808_PORT") is not None:  # off unless XIAOCHE_JT808_PORT is set
            jt808_service = start_jt808(app)  # its pipeline in this process, as MQTT's here
            jt808 = f", JT/T 808 on {jt808_service.gateway.config.host}:{jt808_service.port}"
        scheduler.start()
        print(f"xiaoche: API on http://{host}:{server.port}/api/v1 "
              f"(docs /api/v1/docs), MQTT on {url.split('@')[-1]}{jt808}", flush=True)
        server.run()  # until SIGINT / SIGTERM
    finally:
        scheduler.stop()
        if jt808_service is not None:
            jt808_service.stop()
        if runner is not None:
            runner.stop()
        if broker is not None:
            broker.stop()
