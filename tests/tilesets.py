"""Small raster tile sets the tests make: PNG tiles of one distinctive colour (a darker line on
each tile's north and west edge, so a screenshot shows the grid), written as MBTiles (SQLite,
TMS rows) or PMTiles (through the pmtiles package's own converter)."""

from __future__ import annotations

import sqlite3
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

from backend.maps.tilefiles import tile_of

FILL = (200, 230, 180)  # the tiles' colour, looked for in the browser
EDGE = (120, 160, 110)


def png(fill: tuple[int, int, int] = FILL, edge: tuple[int, int, int] = EDGE,
        size: int = 256) -> bytes:
    """A size×size RGB PNG: ``fill``, with a 2-pixel ``edge`` line along the top and left."""
    edge_px, fill_px = bytes(edge), bytes(fill)
    edge_row = b"\x00" + edge_px * size
    body_row = b"\x00" + edge_px * 2 + fill_px * (size - 2)
    raw = edge_row * 2 + body_row * (size - 2)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def tiles_covering(west: float, south: float, east: float, north: float,
                   zooms: Iterable[int]) -> list[tuple[int, int, int]]:
    """Every XYZ tile (z, x, y) that covers the box at each zoom."""
    out = []
    for z in zooms:
        x0, y0 = tile_of(north, west, z)
        x1, y1 = tile_of(south, east, z)
        for x in range(int(x0), int(x1) + 1):
            for y in range(int(y0), int(y1) + 1):
                out.append((z, x, y))
    return out


def write_mbtiles(path: Path, tiles: dict[tuple[int, int, int], bytes],
                  metadata: dict[str, str] | None = None) -> Path:
    """An MBTiles 1.3 file: ``tiles`` keyed by XYZ (z, x, y), stored with TMS rows."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        conn.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, "
                     "tile_row INTEGER, tile_data BLOB)")
        conn.execute("CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row)")
        zooms = [z for z, _, _ in tiles] or [0]
        meta = {"name": "xiaoche test tiles", "format": "png", "type": "baselayer",
                "version": "1", "minzoom": str(min(zooms)), "maxzoom": str(max(zooms))}
        meta.update(metadata or {})
        conn.executemany("INSERT INTO metadata VALUES (?, ?)", meta.items())
        conn.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)",
                         [(z, x, (1 << z) - 1 - y, data) for (z, x, y), data in tiles.items()])
    conn.close()
    return path


def write_pmtiles(path: Path, mbtiles: Path) -> Path:
    """The same tiles as a PMTiles v3 file, made by the pmtiles package's converter (the one
    its ``pmtiles-convert`` command runs)."""
    from pmtiles.convert import mbtiles_to_pmtiles

    mbtiles_to_pmtiles(str(mbtiles), str(path), None)
    return path


def county_tiles(path: Path, west: float, south: float, east: float, north: float,
                 zooms: Iterable[int], attribution: str = "测试瓦片 · test tiles") -> Path:
    """An MBTiles of the box at ``zooms``, every tile the same PNG."""
    tile = png()
    found = {t: tile for t in tiles_covering(west, south, east, north, zooms)}
    return write_mbtiles(path, found, {"attribution": attribution,
                                       "bounds": f"{west},{south},{east},{north}"})
