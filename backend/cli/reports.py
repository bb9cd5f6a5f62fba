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
    """Monthly reports for the finance office and the access log for a privacy review (CSV with
    a UTF-8 BOM or XLSX, open in Excel)."""


def _month(value: str) -> str:
    import re

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise click.BadParameter(f"{value!r} is not a month YYYY-MM")
    return value


def _write_sheet(sheet: Any, out: Path | None, default_name: str, xlsx: bool,
                 lang: str) -> None:
    """``--out F.xlsx`` writes the XLSX alone; otherwise the CSV, and with ``--xlsx`` an .xlsx
    next to it."""
    from backend.finance_export import to_csv, to_xlsx

    path = out or Path(default_name)
    if path.suffix.lower() == ".xlsx":
        path.write_bytes(to_xlsx(sheet, lang))
        click.echo(f"wrote {path}")
        return
    path.write_text(to_csv(sheet, lang), encoding="utf-8", newline="")
    click.echo(f"wrote {path}")
    if xlsx:
        path.with_suffix(".xlsx").write_bytes(to_xlsx(sheet, lang))
        click.echo(f"wrote {path.with_suffix('.xlsx')}")


def _write_report(text: str, out: Path | None, default_name: str, xlsx: bool) -> None:
    path = out or Path(default_name)
    if path.suffix.lower() != ".xlsx":
        path.write_text(text, encoding="utf-8", newline="")
        click.echo(f"wrote {path}")
    if xlsx or path.suffix.lower() == ".xlsx":
        _write_xlsx(text, path.with_suffix(".xlsx"))


def _write_xlsx(text: str, path: Path) -> None:
    """A CSV report's rows as an .xlsx, cell for cell."""
    import csv
    import io

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))):
        sheet.append(row)
    sheet.freeze_panes = "A2"
    book.save(path)
    click.echo(f"wrote {path}")


def report_command(name: str, lang: bool = False) -> Callable[[Callable[..., None]], Any]:
    """``xiaoche report NAME --month YYYY-MM [--out F.csv|F.xlsx] [--xlsx] [--lang zh|en]``,
    in the app context."""
    def decorate(fn: Callable[..., None]) -> Any:
        fn = with_appcontext(fn)
        if lang:
            fn = click.option("--lang", type=click.Choice(["zh", "en"]), default="zh",
                              show_default=True, help="headers and labels: 中文 or English")(fn)
        fn = click.option("--xlsx", is_flag=True, help="also write an .xlsx next to the CSV")(fn)
        fn = click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                          help=f"the file, CSV or (ending .xlsx) XLSX "
                               f"[default: {name}-YYYY-MM.csv]")(fn)
        fn = click.option("--month", required=True, callback=lambda _c, _p, v: _month(v),
                          metavar="YYYY-MM")(fn)
        return report_group.command(name)(fn)
    return decorate


@report_command("meals", lang=True)
def report_meals_command(month: str, out: Path | None, xlsx: bool, lang: str) -> None:
    """Every school's meal audit of every day of the month: counts, the truck's arrival
    (local time) and plate, flags; school names next to ids, a totals row."""
    from backend.meals_service import export_sheet

    _write_sheet(export_sheet(month), out, f"meals-{month}.csv", xlsx, lang)


@report_command("subsidies", lang=True)
def report_subsidies_command(month: str, out: Path | None, xlsx: bool, lang: str) -> None:
    """Every teacher's subsidy ledger rows of the month, as GET /subsidies lists them, with
    teacher and school names, the car's plate, local times, amounts in yuan and a totals row;
    prints each teacher's 交通补助 + 交流补贴 totals, and writes the allowance lines next to it
    (``…-allowances``). Recorded as the month's export (GET /subsidies/changes compares to it)."""
    import time

    from backend.finance.books import record_export
    from backend.finance.export import allowance_sheet
    from backend.subsidy_service import export_sheet, month_statements

    statements = month_statements(month)
    _write_sheet(export_sheet(statements, month), out, f"subsidies-{month}.csv", xlsx, lang)
    path = out or Path(f"subsidies-{month}.csv")
    _write_sheet(allowance_sheet(statements, month),
                 path.with_name(f"{path.stem}-allowances{path.suffix}"), "", xlsx, lang)
    for s in statements:
        click.echo(f"{s['teacher_id']} {s['teacher_name']}: 交通补助 {s['total']:.2f} + "
                   f"交流补贴 {s['allowance_total']:.2f} = {s['grand_total']:.2f} "
                   f"{s['currency']}" + (f" ({s['pending']} pending)" if s["pending"] else ""))
    grand = round(sum(s["grand_total"] for s in statements), 2)
    state = "closed" if statements and statements[0]["closed"] else "open"
    click.echo(f"total {month} ({state}): {grand:.2f}")
    record_export(month, "cli", time.time(), statements)


@main.command("close-month")
@click.option("--month", required=True, callback=lambda _c, _p, v: _month(v), metavar="YYYY-MM")
@click.option("--district", "district_id", default=None, help="when there are several")
@click.option("--by", "closed_by", required=True, help="the finance officer closing it")
@with_appcontext
def close_month_command(month: str, district_id: str | None, closed_by: str) -> None:
    """Close a month's books (交流补贴 and 交通补助): they never change again; later corrections
    go into the next open month."""
    from sqlalchemy import select

    from backend.errors import ApiError
    from backend.extensions import db
    from backend.finance.books import close_month
    from backend.live_service import clock
    from backend.models import User

    user = db.session.scalar(select(User).where(User.username == closed_by))
    if user is None or user.role not in ("finance", "admin"):
        raise click.ClickException(f"{closed_by!r} is no finance or admin user")
    try:
        status = close_month(user, month, district_id, clock())
    except ApiError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"closed {status['month']} of {status['district_id']}: "
               f"{status['allowance_lines_frozen']} allowance lines frozen")


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


def _date(_ctx: Any, _param: Any, value: str) -> Any:
    import datetime as dt

    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None


@report_group.command("access")
@click.option("--from", "first", required=True, callback=_date, metavar="YYYY-MM-DD",
              help="first local date (district timezone)")
@click.option("--to", "last", required=True, callback=_date, metavar="YYYY-MM-DD",
              help="last local date, included")
@click.option("--user", default=None, help="only the reads of this username")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="the file, CSV or (ending .xlsx) XLSX [default: access-FROM-TO.csv]")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="headers and labels: 中文 or English")
@with_appcontext
def report_access_command(first: Any, last: Any, user: str | None, out: Path | None,
                          lang: str) -> None:
    """The access log for a privacy review: who read which route's live positions (the
    /live view, live streams, the staff's vehicle list) and when, local dates FROM–TO."""
    from backend.access_log import access_sheet, day_window, district_zone, entries

    if last < first:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    zone = district_zone()
    rows = entries(*day_window(first, last, zone), user)
    click.echo(f"{len(rows)} access rows, {sum(r.reads for r in rows)} reads"
               + (f" by {user}" if user else ""))
    _write_sheet(access_sheet(rows, first, last, zone), out,
                 f"access-{first.isoformat()}-{last.isoformat()}.csv", False, lang)
