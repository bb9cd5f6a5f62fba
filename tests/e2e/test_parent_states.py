"""The parents' page beyond "the bus is N minutes away": after the trip (when it reached school,
the next run), a position gone old, the page's own connection lost, every stop labelled on the
map (schematic and base map), and the notifications in the reader's own language.

王芳 (wang.jun's daughter) waits at 石塘村 on 朱亭早班1号线, which ends at 朱亭学校; 李明
(zhang.lanlan's son) boards the same route at 龙凤村. The tab may reach loopback only.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from tests.conftest import login
from tests.e2e.offline import loopback_only
from tests.e2e.test_maps import tile_file, tiled_site, wait_for_tiles  # noqa: F401  (fixtures)
from tests.e2e.test_pages import PARENT, bus_on_its_way
from tests.e2e.world import bus_run, every

ZONE = ZoneInfo("Asia/Shanghai")
OTHER_PARENT_SAME_ROUTE = ("zhang.lanlan", "demo-parent-1")  # 李明 at 龙凤村 on zt-am-1
STATIC = Path(__file__).resolve().parents[2] / "backend" / "pages" / "static"
CJK = re.compile(r"[\u4e00-\u9fff]")


def local(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZONE)


def hhmm(iso: str) -> str:
    return local(iso).strftime("%H:%M")


def trip_done(site):
    """bus-07 left 龙凤村 12 minutes ago and reached 朱亭学校 some 4 minutes ago (the leg
    takes about 12 min 30 s), its trip completed."""
    leg = bus_run("zt-am-1", depart_in_s=-720.0)
    site.run(leg)
    site.feed("dev-bus-07", leg, every(leg.starts_at, time.time()))
    return leg


def api(site, who, path, method="get", **kwargs):
    client = site.app.test_client()
    return getattr(client, method)(path, headers=login(client, *who), **kwargs)


def labels_apart(page, selector: str) -> dict:
    """The labels' texts and whether any two of them overlap (screen boxes)."""
    return page.evaluate("""(selector) => {
        const els = [...document.querySelectorAll(selector)];
        const boxes = els.map(e => e.getBoundingClientRect());
        let overlaps = 0;
        for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
          const a = boxes[i], b = boxes[j];
          if (a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5
              && b.top < a.bottom - 0.5) overlaps++;
        }
        return {texts: els.map(e => e.textContent), overlaps: overlaps,
                ids: els.map(e => e.getAttribute("data-stop-id")),
                visible: boxes.every(b => b.width > 0 && b.height > 0)};
    }""", selector)


def test_after_the_trip_a_parent_sees_when_the_bus_reached_school_and_the_next_run(
        site, tab, artifacts):
    trip_done(site)
    body = api(site, PARENT, "/api/v1/routes/zt-am-1/live").get_json()
    assert body["active"] is False and body["last_trip"] is not None
    arrived = hhmm(body["last_trip"]["arrived_at_last_stop"])
    nxt = body["next_run"]
    today = dt.datetime.now(ZONE).date()
    day = dt.date.fromisoformat(nxt["service_date"])
    when = hhmm(nxt["departs_at"])
    if day == today + dt.timedelta(days=1):
        when = "明天 " + when
    elif day != today:
        when = f"{day.month}月{day.day}日 " + when

    parent = tab()
    page = parent.page
    attempted = loopback_only(page)
    parent.login(site.url, *PARENT, lands_on="/parent")
    card = page.locator("article.child")
    eta = card.locator(".eta-line")
    expect(eta).to_have_text(f"今日已到校 {arrived}")
    expect(card.locator(".eta-sub")).to_have_text(f"下一班 {when}")
    assert "尚未开始" not in card.inner_text()
    school = card.locator(".stop-list li").last
    expect(school).to_contain_text(f"到达 {arrived}")
    expect(card.locator(".stop-list li", has_text="未到站")).to_have_count(0)
    expect(card.locator("svg .bus[visibility=visible]")).to_have_count(0)
    page.screenshot(path=str(artifacts / "parent-finished-phone.png"))

    page.click("#lang")
    expect(eta).to_have_text(f"Arrived at school today at {arrived}")
    expect(card.locator(".eta-sub")).to_have_text(re.compile(r"^Next run .*\d\d:\d\d$"))
    assert attempted == [] and parent.errors == []


def test_an_old_position_during_a_trip_is_shown_as_old(site, tab, artifacts):
    leg = bus_run("zt-am-1", depart_in_s=-220.0)
    site.run(leg)
    sent = site.feed("dev-bus-07", leg, every(leg.starts_at, time.time() - 150))
    parent = tab()
    page = parent.page
    attempted = loopback_only(page)
    parent.login(site.url, *PARENT, lands_on="/parent")
    card = page.locator("article.child")
    stale = card.locator(".stale-line")
    last_fix = dt.datetime.fromtimestamp(sent[-1]["ts"], ZONE).strftime("%H:%M")
    expect(stale).to_have_text(re.compile(rf"^位置信息已 [23] 分钟未更新（最后定位 {last_fix}）$"))
    expect(stale).to_be_visible()
    bus = card.locator("svg .bus")
    expect(bus).to_have_attribute("visibility", "visible")
    expect(bus).to_have_attribute("data-stale", "true")
    expect(bus).to_have_class(re.compile(r"\bstale\b"))
    page.screenshot(path=str(artifacts / "parent-stale-phone.png"))

    # a fresh ping over the stream: the page says nothing of old positions any more
    page.wait_for_selector("#stream-status.live")
    site.feed("dev-bus-07", leg, [time.time()])
    expect(stale).to_be_hidden()
    expect(bus).to_have_attribute("data-stale", "false")
    assert attempted == [] and parent.errors == []


def test_when_the_page_loses_its_connection_it_says_so_and_recovers(site, tab, artifacts):
    # Chromium's offline emulation leaves an open stream alone; here the server ends each stream
    # after 2 s, so the page meets the lost network when it reconnects, as a phone does when its
    # connection drops
    site.app.config["STREAM_MAX_S"] = 2
    bus_on_its_way(site)
    parent = tab()
    page = parent.page
    attempted = loopback_only(page)
    parent.login(site.url, *PARENT, lands_on="/parent")
    status = page.locator("#stream-status")
    expect(status).to_have_class(re.compile(r"\blive\b"))
    expect(page.locator("svg .bus")).to_have_attribute("data-stale", "false")

    page.context.set_offline(True)
    expect(status).to_have_class(re.compile(r"\boffline\b"))
    expect(status).to_have_text(re.compile(r"^网络连接已断开：显示的是 \d\d:\d\d 的信息，正在重试…$"))
    expect(page.locator("svg .bus")).to_have_attribute("data-stale", "true")
    page.screenshot(path=str(artifacts / "parent-offline-phone.png"))

    page.context.set_offline(False)
    expect(status).to_have_class(re.compile(r"\blive\b"), timeout=30_000)
    expect(status).to_have_text("实时更新中")
    expect(page.locator("svg .bus")).to_have_attribute("data-stale", "false")
    assert attempted == []
    # what the browser logs of the requests that failed offline, and nothing else
    assert all("ERR_INTERNET_DISCONNECTED" in e or "Failed to load" in e for e in parent.errors), \
        parent.errors


def test_every_stop_is_labelled_on_the_schematic_map_and_no_labels_overlap(site, tab, artifacts):
    bus_on_its_way(site)
    parent = tab()
    page = parent.page
    loopback_only(page)
    parent.login(site.url, *PARENT, lands_on="/parent")
    card = page.locator("article.child")
    expect(card.locator("svg .stop")).to_have_count(4)
    expect(card.locator("svg text.stop-label")).to_have_count(4)
    names = card.locator(".stop-list li .stop-name").all_text_contents()
    drawn = labels_apart(page, "svg text.stop-label")
    assert drawn["texts"] == names  # four stops on a phone: room for every name
    assert drawn["overlaps"] == 0 and drawn["visible"]
    page.screenshot(path=str(artifacts / "parent-labels-phone.png"))
    assert parent.errors == []


def test_crowded_stops_keep_a_label_each_without_overlapping(browser):
    """Fourteen stops a few hundred metres apart with long names on a phone-wide map: every stop
    keeps a label (its name, or its number in the list when the name finds no room), the child's
    stop and the next one by name, and no label covers another label or a stop's dot."""
    stops = [{"stop_id": f"s{i}", "name": f"第{i + 1}村民委员会门口站", "lat": 27.44 + 0.0012 * i,
              "lon": 113.22 + 0.0021 * i + 0.0008 * (i % 2)} for i in range(14)]
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        page.set_content('<!doctype html><html><head><script type="application/json" id="xc-i18n">'
                         '{"zh-CN": {}, "en": {}}</script></head><body data-timezone="Asia/Shanghai">'
                         '<div id="map" style="width: 358px"></div></body></html>')
        page.add_style_tag(content=(STATIC / "app.css").read_text(encoding="utf-8"))
        page.add_script_tag(content=(STATIC / "common.js").read_text(encoding="utf-8"))
        page.add_script_tag(content=(STATIC / "routemap.js").read_text(encoding="utf-8"))
        page.evaluate("""(stops) => {
            const map = new XC.RouteMap(document.getElementById("map"),
              {path: stops.map(s => [s.lat, s.lon]), stops: stops, highlight: "s6"});
            map.setNext("s9");
        }""", stops)
        drawn = labels_apart(page, "svg text.stop-label")
        by_stop = dict(zip(drawn["ids"], drawn["texts"], strict=True))
        assert sorted(by_stop) == sorted(s["stop_id"] for s in stops)
        for i, stop in enumerate(stops):
            assert by_stop[stop["stop_id"]] in (stop["name"], str(i + 1))
        assert by_stop["s6"] == stops[6]["name"] and by_stop["s9"] == stops[9]["name"]
        named = sum(by_stop[s["stop_id"]] == s["name"] for s in stops)
        assert 2 <= named < len(stops)  # crowded: some go by number, which is the point
        assert drawn["overlaps"] == 0 and drawn["visible"]
        covered = page.evaluate("""() => {
            const dots = [...document.querySelectorAll("svg .stop circle")]
              .map(c => c.getBoundingClientRect());
            return [...document.querySelectorAll("svg text.stop-label")].filter(t => {
              const a = t.getBoundingClientRect();
              return dots.some(b => a.left < b.right - 0.5 && b.left < a.right - 0.5
                && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5);
            }).length; }""")
        assert covered == 0
    finally:
        context.close()


def test_every_stop_is_labelled_on_the_base_map(tiled_site, tab, artifacts):  # noqa: F811
    bus_on_its_way(tiled_site)
    parent = tab()
    page = parent.page
    attempted = loopback_only(page)
    parent.login(tiled_site.url, *PARENT, lands_on="/parent")
    card = page.locator("article.child")
    expect(card.locator(".leaflet-tooltip.stop-label")).to_have_count(4)
    wait_for_tiles(page)
    names = card.locator(".stop-list li .stop-name").all_text_contents()
    drawn = labels_apart(page, ".leaflet-tooltip.stop-label")
    assert sorted(drawn["texts"]) == sorted(names) and drawn["overlaps"] == 0 and drawn["visible"]
    page.screenshot(path=str(artifacts / "parent-basemap-labels-phone.png"))
    assert attempted == [] and parent.errors == []


def test_each_parent_reads_notifications_in_their_own_language(site, tab, artifacts):
    # wang.jun reads English (set in the API before the trip); zhang.lanlan keeps the default
    put = api(site, PARENT, "/api/v1/me/preferences", method="put",
              json={"language": "en", "notify_before_min": 8})
    assert put.status_code == 200 and put.get_json()["language"] == "en"
    trip_done(site)

    en = api(site, PARENT, "/api/v1/me/notifications").get_json()["items"]
    zh = api(site, OTHER_PARENT_SAME_ROUTE, "/api/v1/me/notifications").get_json()["items"]
    assert "bus_arrived_school" in {n["kind"] for n in en} & {n["kind"] for n in zh}
    assert all(not CJK.search(n["title"]) for n in en), [n["title"] for n in en]
    assert all(CJK.search(n["title"]) for n in zh), [n["title"] for n in zh]

    english = tab()
    english.login(site.url, *PARENT, lands_on="/parent")
    page = english.page
    expect(page.locator("h1.page-title")).to_have_text("My children")  # the account's language
    expect(page.locator('#notifications li[data-kind="bus_arrived_school"]')).to_contain_text(
        "Arrived at school")
    expect(page.locator(".eta-line")).to_have_text(re.compile(r"^Arrived at school today at"))
    page.screenshot(path=str(artifacts / "parent-english-notifications-phone.png"))

    chinese = tab()
    chinese.login(site.url, *OTHER_PARENT_SAME_ROUTE, lands_on="/parent")
    page = chinese.page
    expect(page.locator("h1.page-title")).to_have_text("我的孩子")
    expect(page.locator('#notifications li[data-kind="bus_arrived_school"]')).to_contain_text(
        "校车已到校")

    # the toggle sets the account's language too (and leaves the other preferences alone)
    page.click("#lang")
    expect(page.locator("h1.page-title")).to_have_text("My children")
    deadline = time.time() + 10
    while api(site, OTHER_PARENT_SAME_ROUTE, "/api/v1/me/preferences").get_json()["language"] \
            != "en" and time.time() < deadline:
        time.sleep(0.2)
    prefs = api(site, OTHER_PARENT_SAME_ROUTE, "/api/v1/me/preferences").get_json()
    assert prefs["language"] == "en"
    assert api(site, PARENT, "/api/v1/me/preferences").get_json()["notify_before_min"] == 8
    # wang.jun switches back to Chinese on the page: saved, their other preferences kept
    english.page.click("#lang")
    expect(english.page.locator("h1.page-title")).to_have_text("我的孩子")
    deadline = time.time() + 10
    while api(site, PARENT, "/api/v1/me/preferences").get_json()["language"] != "zh-CN" \
            and time.time() < deadline:
        time.sleep(0.2)
    prefs = api(site, PARENT, "/api/v1/me/preferences").get_json()
    assert prefs["language"] == "zh-CN" and prefs["notify_before_min"] == 8
    assert english.errors == [] and chinese.errors == []
