"""The plan screen (线路规划) in Chromium against the real planner: the admin asks for a draft of
the sample district, sees the progress while it runs, then the report, the draft routes listed
and drawn on the map, and downloads the draft bundle — the same routes; a longest ride no child
can keep is refused in words (the API's 422); logistics staff have no such tab."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.test_console import DESK, open_console, shoot

ADMIN = ("admin", "demo-admin-1")


def test_the_admin_plans_the_district_and_downloads_the_draft(site, tab, artifacts):
    staff = open_console(tab, site, who=ADMIN, screen="plans", **DESK)
    page = staff.page
    expect(page.locator(".console-nav a[aria-current=page]")).to_have_text("线路规划")

    page.fill("#plan-max-ride", "1")  # no child lives a minute from school
    page.fill("#plan-time-limit", "1")
    page.click("#plan-run")
    expect(page.locator("#plan-error")).to_contain_text("输入有误：")
    expect(page.locator("#plan-result")).to_be_hidden()
    expect(page.locator("#plan-run")).to_be_enabled()

    page.fill("#plan-max-ride", "60")
    page.click("#plan-run")
    expect(page.locator("#plan-progress")).to_be_visible()
    expect(page.locator("#plan-progress-text")).to_contain_text("正在规划…")
    expect(page.locator("#plan-run")).to_be_disabled()
    expect(page.locator("#plan-result")).to_be_visible(timeout=60_000)
    expect(page.locator("#plan-progress")).to_be_hidden()
    expect(page.locator("#plan-error")).to_be_hidden()
    buses = int(page.locator('#plan-report dd[data-item="buses"]').inner_text())
    assert buses >= 1
    expect(page.locator('#plan-report dd[data-item="km"]')).to_contain_text(" 公里")
    expect(page.locator('#plan-report dd[data-item="longest"]')).to_contain_text(" 分钟")
    routes = page.locator("#plan-routes li")
    count = int(page.locator('#plan-report dd[data-item="routes"]').inner_text())
    expect(routes).to_have_count(count)
    expect(page.locator("#plan-map polyline.draft")).to_have_count(count)
    expect(page.locator("#plan-map .mark.stop")).not_to_have_count(0)
    expect(page.locator("#plan-map .mark.school").first).to_contain_text("学校")
    shoot(page, artifacts, "console-plans-desktop")

    with page.expect_download() as download:
        page.click("#plan-download")
    draft = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    ids = [r["id"] for r in draft["routes"]]
    assert len(ids) == count and all(i.startswith("plan-") for i in ids)
    assert routes.evaluate_all("els => els.map(e => e.dataset.routeId)") == ids
    per_bus = page.locator('#plan-report dd[data-item="perBus"]').inner_text().split(" · ")
    assert len(per_bus) == buses

    page.click("#lang")
    expect(page.locator('#plan-report dd[data-item="km"]')).to_contain_text(" km")
    expect(page.locator("#banner")).to_be_hidden()
    assert [e.rsplit("status of ", 1)[-1] for e in staff.errors] == [
        "422 (UNPROCESSABLE ENTITY)"]
    assert staff.attempted == []


def test_logistics_staff_have_no_plan_tab(site, tab):
    staff = open_console(tab, site, screen="plans")
    expect(staff.page.locator(".console-nav a[aria-current=page]")).to_have_text("车辆")
    expect(staff.page.locator('.console-nav a[data-screen="plans"]')).to_be_hidden()
    assert staff.errors == []
