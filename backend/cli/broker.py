"""``xiaoche broker-config``: Mosquitto's files from the device registry."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from backend.cli.group import main


@main.command("broker-config")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="folder for passwd, acl and mosquitto.conf",
)
@click.option(
    "--service-user",
    default="xiaoche-service",
    show_default=True,
    help="the MQTT account of the ingest (reads every device topic)",
)
@click.option(
    "--service-password",
    envvar="XIAOCHE_MQTT_SERVICE_PASSWORD",
    required=True,
    help="its password [env XIAOCHE_MQTT_SERVICE_PASSWORD]",
)
@click.option("--port", default=1883, show_default=True, type=int)
@click.option(
    "--broker-dir",
    default=None,
    help="where the broker sees these files, if not --out (e.g. /mosquitto/config)",
)
@click.option("--data-dir", default=None, help="the broker's persistence folder")
@with_appcontext
def broker_config_command(
    out_dir: Path,
    service_user: str,
    service_password: str,
    port: int,
    broker_dir: str | None,
    data_dir: str | None,
) -> None:
    """Write a Mosquitto password file and ACL from the device registry."""
    from backend.broker_config import write_broker_config
    from backend.database import upgrade_schema

    upgrade_schema(current_app)
    try:
        paths = write_broker_config(
            out_dir, service_user, service_password, port, broker_dir, data_dir
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, path in paths.items():
        click.echo(f"{name}: {path}")
