"""The parents' and staff pages on a base map: Leaflet (from PyPI, served by xiaoche) over tiles
xiaoche serves itself from an MBTiles file the test makes — PNG tiles of one distinctive colour
around the sample district — with the tab allowed nothing but loopback.

The bus marker must sit where the vehicle is *on the tiles*: its screen position is checked
against the tile image that holds the point, computed here in Python (Web Mercator), not asked
of Leaflet. With GCJ-02 tiles (AMap, Tencent) the drawn point is the GCJ-02 one of
``routing/gcj02.py`` — in 渌口 about 660 m off the WGS-84 one (360 m south, 560 m east), some
40 pixels at the zoom a phone shows the route at.
Without a tile source the page keeps the schematic view and says why.
"""

from __future__ import annotations

import math
import re
import time

import pytest
from playwright.sync_api import expect

from backend.maps.tilefiles import tile_of
from routing.gcj02 import wgs84_to_gcj02
from tests.conftest import make_test_app
from tests.e2e.conftest import serving
from tests.e2e.offline import loopback_only
from tests.e2e.test_pages import LOGISTICS, PARENT, bus_on_its_way, every
from tests.e2e.world import bus_run
from tests.tilesets import FILL, county_tiles

# the sample district's routes and their GCJ-02 shift (~+0.005° lon, −0.003° lat), with room
BOX = (113.18, 27.41, 113.29, 27.50)
ZOOMS = range(10, 17)
MARKER = ".bus-marker"


@pytest.fixture(scope="module")
def tile_file(tmp_path_factory):
    return county_tiles(tmp_path_factory.mktemp("tiles") / "county.mbtiles", *BOX, zooms=ZOOMS)


@pytest.fixture
def tiled_site(request, imported, _migrated, tmp_path, tile_file):
    """The served app with ``XIAOCHE_MAP_TILES=mbtiles://…`` and the datum of the test's
    ``datum`` parameter, on the same (imported) database as ``app``."""
    from backend.extensions import db

    datum = getattr(request, "param", "wgs84")
    tiled = make_test_app(_migrated, tmp_path / "instance", MAP_TILES=f"mbtiles://{tile_file}",
                          MAP_TILES_CRS=datum)
    try:
        with serving(tiled) as served:
            yield served
    finally:
        with tiled.app_context():
            db.session.remove()
            db.engine.dispose()


def wait_for_tiles(page) -> None:
    page.wait_for_function("""() => {
        const tiles = [...document.querySelectorAll(".base-map img.leaflet-tile")];
        return tiles.length > 0 && tiles.every(t => t.complete && t.naturalWidth === 256)
          && !document.querySelector(".base-map .leaflet-zoom-anim");
    }""")


def screen_point(page, lat: float, lon: float) -> tuple[float, float, int]:
    """Where (lat, lon) is on screen by the tiles drawn: the tile image that holds the point at
    the zoom the map shows (its src /tiles/z/x/y), plus the point's fraction of that tile."""
    z = page.evaluate("""() => Math.max(...[...document.querySelectorAll(
        ".base-map img.leaflet-tile")].map(t => parseInt(t.src.split("/tiles/")[1], 10)))""")
    fx, fy = tile_of(lat, lon, z)
    src = f"/tiles/{z}/{int(fx)}/{int(fy)}"
    box = page.evaluate("""(src) => {
        const tile = [...document.querySelectorAll(".base-map img.leaflet-tile")]
          .find(t => new URL(t.src).pathname === src);
        if (!tile) return null;
        const r = tile.getBoundingClientRect();
        return [r.left, r.top, r.width, r.height];
    }""", src)
    assert box is not None, f"no tile {src} on the map"
    left, top, width, height = box
    return left + (fx - int(fx)) * width, top + (fy - int(fy)) * height, z


def marker_centre(page) -> tuple[float, float]:
    box = page.locator(MARKER).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def tile_colour(page, src: str) -> list[int]:
    """The colour the browser decoded in the middle of a tile image (same origin: readable)."""
    return page.evaluate("""(src) => {
        const tile = [...document.querySelectorAll(".base-map img.leaflet-tile")]
          .find(t => new URL(t.src).pathname === src);
        const canvas = document.createElement("canvas");
        canvas.width = canvas.height = 256;
        const g = canvas.getContext("2d");
        g.drawImage(tile, 0, 0);
        return [...g.getImageData(128, 128, 1, 1).data].slice(0, 3);
    }""", src)


@pytest.mark.parametrize("tiled_site", ["wgs84", "gcj02"], indirect=True)
def test_a_parent_sees_the_bus_on_the_road_of_a_tile_map_served_from_an_mbtiles_file(
        tiled_site, tab, artifacts):
    site = tiled_site
    datum = site.app.config["MAP_TILES_CRS"]
    leg = bus_on_its_way(site)
    parent = tab()
    page = parent.page
    attempted = loopback_only(page)
    tiles_served: list[str] = []
    page.on("response", lambda r: tiles_served.append(f"{r.status} {r.url}")
            if "/tiles/" in r.url else None)
    parent.login(site.url, *PARENT, lands_on="/parent")

    card = page.locator("article.child")
    expect(card.locator(".eta-line")).to_have_text(re.compile(r"^校车约[1-3]分钟后到达石塘村$"))
    expect(card.locator(".base-map")).to_be_visible()
    expect(card.locator(".map-note")).to_have_count(0)  # a base map: no "schematic" note
    expect(card.locator("svg .bus")).to_have_count(0)
    expect(card.locator(".leaflet-control-attribution")).to_contain_text("测试瓦片 · test tiles")
    expect(card.locator("path.stop")).to_have_count(4)
    expect(card.locator("path.route-line")).to_have_count(1)
    expect(card.locator(".leaflet-tooltip.stop-label.child-stop")).to_have_text("石塘村")

    page.wait_for_selector("#stream-status.live")
    sent = site.feed("dev-bus-07", leg, [time.time()])[-1]  # over /stream
    page.wait_for_function("""([lat, lon]) => {
        const bus = document.querySelector(".bus-marker");
        return bus && Math.abs(parseFloat(bus.dataset.lat) - lat) < 1e-9
          && Math.abs(parseFloat(bus.dataset.lon) - lon) < 1e-9; }""", arg=[sent["lat"], sent["lon"]])
    wait_for_tiles(page)

    # drawn at the vehicle's position in the tiles' datum: the Python conversion's point
    expected = wgs84_to_gcj02(sent["lat"], sent["lon"]) if datum == "gcj02" else (sent["lat"],
                                                                                    sent["lon"])
    marker = page.locator(MARKER)
    drawn = (float(marker.get_attribute("data-map-lat")), float(marker.get_attribute("data-map-lon")))
    assert drawn == pytest.approx(expected, abs=1e-9)
    leaflet = page.evaluate("""() => { const m = document.querySelector(".map-canvas").xcMap;
        const at = m.bus.getLatLng(); return [at.lat, at.lng]; }""")
    assert leaflet == pytest.approx(expected, abs=1e-9)

    # ... and on screen where that point is on the tile images
    x, y, z = screen_point(page, *expected)
    cx, cy = marker_centre(page)
    assert math.hypot(cx - x, cy - y) < 1.5, (cx, cy, x, y)
    wx, wy, _ = screen_point(page, sent["lat"], sent["lon"])
    if datum == "gcj02":  # the shift is real on screen: the WGS-84 point is well off the road
        assert math.hypot(cx - wx, cy - wy) > 20
    else:
        assert (wx, wy) == (x, y)

    fx, fy = tile_of(*expected, z)
    assert tile_colour(page, f"/tiles/{z}/{int(fx)}/{int(fy)}") == list(FILL)
    assert tiles_served and all(r.startswith("200 ") for r in tiles_served), tiles_served[:5]
    assert attempted == []
    page.screenshot(path=str(artifacts / f"parent-basemap-{datum}-phone.png"))

    desktop = tab(width=1280, height=900)
    desktop_attempted = loopback_only(desktop.page)
    desktop.login(site.url, *PARENT, lands_on="/parent")
    wait_for_tiles(desktop.page)
    expect(desktop.page.locator(MARKER)).to_be_visible()
    desktop.page.screenshot(path=str(artifacts / f"parent-basemap-{datum}-desktop.png"))
    assert desktop_attempted == []
    assert parent.errors == [] and desktop.errors == []


def test_the_staff_page_shows_a_vehicle_where_it_is_on_the_base_map(tiled_site, tab, artifacts):
    site = tiled_site
    leg = bus_run("zt-am-1", depart_in_s=-60.0)
    site.run(leg)
    site.feed("dev-bus-07", leg, every(leg.starts_at, time.time()))
    staff = tab(width=1280, height=900)
    page = staff.page
    attempted = loopback_only(page)
    staff.login(site.url, *LOGISTICS, lands_on="/staff")
    marker = page.locator('.vehicle-marker[data-vehicle-id="bus-07"]')
    expect(marker).to_be_visible()
    expect(page.locator("#vehicle-map-note")).to_have_count(0)
    wait_for_tiles(page)
    row = page.locator('#vehicles tr[data-vehicle-id="bus-07"]')
    expect(row.locator("td.status")).to_have_text("在线")
    lat, lon = float(marker.get_attribute("data-lat")), float(marker.get_attribute("data-lon"))
    x, y, _ = screen_point(page, lat, lon)
    box = marker.bounding_box()
    assert math.hypot(box["x"] + box["width"] / 2 - x, box["y"] + box["height"] / 2 - y) < 1.5
    assert attempted == []
    page.screenshot(path=str(artifacts / "staff-basemap-desktop.png"))
    assert staff.errors == []


def test_without_a_tile_source_the_pages_keep_the_schematic_view_and_say_why(site, tab, artifacts):
    bus_on_its_way(site)
    parent = tab()
    page = parent.page
    attempted = loopback_only(page)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    parent.login(site.url, *PARENT, lands_on="/parent")
    card = page.locator("article.child")
    expect(card.locator("svg polyline.route-line")).to_have_count(1)
    expect(card.locator("svg .bus[visibility=visible]")).to_have_count(1)
    note = card.locator(".map-canvas .map-note")
    expect(note).to_have_text("示意图：未配置底图，不显示道路")
    expect(note).to_be_visible()
    assert page.evaluate("typeof L") == "undefined"  # Leaflet is not even loaded
    assert card.locator(".base-map").count() == 0
    page.screenshot(path=str(artifacts / "parent-schematic-phone.png"))
    page.click("#lang")
    expect(note).to_have_text("Schematic: no base map is configured, so roads are not shown")
    assert not [u for u in requested if "/tiles/" in u or "leaflet" in u]
    assert attempted == [] and parent.errors == []

    staff = tab()
    staff.login(site.url, *LOGISTICS, lands_on="/staff")
    expect(staff.page.locator("#vehicle-map-note")).to_contain_text("未配置底图")
    expect(staff.page.locator("#vehicle-map")).to_have_count(0)
    assert staff.errors == []


def test_the_pages_gcj02_port_equals_the_python_at_sample_points(browser):
    """static/gcj02.js against routing/gcj02.py: a grid over China, the district, points on and
    just outside the box's edges, and points abroad (unchanged)."""
    from pathlib import Path

    points = [(lat + 0.137, lon + 0.291) for lat in range(1, 56, 3) for lon in range(73, 138, 4)]
    points += [(27.4455, 113.2225), (27.452, 113.231), (39.911954, 116.377817),
               (0.8293, 72.004), (55.8271, 137.8347), (0.8292, 100.0), (30.0, 137.8348),
               (48.85, 2.29), (-33.9, 151.2), (60.17, 24.94)]
    script = (Path(__file__).resolve().parents[2] / "backend" / "pages" / "static" / "gcj02.js")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content("<!doctype html><title>gcj02</title>")
        page.add_script_tag(content=script.read_text(encoding="utf-8"))
        drawn = page.evaluate("(pts) => pts.map(p => window.XC.gcj02.fromWgs84(p[0], p[1]))",
                              points)
    finally:
        context.close()
    moved = 0
    for (lat, lon), js in zip(points, drawn, strict=True):
        py = wgs84_to_gcj02(lat, lon)
        assert js == pytest.approx(py, abs=1e-11), (lat, lon)
        moved += py != (lat, lon)
    assert moved > 100  # most points are inside China and really shifted
