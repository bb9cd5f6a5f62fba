"""The finance office's screen (财务) in Chromium against the real API: caiwu.li reads the
cluster grid (龙凤学校 from 朱亭学校: the median of 刘胜's two verified trips), sets an override and sees the
school's source and band change, has an empty reason refused in words (422), closes last month
after the confirm dialog, is told why this month cannot be closed (409), and reads what was
booked since the last export."""

from __future__ import annotations

import datetime as dt
import time

from playwright.sync_api import expect

from tests.e2e.console_world import SHANGHAI, teacher_trip
from tests.e2e.test_console import DESK, open_console, shoot

FINANCE = ("caiwu.li", "demo-finance-1")


def this_month() -> str:
    return dt.datetime.now(SHANGHAI).date().isoformat()[:7]


def last_month() -> str:
    first = dt.datetime.now(SHANGHAI).date().replace(day=1)
    return (first - dt.timedelta(days=1)).isoformat()[:7]


def book(site, trips) -> None:
    from backend.extensions import db
    from backend.subsidy_service import book_trips

    with site.app.app_context(), db.engine.begin() as conn:
        book_trips(conn, trips, now=time.time())


def exported(site, month: str) -> None:
    from backend.finance.books import record_export

    with site.app.app_context():
        record_export(month, "caiwu.li", time.time())


def test_finance_overrides_a_distance_closes_a_month_and_reads_the_changes(site, tab, artifacts):
    first = dt.datetime.now(SHANGHAI).date().replace(day=1)  # this month's books, at any hour
    book(site, [teacher_trip("t-liu", first, 8.0, 7, True)])
    exported(site, this_month())
    book(site, [teacher_trip("t-liu", first, 9.0, 15, True)])  # after the export

    staff = open_console(tab, site, who=FINANCE, **DESK)
    page = staff.page
    expect(page.locator(".console-nav a:visible")).to_have_text(["补贴台账", "财务"])
    expect(page.locator(".console-nav a[aria-current=page]")).to_have_text("财务")
    row = page.locator('#grid tr[data-school-id="longfeng"]')
    expect(row.locator("td.source")).to_have_text("实际里程中位数（2 趟）")  # 8 and 9 km
    expect(row.locator("td.distance")).to_have_text("8.5 公里")
    expect(row).to_contain_text("朱亭教联体 · 核心学校 朱亭学校")
    expect(row.locator("td.override")).to_contain_text("—")

    row.locator("td.override button").click()
    page.fill("#override-reason", "   ")  # only blanks: the API refuses it, the page says so
    page.click("#override-save")
    expect(page.locator("#override-status")).to_contain_text("输入有误")
    expect(page.locator("#override-status")).to_have_class("error")

    page.fill("#override-km", "31.5")
    page.fill("#override-reason", "冬季绕行山路，局长批准")
    page.click("#override-save")
    expect(page.locator("#override-status")).to_contain_text("已保存：龙凤学校 31.5 公里")
    expect(row.locator("td.source")).to_have_text("财务核定")
    expect(row.locator("td.distance")).to_have_text("31.5 公里")
    expect(row.locator("td.override")).to_contain_text("冬季绕行山路，局长批准 · caiwu.li")
    expect(row.locator("td.band")).to_have_text("三级三等")

    # last month: open, closed after the dialog
    expect(page.locator("#finance-month")).to_have_value(last_month())
    expect(page.locator("#month-status")).to_have_text(f"{last_month()} 尚未结账。")
    dialogs = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.click("#month-close")
    expect(page.locator("#month-status")).to_contain_text(f"{last_month()} 已结账（caiwu.li")
    expect(page.locator("#month-close")).to_be_hidden()
    assert dialogs == [f"确定结账 {last_month()}？结账后该月账目不再变动。"]

    # this month: not over, the API's 409 shown; and what was booked since its export
    page.fill("#finance-month", this_month())
    page.dispatch_event("#finance-month", "change")
    expect(page.locator("#month-status")).to_have_text(f"{this_month()} 尚未结账。")
    page.once("dialog", lambda d: d.accept())
    page.click("#month-close")
    expect(page.locator("#month-error")).to_contain_text("无法完成：")
    expect(page.locator("#month-error")).to_contain_text("is not over yet")
    expect(page.locator("#changes-export")).to_contain_text("上次导出：")
    expect(page.locator("#changes-export")).to_contain_text("caiwu.li")
    added = page.locator('#changes li[data-change="added"][data-key^="transport:"]')
    expect(added).to_have_count(1)
    expect(added).to_contain_text("刘胜 · 交通补助")
    shoot(page, artifacts, "console-finance-desktop")

    page.click("#lang")
    expect(row.locator("td.source")).to_have_text("Finance's override")
    expect(row.locator("td.band")).to_have_text("Level 3, grade 3")
    expect(page.locator("#month-error")).to_be_visible()
    expect(page.locator("#banner")).to_be_hidden()
    # the browser logs the two refusals it was shown; nothing else went wrong
    assert [e.rsplit("status of ", 1)[-1] for e in staff.errors] == [
        "422 (UNPROCESSABLE ENTITY)", "409 (CONFLICT)"]
    assert staff.attempted == []


def test_logistics_staff_have_no_finance_tab_and_the_finance_office_no_vehicles(site, tab):
    first = dt.datetime.now(SHANGHAI).date().replace(day=1)
    book(site, [teacher_trip("t-liu", first, 16.0, 15, False)])  # off the timetable: pending
    staff = open_console(tab, site, screen="finance")  # logistics: back to the vehicles
    page = staff.page
    expect(page.locator(".console-nav a[aria-current=page]")).to_have_text("车辆")
    expect(page.locator('.console-nav a[data-screen="finance"]')).to_be_hidden()

    office = open_console(tab, site, who=FINANCE, screen="vehicles")
    expect(office.page.locator(".console-nav a[aria-current=page]")).to_have_text("财务")
    expect(office.page.locator("#screen-vehicles")).to_be_hidden()
    office.page.click('.console-nav a[data-screen="ledger"]')
    liu = office.page.locator('#ledger-teachers tr[data-teacher-id="t-liu"]')
    expect(liu.locator("td.pending")).to_have_text("1")
    liu.locator("button.link").click()  # the office reads the pending trip, 后勤 decide it
    pending = office.page.locator('.ledger-trip[data-status="pending"]')
    expect(pending).to_contain_text("不在排课日")
    expect(pending.locator("button")).to_have_count(0)
    expect(office.page.locator("#banner")).to_be_hidden()
    assert staff.errors == [] and office.errors == []


def test_the_screen_shows_even_when_its_script_arrives_after_the_sign_in_answer(site, tab):
    """The console asks /api/v1/me as soon as staff.js runs; a screen's script that is still on
    its way then (finance.js, slow on a loaded machine) must still be shown once it has run —
    it once left the finance screen blank (CI, 2026-12-03)."""
    staff = tab(**DESK)  # no loopback_only(): its handler would hold /api/v1/me back too

    def late(route):
        time.sleep(1.5)  # /api/v1/me answers meanwhile
        route.continue_()

    staff.page.route("**/staff/finance.js", late)
    staff.login(site.url, *FINANCE, lands_on="/staff")
    row = staff.page.locator('#grid tr[data-school-id="longfeng"]')
    expect(row).to_contain_text("朱亭教联体 · 核心学校 朱亭学校")
    expect(staff.page.locator("#finance-month")).to_have_value(last_month())
    assert staff.errors == []
