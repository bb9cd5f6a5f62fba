"""The base map under the pages' routes and buses: where its tiles come from, and serving them.

``XIAOCHE_MAP_TILES`` names the source (README, Maps):

- unset: no base map; the pages draw the schematic view (``pages/static/routemap.js``) and say
  why;
- ``https://…{z}…{x}…{y}…``: a tile server's URL template (天地图, an OSM-style server, AMap…),
  fetched by the reader's browser; several templates separated by spaces are drawn on top of
  each other (天地图's roads ``vec_w`` and its place names ``cva_w``);
- ``mbtiles:///path/county.mbtiles``, ``pmtiles:///path/county.pmtiles``, or a plain path
  ending in ``.mbtiles``/``.pmtiles``: a raster tile file served by xiaoche itself at
  ``/tiles/{z}/{x}/{y}`` (``tilefiles.py``), for an intranet without internet.

``XIAOCHE_MAP_TILES_CRS`` says which datum the tiles are drawn in: ``wgs84`` (default; 天地图,
OSM) or ``gcj02`` (AMap, Tencent, and files made from their tiles). With ``gcj02`` the pages
shift every position, stop and path they draw by the GCJ-02 offset (``static/gcj02.js``, the
port of ``routing/gcj02.py``, tested to agree with it) so the bus sits on the road the tiles
show; the data itself stays WGS-84 everywhere else.

``XIAOCHE_MAP_ATTRIBUTION`` is the credit the tiles' licence asks for, shown on the map;
default: the file's ``attribution`` metadata (or, for a URL template, OpenStreetMap's for its
servers, else nothing and a warning in the log).

Leaflet comes from PyPI (``xstatic-leaflet``) and is served at ``/assets/vendor/leaflet/``:
no CDN. Tiles are served without a login (a base map is public; ``<img>`` requests carry no
token); positions never leave the API's rules.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, current_app, send_from_directory

from backend.maps.tilefiles import TileFile, TileSourceError, describe, open_tile_file

log = logging.getLogger(__name__)

DATUMS = ("wgs84", "gcj02")
EXTENSION_KEY = "xiaoche.map"
TILE_URL = "/tiles/{z}/{x}/{y}"
URL_TEMPLATE_MAX_ZOOM = 18
KNOWN_ATTRIBUTIONS = {  # a host's own credit when the setting gives none
    "tile.openstreetmap.org": "© OpenStreetMap contributors",
}

bp = Blueprint("maps", __name__)


@dataclass
class MapSource:
    """The configured base map: ``file`` (served at /tiles) or ``templates`` (URL templates)."""

    setting: str
    datum: str
    attribution: str
    file: TileFile | None = None
    templates: list[str] = field(default_factory=list)

    def client_config(self) -> dict[str, Any]:
        """What the pages' JavaScript needs (``<script id="xc-map" type="application/json">``)."""
        if self.file is not None:
            layer: dict[str, Any] = {"url": TILE_URL, "minNativeZoom": self.file.minzoom,
                                     "maxNativeZoom": self.file.maxzoom}
            if self.file.bounds:
                west, south, east, north = self.file.bounds
                layer["bounds"] = [[south, west], [north, east]]
            layers = [layer]
        else:
            layers = [{"url": t, "maxNativeZoom": URL_TEMPLATE_MAX_ZOOM} for t in self.templates]
        return {"layers": layers, "datum": self.datum, "attribution": self.attribution}

    def image_origins(self) -> list[str]:
        """The origins the page's ``img-src`` must allow (remote templates only)."""
        origins = []
        for template in self.templates:
            parts = urlsplit(template)
            host = parts.netloc
            if "{s}" in host:  # a.tile… b.tile…: the label holding {s} becomes a wildcard
                labels = host.split(".")
                host = ".".join("*" if "{s}" in label else label for label in labels)
            origins.append(f"{parts.scheme}://{host}")
        return sorted(set(origins))


def _file_path(raw: str) -> Path | None:
    for scheme in ("mbtiles://", "pmtiles://", "file://"):
        if raw.lower().startswith(scheme):
            return Path(raw[len(scheme):])
    if raw.lower().endswith((".mbtiles", ".pmtiles")) and "://" not in raw:
        return Path(raw)
    return None


def _plain_text(attribution: str) -> str:
    """MBTiles metadata may hold HTML (``<a href=…>© OpenStreetMap</a>``): the pages show the
    words only (textContent), so the credit survives and no markup from a file runs."""
    import html

    return html.unescape(re.sub(r"<[^>]*>", "", attribution)).strip()


def source_from_config(config: dict[str, Any]) -> MapSource | None:
    """The configured base map, opened and checked; ``TileSourceError`` says what is wrong."""
    raw = (config.get("MAP_TILES") or "").strip()
    datum = (config.get("MAP_TILES_CRS") or "wgs84").strip().lower().replace("-", "")
    if datum not in DATUMS:
        raise TileSourceError(
            f"XIAOCHE_MAP_TILES_CRS={config.get('MAP_TILES_CRS')!r}: say wgs84 or gcj02")
    if not raw:
        return None
    attribution = _plain_text(config.get("MAP_ATTRIBUTION") or "")
    path = _file_path(raw)
    if path is not None:
        tiles = open_tile_file(path)
        return MapSource(setting=raw, datum=datum,
                         attribution=attribution or _plain_text(tiles.attribution), file=tiles)
    templates = raw.split()
    for template in templates:
        parts = urlsplit(template)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TileSourceError(
                f"XIAOCHE_MAP_TILES={raw!r}: neither an http(s) URL template nor a "
                "mbtiles:///… or pmtiles:///… file")
        missing = [p for p in ("{z}", "{x}") if p not in template]
        if "{y}" not in template and "{-y}" not in template:
            missing.append("{y}")
        if missing:
            raise TileSourceError(f"XIAOCHE_MAP_TILES: {template!r} lacks {', '.join(missing)}")
    if not attribution:
        hosts = {urlsplit(t).netloc for t in templates}
        attribution = next((KNOWN_ATTRIBUTIONS[h] for h in hosts if h in KNOWN_ATTRIBUTIONS), "")
    if not attribution:
        log.warning("XIAOCHE_MAP_ATTRIBUTION is unset: the map shows no credit for its tiles; "
                    "set the one the tile provider's terms require")
    return MapSource(setting=raw, datum=datum, attribution=attribution, templates=templates)


def init_app(app: Flask) -> None:
    """Open and check the configured source (a bad one stops the start with a clear message)
    and serve ``/tiles`` and Leaflet."""
    try:
        source = source_from_config(app.config)
    except TileSourceError as exc:
        raise SystemExit(f"XIAOCHE_MAP_TILES: {exc}") from exc
    app.extensions[EXTENSION_KEY] = source
    if source is None:
        log.debug("no base map (XIAOCHE_MAP_TILES unset): the pages draw the schematic view")
    elif source.file is not None:
        log.info("base map: %s", describe(source.file))
    else:
        log.info("base map: %s (%s)", " ".join(source.templates), source.datum)
    app.register_blueprint(bp)


def current_source() -> MapSource | None:
    return current_app.extensions.get(EXTENSION_KEY)


@bp.get("/tiles/<int:z>/<int:x>/<int:y>")
def tile(z: int, x: int, y: int) -> Response:
    """A tile of the configured file; 404 when there is no file or no such tile."""
    source = current_source()
    if source is None or source.file is None:
        abort(404)
    data = source.file.get(z, x, y)
    if data is None:
        response = Response(status=404)
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response
    response = Response(data, mimetype=source.file.media_type(data))
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/assets/vendor/leaflet/<path:filename>")
def leaflet_asset(filename: str) -> Response:
    """Leaflet's files from the xstatic-leaflet package (a dependency, so no CDN)."""
    import xstatic.pkg.leaflet as leaflet

    response = send_from_directory(leaflet.BASE_DIR, filename, max_age=86400)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
