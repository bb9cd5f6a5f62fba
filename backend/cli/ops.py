"""Operations: ``xiaoche migrate`` (the one-shot schema upgrade) and ``xiaoche healthcheck``."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from backend.cli.group import main


@main.command("migrate")
@with_appcontext
def migrate_command() -> None:
    """Bring the database schema to the newest migration, then exit (docker/compose.yaml runs it
    once before the other services). Safe to run from several processes at once on PostgreSQL:
    they take turns."""
    from alembic.migration import MigrationContext

    from backend.database import upgrade_schema
    from backend.extensions import db

    upgrade_schema(current_app)
    with db.engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
    click.echo(f"xiaoche: database schema at revision {revision}")


@main.command("healthcheck")
@click.argument("role", type=click.Choice(["api", "ingest", "scheduler", "jt808"]))
@click.option("--url", default="http://127.0.0.1:8000/healthz", show_default=True,
              help="api: the health endpoint to ask")
@with_appcontext
def healthcheck_command(role: str, url: str) -> None:
    """Exit 0 if ROLE works here, 1 if not, with a one-line reason (a container HEALTHCHECK).

    api: GET /healthz answers 200. ingest: its heartbeat in the instance folder is fresh and
    names no problem (connected to the broker, no batch stuck). scheduler: a scheduler holds the
    lease and renews it (the clock jobs run). jt808: the gateway's heartbeat in the instance
    folder is fresh and names no problem (its event loop answers, batches commit).
    """
    from backend import health

    if role == "api":
        ok, reason = health.check_api(url)
    elif role == "ingest":
        ok, reason = health.check_ingest(current_app.instance_path)
    elif role == "jt808":
        from backend.jt808_health import check_jt808

        ok, reason = check_jt808(current_app.instance_path)
    else:
        from backend.extensions import db

        ok, reason = health.check_scheduler(db.engine)
    click.echo(f"{role}: {reason}")
    sys.exit(0 if ok else 1)
