"""The ``xiaoche`` click group: Flask's click integration without Flask's own options.

``xiaoche --help`` lists xiaoche's commands only. The commands Flask extensions add
(``db`` from Flask-Migrate, ``openapi`` from flask-smorest, ``limiter``) still run when named,
for whoever needs them, but are not offered to a newcomer as if they were xiaoche's.
"""

from __future__ import annotations

import click
from flask.cli import FlaskGroup

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


@click.group(
    cls=XiaocheGroup, create_app=create_app, add_default_commands=False,
    add_version_option=False,
    epilog="Settings come from XIAOCHE_* environment variables (README, \"Settings\"). "
           "`xiaoche COMMAND --help` explains each command.",
)
def main() -> None:
    """xiaoche — school bus, itinerant-teacher and meal-truck tracking."""
