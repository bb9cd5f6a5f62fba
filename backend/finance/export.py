"""The allowance lines (交流补贴) as the finance office's sheet, beside the transport ledger's
(:func:`backend.finance_export.subsidy_sheet`): names next to ids, 级/等, days, yuan, totals."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from backend.extensions import db
from backend.finance_export import Column, Sheet
from backend.models import School

KINDS = {"allowance": ("交流补贴", "Allowance"), "adjustment": ("更正", "Adjustment")}

ALLOWANCE_COLUMNS = (
    Column("teacher_id", "教师编号", "Teacher ID"),
    Column("teacher_name", "教师", "Teacher"),
    Column("month", "账期", "Month"),
    Column("kind", "类别", "Kind", "codes", labels=KINDS),
    Column("for_month", "所属月份", "For month"),
    Column("school_id", "学校编号", "School ID"),
    Column("school_name", "学校", "School"),
    Column("level", "级", "Level", "int"),
    Column("grade", "等", "Grade", "int"),
    Column("per_month", "月标准（元）", "Per month (CNY)", "money"),
    Column("days_present", "在岗天数", "Days present", "int", total=True),
    Column("days_due", "应到天数", "Days due", "int", total=True),
    Column("amount", "金额（元）", "Amount (CNY)", "money", total=True),
)


def allowance_sheet(statements: Iterable[dict[str, Any]], month: str) -> Sheet:
    """Every allowance line of ``statements`` (``GET /subsidies`` bodies)."""
    schools = dict(db.session.execute(select(School.id, School.name)).all())
    rows = [{**line, "kind": [line["kind"]], "teacher_id": s["teacher_id"],
             "teacher_name": s["teacher_name"], "month": month,
             "school_name": schools.get(line["school_id"])}
            for s in statements for line in s["allowance"]]
    return Sheet(f"交流补贴 {month}", f"Exchange allowance {month}", ALLOWANCE_COLUMNS, rows)
