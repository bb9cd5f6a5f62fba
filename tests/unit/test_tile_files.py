"""The tile files xiaoche serves at /tiles (backend/maps): MBTiles (TMS rows flipped) and PMTiles
read the same tiles; a missing tile is a 404, never a 500; a bad file stops the start with a
message that says what is wrong."""

from __future__ import annotations

import math
import sqlite3

import pytest

from backend import create_app
from backend.maps import source_from_config
from backend.maps.tilefiles import MBTiles, PMTiles, TileSourceError, open_tile_file, sniff, tile_of
from tests.tilesets import png, write_mbtiles, write_pmtiles

RED, BLUE = png((255, 0, 0)), png((0, 0, 255))


@pytest.fixture
def flip_file(tmp_path):
    """At zoom 3 the tile XYZ (3, 2, 1) — north of the equator — is TMS row 6; (3, 2, 6) is
    south. Different colours, so a reader that forgets the flip answers the wrong one."""
    return write_mbtiles(tmp_path / "flip.mbtiles", {(3, 2, 1): RED, (3, 2, 6): BLUE},
                         {"attribution": '<a href="https://osm.org">© OpenStreetMap</a> &amp; 县',
                          "bounds": "100,20,120,40"})


def test_mbtiles_rows_are_tms_and_are_flipped(flip_file):
    with open_tile_file(flip_file) as tiles:
        assert isinstance(tiles, MBTiles)
        assert tiles.get(3, 2, 1) == RED and tiles.get(3, 2, 6) == BLUE
        assert (tiles.minzoom, tiles.maxzoom, tiles.format) == (3, 3, "png")
        assert tiles.bounds == (100.0, 20.0, 120.0, 40.0)
        assert tiles.media_type(RED) == "image/png"
    conn = sqlite3.connect(flip_file)  # as stored: the red tile in TMS row 2^3 - 1 - 1 = 6
    assert bytes(conn.execute("SELECT tile_data FROM tiles WHERE tile_row = 6")
                 .fetchone()[0]) == RED
    conn.close()


def test_pmtiles_made_from_the_mbtiles_read_the_same_tiles(flip_file, tmp_path):
    with open_tile_file(write_pmtiles(tmp_path / "flip.pmtiles", flip_file)) as tiles:
        assert isinstance(tiles, PMTiles)
        assert tiles.get(3, 2, 1) == RED and tiles.get(3, 2, 6) == BLUE
        assert tiles.get(3, 2, 2) is None and tiles.get(4, 4, 2) is None
        assert (tiles.minzoom, tiles.maxzoom, tiles.format) == (3, 3, "png")
        assert "OpenStreetMap" in tiles.attribution


@pytest.mark.parametrize("kind", ["mbtiles", "pmtiles"])
def test_tiles_are_served_and_a_missing_or_impossible_tile_is_a_404(flip_file, tmp_path, kind):
    path = flip_file if kind == "mbtiles" else write_pmtiles(tmp_path / "f.pmtiles", flip_file)
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "MAP_TILES": f"{kind}://{path}",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    client = app.test_client()
    ok = client.get("/tiles/3/2/1")
    assert ok.status_code == 200 and ok.data == RED and ok.mimetype == "image/png"
    assert "max-age" in ok.headers["Cache-Control"]
    for missing in ("/tiles/3/2/2", "/tiles/3/9/1", "/tiles/40/1/1", "/tiles/0/0/0",
                    "/tiles/3/2/99999999999999999999"):
        assert client.get(missing).status_code == 404, missing
    assert client.get("/tiles/3/-1/1").status_code == 404
    config = app.extensions["xiaoche.map"].client_config()
    assert config["layers"] == [{"url": "/tiles/{z}/{x}/{y}", "minNativeZoom": 3,
                                 "maxNativeZoom": 3, "bounds": [[20.0, 100.0], [40.0, 120.0]]}]
    # the file's HTML credit as words: shown with textContent, nothing from the file runs
    assert config["attribution"] == "© OpenStreetMap & 县"
    assert config["datum"] == "wgs84"


def test_the_attribution_setting_wins_over_the_files(flip_file):
    source = source_from_config({"MAP_TILES": str(flip_file), "MAP_ATTRIBUTION": "© 本县测绘"})
    assert source.attribution == "© 本县测绘"


@pytest.mark.parametrize("content, words", [
    (b"", "neither an MBTiles"),
    (b"hello, not a tile file at all", "neither an MBTiles"),
    (b"PMTiles\x03" + b"\x00" * 20, "PMTiles"),
    (b"PMTiles\x02" + b"\x00" * 200, "not a PMTiles v3"),
    (b"SQLite format 3\x00" + b"\x00" * 100, "SQLite"),
])
def test_a_bad_file_is_refused_with_a_clear_word(tmp_path, content, words):
    path = tmp_path / "county.mbtiles"
    path.write_bytes(content)
    with pytest.raises(TileSourceError, match=words) as refused:
        open_tile_file(path)
    assert str(path) in str(refused.value)


def test_a_sqlite_file_without_tiles_or_with_vector_tiles_is_refused(tmp_path):
    other = tmp_path / "other.mbtiles"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE students (id TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(TileSourceError, match="not an MBTiles file"):
        open_tile_file(other)
    empty = write_mbtiles(tmp_path / "empty.mbtiles", {})
    with pytest.raises(TileSourceError, match="no tiles"):
        open_tile_file(empty)
    vector = write_mbtiles(tmp_path / "vector.mbtiles", {(0, 0, 0): b"\x1f\x8b\x08\x00rest"},
                           {"format": "pbf"})
    with pytest.raises(TileSourceError, match="vector tile set"):
        open_tile_file(vector)
    unlabelled = write_mbtiles(tmp_path / "unlabelled.mbtiles", {(0, 0, 0): b"\x1f\x8b\x08\x00"},
                               {"format": ""})
    with pytest.raises(TileSourceError, match="not PNG, JPEG or WebP"):
        open_tile_file(unlabelled)


def test_a_bad_setting_stops_the_start_with_a_message(tmp_path):
    base = {"TESTING": True, "SECRET_KEY": "x",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    for setting, words in [
        ({"MAP_TILES": f"mbtiles://{tmp_path}/nowhere.mbtiles"}, "no such file"),
        ({"MAP_TILES": "ftp://tiles.example/{z}/{x}/{y}.png"}, "neither an http"),
        ({"MAP_TILES": "https://tiles.example/{z}/{x}.png"}, r"lacks \{y\}"),
        ({"MAP_TILES": "https://tiles.example/{z}/{x}/{y}.png", "MAP_TILES_CRS": "bd09"},
         "wgs84 or gcj02"),
    ]:
        with pytest.raises(SystemExit, match=words) as stopped:
            create_app({**base, **setting})
        assert str(stopped.value).startswith("XIAOCHE_MAP_TILES")


def test_url_templates_are_layered_and_their_hosts_allowed_for_images():
    source = source_from_config({
        "MAP_TILES": "https://t0.tianditu.gov.cn/vec_w/wmts?TILEMATRIX={z}&TILEROW={y}&TILECOL={x}"
                     "&tk=K  https://t0.tianditu.gov.cn/cva_w/wmts?TILEMATRIX={z}&TILEROW={y}"
                     "&TILECOL={x}&tk=K",
        "MAP_TILES_CRS": "WGS-84", "MAP_ATTRIBUTION": "天地图"})
    layers = source.client_config()["layers"]
    assert [layer["url"].split("/")[3].split("?")[0] for layer in layers] == ["vec_w", "cva_w"]
    assert source.client_config()["attribution"] == "天地图"
    assert source.image_origins() == ["https://t0.tianditu.gov.cn"]
    assert source.datum == "wgs84"
    osm = source_from_config({"MAP_TILES": "https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png",
                              "MAP_TILES_CRS": "gcj02"})
    assert osm.image_origins() == ["https://*.tile.openstreetmap.org"]
    assert osm.datum == "gcj02"
    assert source_from_config({"MAP_TILES": ""}) is None


def test_sniff_and_tile_numbers():
    assert sniff(RED) == "png" and sniff(b"\xff\xd8\xff\xe0") == "jpg"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp" and sniff(b"\x1f\x8b") is None
    x, y = tile_of(0.0, 0.0, 1)
    assert (x, y) == (1.0, 1.0)
    assert tile_of(85.0511287798, -180.0, 2) == pytest.approx((0.0, 0.0), abs=1e-6)
    assert tile_of(-85.0511287798, 180.0, 2) == pytest.approx((4.0, 4.0), abs=1e-6)
    x, y = tile_of(27.4, 113.2, 12)  # 渌口; y by the other textbook form, ln(tan(π/4 + φ/2))
    assert x == pytest.approx(293.2 / 360 * 4096)
    assert y == pytest.approx((1 - math.log(math.tan(math.pi / 4 + math.radians(27.4) / 2))
                               / math.pi) / 2 * 4096)


def test_the_pages_name_the_tile_servers_host_in_their_image_policy_and_hand_over_the_config(
        tmp_path):
    import json
    import re

    app = create_app({"TESTING": True, "SECRET_KEY": "x",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite3'}",
                      "MAP_TILES": "https://tiles.example.cn/{z}/{x}/{y}.png?key=K&a=<b>",
                      "MAP_TILES_CRS": "gcj02", "MAP_ATTRIBUTION": "© 示例 </script>"})
    client = app.test_client()
    for page in ("/parent", "/staff"):
        response = client.get(page)
        assert "img-src 'self' data: https://tiles.example.cn;" in response.headers[
            "Content-Security-Policy"]
        html = response.get_data(as_text=True)
        found = re.search(r'<script type="application/json" id="xc-map">(.*?)</script>', html)
        assert json.loads(found.group(1)) == {
            "layers": [{"url": "https://tiles.example.cn/{z}/{x}/{y}.png?key=K&a=<b>",
                        "maxNativeZoom": 18}],
            "datum": "gcj02", "attribution": "© 示例"}  # tags dropped, nothing ends the element
        assert "leaflet.js" in html
    login = client.get("/")
    assert "xc-map" not in login.get_data(as_text=True)
    assert "tiles.example.cn" not in login.headers["Content-Security-Policy"]
