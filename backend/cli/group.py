"""The ``xiaoche`` click group: Flask's click integration without Flask's own options.

``xiaoche --help`` lists xiaoche's commands only. The commands Flask extensions add
(``db`` from Flask-Migrate, ``openapi`` from flask-smorest, ``limiter``) still run when named,
for whoever needs them, but are not offered to a newcomer as if they were xiaoche's.
"""

from __future__ import annotations

import os
from typing import Any

import click
from flask.cli import FlaskGroup
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from backend import create_app

#: Flask's group options (-e/--env-file, -A/--app, --debug): xiaoche has one app and is
#: configured by XIAOCHE_* variables (README "Settings").
FLASK_OPTIONS = ("env_file", "app", "debug")


class XiaocheGroup(FlaskGroup):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.params = [p for p in self.params if p.name not in FLASK_OPTIONS]

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(click.Group.list_commands(self, ctx))

    def invoke(self, ctx: click.Context) -> Any:
        """A database that cannot be reached or named is a message saying what to check, not
        a traceback."""
        try:
            return super().invoke(ctx)
        except sa_exc.OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise click.ClickException(
                f"cannot use the database {database_shown()}: {reason}. Is it running, and do "
                f"XIAOCHE_DATABASE_URL's host, port, user and password match it?") from exc
        except (sa_exc.NoSuchModuleError, sa_exc.ArgumentError) as exc:
            raise click.ClickException(
                f"XIAOCHE_DATABASE_URL is not a database URL xiaoche can use ({exc}); e.g. "
                f"postgresql://USER:PASSWORD@HOST:5432/DB or sqlite:////path/x.sqlite3") from exc


def database_shown() -> str:
    """XIAOCHE_DATABASE_URL without its password (or the embedded default)."""
    url = os.environ.get("XIAOCHE_DATABASE_URL")
    if not url:
        return "(the embedded SQLite file)"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return "(unparsable URL)"


@click.group(
    cls=XiaocheGroup, create_app=create_app, add_default_commands=False,
    add_version_option=False,
    epilog="Settings come from XIAOCHE_* environment variables (README, \"Settings\"). "
           "`xiaoche COMMAND --help` explains each command.",
)
def main() -> None:
    """xiaoche — school bus, itinerant-teacher and meal-truck tracking."""
