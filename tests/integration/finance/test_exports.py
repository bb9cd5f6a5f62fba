"""The finance office's exports of the replayed October 2026 (month.py), read back as the office
would: the CSV as Excel reads it (a UTF-8 BOM, Chinese headers), the XLSX with openpyxl. Values
are checked against the month worked out by hand below, not against the code's own sums."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import openpyxl
import pytest

from backend.cli import report_meals_command, report_subsidies_command
from backend.finance_export import XLSX_MIMETYPE
from tests.conftest import login
from tests.integration.finance import month as m

ADMIN = ("admin", "demo-admin-1")
WANG = ("houqin.wang", "demo-logistics-1")

# 刘胜's October by hand: Tuesdays and Thursdays that are school days (8, 13, 15, 20, 22, 27, 29;
# the 1st and 6th are holidays) are 14 trips, plus the two of Wednesday the 14th = 16 trips.
# Pending (0.00): both of the 14th (off his timetable) and the morning of the 22nd (a filtered
# fix). Approved: 13 trips x 10.00 (tier 2, 5-15 km) = 130.00.
TRIPS, PENDING, SUBSIDY_TOTAL = 16, 3, "130.00"

# Meals by hand: 18 school days (22 weekdays - 5 holidays + Saturday the 10th).
# 朱亭 (400, 400, 405) a day, no report on the 9th, (430, 425, 430) on the 13th, (400, 400, 420)
# after the correction on the 21st: present 15x400+430+400 = 6830, served 15x400+425+400 = 6825,
# received 15x405+430+420 = 6925.
# 龙凤 (150, 150, 150) a day, no report on the 10th, (150, 155, 160) on the 12th, (150, 150, 140)
# on the 15th, (-, 155, 160) on the 23rd: present 14x150+150+150 = 2400, served
# 14x150+155+150+155 = 2560, received 14x150+160+140+160 = 2560.
PRESENT, SERVED, RECEIVED = 6830 + 2400, 6825 + 2560, 6925 + 2560

SUBSIDY_HEAD_ZH = ["教师编号", "教师姓名", "车牌", "月份", "日期", "记录号", "行程号", "记录类型",
                   "状态", "出发学校编号", "出发学校", "到达学校编号", "到达学校", "出发时间",
                   "到达时间", "里程（公里）", "档次", "金额（元）", "封顶扣减", "补贴政策",
                   "待审原因", "处理说明", "记录人", "记录时间"]
MEAL_HEAD_ZH = ["日期", "学校编号", "学校", "上学日", "在册住宿生", "在校住宿生", "供餐份数",
                "收货份数", "送餐车到达时间", "送餐车车牌", "异常", "报告人", "报告时间",
                "被替换的报告数"]


def excel_csv(data: bytes) -> list[list[str]]:
    """The rows as Excel opens a CSV: UTF-8 only when it starts with the BOM."""
    assert data.startswith(b"\xef\xbb\xbf"), "no BOM: Excel would read it as the ANSI code page"
    return list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline="")))


def report(app, command, tmp_path, name, *args):
    out = tmp_path / name
    result = app.test_cli_runner().invoke(command, ["--month", "2026-10", "--out", str(out),
                                                    *args])
    assert result.exit_code == 0, result.output
    return out


def local_minute(iso_utc: str) -> str:
    """An API time (UTC, Z) in Shanghai, worked out without the export's code: UTC+8."""
    utc = dt.datetime.strptime(iso_utc[:16], "%Y-%m-%dT%H:%M")
    return (utc + dt.timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")


def test_the_subsidy_csv_opens_in_excel_with_chinese_headers_names_and_the_total(october,
                                                                              tmp_path):
    path = report(october, report_subsidies_command, tmp_path, "subsidies.csv")
    head, *rows, total = excel_csv(path.read_bytes())
    assert head == SUBSIDY_HEAD_ZH
    assert len(rows) == TRIPS
    by = [dict(zip(head, r, strict=True)) for r in rows]
    first = by[0]
    assert (first["教师编号"], first["教师姓名"], first["车牌"], first["日期"]) == (
        "t-liu", "刘胜", "湘B·L3321", "2026-10-08")
    assert (first["出发学校编号"], first["出发学校"], first["到达学校编号"], first["到达学校"]) == (
        "zhuting", "朱亭学校", "longfeng", "龙凤学校")
    # he leaves 朱亭 at 07:30 Shanghai time (month.teacher_day), not 23:30 the day before
    assert first["出发时间"].startswith("2026-10-08 07:3") and len(first["出发时间"]) == 16
    assert (first["记录类型"], first["状态"], first["金额（元）"], first["封顶扣减"]) == (
        "行程", "已批准", "10.00", "否")
    assert [r["金额（元）"] for r in by].count("0.00") == PENDING
    assert sorted({r["待审原因"] for r in by}) == ["", "不在走教安排内", "定位点被过滤"]
    assert all(re.fullmatch(r"\d+\.\d\d", r["里程（公里）"]) for r in by)
    assert total[0] == "合计" and total[head.index("金额（元）")] == SUBSIDY_TOTAL
    assert sum(float(r["金额（元）"]) for r in by) == float(SUBSIDY_TOTAL)


def test_the_subsidy_xlsx_has_numbers_a_frozen_header_and_a_total_equal_to_the_sum(october,
                                                                                 client, tmp_path):
    # a reversal: approve the pending 22nd morning, then take it back (+10.00, -10.00)
    admin = login(client, *ADMIN)
    entries = client.get("/api/v1/subsidies", headers=admin, query_string={
        "teacher_id": "t-liu", "month": "2026-10"}).get_json()["entries"]
    [bad] = [e for e in entries if e["review_reasons"] == "filtered_fixes"]
    wang = login(client, *WANG)
    assert client.post(f"/api/v1/subsidies/{bad['entry_id']}/approve", headers=wang,
                       json={}).status_code == 200
    assert client.post(f"/api/v1/subsidies/{bad['entry_id']}/reject", headers=wang,
                       json={"reason": "定位漂移"}).status_code == 200

    path = report(october, report_subsidies_command, tmp_path, "subsidies.xlsx")
    assert not (tmp_path / "subsidies.csv").exists()
    sheet = openpyxl.load_workbook(path).active
    assert sheet.freeze_panes == "A2"
    rows = list(sheet.iter_rows(values_only=True))
    head, body, total = list(rows[0]), rows[1:-1], rows[-1]
    assert head == SUBSIDY_HEAD_ZH and len(body) == TRIPS + 2
    amount, km = head.index("金额（元）"), head.index("里程（公里）")
    assert all(isinstance(r[amount], int | float) and isinstance(r[km], float) for r in body)
    assert [(r[head.index("记录类型")], r[amount]) for r in body
            if r[head.index("行程号")] == bad["trip_id"]] == [
        ("行程", 0.0), ("批准", 10.0), ("冲销", -10.0)]
    assert total[0] == "合计" and total[amount] == float(SUBSIDY_TOTAL)
    assert total[amount] == pytest.approx(sum(r[amount] for r in body))
    departed = body[0][head.index("出发时间")]
    assert isinstance(departed, dt.datetime) and (departed.date(), departed.hour) == (
        dt.date(2026, 10, 8), 7)
    assert sheet.cell(2, amount + 1).number_format == "0.00"
    widths = {c: sheet.column_dimensions[c].width for c in ("B", "G", "K", "N")}
    assert all(w >= 10 for w in widths.values()), widths  # 刘胜, the trip id, 朱亭学校, a time


def test_the_subsidy_export_in_english(october, tmp_path):
    path = report(october, report_subsidies_command, tmp_path, "subsidies-en.csv",
                  "--lang", "en")
    head, *rows, total = excel_csv(path.read_bytes())
    assert head[:5] == ["Teacher ID", "Teacher", "Plate", "Month", "Date"]
    row = dict(zip(head, rows[0], strict=True))
    assert (row["From school"], row["Kind"], row["Status"], row["Cap applied"]) == (
        "朱亭学校", "Trip", "Approved", "No")
    assert total[0] == "Total" and total[head.index("Amount (CNY)")] == SUBSIDY_TOTAL


def test_the_api_gives_the_same_export_and_its_json_is_unchanged(october, client):
    admin = login(client, *ADMIN)
    query = {"teacher_id": "t-liu", "month": "2026-10"}
    body = client.get("/api/v1/subsidies", headers=admin, query_string=query).get_json()
    assert set(body) == {"teacher_id", "teacher_name", "month", "currency", "entries", "total",
                         "cap_applied", "pending",
                         # added by issue 18 items 2-3 (the allowance and the month's closing)
                         "closed", "allowance", "allowance_total", "grand_total"}
    assert body["entries"][0]["departed_at"].endswith("Z") and body["total"] == 130.0
    as_json_en = client.get("/api/v1/subsidies", headers=admin,
                            query_string={**query, "lang": "en"}).get_json()
    assert as_json_en == body

    response = client.get("/api/v1/subsidies", headers={**admin, "Accept": "text/csv"},
                          query_string=query)
    assert response.mimetype == "text/csv"
    head, *rows, total = excel_csv(response.data)
    assert head == SUBSIDY_HEAD_ZH and len(rows) == len(body["entries"])
    for row, entry in zip(rows, body["entries"], strict=True):
        cells = dict(zip(head, row, strict=True))
        assert int(cells["记录号"]) == entry["entry_id"] and cells["行程号"] == entry["trip_id"]
        assert cells["金额（元）"] == f"{entry['amount']:.2f}"
        assert cells["出发时间"] == local_minute(entry["departed_at"])
    assert total[head.index("金额（元）")] == SUBSIDY_TOTAL

    english = client.get("/api/v1/subsidies", headers={**admin, "Accept": "text/csv"},
                         query_string={**query, "lang": "en"})
    assert excel_csv(english.data)[0][:2] == ["Teacher ID", "Teacher"]
    xlsx = client.get("/api/v1/subsidies", headers={**admin, "Accept": XLSX_MIMETYPE},
                      query_string=query)
    assert xlsx.mimetype == XLSX_MIMETYPE
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.data)).active
    assert sheet.cell(1, 1).value == "教师编号" and sheet.cell(sheet.max_row, 1).value == "合计"
    bad = client.get("/api/v1/subsidies", headers={**admin, "Accept": "text/csv"},
                     query_string={**query, "lang": "fr"})
    assert bad.status_code == 422


def test_the_meal_csv_has_names_local_truck_times_and_hand_computed_totals(october, client,
                                                                         tmp_path):
    path = report(october, report_meals_command, tmp_path, "meals.csv")
    head, *rows, total = excel_csv(path.read_bytes())
    assert head == MEAL_HEAD_ZH and len(rows) == 31 * 2
    by = {(r[0], r[1]): dict(zip(head, r, strict=True)) for r in rows}
    day = by[("2026-10-08", "zhuting")]
    assert (day["学校"], day["上学日"], day["送餐车车牌"], day["异常"]) == (
        "朱亭学校", "是", "湘B·C0088", "")
    # the truck leaves the kitchen at 06:00 Shanghai time: the audit's JSON says it in UTC, the
    # evening before; the export says it as the school's clock did
    audit = client.get("/api/v1/audit/meals", headers=login(client, *ADMIN),
                       query_string={"date": "2026-10-08", "school_id": "zhuting"}).get_json()
    utc = audit[0]["delivery_arrived_at"]
    assert utc.startswith("2026-10-07T22:") and utc.endswith("Z")
    assert day["送餐车到达时间"] == local_minute(utc)
    assert day["送餐车到达时间"].startswith("2026-10-08 06:")
    assert by[("2026-10-01", "zhuting")]["上学日"] == "否"
    assert by[("2026-10-20", "longfeng")]["送餐车到达时间"] == ""
    assert by[("2026-10-20", "longfeng")]["异常"] == "送餐车未到"
    assert by[("2026-10-21", "zhuting")]["被替换的报告数"] == "1"
    flagged = {(dt.date.fromisoformat(d), s) for (d, s), r in by.items() if r["异常"]}
    assert flagged == set(m.PLANTED)
    assert total[0] == "合计"
    assert [int(total[head.index(h)]) for h in ("在校住宿生", "供餐份数", "收货份数")] == [
        PRESENT, SERVED, RECEIVED]
    # the hand count agrees with what the schools sent (month.py)
    sent = [m.reports_of(d, s)[-1] for d in m.MONTH for s in ("zhuting", "longfeng")
            if m.reports_of(d, s)]
    assert sum(r[1] for r in sent) == SERVED and sum(r[2] for r in sent) == RECEIVED


def test_the_meal_xlsx_in_english_has_counts_as_numbers_and_the_total_of_the_column(
        october, tmp_path):
    path = report(october, report_meals_command, tmp_path, "meals.csv", "--xlsx",
                  "--lang", "en")
    assert excel_csv(path.read_bytes())[0][:3] == ["Date", "School ID", "School"]
    sheet = openpyxl.load_workbook(path.with_suffix(".xlsx")).active
    assert sheet.freeze_panes == "A2"
    rows = list(sheet.iter_rows(values_only=True))
    head, body, total = list(rows[0]), rows[1:-1], rows[-1]
    served = head.index("Meals served")
    assert head[3] == "School day" and {r[3] for r in body} == {"Yes", "No"}
    assert all(r[served] is None or isinstance(r[served], int) for r in body)
    assert total[0] == "Total" and total[served] == SERVED == sum(r[served] or 0 for r in body)
    flags = head.index("Flags")
    assert {r[flags] for r in body if r[0] == "2026-10-20" and r[1] == "longfeng"} == {
        "No delivery"}
    arrived = [r[head.index("Truck arrived")] for r in body if r[0] == "2026-10-08"]
    assert len(arrived) == 2 and all(isinstance(a, dt.datetime) and a.hour == 6 for a in arrived)


def test_a_month_without_trips_or_reports_is_a_header_and_a_zero_total(app, imported, tmp_path):
    path = report(app, report_subsidies_command, tmp_path, "empty.xlsx")
    rows = list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))
    assert list(rows[0]) == SUBSIDY_HEAD_ZH and len(rows) == 2
    assert rows[1][0] == "合计" and rows[1][SUBSIDY_HEAD_ZH.index("金额（元）")] == 0
    head, *days, total = excel_csv(report(app, report_meals_command, tmp_path, "m.csv",
                                          "--lang", "en").read_bytes())
    assert len(days) == 31 * 2 and total[0] == "Total"
    assert [total[head.index(h)] for h in ("Meals served", "Meals received")] == ["0", "0"]
