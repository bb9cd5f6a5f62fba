"""The staff console (/staff) in Chromium against the real app and database: 后勤 approve a
pending subsidy and see the month's total change, read a trip audit with the missed stop drawn
on the map, replay a vehicle's day with the slider, and a logistics user of 龙凤学校 sees nothing
of 朱亭学校's buses, routes, trips or teachers on any screen. Screenshots at phone and desktop size
go to tests/artifacts/ (the README's docs/screenshots/console-*.png are copies of two)."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import openpyxl
import pytest
from playwright.sync_api import expect

from backend.maps.tilefiles import tile_of
from tests.e2e.conftest import serving
from tests.e2e.console_world import console_day
from tests.e2e.offline import loopback_only
from tests.e2e.test_maps import BOX, ZOOMS
from tests.e2e.test_pages import LOGISTICS
from tests.tilesets import county_tiles

OTHER_LOGISTICS = ("houqin.chen", "demo-logistics-2")  # 龙凤学校 only
DESK = {"width": 1280, "height": 900}
DATE = "2026-11-23"


@pytest.fixture
def console_site(app, sample_bundle):
    pings = console_day(app, sample_bundle)
    with serving(app) as served:
        served.pings = pings
        yield served


def open_console(tab, site, who=LOGISTICS, screen="", **size):
    staff = tab(**size)
    attempted = loopback_only(staff.page)
    staff.login(site.url, *who, lands_on="/staff")
    if screen:
        staff.page.goto(site.url + "/staff#" + screen)
    staff.attempted = attempted
    return staff


def shoot(page, artifacts, name):
    page.wait_for_timeout(300)  # layout settled after the last render
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def test_staff_approve_a_pending_subsidy_and_see_the_months_total_change(console_site, tab,
                                                                         artifacts):
    from backend.extensions import db
    from backend.models import SubsidyEntry

    staff = open_console(tab, console_site, screen="ledger", **DESK)
    page = staff.page
    liu = page.locator('#ledger-teachers tr[data-teacher-id="t-liu"]')
    expect(liu.locator("td.total")).to_have_text("¥10.00")
    expect(liu.locator("td.pending")).to_have_text("1")
    expect(page.locator('#ledger-teachers tr[data-teacher-id="t-zhou"] td.total')).to_have_text("¥10.00")
    expect(page.locator("#ledger-all-total")).to_have_text("¥20.00")

    liu.locator("button.link").click()
    pending = page.locator('.ledger-trip[data-status="pending"]')
    expect(pending).to_have_count(1)
    expect(pending).to_contain_text("16.0 公里 · 第 3 档")
    expect(pending).to_contain_text("不在排课日")
    expect(page.locator("#ledger-total")).to_have_text("¥10.00")
    expect(page.locator("#ledger-cap")).to_be_hidden()  # 10 of a 600 cap
    pending.locator("button.reject").click()  # no reason: refused on the page, nothing sent
    expect(pending.locator(".error")).to_have_text("驳回需要填写理由。")
    shoot(page, artifacts, "console-ledger-pending-desktop")

    pending.locator("input[name=reason]").fill("周六补课，校长批准")
    pending.locator("button.approve").click()
    expect(page.locator("#ledger-total")).to_have_text("¥30.00")
    expect(liu.locator("td.total")).to_have_text("¥30.00")
    expect(liu.locator("td.pending")).to_have_text("0")
    expect(page.locator("#ledger-all-total")).to_have_text("¥40.00")
    approved = page.locator(".ledger-trip", has_text="16.0 ")
    expect(approved).to_have_attribute("data-status", "approved")
    expect(approved.locator(".ledger-history")).to_contain_text("houqin.wang")
    expect(approved.locator(".ledger-history")).to_contain_text("周六补课，校长批准")
    with console_site.app.app_context():
        row = db.session.query(SubsidyEntry).filter_by(kind="approval").one()
        assert (row.recorded_by, row.reason, row.amount) == ("houqin.wang", "周六补课，校长批准", 20.0)

    with page.expect_download() as download:
        page.click("#ledger-csv")
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")  # the finance export
    assert text.splitlines()[0].startswith("教师编号,教师姓名")
    assert "批准" in text and "刘胜" in text and "20.00" in text
    with page.expect_download() as download:
        page.click("#ledger-xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
    assert sheet.cell(1, 1).value == "教师编号" and sheet.freeze_panes == "A2"
    shoot(page, artifacts, "console-ledger-desktop")
    page.click("#lang")
    expect(approved).to_contain_text("16.0 km · tier 3")
    expect(page.locator(".console-nav a[aria-current=page]")).to_have_text("Subsidies")
    expect(page.locator("#banner")).to_be_hidden()  # no error was shown in words either
    assert staff.errors == [] and staff.attempted == []


def test_staff_read_a_trip_audit_with_the_missed_stop_drawn(console_site, tab, artifacts):
    staff = open_console(tab, console_site, screen=f"audit?date={DATE}", **DESK)
    page = staff.page
    card = page.locator('.audit-trip[data-trip-id="20261123-zt-am-1-bus-07"]')
    expect(card).to_contain_text("朱亭早班1号线 · bus-07")
    expect(card.locator('tr[data-stop-id="shitang-cun"] td.status')).to_have_text("漏站")
    expect(card.locator('tr[data-stop-id="dongan-cun"] td.status')).to_have_text("已到站")
    expect(card.locator('tr[data-stop-id="longfeng-cun"] td').nth(2)).to_have_text("早 10 分钟")
    expect(card).to_contain_text(re.compile(r"偏离路线 06:5\d–07:0\d，最远 \d+ 米"))
    # the map: the planned route, the driven track, the deviation, 石塘村 marked missed
    drawn = page.locator("#audit-map")
    expect(drawn).to_have_attribute("data-trip-id", "20261123-zt-am-1-bus-07")
    missed = drawn.locator('[data-mark-id="shitang-cun"]')
    expect(missed).to_have_class(re.compile(r"\bmark stop missed\b"))
    expect(missed.locator("text")).to_have_text("石塘村 · 漏站")
    expect(drawn.locator('[data-mark-id="dongan-cun"]')).to_have_class(re.compile(r"\bvisited\b"))
    expect(drawn.locator("polyline.actual")).to_have_count(1)
    expect(drawn.locator("polyline.deviation")).to_have_count(1)
    assert len(drawn.locator("polyline.actual").get_attribute("points").split()) > 100

    page.select_option("#audit-kind", "missed")
    expect(page.locator(".audit-trip")).to_have_count(1)
    page.select_option("#audit-kind", "unobserved")
    expect(page.locator(".audit-trip")).to_have_count(0)
    expect(page.locator("#audit-count")).to_have_text("显示 0 个行程（共 1 个）")
    page.select_option("#audit-kind", "")
    assert page.locator("#audit-school option").all_inner_texts() == ["全部学校", "朱亭学校"]
    page.select_option("#audit-school", "zhuting")
    expect(page.locator(".audit-trip")).to_have_count(1)
    page.select_option("#audit-school", "")
    page.select_option("#audit-route", "zt-pm-1")
    expect(page.locator("#audit-count")).to_have_text("显示 0 个行程（共 0 个）")
    page.select_option("#audit-route", "zt-am-1")
    expect(page.locator(".audit-trip")).to_have_count(1)
    with page.expect_download() as download:
        page.click("#audit-csv")
    lines = Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("trip_id,route_id,route,vehicle_id,stop_id,stop,")
    assert any(",shitang-cun,石塘村," in line and ",missed," in line for line in lines)
    assert len(lines) == 5
    shoot(page, artifacts, "console-audit-desktop")
    expect(page.locator("#banner")).to_be_hidden()  # no error was shown in words either
    assert staff.errors == [] and staff.attempted == []


def test_staff_replay_a_vehicles_day_and_the_slider_moves_the_marker(console_site, tab, artifacts):
    staff = open_console(tab, console_site, **DESK)
    page = staff.page
    # without a base map the vehicles stand on the schematic of the user's routes, by kind
    bus = page.locator('#vehicle-schematic [data-mark-id="bus-07"]')
    expect(bus).to_have_class(re.compile(r"\bvehicle school_bus (online|offline)\b"))
    expect(page.locator("#vehicle-schematic polyline.planned-line")).to_have_count(2)  # zt-am/pm-1
    shoot(page, artifacts, "console-vehicles-desktop")
    page.click('#vehicles button[data-vehicle-id="bus-07"]')  # the vehicle's name opens its day
    expect(page.locator("#day-vehicle")).to_have_value("bus-07")
    expect(page.locator(".console-nav a[aria-current=page]")).to_have_text("车辆轨迹")
    page.fill("#day-date", DATE)
    page.dispatch_event("#day-date", "change")
    drawn = page.locator("#day-map")
    expect(drawn.locator("polyline.actual")).to_have_count(1)
    expect(drawn.locator(".mark.overspeed")).to_have_count(1)
    expect(drawn.locator(".mark.arrival")).to_have_count(3)  # 龙凤村, 东岸村, 朱亭学校
    expect(drawn.locator(".mark.missed")).to_have_count(1)
    expect(drawn.locator("polyline.deviation")).to_have_count(1)  # 06:56–07:03, dashed red
    expect(page.locator("#day-events li[data-kind=overspeed]")).to_contain_text("最高 78 km/h，限速 60 km/h")
    expect(page.locator("#day-events li[data-kind=stop_missed]")).to_contain_text("漏站 石塘村")
    expect(page.locator("#day-events li[data-kind=route_deviation_ended]")).to_contain_text("回到路线")
    expect(page.locator("#day-events li[data-kind=stop_arrived]").last).to_contain_text("到达 朱亭学校")
    pings = console_site.pings
    slider = page.locator("#day-slider")
    assert int(slider.get_attribute("max")) == len(pings) - 1
    cursor = drawn.locator(".cursor")
    expect(cursor).to_have_attribute("data-lat", str(pings[0]["lat"]))
    expect(page.locator("#day-at")).to_have_text("06:40 · 0 km/h")

    slider.fill("97")  # the speeding stretch
    expect(cursor).to_have_attribute("data-lat", str(pings[97]["lat"]))
    expect(cursor).to_have_attribute("data-lon", str(pings[97]["lon"]))
    expect(page.locator("#day-at")).to_have_text(re.compile(r"^06:5\d · 78 km/h$"))
    before = cursor.get_attribute("transform")
    slider.focus()
    page.keyboard.press("ArrowRight")
    expect(cursor).to_have_attribute("data-lat", str(pings[98]["lat"]))
    assert cursor.get_attribute("transform") != before
    page.click("#day-play")  # the replay runs on by itself
    page.wait_for_function("() => +document.getElementById('day-slider').value >= 110")
    page.click("#day-play")
    page.locator("#day-events li[data-kind=stop_missed]").click()  # an event puts the cursor there
    expect(page.locator("#day-at")).to_have_text(re.compile(r"^07:0[0-4] · "))
    shoot(page, artifacts, "console-day-desktop")
    expect(page.locator("#banner")).to_be_hidden()  # no error was shown in words either
    assert staff.errors == [] and staff.attempted == []


def test_a_logistics_user_of_one_school_sees_nothing_of_another_on_any_screen(console_site, tab,
                                                                           artifacts):
    staff = open_console(tab, console_site, who=OTHER_LOGISTICS)  # phone-sized
    page = staff.page
    foreign = ["bus-07", "朱亭早班", "朱亭晚班", "zt-am-1", "周敏", "湘B·D1234", "石塘村", "东岸村"]

    def nothing_foreign() -> None:
        text = page.locator("main").inner_text()
        assert [f for f in foreign if f in text] == []

    expect(page.locator('#vehicles tr[data-vehicle-id="bus-12"]')).to_have_count(1)
    expect(page.locator('#vehicles tr[data-vehicle-id="bus-07"]')).to_have_count(0)
    expect(page.locator("#vehicle-schematic polyline.planned-line")).to_have_count(1)  # lf-am-1
    assert page.locator("#vehicle-schematic [data-mark-id]").count() == 0  # none has a position
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # cards, no cut column
    nothing_foreign()
    shoot(page, artifacts, "console-vehicles-phone")

    page.click(".console-nav a[data-screen=ledger]")
    expect(page.locator("#ledger-teachers tbody tr")).to_have_count(1)  # 刘胜 teaches at 龙凤 too
    expect(page.locator('#ledger-teachers tr[data-teacher-id="t-liu"]')).to_have_count(1)
    nothing_foreign()
    shoot(page, artifacts, "console-ledger-phone")

    page.goto(console_site.url + f"/staff#audit?date={DATE}")
    expect(page.locator("#audit-count")).to_have_text("显示 0 个行程（共 0 个）")
    assert page.locator("#audit-route option").all_inner_texts() == ["全部线路", "龙凤早班1号线"]
    assert page.locator("#audit-school option").all_inner_texts() == ["全部学校", "龙凤学校"]
    nothing_foreign()
    shoot(page, artifacts, "console-audit-phone")

    page.goto(console_site.url + f"/staff#day?vehicle=bus-07&date={DATE}")
    page.wait_for_function("() => document.getElementById('day-vehicle').options.length > 0")
    options = page.locator("#day-vehicle option").evaluate_all("os => os.map(o => o.value)")
    assert "bus-07" not in options and "bus-12" in options
    expect(page.locator("#day-vehicle")).not_to_have_value("bus-07")
    nothing_foreign()
    shoot(page, artifacts, "console-day-phone")

    statuses = page.evaluate("""async (month) => {
        const h = {headers: {Authorization: "Bearer " + sessionStorage.getItem("xiaoche.token")}};
        const urls = ["/api/v1/vehicles/bus-07/track", "/api/v1/trips/20261123-zt-am-1-bus-07/track",
                      "/api/v1/subsidies?teacher_id=t-zhou&month=" + month,
                      "/pages/routes/zt-am-1/path", "/api/v1/audit/trips?date=2026-11-23&route_id=zt-am-1"];
        return Promise.all(urls.map(async (u) => (await fetch(u, h)).status));
    }""", "2026-11")
    assert statuses == [404] * 5
    directory = page.evaluate("""async () => (await fetch("/pages/staff/directory", {headers:
        {Authorization: "Bearer " + sessionStorage.getItem("xiaoche.token")}})).json()""")
    assert [t["teacher_id"] for t in directory["teachers"]] == ["t-liu"]
    assert [r["route_id"] for r in directory["routes"]] == ["lf-am-1"]
    expect(page.locator("#banner")).to_be_hidden()
    assert staff.errors == [] or all("404" in e for e in staff.errors)
    assert staff.attempted == []


def test_the_directory_is_for_staff_only(console_site):
    client = console_site.app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": "wang.jun",
                                                     "password": "demo-parent-2"}).get_json()
    parent = client.get("/pages/staff/directory",
                        headers={"Authorization": f"Bearer {token['access_token']}"})
    assert parent.status_code == 404
    assert client.get("/pages/staff/directory").status_code == 401
    admin = client.post("/api/v1/auth/token", json={"username": "admin",
                                                    "password": "demo-admin-1"}).get_json()
    everything = client.get("/pages/staff/directory",
                            headers={"Authorization": f"Bearer {admin['access_token']}"}).get_json()
    assert [t["teacher_id"] for t in everything["teachers"]] == ["t-liu", "t-zhou"]
    assert {r["route_id"] for r in everything["routes"]} == {"zt-am-1", "zt-pm-1", "lf-am-1"}


@pytest.fixture(scope="module")
def county_file(tmp_path_factory):
    return county_tiles(tmp_path_factory.mktemp("tiles") / "county.mbtiles", *BOX, zooms=ZOOMS)


@pytest.fixture
def tiled_console_site(app, sample_bundle, _migrated, tmp_path, county_file):
    """The console's day on an app configured with the test's MBTiles base map."""
    from backend.extensions import db
    from tests.conftest import make_test_app

    pings = console_day(app, sample_bundle)
    tiled = make_test_app(_migrated, tmp_path / "tiled", MAP_TILES=f"mbtiles://{county_file}",
                          MAP_TILES_CRS="wgs84")
    tiled.config.update(MAX_PING_AGE_S=0.0, MAX_FUTURE_S=10 * 365 * 86400.0)
    try:
        with serving(tiled) as served:
            served.pings = pings
            yield served
    finally:
        with tiled.app_context():
            db.session.remove()
            db.engine.dispose()


def tiles_of(page, holder: str) -> None:
    page.wait_for_function("""(holder) => {
        const tiles = [...document.querySelectorAll(holder + " img.leaflet-tile")];
        return tiles.length > 0 && tiles.every(t => t.complete && t.naturalWidth === 256)
          && !document.querySelector(holder + " .leaflet-zoom-anim");
    }""", arg=holder)


def on_tiles(page, holder: str, lat: float, lon: float) -> tuple[float, float]:
    """Where (lat, lon) is on screen by the tile images of ``holder``'s map (as test_maps does)."""
    z = page.evaluate("""(holder) => Math.max(...[...document.querySelectorAll(
        holder + " img.leaflet-tile")].map(t => parseInt(t.src.split("/tiles/")[1], 10)))""", holder)
    fx, fy = tile_of(lat, lon, z)
    box = page.evaluate("""([holder, src]) => {
        const tile = [...document.querySelectorAll(holder + " img.leaflet-tile")]
          .find(t => new URL(t.src).pathname === src);
        if (!tile) return null;
        const r = tile.getBoundingClientRect();
        return [r.left, r.top, r.width, r.height];
    }""", [holder, f"/tiles/{z}/{int(fx)}/{int(fy)}"])
    assert box is not None
    return box[0] + (fx - int(fx)) * box[2], box[1] + (fy - int(fy)) * box[3]


def centre(locator) -> tuple[float, float]:
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_on_a_base_map_the_missed_stop_and_the_replay_sit_where_they_are(tiled_console_site, tab,
                                                                          artifacts, sample_bundle):
    site = tiled_console_site
    staff = open_console(tab, site, screen=f"audit?date={DATE}", **DESK)
    page = staff.page
    missed = page.locator('#audit-map .base-map [data-mark-id="shitang-cun"]')
    expect(missed).to_have_class(re.compile(r"\bmark stop missed\b"))
    expect(page.locator("#audit-map .base-map path.deviation")).to_have_count(1)
    tiles_of(page, "#audit-map")
    stop = next(s for s in sample_bundle["stops"] if s["id"] == "shitang-cun")
    x, y = on_tiles(page, "#audit-map", stop["lat"], stop["lon"])
    assert math.dist(centre(missed), (x, y)) < 1.5
    shoot(page, artifacts, "console-audit-basemap-desktop")

    page.goto(site.url + f"/staff#day?vehicle=bus-07&date={DATE}")
    cursor = page.locator("#day-map .base-map path.cursor")
    expect(cursor).to_have_attribute("data-lat", str(site.pings[0]["lat"]))
    page.locator("#day-slider").fill("150")
    ping = site.pings[150]
    expect(cursor).to_have_attribute("data-lat", str(ping["lat"]))
    tiles_of(page, "#day-map")
    x, y = on_tiles(page, "#day-map", ping["lat"], ping["lon"])
    assert math.dist(centre(cursor), (x, y)) < 1.5
    shoot(page, artifacts, "console-day-basemap-desktop")
    expect(page.locator("#banner")).to_be_hidden()
    assert staff.errors == [] and staff.attempted == []
