"""Issue 18's month, November 2026, with every total computed by hand.

刘胜 (t-liu, home 朱亭 = the core school of 朱亭教联体) is assigned to two member schools:
龙凤 on Tuesdays (3, 10, 17, 24) and 山河 on Thursdays (5, 12, 19, 26): 8 due days.

Grid (the policy of the sample: levels 0-3-5-8 | 8-11-15-20 | 20-25-30-∞ km, per month
100 150 200 | 300 350 400 | 500 550 600, per trip 0 0 10 | 10 10 20 | 20 20 20):

- 龙凤: median of the verified driven trips 6.2, 16.0, 6.2 = 6.2 km → level 1 grade 3, 200/month.
- 山河: median of 11.5, 11.5 = 11.5 km → level 2 grade 2, 350/month; finance overrides it to
  16 km from 2026-11-16 (a washed-out bridge, 绕行) → level 2 grade 3, 400/month.

Days: 3 ✓ trip, 10 ✓ trip (a 16 km detour), 17 ✗ mock-location trip (pending), 24 ✓ trip;
5 ✓ trip, 12 ✗ no evidence, 19 ✓ trip, 26 ✓ staff confirmation.

Allowance: 龙凤 200 × 3/8 = 75.00; 山河 at 350: 350 × 1/8 = 43.75; 山河 at 400: 400 × 2/8 = 100.00
→ 218.75. Transport: 10 (3rd) + 10 (10th: paid on min(16.0, 6.2) = 6.2 km, not the 20 of
16 km) + 0 (17th, pending) + 10 (24th) + 10 (5th) + 10 (19th: min(11.5, 16) = 11.5) = 50.00.
November: 268.75.

Then finance closes November; afterwards logistics approves the 17th's trip (reviewed: the
phone's developer options, not a fake drive) and confirms the 12th. November's books stay as
they were; December (open) carries the corrections, each naming what it corrects: the
approval +10.00 (transport), 龙凤 +25.00 (4/8 × 200 − 75) and 山河 level 2 grade 2 +43.75
(2/8 × 350 − 43.75): 78.75, and December's own due days (none verified yet) add 0.
"""

from __future__ import annotations

import datetime as dt

import pytest
from openpyxl import load_workbook

from backend.cli.reports import close_month_command, report_subsidies_command
from backend.extensions import db
from backend.models import Reject
from backend.subsidy_service import book_trip
from tests.conftest import login
from tests.drives import local_ts

ADMIN = ("admin", "demo-admin-1")
FINANCE = ("caiwu.li", "demo-finance-1")
WANG = ("houqin.wang", "demo-logistics-1")  # 朱亭's logistics: sees t-liu (home 朱亭)
SHANHE = {"id": "shanhe", "name": "山河学校", "lat": 27.5111, "lon": 113.2052, "radius_m": 150}
NOV = dt.date(2026, 11, 1)


def day(n: int, month: int = 11) -> dt.date:
    return dt.date(2026, month, n)


def details(on: dt.date, to_school: str, km: float) -> dict:
    departed = local_ts(on, "07:30:00")
    return {"teacher_id": "t-liu", "from_school_id": "zhuting", "to_school_id": to_school,
            "departed_at": departed, "arrived_at": departed + 900, "duration_s": 900.0,
            "path_km": km, "straight_km": 5.5, "matches_assignment": True, "ping_count": 30,
            "service_date": on.isoformat()}


def book(app, on: dt.date, to_school: str, km: float, mock: bool = False) -> None:
    d = details(on, to_school, km)
    with app.app_context():
        if mock:  # the ingest refused fixes of the car as simulated during the drive
            db.session.add(Reject(received_at=d["departed_at"] + 300, device_id="dev-car-liu",
                                  topic="osmand", reason="mock_location",
                                  ts=d["departed_at"] + 300, detail="location.mock is true"))
            db.session.commit()
        with db.engine.begin() as conn:
            book_trip(conn, d, "tracker", d["arrived_at"])


@pytest.fixture
def november(app, client, imported):
    """The month as lived, up to (not including) the close."""
    app.config["CLOCK"] = lambda: local_ts(day(20), "12:00:00")
    admin = login(client, *ADMIN)
    teacher = next(t for t in imported["teachers"] if t["id"] == "t-liu")
    response = client.post("/api/v1/admin/import", headers=admin, json={
        "schools": [SHANHE],
        "teachers": [{**teacher, "assignments": [{"school_id": "longfeng", "weekdays": [2]},
                                                 {"school_id": "shanhe", "weekdays": [4]}]}],
        "clusters": [{"id": "zhuting-jlt", "name": "朱亭教联体", "core_school_id": "zhuting",
                      "member_school_ids": ["longfeng", "shanhe"]}]})
    assert response.status_code == 200, response.get_json()
    book(app, day(3), "longfeng", 6.2)
    book(app, day(5), "shanhe", 11.5)
    book(app, day(10), "longfeng", 16.0)  # the long way round
    finance = login(client, *FINANCE)
    response = client.put("/api/v1/subsidies/grid/shanhe", headers=finance, json={
        "distance_km": 16.0, "reason": "桥梁冲毁，绕行", "effective_from": "2026-11-16"})
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["level"], response.get_json()["grade"]) == (2, 3)
    book(app, day(17), "longfeng", 6.2, mock=True)
    book(app, day(19), "shanhe", 11.5)
    book(app, day(24), "longfeng", 6.2)
    app.config["CLOCK"] = lambda: local_ts(day(2, 12), "09:00:00")
    response = client.post("/api/v1/subsidies/attendance", headers=login(client, *WANG), json={
        "teacher_id": "t-liu", "school_id": "shanhe", "date": "2026-11-26",
        "note": "手机没电，校长确认到岗"})
    assert response.status_code == 201, response.get_json()
    return {"admin": admin, "finance": finance, "wang": login(client, *WANG)}


def statement(client, headers, month: str) -> dict:
    response = client.get("/api/v1/subsidies", headers=headers,
                          query_string={"teacher_id": "t-liu", "month": month})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def lines(body: dict) -> list[tuple]:
    return [(x["kind"], x["for_month"], x["school_id"], x["level"], x["grade"],
             x["days_present"], x["days_due"], x["amount"]) for x in body["allowance"]]


def test_the_month_pays_each_day_at_its_grade_and_each_trip_on_at_most_the_grid(client,
                                                                                  november):
    body = statement(client, november["finance"], "2026-11")
    trips = {(e["date"], e["kind"]): e for e in body["entries"]}
    detour = trips[("2026-11-10", "trip")]
    assert (detour["distance_km"], detour["grid_km"], detour["priced_km"], detour["amount"]) == \
        (16.0, 6.2, 6.2, 10.0)
    mock = trips[("2026-11-17", "trip")]
    assert (mock["status"], mock["review_reasons"], mock["amount"]) == \
        ("pending", "mock_location", 0.0)
    assert trips[("2026-11-19", "trip")]["grid_km"] == 16.0  # finance's override in force
    assert body["total"] == 50.0 and body["pending"] == 1
    assert lines(body) == [
        ("allowance", "2026-11", "longfeng", 1, 3, 3, 4, 75.0),
        ("allowance", "2026-11", "shanhe", 2, 2, 1, 2, 43.75),
        ("allowance", "2026-11", "shanhe", 2, 3, 2, 2, 100.0)]
    assert (body["allowance_total"], body["grand_total"], body["closed"]) == \
        (218.75, 268.75, False)


def test_the_grid_says_where_each_distance_comes_from(client, november):
    response = client.get("/api/v1/subsidies/grid", headers=november["finance"],
                          query_string={"date": "2026-11-20"})
    grid = {row["school_id"]: row for row in response.get_json()}
    assert (grid["longfeng"]["source"], grid["longfeng"]["samples"],
            grid["longfeng"]["distance_km"]) == ("driven", 3, 6.2)
    assert grid["shanhe"]["source"] == "override"
    assert grid["shanhe"]["override"]["reason"] == "桥梁冲毁，绕行"
    assert grid["shanhe"]["override"]["set_by"] == "caiwu.li"
    before = client.get("/api/v1/subsidies/grid", headers=november["finance"],
                        query_string={"date": "2026-11-15"}).get_json()
    assert {r["school_id"]: (r["source"], r["level"], r["grade"]) for r in before} == {
        "longfeng": ("driven", 1, 3), "shanhe": ("driven", 2, 2)}


def test_only_finance_or_admin_change_the_grid_or_close_a_month(client, november):
    wang = november["wang"]
    assert client.put("/api/v1/subsidies/grid/shanhe", headers=wang, json={
        "distance_km": 30, "reason": "x", "effective_from": "2026-11-01"}).status_code == 403
    assert client.post("/api/v1/subsidies/months/2026-11/close", headers=wang,
                       json={}).status_code == 403
    finance = november["finance"]
    assert client.put("/api/v1/subsidies/grid/zhuting", headers=finance, json={
        "distance_km": 3, "reason": "核心校", "effective_from": "2026-11-01"}).status_code == 409
    assert client.put("/api/v1/subsidies/grid/shanhe", headers=finance, json={
        "distance_km": -1, "reason": "x", "effective_from": "2026-11-01"}).status_code == 422
    assert client.post("/api/v1/subsidies/months/2026-12/close", headers=finance,
                       json={}).status_code == 409  # not over yet
    assert client.post("/api/v1/subsidies/months/2026-13/close", headers=finance,
                       json={}).status_code == 422


def test_a_closed_month_never_changes_and_corrections_go_to_the_next_open_month(
        app, client, november, tmp_path):
    finance, wang = november["finance"], november["wang"]
    response = client.post("/api/v1/subsidies/months/2026-11/close", headers=finance, json={})
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["closed_by"], response.get_json()["allowance_lines_frozen"]) == \
        ("caiwu.li", 3)
    assert client.post("/api/v1/subsidies/months/2026-11/close", headers=finance,
                       json={}).status_code == 409
    closed = statement(client, finance, "2026-11")
    assert closed["closed"] and closed["grand_total"] == 268.75
    runner = app.test_cli_runner()
    result = runner.invoke(report_subsidies_command, ["--month", "2026-12",
                                                      "--out", str(tmp_path / "dec.csv")])
    assert result.exit_code == 0, result.output
    # after the close: the mock trip reviewed and approved, the 12th confirmed by the school
    mock = next(e for e in closed["entries"] if e["date"] == "2026-11-17")
    response = client.post(f"/api/v1/subsidies/{mock['entry_id']}/approve", headers=wang,
                           json={"reason": "开发者选项误开，行程属实"})
    assert response.status_code == 200, response.get_json()
    assert client.post("/api/v1/subsidies/attendance", headers=wang, json={
        "teacher_id": "t-liu", "school_id": "shanhe", "date": "2026-11-12"}).status_code == 201

    assert statement(client, finance, "2026-11") == closed  # not one figure moved
    december = statement(client, finance, "2026-12")
    approval = [e for e in december["entries"] if e["kind"] == "approval"]
    assert [(e["date"], e["amount"], e["corrects_month"]) for e in approval] == \
        [("2026-11-17", 10.0, "2026-11")]
    frozen = {(x["school_id"], x["level"], x["grade"]): x["entry_id"] for x in closed["allowance"]}
    adjustments = [x for x in december["allowance"] if x["kind"] == "adjustment"]
    assert [(x["for_month"], x["school_id"], x["level"], x["grade"], x["amount"],
             x["corrects_entry_id"]) for x in adjustments] == [
        ("2026-11", "longfeng", 1, 3, 25.0, frozen[("longfeng", 1, 3)]),
        ("2026-11", "shanhe", 2, 2, 43.75, frozen[("shanhe", 2, 2)])]
    assert sum(x["amount"] for x in december["allowance"] if x["kind"] == "allowance") == 0
    assert (december["total"], december["allowance_total"], december["grand_total"]) == \
        (10.0, 68.75, 78.75)

    changes = client.get("/api/v1/subsidies/changes", headers=finance,
                         query_string={"month": "2026-12"}).get_json()
    assert changes["last_export"]["exported_by"] == "cli"
    assert sorted(x["amount"] for x in changes["added"]) == [10.0, 25.0, 43.75]
    assert changes["removed"] == [] and changes["changed"] == []
    assert changes["total_change"] == 78.75
    assert client.get("/api/v1/subsidies/changes", headers=wang,
                      query_string={"month": "2026-12"}).status_code == 403

    # closing December freezes the adjustments in December's books, naming November
    app.config["CLOCK"] = lambda: local_ts(dt.date(2027, 1, 4), "09:00:00")
    assert client.post("/api/v1/subsidies/months/2026-12/close", headers=finance,
                       json={}).status_code == 200
    assert statement(client, finance, "2026-12")["grand_total"] == 78.75
    assert statement(client, finance, "2027-01")["allowance_total"] == 0


def test_the_report_prints_the_totals_and_its_xlsx_reads_back(app, november, tmp_path):
    result = app.test_cli_runner().invoke(report_subsidies_command, [
        "--month", "2026-11", "--out", str(tmp_path / "nov.xlsx")])
    assert result.exit_code == 0, result.output
    assert "t-liu 刘胜: 交通补助 50.00 + 交流补贴 218.75 = 268.75 CNY (1 pending)" in result.output
    assert "total 2026-11 (open): 268.75" in result.output
    sheet = load_workbook(tmp_path / "nov-allowances.xlsx").active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("教师编号", "教师", "账期")
    assert [(r[6], r[7], r[8], r[12]) for r in rows[1:-1]] == [
        ("龙凤学校", 1, 3, 75.0), ("山河学校", 2, 2, 43.75), ("山河学校", 2, 3, 100.0)]
    assert rows[-1][0] == "合计" and rows[-1][12] == 218.75
    transport = load_workbook(tmp_path / "nov.xlsx").active
    assert list(transport.iter_rows(values_only=True))[-1][0] == "合计"


def test_close_month_from_the_command_line_checks_the_role(app, november):
    runner = app.test_cli_runner()
    refused = runner.invoke(close_month_command, ["--month", "2026-11", "--by", "houqin.wang"])
    assert refused.exit_code != 0 and "no finance or admin user" in refused.output
    done = runner.invoke(close_month_command, ["--month", "2026-11", "--by", "caiwu.li"])
    assert done.exit_code == 0, done.output
    assert "3 allowance lines frozen" in done.output
    again = runner.invoke(close_month_command, ["--month", "2026-11", "--by", "caiwu.li"])
    assert again.exit_code != 0 and "already closed" in again.output


def test_a_trip_of_a_closed_month_booked_late_goes_into_the_next_open_month(app, client,
                                                                            november):
    finance = november["finance"]
    assert client.post("/api/v1/subsidies/months/2026-11/close", headers=finance,
                       json={}).status_code == 200
    before = statement(client, finance, "2026-11")
    # the nightly audit finds the 12th's drive to 山河 that the live run missed
    book(app, day(12), "shanhe", 11.5)
    assert statement(client, finance, "2026-11") == before
    december = statement(client, finance, "2026-12")
    late = [(e["date"], e["kind"], e["amount"], e["corrects_month"]) for e in december["entries"]]
    assert late == [("2026-11-12", "trip", 10.0, "2026-11")]
    # and the day it proves is November's allowance, corrected in December: 350 × 1/8
    assert [(x["kind"], x["for_month"], x["school_id"], x["amount"])
            for x in december["allowance"] if x["kind"] == "adjustment"] == [
        ("adjustment", "2026-11", "shanhe", 43.75)]


def test_a_card_scan_inside_the_school_verifies_the_day_and_one_outside_does_not(
        app, client, imported, november):
    from backend.models import Scan

    teacher = next(t for t in imported["teachers"] if t["id"] == "t-liu")
    response = client.post("/api/v1/admin/import", headers=november["admin"], json={
        "teachers": [{**teacher, "card_id": "T-LIU-0001",
                      "assignments": [{"school_id": "longfeng", "weekdays": [2]},
                                      {"school_id": "shanhe", "weekdays": [4]}]}]})
    assert response.status_code == 200, response.get_json()
    with app.app_context():
        for on, (lat, lon) in ((day(12), (SHANHE["lat"] + 0.0005, SHANHE["lon"])),  # 56 m
                               (day(17), (27.4700, 113.2480))):  # 900 m short of 龙凤
            ts = local_ts(on, "07:55:00")
            db.session.add(Scan(device_id="gate-reader", vehicle_id=None, ts=ts,
                                card_id="T-LIU-0001", action="board", lat=lat, lon=lon,
                                received_at=ts))
        db.session.commit()
    body = statement(client, november["finance"], "2026-11")
    assert lines(body) == [
        ("allowance", "2026-11", "longfeng", 1, 3, 3, 4, 75.0),
        ("allowance", "2026-11", "shanhe", 2, 2, 2, 2, 87.5),  # 350 × 2/8: the 12th now counts
        ("allowance", "2026-11", "shanhe", 2, 3, 2, 2, 100.0)]


def test_a_teacher_card_that_is_a_students_is_refused(client, imported, november):
    teacher = next(t for t in imported["teachers"] if t["id"] == "t-liu")
    card = next(s["card_id"] for s in imported["students"] if s.get("card_id"))
    response = client.post("/api/v1/admin/import", headers=november["admin"], json={
        "teachers": [{**teacher, "card_id": card}]})
    assert response.status_code == 422
    assert "already belongs to student" in str(response.get_json())


def test_a_closed_months_allowance_is_not_corrected_by_the_trips_of_a_later_month(
        app, client, november):
    """November's grid rests on the trips up to November's end: December's shorter drives to
    龙凤 (4 km, level 1 grade 2) move December's median, not November's books."""
    finance = november["finance"]
    assert client.post("/api/v1/subsidies/months/2026-11/close", headers=finance,
                       json={}).status_code == 200
    for n in (1, 8, 15, 22):  # December's Tuesdays
        book(app, day(n, 12), "longfeng", 4.0)
    december = statement(client, finance, "2026-12")
    assert [x for x in december["allowance"] if x["kind"] == "adjustment"] == []
    assert {(x["school_id"], x["level"], x["grade"]) for x in december["allowance"]
            if x["school_id"] == "longfeng"} == {("longfeng", 1, 2)}


def test_a_day_not_yet_come_cannot_be_confirmed(app, client, november):
    """A confirmation says the teacher was there: a date after today (district time) would pay
    a day in advance."""
    app.config["CLOCK"] = lambda: local_ts(day(2, 12), "09:00:00")
    response = client.post("/api/v1/subsidies/attendance", headers=november["wang"], json={
        "teacher_id": "t-liu", "school_id": "shanhe", "date": "2026-12-03"})
    assert response.status_code == 422, response.get_json()
    assert "2026-12-03" in str(response.get_json())
    assert statement(client, november["finance"], "2026-12")["allowance_total"] == 0


def test_the_export_records_what_its_file_holds_not_what_came_after(app, client, november,
                                                                    tmp_path, monkeypatch):
    """A trip booked while the report writes its files is not in them: it must show as added
    since the export, not be recorded as exported."""
    import backend.cli.reports as reports

    write = reports._write_sheet
    late = []

    def write_then_book(*args, **kwargs):
        write(*args, **kwargs)
        if not late:  # the ingest books a trip while the report is being written
            late.append(book(app, day(1, 12), "longfeng", 6.2))

    monkeypatch.setattr(reports, "_write_sheet", write_then_book)
    result = app.test_cli_runner().invoke(report_subsidies_command, [
        "--month", "2026-12", "--out", str(tmp_path / "dec.csv")])
    assert result.exit_code == 0, result.output
    changes = client.get("/api/v1/subsidies/changes", headers=november["finance"],
                         query_string={"month": "2026-12"}).get_json()
    assert [(x["kind"], x["trip_id"], x["amount"]) for x in changes["added"]
            if x["kind"] == "transport"] == [("transport", "t-liu-20261130T233000Z", 10.0)]
