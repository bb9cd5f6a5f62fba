"""The ``xiaoche`` command, one module per family of subcommands.

``main`` is the click group (``backend.cli.group``); importing the modules below registers
their commands on it.
"""

from backend.cli import broker, data, jt808, ops, plan, reports, run  # noqa: F401 - registers the commands
from backend.cli.broker import broker_config_command
from backend.cli.group import main
from backend.cli.reports import report_meals_command, report_subsidies_command

__all__ = ["broker_config_command", "main", "report_meals_command", "report_subsidies_command"]
