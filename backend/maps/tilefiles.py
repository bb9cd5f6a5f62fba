"""Raster tile files xiaoche serves itself at ``/tiles/{z}/{x}/{y}``: MBTiles and PMTiles.

A school's intranet may have no internet, so a district can put its county's base map in one
file next to xiaoche. Both readers answer ``get(z, x, y)`` in XYZ numbering (the one Leaflet and
every web map asks in: y = 0 at the north) with the tile's bytes, or ``None`` when the file has
no such tile (served as 404, never as an error).

- **MBTiles** (https://github.com/mapbox/mbtiles-spec, 1.3): a SQLite database with a
  ``tiles(zoom_level, tile_column, tile_row, tile_data)`` table (or view) whose rows are in TMS
  numbering — y = 0 at the *south* — so row = 2^z − 1 − y; and a ``metadata(name, value)`` table
  (``format``, ``minzoom``, ``maxzoom``, ``bounds``, ``attribution``). Read with the standard
  library's sqlite3, read-only.
- **PMTiles** v3 (https://github.com/protomaps/PMTiles): one file with a header, a directory and
  the tiles, read with the ``pmtiles`` package over a read-only memory map.

Raster only (PNG, JPEG, WebP): a vector tile set (``pbf``/MVT) needs a style and a renderer the
pages do not have, and is refused at start with a word saying so, as is anything that is not a
tile file. Opening checks the file completely enough that a bad one fails at start, not at the
first parent's request.
"""

from __future__ import annotations

import gzip
import json
import math
import sqlite3
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
_FORMAT_ALIASES = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "webp": "webp"}
_VECTOR = {"pbf", "mvt", "mlt"}


class TileSourceError(Exception):
    """The configured tile source cannot be used; the message says why, for the log at start."""


def sniff(data: bytes) -> str | None:
    """The raster format of a tile's bytes by their magic number: png, jpg, webp or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _in_range(z: int, x: int, y: int) -> bool:
    return 0 <= z <= 30 and 0 <= x < (1 << z) and 0 <= y < (1 << z)


def tile_of(lat: float, lon: float, z: int) -> tuple[float, float]:
    """Web Mercator tile coordinates (fractional x, y; XYZ numbering) of a point at zoom z."""
    n = 1 << z
    lat_r = math.radians(lat)
    x = (lon + 180.0) / 360.0 * n
    y = (1.0 - math.asinh(math.tan(lat_r)) / math.pi) / 2.0 * n
    return x, y


@dataclass
class TileFile:
    """What every tile file tells the pages, and ``get``."""

    path: Path
    kind: str  # "mbtiles" | "pmtiles"
    format: str | None  # png | jpg | webp; None: sniffed per tile (a PMTiles of unknown type)
    minzoom: int
    maxzoom: int
    bounds: tuple[float, float, float, float] | None  # west, south, east, north (WGS-84 degrees)
    attribution: str
    name: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, z: int, x: int, y: int) -> bytes | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def media_type(self, data: bytes) -> str:
        return MEDIA_TYPES.get(sniff(data) or self.format or "", "application/octet-stream")

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    def __enter__(self) -> TileFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _raster_format(declared: str | None, first_tile: bytes | None, path: Path) -> str | None:
    fmt = (declared or "").strip().lower()
    if fmt in _VECTOR:
        raise TileSourceError(
            f"{path}: a vector tile set (format {fmt}); xiaoche serves raster tiles "
            "(PNG, JPEG, WebP) only — render the county to a raster MBTiles (README, Maps)")
    if fmt and fmt not in _FORMAT_ALIASES:
        raise TileSourceError(f"{path}: tile format {fmt!r} is not PNG, JPEG or WebP")
    if first_tile is not None:
        found = sniff(first_tile)
        if found is None:
            if first_tile[:2] == b"\x1f\x8b" or not fmt:
                raise TileSourceError(
                    f"{path}: its tiles are not PNG, JPEG or WebP images (a vector tile set?); "
                    "xiaoche serves raster tiles only")
        elif not fmt:
            fmt = found
    return _FORMAT_ALIASES.get(fmt)


def _bounds(text: Any) -> tuple[float, float, float, float] | None:
    try:
        west, south, east, north = (float(v) for v in str(text).split(","))
    except (TypeError, ValueError):
        return None
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        return None
    return west, south, east, north


class MBTiles(TileFile):
    def __init__(self, path: Path) -> None:
        try:
            # read-only: xiaoche never writes the district's file (and may not be allowed to)
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise TileSourceError(f"{path}: cannot open as SQLite: {exc}") from exc
        try:
            metadata = dict(conn.execute("SELECT name, value FROM metadata").fetchall())
            zooms = conn.execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
            first = conn.execute(
                "SELECT tile_data FROM tiles WHERE zoom_level = ? LIMIT 1", (zooms[0],)
            ).fetchone() if zooms[0] is not None else None
        except sqlite3.Error as exc:
            conn.close()
            raise TileSourceError(
                f"{path}: not an MBTiles file (SQLite with tables metadata and tiles): {exc}"
            ) from exc
        if zooms[0] is None:
            conn.close()
            raise TileSourceError(f"{path}: the MBTiles file has no tiles")
        try:
            fmt = _raster_format(metadata.get("format"), bytes(first[0]) if first else None, path)
        except TileSourceError:
            conn.close()
            raise
        super().__init__(
            path=path, kind="mbtiles", format=fmt,
            minzoom=int(zooms[0]), maxzoom=int(zooms[1]),
            bounds=_bounds(metadata.get("bounds")),
            attribution=str(metadata.get("attribution") or ""),
            name=str(metadata.get("name") or ""),
        )
        self._conn = conn
        # the app keeps its file for its life; closed when the app goes (tests make many)
        weakref.finalize(self, conn.close)

    def get(self, z: int, x: int, y: int) -> bytes | None:
        if not _in_range(z, x, y):
            return None
        row = (1 << z) - 1 - y  # TMS: rows count from the south
        with self._lock:  # one connection, reads of a few kB: microseconds each
            found = self._conn.execute(
                "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? "
                "AND tile_row = ?", (z, x, row)).fetchone()
        return bytes(found[0]) if found and found[0] else None

    def close(self) -> None:
        self._conn.close()


class PMTiles(TileFile):
    _TYPES = {2: "png", 3: "jpg", 4: "webp"}  # pmtiles.tile.TileType

    def __init__(self, path: Path) -> None:
        import mmap

        from pmtiles.reader import Reader
        from pmtiles.tile import Compression, TileType

        try:
            with open(path, "rb") as handle:  # the map keeps its own descriptor
                if handle.read(8) != b"PMTiles\x03":
                    raise TileSourceError(f"{path}: not a PMTiles v3 file (no PMTiles header)")
                mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise TileSourceError(f"{path}: {exc.strerror or exc}") from exc
        except ValueError as exc:  # mmap of an empty file
            raise TileSourceError(f"{path}: not a PMTiles v3 file: {exc}") from exc
        try:
            reader = Reader(lambda offset, length: mapping[offset:offset + length])
            header = reader.header()
            try:
                metadata = reader.metadata()
            except (ValueError, OSError):
                metadata = {}
            tile_type = header["tile_type"]
            if tile_type in (TileType.MVT, TileType.MLT):
                raise TileSourceError(
                    f"{path}: a vector tile set; xiaoche serves raster tiles (PNG, JPEG, WebP) "
                    "only — render the county to a raster tile file (README, Maps)")
            if tile_type not in (TileType.UNKNOWN, TileType.PNG, TileType.JPEG, TileType.WEBP):
                raise TileSourceError(f"{path}: tile type {tile_type.name} is not PNG, JPEG or WebP")
            compression = header["tile_compression"]
            if compression not in (Compression.NONE, Compression.UNKNOWN, Compression.GZIP):
                raise TileSourceError(
                    f"{path}: tiles compressed with {compression.name}; store raster tiles "
                    "uncompressed")
        except TileSourceError:
            mapping.close()
            raise
        except Exception as exc:  # a truncated or foreign file: the library's own errors vary
            mapping.close()
            raise TileSourceError(f"{path}: not a readable PMTiles file: {exc!r}") from exc
        bounds = (header["min_lon_e7"] / 1e7, header["min_lat_e7"] / 1e7,
                  header["max_lon_e7"] / 1e7, header["max_lat_e7"] / 1e7)
        super().__init__(
            path=path, kind="pmtiles", format=self._TYPES.get(tile_type.value),
            minzoom=int(header["min_zoom"]), maxzoom=int(header["max_zoom"]),
            bounds=_bounds(",".join(str(b) for b in bounds)),
            attribution=str(metadata.get("attribution") or "") if isinstance(metadata, dict) else "",
            name=str(metadata.get("name") or "") if isinstance(metadata, dict) else "",
        )
        self._mapping, self._reader = mapping, reader
        weakref.finalize(self, mapping.close)
        self._gzip = compression == Compression.GZIP
        first = self._first_tile()
        if first is None:
            self.close()
            raise TileSourceError(f"{path}: the PMTiles file has no tiles")
        try:
            self.format = _raster_format(self.format, first, path)
        except TileSourceError:
            self.close()
            raise

    def _first_tile(self) -> bytes | None:
        from pmtiles.reader import all_tiles

        try:
            for _, data in all_tiles(self._reader.get_bytes):
                return self._decode(bytes(data))
        except Exception as exc:
            raise TileSourceError(f"{self.path}: its tile directory cannot be read: {exc!r}") from exc
        return None

    def _decode(self, data: bytes) -> bytes:
        if self._gzip or data[:2] == b"\x1f\x8b":
            try:
                return gzip.decompress(data)
            except (OSError, EOFError):
                return data
        return data

    def get(self, z: int, x: int, y: int) -> bytes | None:
        if not _in_range(z, x, y) or not self.minzoom <= z <= self.maxzoom:
            return None
        data = self._reader.get(z, x, y)  # the map is read-only: safe from several threads
        return self._decode(bytes(data)) if data else None

    def close(self) -> None:
        self._mapping.close()


def open_tile_file(path: str | Path) -> TileFile:
    """Open an ``.mbtiles`` or ``.pmtiles`` file (by its first bytes, whatever its name)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TileSourceError(f"{path}: no such file")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(16)
    except OSError as exc:
        raise TileSourceError(f"{path}: {exc.strerror or exc}") from exc
    if magic.startswith(b"PMTiles"):
        return PMTiles(path)
    if magic.startswith(b"SQLite format 3\x00"):
        return MBTiles(path)
    raise TileSourceError(f"{path}: neither an MBTiles (SQLite) nor a PMTiles file")


def describe(tiles: TileFile) -> str:
    """One line for the start-up log."""
    return json.dumps({"file": str(tiles.path), "kind": tiles.kind, "format": tiles.format,
                       "zoom": [tiles.minzoom, tiles.maxzoom], "bounds": tiles.bounds},
                      ensure_ascii=False)
