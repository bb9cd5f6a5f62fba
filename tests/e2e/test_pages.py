"""The parents' and staff pages in Chromium, against the real app, database and ingest pipeline.

王芳 (wang.jun's daughter) waits at 石塘村, the second stop of 朱亭早班1号线: with bus-07 a few
hundred metres out of 龙凤村 the page must say how many minutes it is from her stop, move the
bus when a ping arrives (over /stream), list messages as they come, and switch to English.
"""

from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from tests.e2e.world import bus_run, every

PARENT = ("wang.jun", "demo-parent-2")  # 王芳 at 石塘村 on zt-am-1
OTHER_PARENT = ("liu.hua", "demo-parent-3")  # 刘洋 at 太湖村 on lf-am-1
LOGISTICS = ("houqin.wang", "demo-logistics-1")  # 朱亭学校: bus-07's routes
BUS = "svg .bus"


def bus_on_its_way(site):
    """bus-07 left 龙凤村 20 s ago on a run of zt-am-1; positions every 5 s until now."""
    leg = bus_run("zt-am-1", depart_in_s=-20.0)
    site.run(leg)
    site.feed("dev-bus-07", leg, every(leg.starts_at, time.time()))
    return leg


def bus_marker_at(page, lat: float, lon: float, timeout_ms: int = 10_000) -> None:
    page.wait_for_function(
        """([lat, lon]) => {
             const bus = document.querySelector("svg .bus");
             return bus && bus.getAttribute("visibility") === "visible"
               && Math.abs(parseFloat(bus.dataset.lat) - lat) < 1e-6
               && Math.abs(parseFloat(bus.dataset.lon) - lon) < 1e-6;
           }""", arg=[lat, lon], timeout=timeout_ms)


def test_a_parent_follows_the_bus_to_their_childs_stop_live_and_in_english(site, tab):
    leg = bus_on_its_way(site)
    parent = tab()
    parent.login(site.url, *PARENT, lands_on="/parent")
    page = parent.page

    card = page.locator("article.child")
    expect(card).to_have_count(1)
    expect(card.locator(".child-title")).to_have_text("王芳 · 朱亭早班1号线")
    eta = card.locator(".eta-line")
    expect(eta).to_have_text(re.compile(r"^校车约[1-3]分钟后到达石塘村$"))
    expect(card.locator("svg polyline.route-line")).to_have_count(1)
    expect(card.locator("svg .stop")).to_have_count(4)
    assert card.locator("svg .stop.child-stop title").text_content() == "石塘村"
    stops = card.locator(".stop-list li")
    expect(stops).to_have_count(4)
    expect(stops.nth(1)).to_contain_text("孩子的站点")
    expect(stops.nth(0)).to_have_class(re.compile(r"\bvisited\b"))

    page.wait_for_selector("#stream-status.live")
    before = page.locator(BUS).get_attribute("data-lat")
    sent = site.feed("dev-bus-07", leg, [time.time()])[-1]
    bus_marker_at(page, sent["lat"], sent["lon"])  # moved by the stream's position event
    assert page.locator(BUS).get_attribute("data-lat") != before

    page.click("#lang")
    expect(eta).to_have_text(re.compile(r"^The bus will reach 石塘村 in about [1-3] min$"))
    expect(page.locator("h1.page-title")).to_have_text("My children")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.click("#lang")
    expect(eta).to_have_text(re.compile(r"^校车约"))
    assert parent.errors == []


def test_a_message_to_the_route_appears_in_the_parents_list(site, tab):
    bus_on_its_way(site)
    parent = tab()
    parent.login(site.url, *PARENT, lands_on="/parent")
    page = parent.page
    page.wait_for_selector("#stream-status.live")

    client = site.app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": LOGISTICS[0],
                                                     "password": LOGISTICS[1]}).get_json()
    sent = client.post("/api/v1/routes/zt-am-1/messages",
                       headers={"Authorization": f"Bearer {token['access_token']}"},
                       json={"title": "校车晚点", "body": "因道路施工，早班车晚到约10分钟。"})
    assert sent.status_code == 201
    item = page.locator("#notifications li", has_text="校车晚点")
    expect(item).to_contain_text("因道路施工")
    expect(page.locator("#no-notifications")).to_be_hidden()
    assert parent.errors == []


def test_a_parent_sees_only_their_own_childs_route(site, tab):
    bus_on_its_way(site)
    parent = tab()
    parent.login(site.url, *OTHER_PARENT, lands_on="/parent")
    page = parent.page
    expect(page.locator("article.child .child-title")).to_have_text(["刘洋 · 龙凤早班1号线"])
    expect(page.locator(".eta-line")).to_have_text("今日行程尚未开始")
    assert "朱亭早班1号线" not in page.locator("main").inner_text()
    time.sleep(1.0)  # a stream that leaked bus-07 would have drawn it by now
    assert page.locator(f"{BUS}[visibility=visible]").count() == 0
    other = page.evaluate("""async () => (await fetch("/pages/routes/zt-am-1/path",
        {headers: {Authorization: "Bearer " + sessionStorage.getItem("xiaoche.token")}})).status""")
    assert other == 404
    assert parent.errors == [] or all("404" in e for e in parent.errors)


def test_staff_see_bus_07_online_and_its_overspeed(site, tab):
    # bus-07 left 龙凤村 7 minutes ago and drove its last stretch at 68 km/h (limit 60); it
    # stands at 朱亭学校 now, its trip done
    leg = bus_run("zt-am-1", depart_in_s=-430.0, speeding_kmh=68.0)
    site.run(leg)
    site.feed("dev-bus-07", leg, every(leg.starts_at, time.time()))
    staff = tab()
    staff.login(site.url, *LOGISTICS, lands_on="/staff")
    page = staff.page
    row = page.locator('#vehicles tr[data-vehicle-id="bus-07"]')
    expect(row.locator("td.status")).to_have_text("在线")
    expect(row).to_contain_text("湘B·D1234")
    exception = page.locator('#exceptions li[data-kind="overspeed"]').first
    expect(exception).to_contain_text("超速")
    expect(exception).to_contain_text("bus-07")
    expect(exception).to_contain_text(re.compile(r"最高 6\d km/h，限速 60 km/h"))
    page.click("#lang")
    expect(row.locator("td.status")).to_have_text("Online")
    expect(exception).to_contain_text("Speeding")
    assert staff.errors == []


def test_a_wrong_password_is_said_in_words_and_keeps_the_login_page(site, tab):
    login = tab()
    page = login.page
    page.goto(site.url + "/")
    page.fill("#username", "wang.jun")
    page.fill("#password", "not-the-password")
    page.click("#login-submit")
    error = page.locator("#login-error")
    expect(error).to_have_text("用户名或密码错误，请重新输入。")
    assert page.url == site.url + "/"
    page.click("#lang")
    expect(error).to_have_text("Wrong username or password; please try again.")
    # the browser reports the 401 of the login request itself, and nothing else
    assert all("401" in e for e in login.errors)


def test_an_expired_or_forged_token_goes_back_to_the_login_page_with_a_word_why(site, tab):
    parent = tab()
    page = parent.page
    page.goto(site.url + "/")
    page.evaluate("""() => { sessionStorage.setItem("xiaoche.token", "forged.token.value");
                             sessionStorage.setItem("xiaoche.role", "parent"); }""")
    page.goto(site.url + "/parent")
    page.wait_for_url(site.url + "/")
    expect(page.locator("#login-error")).to_have_text("登录已过期，请重新登录。")


def test_the_pages_fit_a_phone_and_work_without_a_login(site, tab):
    phone = tab(width=360, height=640)
    page = phone.page
    page.goto(site.url + "/staff")  # no token: straight to the login page, no error
    page.wait_for_url(site.url + "/")
    expect(page.locator("#login-error")).to_be_hidden()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360
    expect(page.locator("label[for=username]")).to_have_text("用户名")
    assert phone.errors == []
