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
    help="folder for passwd, acl and mosquitto.conf (and server.crt/server.key with TLS)",
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
@click.option("--port", default=1883, show_default=True, type=int,
              help="port of the plain (no TLS) listener")
@click.option(
    "--bind",
    default=None,
    help="address the listeners bind  [default: 127.0.0.1 — loopback, so nothing is exposed "
    "by mistake; devices on the network need 0.0.0.0 or this machine's address; "
    "--for-compose: 0.0.0.0 inside the container, the published ports decide]",
)
@click.option("--plain-bind", default=None,
              help="the plain listener's own address, e.g. 127.0.0.1 for a local ingest while "
                   "devices use TLS on --bind  [default: --bind]")
@click.option("--plain/--no-plain", default=True, show_default=True,
              help="keep the plain listener next to the TLS one")
@click.option("--certfile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PEM server certificate (the chain after it) → a TLS listener on --tls-port; "
                   "copied into --out")
@click.option("--keyfile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="its PEM private key, without a passphrase; copied into --out")
@click.option("--tls-port", default=8883, show_default=True, type=int)
@click.option(
    "--broker-dir",
    default=None,
    help="where the broker sees these files, if not --out (e.g. /mosquitto/config)",
)
@click.option("--data-dir", default=None,
              help="the broker's persistence folder  [default: data/ beside the files; created "
                   "unless --broker-dir says the broker runs elsewhere]")
@click.option("--owner", default=None, metavar="USER[:GROUP]",
              help="who the broker runs as, to own the secrets (0600) and the data folder  "
                   "[default: mosquitto when run as root, else this user]")
@click.option("--for-compose", is_flag=True,
              help="for docker/compose.yaml: --broker-dir /mosquitto/config --data-dir "
                   "/mosquitto/data --bind 0.0.0.0 --owner 1883:1883 (the eclipse-mosquitto "
                   "image's user); explicit options win")
@click.option("--autosave-s", default=None, type=int,
              help="the broker writes its queues to disk this often: what a broker crash can "
                   "lose  [default: 1]")
@with_appcontext
def broker_config_command(
    out_dir: Path,
    service_user: str,
    service_password: str,
    port: int,
    bind: str | None,
    plain_bind: str | None,
    plain: bool,
    certfile: Path | None,
    keyfile: Path | None,
    tls_port: int,
    broker_dir: str | None,
    data_dir: str | None,
    owner: str | None,
    for_compose: bool,
    autosave_s: int | None,
) -> None:
    """Write Mosquitto's password file, ACL and mosquitto.conf from the device registry.

    Run it again after importing devices, then restart Mosquitto (or send it SIGHUP).
    """
    from backend.broker_config import (
        COMPOSE_BROKER_DIR,
        COMPOSE_DATA_DIR,
        DEFAULT_AUTOSAVE_S,
        IMAGE_OWNER,
        BrokerConfigError,
        BrokerOptions,
        write_broker_config,
    )
    from backend.database import upgrade_schema

    if for_compose:
        broker_dir = broker_dir or COMPOSE_BROKER_DIR
        data_dir = data_dir or COMPOSE_DATA_DIR
        bind = bind or "0.0.0.0"
        owner = owner or IMAGE_OWNER
    options = BrokerOptions(
        service_user=service_user, service_password=service_password, port=port,
        bind=bind or "127.0.0.1", plain_bind=plain_bind, plain=plain, tls_port=tls_port,
        certfile=certfile, keyfile=keyfile, broker_dir=broker_dir, data_dir=data_dir,
        owner=owner, autosave_s=DEFAULT_AUTOSAVE_S if autosave_s is None else autosave_s)
    upgrade_schema(current_app)
    try:
        files = write_broker_config(out_dir, options)
    except BrokerConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, path in files.paths.items():
        click.echo(f"{name}: {path}")
    if files.owner is not None:
        click.echo(f"secrets owned by uid {files.owner[0]} gid {files.owner[1]} (mode 0600)")
    if broker_dir is not None and data_dir is None:
        click.echo(f"create {broker_dir}/data on the broker's side, writable by the broker")
    for warning in files.warnings:
        click.echo(f"warning: {warning}", err=True)
