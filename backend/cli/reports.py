"""``xiaoche report …``: the monthly reports for the finance office."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask.cli import with_appcontext

from backend.cli.group import main


@main.group("report")
def report_group() -> None:
    """Monthly reports for the finance office (CSV with a UTF-8 BOM, opens in Excel)."""


def _month(value: str) -> str:
    import re

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise click.BadParameter(f"{value!r} is not a month YYYY-MM")
    return value


def _write_report(text: str, out: Path | None, default_name: str, xlsx: bool) -> None:
    path = out or Path(default_name)
    path.write_text(text, encoding="utf-8", newline="")
    click.echo(f"wrote {path}")
    if xlsx:
        _write_xlsx(text, path.with_suffix(".xlsx"))


def _write_xlsx(text: str, path: Path) -> None:
    """The same rows as an .xlsx, only when openpyxl happens to be installed."""
    import csv
    import io

    try:
        from openpyxl import Workbook
    except ImportError as exc:
        raise click.ClickException("--xlsx needs openpyxl, which is not installed") from exc
    book = Workbook()
    sheet = book.active
    for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))):
        sheet.append(row)
    book.save(path)
    click.echo(f"wrote {path}")


def report_command(name: str) -> Callable[[Callable[..., None]], Any]:
    """``xiaoche report NAME --month YYYY-MM [--out F] [--xlsx]``, in the app context."""
    def decorate(fn: Callable[..., None]) -> Any:
        fn = with_appcontext(fn)
        fn = click.option("--xlsx", is_flag=True, help="also write an .xlsx (needs openpyxl)")(fn)
        fn = click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                          help=f"the CSV file [default: {name}-YYYY-MM.csv]")(fn)
        fn = click.option("--month", required=True, callback=lambda _c, _p, v: _month(v),
                          metavar="YYYY-MM")(fn)
        return report_group.command(name)(fn)
    return decorate


@report_command("meals")
def report_meals_command(month: str, out: Path | None, xlsx: bool) -> None:
    """Every school's meal audit of every day of the month: counts, delivery, flags."""
    from backend.meals_service import meals_csv, month_rows

    _write_report(meals_csv(month_rows(month)), out, f"meals-{month}.csv", xlsx)


@report_command("subsidies")
def report_subsidies_command(month: str, out: Path | None, xlsx: bool) -> None:
    """Every teacher's subsidy ledger rows of the month, as GET /subsidies lists them."""
    from backend.subsidy_service import month_statements, statements_csv

    _write_report(statements_csv(month_statements(month)), out, f"subsidies-{month}.csv", xlsx)


@report_command("eta")
def report_eta_command(month: str, out: Path | None, xlsx: bool) -> None:
    """ETA accuracy per route over the month's audited trips: MAE at 1, 3 and 5 stops ahead
    next to the timetable + current-delay baseline, so a district sees whether to trust them."""
    from backend.audit_service import eta_csv, eta_report

    rows = eta_report(month=month)
    for row in rows:
        cells = "  ".join(f"{c['stops']} ahead {_seconds(c['mae_s'])} "
                          f"(baseline {_seconds(c['baseline_mae_s'])})" for c in row["stops_ahead"])
        click.echo(f"{row['route_id']}: {row['trips']} trips; MAE {cells}")
    _write_report(eta_csv(month, rows), out, f"eta-{month}.csv", xlsx)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"
