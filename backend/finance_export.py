"""Exports the finance office opens without fixing anything (issue 18 item 4).

A :class:`Sheet` is a titled table of typed columns; it is written as CSV (UTF-8 with a BOM, so
Excel reads 刘胜 and 朱亭学校) or as XLSX (openpyxl: numbers as numbers, times as times, the
header row frozen, columns wide enough to read). Headers are Chinese by default, English with
``lang="en"``; booleans are 是/否 (Yes/No); amounts are yuan with two decimals; times are local
to the district, ``YYYY-MM-DD HH:MM``; the last row is the totals of the columns that add up.

The rows given here are already in the district's terms (names next to ids, local naive
datetimes); :func:`subsidy_sheet` and :func:`meal_sheet` build them from what the API returns.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

LANGS = ("zh", "en")
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TIME_FORMAT = "%Y-%m-%d %H:%M"
YES_NO = {"zh": ("是", "否"), "en": ("Yes", "No")}
TOTAL = {"zh": "合计", "en": "Total"}


@dataclass(frozen=True)
class Column:
    """``kind``: ``text``, ``int``, ``money`` (two decimals, summed), ``km`` (two decimals),
    ``yesno``, ``time`` (a local naive datetime) or ``codes`` (a list of codes shown through
    ``labels``)."""

    key: str
    zh: str
    en: str
    kind: str = "text"
    total: bool = False
    labels: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def head(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh

    def label(self, code: str, lang: str) -> str:
        zh, en = self.labels.get(code, (code, code))
        return en if lang == "en" else zh


@dataclass
class Sheet:
    title_zh: str
    title_en: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]]

    def title(self, lang: str) -> str:
        return self.title_en if lang == "en" else self.title_zh

    def totals(self, lang: str) -> dict[str, Any]:
        """The totals row: 合计 (Total) in the first column, sums under the summed columns."""
        out: dict[str, Any] = {c.key: None for c in self.columns}
        out[self.columns[0].key] = TOTAL[lang]
        for c in self.columns:
            if c.total:
                values = [r[c.key] for r in self.rows if r.get(c.key) is not None]
                out[c.key] = round(sum(values), 2) if c.kind == "money" else sum(values)
        return out


def typed(column: Column, value: Any, lang: str) -> Any:
    """The cell as XLSX holds it: numbers stay numbers, times datetimes, the rest text."""
    if value is None or value == "" or value == []:
        return None
    if column.kind == "money" or column.kind == "km":
        return round(float(value), 2)
    if column.kind == "int":
        return int(value)
    if column.kind == "yesno":
        return YES_NO[lang][0 if value else 1]
    if column.kind == "codes":
        return ("；" if lang == "zh" else "; ").join(column.label(c, lang) for c in value)
    if column.kind == "time":
        return value
    return column.label(str(value), lang) if column.labels else value


def text(column: Column, value: Any, lang: str) -> str:
    """The cell as CSV text."""
    cell = typed(column, value, lang)
    if cell is None:
        return ""
    if column.kind in ("money", "km"):
        return f"{cell:.2f}"
    if column.kind == "time":
        return cell.strftime(TIME_FORMAT)
    return str(cell)


def _lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {', '.join(LANGS)}, not {lang!r}")
    return lang


def to_csv(sheet: Sheet, lang: str = "zh") -> str:
    """The sheet as CSV text with a BOM: header, rows, the totals row."""
    lang = _lang(lang)
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow([c.head(lang) for c in sheet.columns])
    for row in [*sheet.rows, sheet.totals(lang)]:
        writer.writerow([text(c, row.get(c.key), lang) for c in sheet.columns])
    return buffer.getvalue()


def to_xlsx(sheet: Sheet, lang: str = "zh", more: Sequence[Sheet] = ()) -> bytes:
    """The sheet as an .xlsx (``more``: further sheets of the same workbook): header row frozen
    and bold, numbers as numbers (amounts shown with two decimals), times as date-times, the
    totals row last, columns sized to their text."""
    from openpyxl import Workbook

    lang = _lang(lang)
    book = Workbook()
    for index, each in enumerate([sheet, *more]):
        _fill(book.active if index == 0 else book.create_sheet(), each, lang)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _fill(ws: Any, sheet: Sheet, lang: str) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    ws.title = sheet.title(lang)[:31]
    ws.append([c.head(lang) for c in sheet.columns])
    rows = [*sheet.rows, sheet.totals(lang)]
    for row in rows:
        ws.append([typed(c, row.get(c.key), lang) for c in sheet.columns])
    bold = Font(bold=True)
    for cell in [*ws[1], *ws[ws.max_row]]:
        cell.font = bold
    ws.freeze_panes = "A2"
    for index, column in enumerate(sheet.columns, start=1):
        if column.kind in ("money", "km", "time"):
            number_format = "yyyy-mm-dd hh:mm" if column.kind == "time" else "0.00"
            for (cell,) in ws.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = number_format
        widest = max(_width(text(column, row.get(column.key), lang)) for row in rows)
        ws.column_dimensions[get_column_letter(index)].width = min(
            60, max(6, widest, _width(column.head(lang))) + 2)


def _width(value: str) -> int:
    """Display width: a CJK character takes two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in value)


def local(iso_text: str | None, zone: ZoneInfo) -> dt.datetime | None:
    """An API time (ISO-8601 UTC) as a local naive datetime to the minute."""
    if not iso_text:
        return None
    moment = dt.datetime.fromisoformat(iso_text).astimezone(zone)
    return moment.replace(tzinfo=None, second=0, microsecond=0)


def local_ts(ts: float | None, zone: ZoneInfo) -> dt.datetime | None:
    if ts is None:
        return None
    moment = dt.datetime.fromtimestamp(ts, zone)
    return moment.replace(tzinfo=None, second=0, microsecond=0)


# -- the subsidy ledger -------------------------------------------------------------------------

ENTRY_KINDS = {"trip": ("行程", "Trip"), "approval": ("批准", "Approval"),
               "rejection": ("驳回", "Rejection"), "reversal": ("冲销", "Reversal")}
STATUSES = {"approved": ("已批准", "Approved"), "pending": ("待审核", "Pending"),
            "rejected": ("已驳回", "Rejected")}
REVIEW_REASONS = {"off_timetable": ("不在走教安排内", "Off timetable"),
                  "filtered_fixes": ("定位点被过滤", "Fixes filtered out"),
                  "sparse_fixes": ("定位点过少", "Too few fixes"),
                  "mock_location": ("疑似虚拟定位", "Mock location"),
                  "implausible_speed": ("速度异常", "Implausible speed")}

SUBSIDY_COLUMNS = (
    Column("teacher_id", "教师编号", "Teacher ID"),
    Column("teacher_name", "教师姓名", "Teacher"),
    Column("vehicle_plate", "车牌", "Plate"),
    Column("month", "月份", "Month"),
    Column("date", "日期", "Date"),
    Column("entry_id", "记录号", "Entry", "int"),
    Column("trip_id", "行程号", "Trip ID"),
    Column("kind", "记录类型", "Kind", labels=ENTRY_KINDS),
    Column("status", "状态", "Status", labels=STATUSES),
    Column("from_school_id", "出发学校编号", "From school ID"),
    Column("from_school_name", "出发学校", "From school"),
    Column("to_school_id", "到达学校编号", "To school ID"),
    Column("to_school_name", "到达学校", "To school"),
    Column("departed_at", "出发时间", "Departed", "time"),
    Column("arrived_at", "到达时间", "Arrived", "time"),
    Column("distance_km", "里程（公里）", "Distance (km)", "km"),
    Column("tier", "档次", "Tier", "int"),
    Column("amount", "金额（元）", "Amount (CNY)", "money", total=True),
    Column("cap_applied", "封顶扣减", "Cap applied", "yesno"),
    Column("policy_id", "补贴政策", "Policy"),
    Column("review_reasons", "待审原因", "Review reasons", "codes", labels=REVIEW_REASONS),
    Column("reason", "处理说明", "Decision note"),
    Column("recorded_by", "记录人", "Recorded by"),
    Column("recorded_at", "记录时间", "Recorded", "time"),
)


def subsidy_sheet(statements: Iterable[dict[str, Any]], month: str, schools: Mapping[str, str],
                  plates: Mapping[str, str | None], zone: ZoneInfo) -> Sheet:
    """Every ledger row of ``statements`` (``GET /subsidies`` bodies) in the office's terms;
    ``schools``: id → name; ``plates``: teacher id → their car's plate."""
    rows = []
    for s in statements:
        for e in s["entries"]:
            rows.append({
                **e, "teacher_id": s["teacher_id"], "teacher_name": s["teacher_name"],
                "vehicle_plate": plates.get(s["teacher_id"]), "month": s["month"],
                "from_school_name": schools.get(e["from_school_id"]),
                "to_school_name": schools.get(e["to_school_id"]),
                "departed_at": local(e["departed_at"], zone),
                "arrived_at": local(e["arrived_at"], zone),
                "recorded_at": local(e["recorded_at"], zone),
                "review_reasons": [r for r in e["review_reasons"].split(",") if r]})
    return Sheet(f"走教补贴 {month}", f"Subsidies {month}", SUBSIDY_COLUMNS, rows)


# -- the meal audit ----------------------------------------------------------------------------

MEAL_FLAGS = {"no_report": ("未报告", "No report"),
              "served_exceeds_present": ("供餐数超过在校住宿生", "Served exceeds present"),
              "present_exceeds_enrolled": ("在校住宿生超过在册", "Present exceeds enrolled"),
              "served_exceeds_received": ("供餐数超过收货数", "Served exceeds received"),
              "no_delivery": ("送餐车未到", "No delivery")}

MEAL_COLUMNS = (
    Column("date", "日期", "Date"),
    Column("school_id", "学校编号", "School ID"),
    Column("school_name", "学校", "School"),
    Column("school_day", "上学日", "School day", "yesno"),
    Column("boarders_enrolled", "在册住宿生", "Boarders enrolled", "int"),
    Column("boarders_present", "在校住宿生", "Boarders present", "int", total=True),
    Column("meals_served", "供餐份数", "Meals served", "int", total=True),
    Column("meals_received", "收货份数", "Meals received", "int", total=True),
    Column("delivery_arrived_at", "送餐车到达时间", "Truck arrived", "time"),
    Column("delivery_plate", "送餐车车牌", "Truck plate"),
    Column("flags", "异常", "Flags", "codes", labels=MEAL_FLAGS),
    Column("reported_by", "报告人", "Reported by"),
    Column("reported_at", "报告时间", "Reported", "time"),
    Column("replaced_reports", "被替换的报告数", "Replaced reports", "int"),
)


def meal_sheet(rows: Iterable[dict[str, Any]], month: str, schools: Mapping[str, str],
               trucks: Mapping[tuple[str, str], str | None], zone: ZoneInfo) -> Sheet:
    """Audit rows (``GET /audit/meals`` items) in the office's terms; ``trucks``: (date,
    school id) → the plate of the truck whose arrival is the delivery."""
    out = [{**r, "school_name": schools.get(r["school_id"]),
            "delivery_arrived_at": local(r["delivery_arrived_at"], zone),
            "delivery_plate": trucks.get((r["date"], r["school_id"])),
            "reported_at": local(r["reported_at"], zone),
            "replaced_reports": len(r["replaced"])} for r in rows]
    return Sheet(f"营养餐核查 {month}", f"Meal audit {month}", MEAL_COLUMNS, out)
