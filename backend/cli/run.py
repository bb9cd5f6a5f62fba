"""The long-running roles: serve, demo, api, ingest, scheduler, dispatch."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from backend.cli.common import (
    database_url_given,
    prepare_database,
    require_secret_key,
    use_instance_secret_key,
)
from backend.cli.group import main


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--sample/--no-sample",
    default=None,
    help="import the sample district into an empty database "
    "[default: on for the embedded SQLite default, off otherwise]",
)
@with_appcontext
def serve_command(host: str, port: int, sample: bool | None) -> None:
    """One process: HTTP API + MQTT ingest + scheduler (embedded broker if no XIAOCHE_MQTT_URL)."""
    from backend.runtime import run_all_in_one

    embedded_default = not database_url_given()
    if sample is None:
        sample = embedded_default
    if embedded_default:
        use_instance_secret_key()
    require_secret_key()
    prepare_database(sample)
    run_all_in_one(current_app._get_current_object(), host, port)


@main.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@with_appcontext
def demo_command(host: str, port: int) -> None:
    """`serve` on the embedded default (SQLite in the instance folder, embedded broker, the
    sample district) with a simulated fleet driving it; prints the page URL and the logins."""
    from backend.demo import run_demo

    if database_url_given():
        raise click.ClickException(
            "xiaoche demo runs on the embedded default only (SQLite in the instance folder): "
            "unset XIAOCHE_DATABASE_URL, or point XIAOCHE_INSTANCE_PATH at a folder of its own")
    # the secret key: random per start (SPEC §1), so a demo's tokens end with it
    prepare_database(with_sample=True)
    run_demo(current_app._get_current_object(), host, port)


@main.command("ingest")
@with_appcontext
def ingest_command() -> None:
    """MQTT ingest alone (several may run with XIAOCHE_INGEST_SHARED_GROUP)."""
    from backend.runtime import run_ingest

    prepare_database(with_sample=False)
    run_ingest(current_app._get_current_object())


@main.command("scheduler")
@with_appcontext
def scheduler_command() -> None:
    """The scheduled jobs alone (the nightly trip audit), for deployments that run the roles
    as separate processes; `serve` runs them itself."""
    from backend.runtime import run_scheduler

    prepare_database(with_sample=False)
    run_scheduler(current_app._get_current_object())


STREAM_WORKER = "backend.streams.worker.StreamWorker"


@main.command("api")
@click.option("--bind", default="127.0.0.1:8000", show_default=True)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=64, show_default=True, type=int,
              help="per worker, for REST requests (streams take none)")
@click.option("--worker-class", default="stream", show_default=True,
              type=click.Choice(["stream", "gthread"]),
              help="stream: /stream on each worker's event loop, REST in --threads threads; "
                   "gthread: gunicorn's threads for everything, each open /stream holds one")
@click.option("--stream-processes", type=click.IntRange(0, 64), default=None,
              help="processes that serve /stream, handed over by the workers (default "
                   "XIAOCHE_STREAM_PROCESSES, 1; 0: each worker serves its own streams)")
@with_appcontext
def api_command(bind: str, workers: int, threads: int, worker_class: str,
                stream_processes: int | None) -> None:
    """The HTTP API alone under gunicorn (WSGI entry backend.wsgi:app)."""
    require_secret_key()
    from backend.database import upgrade_schema

    upgrade_schema(current_app)
    import os

    args = [
        "gunicorn",
        "--bind", bind,
        "--workers", str(workers),
        "--threads", str(threads),
        "--worker-class", STREAM_WORKER if worker_class == "stream" else worker_class,
        # several instances on one machine would share gunicorn's default control socket
        "--no-control-socket",
        "--access-logfile", "-",
        # the path without its query: /stream?access_token=… must not land in the log (the
        # stream worker writes its own lines, without the query too)
        "--access-logformat", '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s',
        "--config", "python:backend.streams.gunicorn_conf",
        "backend.wsgi:app",
    ]
    if stream_processes is not None:
        os.environ["XIAOCHE_STREAM_PROCESSES"] = str(stream_processes)
    os.execvp(sys.executable, [sys.executable, "-m", *args])


@main.command("dispatch")
@click.option("--interval", default=2.0, show_default=True, type=float,
              help="seconds between looks at the outbox when it is empty")
@with_appcontext
def dispatch_command(interval: float) -> None:
    """Push notifications (MQTT, webhook) from the outbox until SIGTERM/SIGINT; several may run
    on PostgreSQL."""
    import signal
    import threading

    from backend.dispatch_service import ChannelConfigError, check_settings, run_dispatcher

    prepare_database(with_sample=False)
    app = current_app._get_current_object()
    try:
        channels = check_settings(app)
    except ChannelConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"xiaoche: dispatcher running (channels: {', '.join(channels) or 'none'})")
    sys.stdout.flush()
    run_dispatcher(app, stop, interval)
