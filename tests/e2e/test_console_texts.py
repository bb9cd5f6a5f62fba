"""Texts to a driver on the staff console's vehicles screen, in Chromium against the real API:
bus-07 has a JT/T 808 terminal, so houqin.wang's text is queued and listed as 排队中, then shown
as 已送达 once the terminal answered; truck-01 (the meal truck) has none, and the form says why
(the API's 409).
A terminal's emergency alarm is in the exceptions list in Chinese."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.e2e.test_console import DESK, open_console, shoot


def with_terminal(site, device_id: str = "dev-bus-07", phone: str = "013800138007") -> None:
    from backend.extensions import db
    from backend.models import Device

    with site.app.app_context():
        db.session.get(Device, device_id).jt808_phone = phone
        db.session.commit()


def delivered(site) -> None:
    """What the gateway does when the terminal answers 0x0001 with result 0."""
    from sqlalchemy import update

    from backend.extensions import db
    from backend.models import Jt808Text

    with site.app.app_context():
        db.session.execute(update(Jt808Text).values(status="ok", result=0, attempts=1,
                                                    sent_at=time.time(), answered_at=time.time()))
        db.session.commit()


def emergency_alarm(site) -> None:
    from backend.extensions import db
    from backend.models import Event

    now = time.time()
    with site.app.app_context():
        db.session.add(Event(kind="terminal_alarm", ts=now, vehicle_id="bus-07", details={
            "alarm": "emergency", "device_id": "dev-bus-07", "lat": 27.2, "lon": 113.1,
            "alarm_word": 1, "speed_kmh": 31.0}, created_at=now))
        db.session.commit()


def test_staff_text_a_driver_and_see_it_delivered_and_a_bus_without_terminal_says_why(
        site, tab, artifacts):
    with_terminal(site)
    emergency_alarm(site)
    staff = open_console(tab, site, **DESK)
    page = staff.page
    alarm = page.locator('#exceptions li[data-kind="terminal_alarm"]')
    expect(alarm).to_have_count(1)
    expect(alarm.locator(".exception-kind")).to_have_text("终端报警")
    expect(alarm.locator(".exception-detail")).to_have_text("紧急报警 · 31 km/h")

    expect(page.locator("#text-vehicle option")).not_to_have_count(0)
    page.select_option("#text-vehicle", "bus-07")
    expect(page.locator("#no-texts")).to_be_visible()
    page.fill("#text-body", "前方修路，请绕行石塘村")
    page.check("#text-emergency")
    page.click("#text-send")
    expect(page.locator("#text-status")).to_have_text("已排队，终端上线后发送。")
    item = page.locator("#texts li.text-item")
    expect(item).to_have_count(1)
    expect(item).to_have_attribute("data-status", "queued")
    expect(item.locator(".badge").first).to_have_text("排队中")
    expect(item.locator(".badge.urgent")).to_have_text("紧急")
    expect(item.locator(".text-body")).to_have_text("前方修路，请绕行石塘村")
    expect(item).to_contain_text("houqin.wang")

    delivered(site)
    page.select_option("#text-vehicle", "truck-01")  # no terminal: refused, and said why
    expect(page.locator("#no-texts")).to_be_visible()
    page.fill("#text-body", "请回电")
    page.click("#text-send")
    expect(page.locator("#text-status")).to_have_text(
        "truck-01 没有部标（JT/T 808）终端，消息无法送达司机。")
    expect(page.locator("#text-status")).to_have_class("error")

    page.select_option("#text-vehicle", "bus-07")
    expect(item.locator(".badge").first).to_have_text("已送达")
    shoot(page, artifacts, "console-texts-desktop")
    page.click("#lang")
    expect(item.locator(".badge").first).to_have_text("Delivered")
    expect(alarm.locator(".exception-detail")).to_have_text("Emergency alarm · 31 km/h")
    expect(page.locator("#banner")).to_be_hidden()
    assert [e.rsplit("status of ", 1)[-1] for e in staff.errors] == ["409 (CONFLICT)"]
    assert staff.attempted == []


def test_a_text_the_terminal_cannot_show_is_refused_in_words(site, tab):
    with_terminal(site)
    staff = open_console(tab, site)  # a phone
    page = staff.page
    expect(page.locator("#text-vehicle option")).not_to_have_count(0)
    page.select_option("#text-vehicle", "bus-07")
    page.fill("#text-body", "请注意安全 🚌")  # no emoji in GBK
    page.click("#text-send")
    expect(page.locator("#text-status")).to_contain_text("输入有误：")
    expect(page.locator("#text-status")).to_contain_text("GBK")
    expect(page.locator("#texts li")).to_have_count(0)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert [e.rsplit("status of ", 1)[-1] for e in staff.errors] == [
        "422 (UNPROCESSABLE ENTITY)"]
