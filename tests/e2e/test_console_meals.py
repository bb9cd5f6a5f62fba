"""The staff console's meal audit in Chromium: 朱亭学校's Monday — the meal truck's arrival as
proof of delivery, a report sent twice (the first kept as the edit history), more meals served
than boarders present flagged — and the schools that have not reported listed; 龙凤学校's staff
see only their own school."""

from __future__ import annotations

import datetime as dt
import re

from playwright.sync_api import expect

from tests.e2e.offline import loopback_only
from tests.e2e.test_console import DESK, OTHER_LOGISTICS, shoot
from tests.e2e.test_pages import LOGISTICS

MONDAY = dt.date(2026, 11, 23)
TUESDAY = MONDAY + dt.timedelta(days=1)


def monday_meals(site) -> None:
    """truck-01 at 朱亭学校 at 06:30, and 朱亭's report sent, then corrected."""
    from backend.extensions import db
    from backend.models import Event
    from tests.drives import local_ts

    arrived = local_ts(MONDAY, "06:30:00")
    with site.app.app_context():
        db.session.add(Event(kind="meal_delivery_arrived", ts=arrived, vehicle_id="truck-01",
                             stop_id="zhuting", details={}, created_at=arrived))
        db.session.commit()
    client = site.app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": LOGISTICS[0],
                                                     "password": LOGISTICS[1]}).get_json()
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    for served in (380, 410):  # the second replaces the first
        sent = client.post("/api/v1/meals/reports", headers=auth, json={
            "school_id": "zhuting", "date": MONDAY.isoformat(), "boarders_present": 400,
            "meals_served": served, "meals_received": 420})
        assert sent.status_code == 201, sent.get_json()


def open_meals(tab, site, who, date, **size):
    staff = tab(**size)
    attempted = loopback_only(staff.page)
    staff.login(site.url, *who, lands_on="/staff")
    staff.page.goto(site.url + f"/staff#meals?date={date}")
    return staff, attempted


def test_staff_read_a_schools_meals_with_the_truck_the_flags_and_the_edits(site, tab, artifacts):
    monday_meals(site)
    staff, attempted = open_meals(tab, site, LOGISTICS, MONDAY.isoformat(), **DESK)
    page = staff.page
    row = page.locator('#meals tr[data-school-id="zhuting"]')
    expect(row.locator("td.served")).to_have_text("410")
    expect(row.locator("td.present")).to_have_text("400")
    expect(row.locator("td.enrolled")).to_have_text("420")
    expect(row.locator("td.received")).to_have_text("420")
    expect(row.locator("td.truck")).to_have_text("06:30 到校")
    expect(row.locator("[data-flag]")).to_have_count(1)
    expect(row.locator('[data-flag="served_exceeds_present"]')).to_have_text("供餐多于实到")
    expect(row.locator(".reported")).to_contain_text("houqin.wang")
    row.locator("details summary").click()
    expect(row.locator("details")).to_contain_text(re.compile(r"第 1 版 · houqin\.wang · .*供餐 380"))
    expect(page.locator("#meals-missing li")).to_have_count(0)
    expect(page.locator("#meals-missing-none")).to_have_text("所有学校都已上报。")
    assert page.locator("#meals tbody tr").count() == 1  # 龙凤学校 is not theirs
    shoot(page, artifacts, "console-meals-desktop")

    page.fill("#meals-date", TUESDAY.isoformat())  # nothing sent, no truck
    page.dispatch_event("#meals-date", "change")
    expect(page.locator("#meals-missing li")).to_have_text(["朱亭学校"])
    expect(row.locator("[data-flag]")).to_have_count(2)
    expect(row.locator("td.truck")).to_have_text("未到")
    page.click("#lang")
    expect(row.locator('[data-flag="no_report"]')).to_have_text("No report")
    expect(page.locator(".console-nav a[aria-current=page]")).to_have_text("Meals")
    expect(page.locator("#banner")).to_be_hidden()
    assert staff.errors == [] and attempted == []


def test_another_schools_staff_see_only_their_own_schools_meals(site, tab, artifacts):
    monday_meals(site)
    staff, attempted = open_meals(tab, site, OTHER_LOGISTICS, MONDAY.isoformat())  # a phone
    page = staff.page
    expect(page.locator('#meals tr[data-school-id="longfeng"]')).to_have_count(1)
    expect(page.locator("#meals-missing li")).to_have_text(["龙凤学校"])
    assert page.locator("#meals tbody tr").count() == 1
    text = page.locator("main").inner_text()
    assert "朱亭" not in text and "houqin.wang" not in text and "410" not in text
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shoot(page, artifacts, "console-meals-phone")
    expect(page.locator("#banner")).to_be_hidden()
    assert staff.errors == [] and attempted == []
