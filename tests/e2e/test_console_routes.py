"""The staff console's routes and reports screens in Chromium: 后勤 send a message to a route's
parents and put a spare bus on a route for today (and take it off again); the ETA accuracy of
the audited Monday per route; the reject log by reason for admins only; and 龙凤学校's staff
see none of 朱亭学校's routes on these screens either."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import serving
from tests.e2e.console_world import console_day
from tests.e2e.offline import loopback_only
from tests.e2e.test_console import DATE, DESK, OTHER_LOGISTICS, shoot
from tests.e2e.test_pages import LOGISTICS


@pytest.fixture
def day_site(app, sample_bundle):
    console_day(app, sample_bundle)
    with serving(app) as served:
        yield served


def open_screen(tab, site, who, screen, **size):
    staff = tab(**size)
    attempted = loopback_only(staff.page)
    staff.login(site.url, *who, lands_on="/staff")
    staff.page.goto(site.url + "/staff#" + screen)
    return staff, attempted


def test_staff_message_a_routes_parents_and_put_a_spare_bus_on_it(day_site, tab, artifacts):
    from backend.extensions import db
    from backend.models import Notification, User

    staff, attempted = open_screen(tab, day_site, LOGISTICS, "routes?route=zt-am-1", **DESK)
    page = staff.page
    expect(page.locator("#routes-route")).to_have_value("zt-am-1")
    expect(page.locator("#sub-current")).to_have_text("当日由 bus-07 运行（未替换）。")
    page.fill("#message-title", "校车晚点")
    page.fill("#message-body", "因道路施工，早班车晚到约10分钟。")
    page.click("#message-send")
    expect(page.locator("#message-status")).to_have_text(re.compile(r"^已发送给 [1-9]\d* 位家长。$"))
    expect(page.locator("#messages-sent li")).to_contain_text("校车晚点")
    with day_site.app.app_context():
        got = db.session.query(Notification).join(User, User.id == Notification.user_id).filter(
            User.username == "wang.jun", Notification.kind == "staff_message").one()
        assert (got.title, got.body) == ("校车晚点", "因道路施工，早班车晚到约10分钟。")

    page.fill("#sub-vehicle", "bus-spare")  # a spare bus of no route: typed, staff do not see it
    page.click("#sub-set")
    expect(page.locator("#sub-current")).to_have_text(
        re.compile(r"^当日由替换车辆 bus-spare 运行（houqin\.wang 于 .* 设置）。$"))
    shoot(page, artifacts, "console-routes-desktop")
    page.click("#sub-cancel")
    expect(page.locator("#sub-current")).to_have_text("当日由 bus-07 运行（未替换）。")
    expect(page.locator("#sub-cancel")).to_be_hidden()
    expect(page.locator("#banner")).to_be_hidden()
    assert staff.errors == [] and attempted == []


def test_staff_read_the_eta_accuracy_and_only_admins_the_reject_log(day_site, tab, artifacts):
    client = day_site.app.test_client()
    refused = client.post("/api/v1/ingest/pings", data=b"nope", content_type="application/json",
                          headers={"Authorization": "Bearer demo-token-bus-07"})
    assert refused.status_code >= 400
    staff, attempted = open_screen(tab, day_site, LOGISTICS, f"reports?date={DATE}", **DESK)
    page = staff.page
    row = page.locator('#eta tr[data-route-id="zt-am-1"]')
    expect(row).to_contain_text("朱亭早班1号线")
    expect(row.locator("td").first).to_have_text("1")  # one audited trip
    expect(row.locator("td.ahead-1")).to_have_text(re.compile(r"^\d+\.\d / \d+\.\d（[1-9]\d*）$"))
    expect(page.locator("#rejects-card")).to_be_hidden()  # logistics: not theirs to read
    shoot(page, artifacts, "console-reports-desktop")
    expect(page.locator("#banner")).to_be_hidden()
    assert staff.errors == [] and attempted == []

    admin, attempted = open_screen(tab, day_site, ("admin", "demo-admin-1"), f"reports?date={DATE}")
    page = admin.page
    expect(page.locator('#reject-counts li[data-reason="bad_json"]')).to_have_text("bad_json · 1")
    expect(page.locator('#reject-items li[data-reason="bad_json"]')).to_contain_text("dev-bus-07")
    expect(page.locator('#eta tr[data-route-id="zt-am-1"]')).to_have_count(1)
    shoot(page, artifacts, "console-reports-admin-phone")
    expect(page.locator("#banner")).to_be_hidden()
    assert admin.errors == [] and attempted == []


def test_another_schools_staff_see_none_of_its_routes_here_either(day_site, tab, artifacts):
    staff, attempted = open_screen(tab, day_site, OTHER_LOGISTICS, "routes")
    page = staff.page
    expect(page.locator("#sub-current")).to_have_text(re.compile(r"bus-12"))
    # waited for, not read at once: the lists fill as their answers arrive
    expect(page.locator("#routes-route option")).to_have_text(["龙凤早班1号线"])
    expect(page.locator("#sub-buses option")).to_have_count(1)
    assert page.locator("#sub-buses option").evaluate_all("os => os.map(o => o.value)") == \
        ["bus-12"]
    shoot(page, artifacts, "console-routes-phone")
    page.goto(day_site.url + f"/staff#reports?date={DATE}")
    expect(page.locator("#eta tbody tr")).to_have_count(1)
    expect(page.locator("#eta tbody tr")).to_have_text(re.compile("没有可评估的行程|龙凤早班1号线"))
    text = page.locator("main").inner_text()
    assert "朱亭" not in text and "bus-07" not in text and "zt-am-1" not in text
    expect(page.locator("#banner")).to_be_hidden()
    assert staff.errors == [] and attempted == []
