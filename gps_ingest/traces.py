"""Recorded tracks as pings: GPX, CSV, OwnTracks ``.rec`` and JSON lines (for replay and tests).

:func:`read_trace` yields :class:`~gps_ingest.records.PingRecord` with ``device_id=""`` (the
caller says which device replays it), in file order.  Each line goes through the same
validation as a live payload (:func:`gps_ingest.decoders.native_ping` / ``owntracks_ping``).

Bad lines
---------
A trace is history that someone means to replay exactly, so by default a bad line stops the
read with a :class:`TraceError` naming the file and line ("trip.csv:17: lat 95.2 out of range
[-90, 90]").  Pass a list as ``skipped`` to read past bad lines instead: each one's
:class:`TraceError` is appended there and the line is left out (the replay CLI prints them).
Lines that are valid but are no position (OwnTracks ``lwt``, ``transition``…, blank lines,
``#`` comments in CSV) are passed over silently: they are not errors.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import orjson

from gps_ingest import decoders
from gps_ingest.records import PingRecord, parse_time


class TraceError(ValueError):
    """A line of a trace that is not a valid position; ``str()`` names file and line."""

    def __init__(self, path: str, line: int | None, message: str):
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.message = message


_REC_LINE = re.compile(r"\d{4}-\d\d-\d\dT[^\t]*\t")
_CSV_COLUMNS = ("ts", "lat", "lon", "speed_kmh", "heading_deg", "accuracy_m")
_CSV_ALIASES = {
    "time": "ts", "timestamp": "ts", "latitude": "lat", "lng": "lon", "longitude": "lon",
    "speed": "speed_kmh", "heading": "heading_deg", "course": "heading_deg",
    "bearing": "heading_deg", "accuracy": "accuracy_m",
}


def read_trace(path: str | Path, skipped: list[TraceError] | None = None) -> Iterator[PingRecord]:
    """Pings of a trace file, detected by extension, else by content.

    ``.gpx`` (track and route points, which must carry a time), ``.csv``
    (``ts,lat,lon[,speed_kmh,heading_deg,accuracy_m]``, header optional, ``ts`` epoch seconds or
    ISO-8601 with an offset), ``.rec`` (OwnTracks Recorder: ``ISO-time<TAB>topic<TAB>{json}``),
    ``.jsonl``/``.ndjson``/``.json`` (one OwnTracks message or native ping per line).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    kind = _kind(path, text)
    if kind == "gpx":
        yield from _gpx(str(path), text, skipped)
    elif kind == "csv":
        yield from _csv(str(path), text, skipped)
    else:
        yield from _json_lines(str(path), text, skipped, rec=kind == "rec")


def _kind(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".gpx":
        return "gpx"
    if suffix == ".csv":
        return "csv"
    if suffix == ".rec":
        return "rec"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    head = text.lstrip()
    if head.startswith("<"):
        return "gpx"
    if head.startswith("{"):
        return "jsonl"
    if _REC_LINE.match(head):
        return "rec"
    return "csv"


def _keep_or_raise(error: TraceError, skipped: list[TraceError] | None) -> None:
    if skipped is None:
        raise error
    skipped.append(error)


# -- JSON lines and OwnTracks .rec ---------------------------------------------------------------


def _json_lines(path: str, text: str, skipped: list[TraceError] | None,
                rec: bool) -> Iterator[PingRecord]:
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            ping = _json_line(line, rec)
        except ValueError as exc:  # orjson's and the decoders' errors are ValueErrors
            _keep_or_raise(TraceError(path, number, str(exc)), skipped)
            continue
        if ping is not None:
            yield ping


def _json_line(line: str, rec: bool) -> PingRecord | None:
    if rec:
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise ValueError("an OwnTracks .rec line is 'time<TAB>topic<TAB>{json}'")
        line = parts[2]
    obj = orjson.loads(line)
    if type(obj) is not dict:
        raise ValueError("a line must hold one JSON object")
    if "_type" in obj:
        if obj["_type"] != "location":
            return None
        return _validated(decoders.owntracks_ping, obj)
    return _validated(decoders.native_ping, obj)


def _validated(make: Any, obj: dict[str, Any]) -> PingRecord:
    try:
        ping: PingRecord = make("", obj)
    except decoders._Invalid as bad:  # noqa: SLF001 - the decoders' own validation, shared
        raise ValueError(f"{bad.reason}: {bad.detail}") from None
    return ping


# -- CSV -----------------------------------------------------------------------------------------


def csv_lines(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """``(line number, stripped cells)`` of every CSV row that is neither blank nor a comment."""
    rows = csv.reader(lines)
    for row in rows:
        cells = [c.strip() for c in row]
        if cells and any(cells) and not cells[0].startswith("#"):
            yield rows.line_num, cells


def _csv(path: str, text: str, skipped: list[TraceError] | None) -> Iterator[PingRecord]:
    columns: tuple[str, ...] | None = None
    for number, cells in csv_lines(io.StringIO(text)):
        if columns is None:
            try:
                columns = _header(cells)
            except ValueError as exc:
                raise TraceError(path, number, str(exc)) from None
            if columns is not None:
                continue
            columns = _CSV_COLUMNS
        try:
            yield _csv_row(columns, cells)
        except ValueError as exc:
            _keep_or_raise(TraceError(path, number, str(exc)), skipped)


def _header(cells: list[str]) -> tuple[str, ...] | None:
    """The column names if this first row is a header (its first cell is not a time)."""
    first = cells[0]
    try:
        float(first)
        return None
    except ValueError:
        pass
    if re.match(r"\d{4}-\d\d-\d\d", first):
        return None
    names = tuple(_CSV_ALIASES.get(c.lower(), c.lower()) for c in cells)
    missing = {"ts", "lat", "lon"} - set(names)
    if missing:
        raise ValueError(f"header {','.join(cells)!r} lacks the columns {sorted(missing)}")
    return names


def _csv_row(columns: Iterable[str], cells: list[str]) -> PingRecord:
    obj: dict[str, Any] = {}
    for name, cell in zip(columns, cells, strict=False):
        if cell == "" or name not in _CSV_COLUMNS:
            continue
        if name == "ts":
            obj["ts"] = _csv_time(cell)
            continue
        try:
            obj[name] = float(cell)
        except ValueError:
            raise ValueError(f"{name} {cell!r} is not a number") from None
    return _validated(decoders.native_ping, obj)


def _csv_time(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return parse_time(cell)


# -- GPX -----------------------------------------------------------------------------------------


def _gpx(path: str, text: str, skipped: list[TraceError] | None) -> Iterator[PingRecord]:
    import gpxpy  # only traces need it
    import gpxpy.gpx

    try:
        gpx = gpxpy.parse(text)
    except gpxpy.gpx.GPXException as exc:
        raise TraceError(path, None, f"not GPX: {exc}") from None
    points: list[tuple[str, Any]] = []
    for t, track in enumerate(gpx.tracks, start=1):
        for s, segment in enumerate(track.segments, start=1):
            points += [(f"track {t} segment {s} point {n}", p)
                       for n, p in enumerate(segment.points, start=1)]
    for r, route in enumerate(gpx.routes, start=1):
        points += [(f"route {r} point {n}", p) for n, p in enumerate(route.points, start=1)]
    for where, point in points:
        try:
            yield _gpx_point(point)
        except ValueError as exc:
            _keep_or_raise(TraceError(path, None, f"{where}: {exc}"), skipped)


def _gpx_point(point: Any) -> PingRecord:
    if point.time is None:
        raise ValueError("no <time>: a trace point needs one")
    moment = point.time
    if moment.tzinfo is None:  # the GPX schema defines <time> as UTC
        moment = moment.replace(tzinfo=UTC)
    obj: dict[str, Any] = {"ts": moment.timestamp(), "lat": point.latitude,
                           "lon": point.longitude, "alt_m": point.elevation}
    speed = getattr(point, "speed", None)
    if speed is not None:
        obj["speed_kmh"] = speed * 3.6  # GPX 1.0 <speed> is m/s
    course = getattr(point, "course", None)
    if course is not None:
        obj["heading_deg"] = course
    return _validated(decoders.native_ping, obj)
