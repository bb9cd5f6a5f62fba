"""Reading a GTFS static feed: the zip, its CSV members, and from them trips with their stop
times, stops, frequencies, shapes and the service calendar.

Members are found by file name at the zip's root or in one folder, read as UTF-8 CSV (a byte
order mark is fine), with blank lines skipped and values stripped; a required file or column that
is missing is a :class:`GtfsError`. Services become explicit ``dates`` (``calendar.txt`` weekdays
within its bounds, plus ``calendar_dates.txt`` additions, minus removals, clipped to
``feed_info.txt``'s validity when given); only a service that is a plain weekday pattern - no
exceptions, and bounds that span the whole feed - becomes ``days``, since ``days`` run forever and
honour the district calendar. :mod:`backend.gtfs_import` turns what is read here into a bundle.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections import defaultdict
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

REQUIRED = ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt")
_GTFS_TIME = re.compile(r"^(\d{1,3}):([0-5]\d):([0-5]\d)$")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class GtfsError(ValueError):
    """The file is not a usable GTFS feed, or the request does not fit it."""


@dataclass
class Trip:
    """A trip of ``trips.txt`` with its rows of ``stop_times.txt``, in stop order."""

    id: str
    route_id: str
    service_id: str
    shape_id: str
    headsign: str
    stops: list[tuple[int, str, str, str, str]] = field(default_factory=list)
    # (stop_sequence, stop_id, arrival_time, departure_time, shape_dist_traveled)


class Feed:
    """The zip and its members by file name, read as UTF-8 CSV (a BOM is fine)."""

    def __init__(self, path: Path):
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise GtfsError(f"{path}: not a GTFS zip ({exc})") from exc
        self.members: dict[str, str] = {}
        for name in sorted(self.zip.namelist(), key=lambda n: (n.count("/"), n)):
            self.members.setdefault(name.rsplit("/", 1)[-1].lower(), name)
        missing = [f for f in REQUIRED if f not in self.members]
        if "calendar.txt" not in self.members and "calendar_dates.txt" not in self.members:
            missing.append("calendar.txt or calendar_dates.txt")
        if missing:
            raise GtfsError(f"{path}: not a GTFS feed, missing {', '.join(missing)}")
        self.path = path

    def __enter__(self) -> Feed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.zip.close()

    def rows(self, name: str, required: tuple[str, ...] = ()) -> Iterator[dict[str, str]]:
        """The non-blank rows of member ``name`` as dicts (none if the feed lacks it)."""
        if name not in self.members:
            return
        with self.zip.open(self.members[name]) as raw:
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
            header = [h.strip() for h in next(reader, [])]
            absent = [c for c in required if c not in header]
            if absent:
                raise GtfsError(f"{self.path}: {name} has no column {', '.join(absent)}")
            for values in reader:
                if any(v.strip() for v in values):
                    yield {h: v.strip() for h, v in zip(header, values, strict=False)}

    def trips(self, routes: Container[str], progress: bool = False) -> dict[str, Trip]:
        """The trips of these routes by id, their stop times read in; ``progress``: tqdm."""
        trips: dict[str, Trip] = {}
        for row in self.rows("trips.txt", ("route_id", "service_id", "trip_id")):
            if row["route_id"] in routes:
                trips[row["trip_id"]] = Trip(
                    row["trip_id"],
                    row["route_id"],
                    row["service_id"],
                    row.get("shape_id", ""),
                    row.get("trip_headsign", ""),
                )
        rows = self.rows("stop_times.txt", ("trip_id", "stop_id", "stop_sequence"))
        for row in tqdm(rows, desc="stop_times", unit=" rows", disable=not progress):
            trip = trips.get(row["trip_id"])
            if trip is not None:
                trip.stops.append(
                    (
                        _whole_number(row["stop_sequence"], "stop_sequence"),
                        row["stop_id"],
                        row.get("arrival_time", ""),
                        row.get("departure_time", ""),
                        row.get("shape_dist_traveled", ""),
                    )
                )
        for trip in trips.values():
            trip.stops.sort()
        return dict(sorted(trips.items()))

    def stops(self) -> dict[str, dict[str, Any]]:
        """Stops with coordinates (their own or their station's): ``{"name", "point"}``."""
        rows = {r["stop_id"]: r for r in self.rows("stops.txt", ("stop_id",))}
        out = {}
        for stop_id, row in rows.items():
            point = _lat_lon(row) or _lat_lon(rows.get(row.get("parent_station", ""), {}))
            if point is not None:
                out[stop_id] = {"name": row.get("stop_name") or stop_id, "point": point}
        return out

    def frequencies(self, trips: Container[str]) -> dict[str, list[tuple[int, int, int]]]:
        """``frequencies.txt`` of these trips: ``(start_s, end_s, headway_s)`` each."""
        out: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        required = ("trip_id", "start_time", "end_time", "headway_secs")
        for row in self.rows("frequencies.txt", required):
            start, end = gtfs_seconds(row["start_time"]), gtfs_seconds(row["end_time"])
            headway = _whole_number(row["headway_secs"] or "0", "headway_secs")
            if row["trip_id"] in trips and start is not None and end is not None and headway > 0:
                out[row["trip_id"]].append((start, end, headway))
        return out

    def shapes(
        self, wanted: Container[str], progress: bool = False
    ) -> dict[str, list[list[float]]]:
        """These shapes' points as ``[lon, lat]`` in sequence order; ``progress``: tqdm."""
        points: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        required = ("shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence")
        rows = self.rows("shapes.txt", required)
        for row in tqdm(rows, desc="shapes", unit=" points", disable=not progress):
            if row["shape_id"] in wanted:
                point = _lat_lon(row, "shape_pt_lat", "shape_pt_lon")
                if point is not None:
                    seq = _whole_number(row["shape_pt_sequence"], "shape_pt_sequence")
                    points[row["shape_id"]].append((seq, point[1], point[0]))
        return {k: [[lon, lat] for _, lon, lat in sorted(v)] for k, v in points.items()}


def _date(text: str, where: str) -> dt.date:
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError as exc:
        raise GtfsError(f"{where}: {text!r} is not a date YYYYMMDD") from exc


def _whole_number(text: str, column: str) -> int:
    """The value of an integer column; a :class:`GtfsError` naming the column when it is not."""
    try:
        return int(text)
    except ValueError as exc:
        raise GtfsError(f"{column} {text!r} is not a whole number") from exc


def gtfs_seconds(text: str) -> int | None:
    """Seconds in a GTFS time ``H:MM:SS`` (hours may pass 23); ``None`` when it is not one."""
    match = _GTFS_TIME.match(text)
    if match is None:
        return None
    return int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3])


def _lat_lon(
    row: dict[str, str], lat_key: str = "stop_lat", lon_key: str = "stop_lon"
) -> tuple[float, float] | None:
    """``(lat, lon)`` of a row when both are numbers in range and not (0, 0), else ``None``."""
    try:
        lat, lon = float(row[lat_key]), float(row[lon_key])
    except (KeyError, ValueError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return lat, lon


def service_days(feed: Feed) -> dict[str, dict[str, list[Any]]]:
    """Each service id → ``{"days": [...]}`` or ``{"dates": [...]}`` (ISO date strings)."""
    weekly: dict[str, tuple[list[int], dt.date, dt.date]] = {}
    for row in feed.rows("calendar.txt", ("service_id", *_WEEKDAYS, "start_date", "end_date")):
        days = [i + 1 for i, name in enumerate(_WEEKDAYS) if row[name] == "1"]
        start = _date(row["start_date"], "calendar.txt start_date")
        end = _date(row["end_date"], "calendar.txt end_date")
        weekly[row["service_id"]] = (days, start, end)
    exceptions: dict[str, dict[dt.date, str]] = defaultdict(dict)
    for row in feed.rows("calendar_dates.txt", ("service_id", "date", "exception_type")):
        day = _date(row["date"], "calendar_dates.txt")
        exceptions[row["service_id"]][day] = row["exception_type"]
    bounds = _feed_bounds(feed, weekly, exceptions)
    out: dict[str, dict[str, list[Any]]] = {}
    for service_id in sorted(set(weekly) | set(exceptions)):
        days, start, end = weekly.get(service_id, ([], dt.date.max, dt.date.min))
        if days and not exceptions.get(service_id) and start <= bounds[0] and end >= bounds[1]:
            out[service_id] = {"days": days}
            continue
        span = (start + dt.timedelta(days=k) for k in range((end - start).days + 1))
        dates = {d for d in span if d.isoweekday() in days} if days else set()
        for day, kind in exceptions.get(service_id, {}).items():
            if kind == "1":
                dates.add(day)
            elif kind == "2":
                dates.discard(day)
        in_feed = sorted(d for d in dates if bounds[0] <= d <= bounds[1])
        out[service_id] = {"dates": [d.isoformat() for d in in_feed]}
    return out


def _feed_bounds(feed: Feed, weekly: dict, exceptions: dict) -> tuple[dt.date, dt.date]:
    """The feed's validity: ``feed_info.txt`` when it says, else the span of its calendars."""
    starts = [start for _, start, _ in weekly.values()]
    ends = [end for _, _, end in weekly.values()]
    for per_date in exceptions.values():
        starts.extend(per_date)
        ends.extend(per_date)
    first = min(starts, default=dt.date.min)
    last = max(ends, default=dt.date.max)
    for row in feed.rows("feed_info.txt"):
        if row.get("feed_start_date"):
            first = _date(row["feed_start_date"], "feed_info.txt feed_start_date")
        if row.get("feed_end_date"):
            last = _date(row["feed_end_date"], "feed_info.txt feed_end_date")
    return first, last
