"""``xiaoche jt808``: the JT/T 808 gateway for the terminals school buses carry, alone."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from backend.cli.common import prepare_database, require_secret_key
from backend.cli.group import main

DEFAULT_PORT = 7808


@main.command("jt808")
@click.option("--host", default=None,
              help="address to bind  [default: XIAOCHE_JT808_HOST, 0.0.0.0]")
@click.option("--port", default=None, type=int,
              help=f"TCP port  [default: XIAOCHE_JT808_PORT, else {DEFAULT_PORT}]")
@with_appcontext
def jt808_command(host: str | None, port: int | None) -> None:
    """JT/T 808 (2013/2019) terminals over TCP into the ingest pipeline, until SIGTERM/SIGINT.

    Terminals are known by their bundle entry's jt808_phone; point a terminal's (second)
    platform address at this host and port (docs/devices.md)."""
    from backend.runtime import run_jt808

    require_secret_key()  # it signs the terminals' auth codes
    prepare_database(with_sample=False)
    app = current_app._get_current_object()
    if port is None:
        port = app.config.get("JT808_PORT") or DEFAULT_PORT
    run_jt808(app, port, host)
