"""What several commands share: reading JSON, the database at start, the secret key."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import select

SAMPLE_BUNDLE = Path(__file__).parent.parent / "sample" / "lukou.json"


def load_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{path}: not JSON: {exc}") from exc


def require_secret_key() -> None:
    if current_app.config.get("SECRET_KEY_GENERATED"):
        raise click.ClickException(
            "set XIAOCHE_SECRET_KEY: it signs user tokens "
            "(`xiaoche demo` makes one up; production must not)"
        )


def prepare_database(with_sample: bool) -> None:
    from backend.bundle import import_bundle
    from backend.database import upgrade_schema
    from backend.extensions import db
    from backend.models import District

    upgrade_schema(current_app)
    if with_sample and db.session.scalars(select(District.id)).first() is None:
        summary = import_bundle(load_json(SAMPLE_BUNDLE))
        click.echo(
            f"imported the sample district {SAMPLE_BUNDLE.name}: "
            f"{sum(summary.created.values())} objects"
        )


def use_instance_secret_key() -> None:
    """On the embedded default, keep a generated key in the instance folder so tokens survive a
    restart; a deployment with its own database sets XIAOCHE_SECRET_KEY instead."""
    if not current_app.config.get("SECRET_KEY_GENERATED"):
        return
    import secrets

    key_file = Path(current_app.instance_path) / "secret_key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    current_app.config["SECRET_KEY"] = key_file.read_text().strip()
    current_app.config["SECRET_KEY_GENERATED"] = False


def database_url_given() -> bool:
    return bool(os.environ.get("XIAOCHE_DATABASE_URL"))
