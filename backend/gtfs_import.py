"""A GTFS static feed (a zip) → a district bundle (SPEC §3), for ``xiaoche import-gtfs``.

GTFS and the bundle cut a timetable differently: a GTFS route is a line whose trips may follow
several paths and stop patterns, a bundle route is *one* stop sequence along *one* path. So each
GTFS route becomes one bundle route per distinct (shape, stop pattern), and each trip a run.

Choices, each for correctness over compactness:

* A run's time at a stop is the GTFS ``arrival_time`` (``departure_time`` where that is empty):
  the tracker compares it with the moment the bus enters the stop's circle. Stops without times
  (non-timepoints) are interpolated between the timed ones by ``shape_dist_traveled`` when the
  trip has it everywhere, else by the straight-line distance from stop to stop.
* Services become explicit ``dates`` (``calendar.txt`` weekdays within its bounds, plus
  ``calendar_dates.txt`` additions, minus removals, clipped to ``feed_info.txt``'s validity when
  given). Only a service that is a plain weekday pattern - no exceptions, and bounds that span the
  whole feed - becomes ``days``, since ``days`` run forever and honour the district calendar.
* ``frequencies.txt`` trips become one run per departure (``exact_times`` or not: the timetable
  is what the tracker matches against).
* Ids are made bundle-safe (``[A-Za-z0-9._-]{1,64}``) deterministically: an id that already is
  keeps its text; any other gets its unsafe characters replaced and a hash of the original.
* Trips the bundle cannot carry (fewer than two stops, times going backwards or past 47:59, a stop
  without coordinates, a service with no date) are skipped and counted, never half-imported.

The feed has no vehicles, devices, users or schools: the bundle has none of those.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tqdm import tqdm

from routing.calendar import format_hms
from routing.geometry import segment_m

# A city bus stop is a pole and a shelter: 40 m covers GPS noise (10-15 m) and a bus length or
# two of queueing, and keeps most neighbouring stops' circles apart (the bundle default, 60 m,
# is sized for village stops along rural roads).
STOP_RADIUS_M = 40.0
# Corridor around a shape: the bundle default, wide enough for GPS noise on a multi-lane road.
CORRIDOR_M = 80.0
MAX_SCHEDULE_S = 48 * 3600  # the bundle accepts hours up to 47

REQUIRED = ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_GTFS_TIME = re.compile(r"^(\d{1,3}):([0-5]\d):([0-5]\d)$")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class GtfsError(ValueError):
    """The file is not a usable GTFS feed, or the request does not fit it."""


@dataclass
class Conversion:
    """What :func:`convert_gtfs` made: the bundle, and the trips it had to leave out (by reason)."""

    bundle: dict[str, Any]
    skipped: Counter[str] = field(default_factory=Counter)
    gtfs_routes: int = 0

    def summary(self) -> dict[str, Any]:
        """Counts for a human: routes, runs, stops, skipped trips."""
        routes = self.bundle["routes"]
        return {
            "district": self.bundle["district"]["id"],
            "timezone": self.bundle["district"]["timezone"],
            "gtfs_routes": self.gtfs_routes,
            "routes": len(routes),
            "runs": sum(len(r["runs"]) for r in routes),
            "stops": len(self.bundle["stops"]),
            "skipped_trips": dict(sorted(self.skipped.items())),
        }


def bundle_from_gtfs(
    path: str | Path, route_ids: Iterable[str] | None = None, district_id: str | None = None
) -> dict[str, Any]:
    """Convert a GTFS static feed to a district bundle.

    Parameters
    ----------
    path : str or Path
        The feed, a zip of GTFS ``.txt`` files (at its root or in one folder).
    route_ids : iterable of str, optional
        GTFS ``route_id``s to keep; all routes when omitted.
    district_id : str, optional
        The bundle's district id; by default the feed file's name made into an id.

    Returns
    -------
    dict
        A bundle with ``district``, ``stops`` and ``routes`` (SPEC §3), ready for
        ``backend.bundle.import_bundle``.

    Raises
    ------
    GtfsError
        Not a zip, a required file or column missing, an unknown route id or time zone.
    """
    return convert_gtfs(path, route_ids, district_id).bundle


def convert_gtfs(
    path: str | Path,
    route_ids: Iterable[str] | None = None,
    district_id: str | None = None,
    progress: bool = False,
) -> Conversion:
    """:func:`bundle_from_gtfs`, also reporting skipped trips; ``progress`` shows tqdm bars."""
    path = Path(path)
    with _Feed(path) as feed:
        return _Converter(feed, path, route_ids, district_id, progress).run()


def safe_id(raw: str) -> str:
    """A bundle id for a GTFS id: itself when already safe, else cleaned and suffixed by a hash.

    Examples
    --------
    >>> safe_id("110-423")
    '110-423'
    >>> safe_id("Route 7/A")
    'Route_7_A-4a67f1d2'
    """
    if _SAFE_ID.match(raw):
        return raw
    digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:8]
    return f"{_UNSAFE.sub('_', raw)[:55]}-{digest}".lstrip("-") or digest


class _Ids:
    """Deterministic, unique bundle ids within one namespace (call in a stable order)."""

    def __init__(self) -> None:
        self._by_raw: dict[str, str] = {}
        self._owner: dict[str, str] = {}

    def __call__(self, raw: str, preferred: str | None = None) -> str:
        if raw in self._by_raw:
            return self._by_raw[raw]
        clean, n = preferred if preferred and _SAFE_ID.match(preferred) else safe_id(raw), 0
        while clean in self._owner:  # e.g. "a b" and "a_b" both clean to "a_b-…" only by chance
            n += 1
            digest = hashlib.sha1(f"{raw}#{n}".encode()).hexdigest()[:8]
            clean = f"{_UNSAFE.sub('_', raw)[:55]}-{digest}"
        self._by_raw[raw], self._owner[clean] = clean, raw
        return clean


class _Feed:
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

    def __enter__(self) -> _Feed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.zip.close()

    def rows(self, name: str, required: tuple[str, ...] = ()) -> Iterator[dict[str, str]]:
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


def _date(text: str, where: str) -> dt.date:
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError as exc:
        raise GtfsError(f"{where}: {text!r} is not a date YYYYMMDD") from exc


def _integer(text: str, column: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise GtfsError(f"{column} {text!r} is not a whole number") from exc


def _seconds(text: str) -> int | None:
    match = _GTFS_TIME.match(text)
    if match is None:
        return None
    return int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3])


def _service_days(feed: _Feed) -> dict[str, dict[str, list[Any]]]:
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


def _feed_bounds(feed: _Feed, weekly: dict, exceptions: dict) -> tuple[dt.date, dt.date]:
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


@dataclass
class _Trip:
    id: str
    route_id: str
    service_id: str
    shape_id: str
    headsign: str
    stops: list[tuple[int, str, str, str, str]] = field(default_factory=list)
    # (stop_sequence, stop_id, arrival_time, departure_time, shape_dist_traveled)


class _Converter:
    def __init__(
        self,
        feed: _Feed,
        path: Path,
        route_ids: Iterable[str] | None,
        district_id: str | None,
        progress: bool,
    ):
        self.feed, self.path, self.progress = feed, path, progress
        self.wanted = None if route_ids is None else set(route_ids)
        self.district_id = district_id or safe_id(path.stem or "gtfs")
        self.skipped: Counter[str] = Counter()
        self.stop_ids, self.route_ids, self.run_ids = _Ids(), _Ids(), _Ids()

    def run(self) -> Conversion:
        district = self._district()
        routes = {r["route_id"]: r for r in self.feed.rows("routes.txt", ("route_id",))}
        if self.wanted is not None:
            unknown = sorted(self.wanted - set(routes))
            if unknown:
                raise GtfsError(
                    f"{self.path}: no route {', '.join(map(repr, unknown))} in the feed"
                )
            routes = {k: v for k, v in routes.items() if k in self.wanted}
        trips = self._trips(routes)
        services = _service_days(self.feed)
        stops = self._stops()
        frequencies = self._frequencies(trips)
        patterns: dict[str, dict[tuple[str, tuple[str, ...]], list[tuple[_Trip, list[int]]]]]
        patterns = defaultdict(lambda: defaultdict(list))
        for trip in trips.values():
            times = self._times(trip, stops)
            if times is None:
                continue
            service = services.get(trip.service_id)
            if service is None or service == {"dates": []}:
                self.skipped["no_service_date"] += 1
                continue
            stop_ids = tuple(s[1] for s in trip.stops)
            patterns[trip.route_id][(trip.shape_id, stop_ids)].append((trip, times))
        shapes = self._shapes({shape for by in patterns.values() for shape, _ in by})
        bundle_routes, used_stops = [], set()
        for route_id in sorted(patterns):
            by_pattern = patterns[route_id]
            ordered = sorted(by_pattern, key=lambda k: (-len(by_pattern[k]), k))
            for n, key in enumerate(ordered, start=1):
                raw_id = route_id if len(ordered) == 1 else f"{route_id}.{n}"
                route = self._route(
                    routes[route_id],
                    raw_id,
                    key,
                    by_pattern[key],
                    stops,
                    shapes,
                    services,
                    frequencies,
                )
                if route is not None:
                    bundle_routes.append(route)
                    used_stops.update(key[1])
        bundle = {
            "district": district,
            "stops": [self._stop(s, stops[s]) for s in sorted(used_stops)],
            "routes": bundle_routes,
        }
        return Conversion(bundle, self.skipped, len(patterns))

    def _district(self) -> dict[str, Any]:
        agencies = list(self.feed.rows("agency.txt", ("agency_timezone",)))
        if not agencies:
            raise GtfsError(f"{self.path}: agency.txt names no agency")
        timezone = agencies[0]["agency_timezone"]
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise GtfsError(f"{self.path}: unknown agency_timezone {timezone!r}") from exc
        name = " / ".join(a.get("agency_name") or "" for a in agencies).strip(" /")
        return {
            "id": self.district_id,
            "name": (name or self.district_id)[:200],
            "timezone": timezone,
        }

    def _trips(self, routes: dict[str, dict[str, str]]) -> dict[str, _Trip]:
        trips: dict[str, _Trip] = {}
        for row in self.feed.rows("trips.txt", ("route_id", "service_id", "trip_id")):
            if row["route_id"] in routes:
                trips[row["trip_id"]] = _Trip(
                    row["trip_id"],
                    row["route_id"],
                    row["service_id"],
                    row.get("shape_id", ""),
                    row.get("trip_headsign", ""),
                )
        rows = self.feed.rows("stop_times.txt", ("trip_id", "stop_id", "stop_sequence"))
        for row in tqdm(rows, desc="stop_times", unit=" rows", disable=not self.progress):
            trip = trips.get(row["trip_id"])
            if trip is not None:
                trip.stops.append(
                    (
                        _integer(row["stop_sequence"], "stop_sequence"),
                        row["stop_id"],
                        row.get("arrival_time", ""),
                        row.get("departure_time", ""),
                        row.get("shape_dist_traveled", ""),
                    )
                )
        for trip in trips.values():
            trip.stops.sort()
        return dict(sorted(trips.items()))

    def _stops(self) -> dict[str, dict[str, Any]]:
        rows = {r["stop_id"]: r for r in self.feed.rows("stops.txt", ("stop_id",))}
        out = {}
        for stop_id, row in rows.items():
            point = _lat_lon(row) or _lat_lon(rows.get(row.get("parent_station", ""), {}))
            if point is not None:
                out[stop_id] = {"name": row.get("stop_name") or stop_id, "point": point}
        return out

    def _stop(self, stop_id: str, stop: dict[str, Any]) -> dict[str, Any]:
        lat, lon = stop["point"]
        return {
            "id": self.stop_ids(stop_id),
            "name": stop["name"][:200],
            "lat": lat,
            "lon": lon,
            "radius_m": STOP_RADIUS_M,
        }

    def _times(self, trip: _Trip, stops: dict[str, dict[str, Any]]) -> list[int] | None:
        """One time per stop, non-timepoints interpolated; ``None`` (counted) when unusable."""
        reason = None
        if len(trip.stops) < 2:
            reason = "fewer_than_two_stops"
        elif any(s[1] not in stops for s in trip.stops):
            reason = "stop_without_coordinates"
        if reason is None:
            known = [_seconds(s[2]) if s[2] else _seconds(s[3]) for s in trip.stops]
            if known[0] is None or known[-1] is None:
                reason = "no_first_or_last_time"
            else:
                times = _interpolate(known, _distances(trip, stops))
                if any(b < a for a, b in zip(times, times[1:], strict=False)):
                    reason = "times_go_backwards"
                elif times[-1] >= MAX_SCHEDULE_S:
                    reason = "times_past_47h"
                else:
                    return times
        self.skipped[reason] += 1
        return None

    def _frequencies(self, trips: dict[str, _Trip]) -> dict[str, list[tuple[int, int, int]]]:
        out: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        required = ("trip_id", "start_time", "end_time", "headway_secs")
        for row in self.feed.rows("frequencies.txt", required):
            start, end = _seconds(row["start_time"]), _seconds(row["end_time"])
            headway = _integer(row["headway_secs"] or "0", "headway_secs")
            if row["trip_id"] in trips and start is not None and end is not None and headway > 0:
                out[row["trip_id"]].append((start, end, headway))
        return out

    def _shapes(self, wanted: set[str]) -> dict[str, list[list[float]]]:
        points: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        required = ("shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence")
        rows = self.feed.rows("shapes.txt", required)
        for row in tqdm(rows, desc="shapes", unit=" points", disable=not self.progress):
            if row["shape_id"] in wanted:
                point = _lat_lon(row, "shape_pt_lat", "shape_pt_lon")
                if point is not None:
                    seq = _integer(row["shape_pt_sequence"], "shape_pt_sequence")
                    points[row["shape_id"]].append((seq, point[1], point[0]))
        return {k: _line([[lon, lat] for _, lon, lat in sorted(v)]) for k, v in points.items()}

    def _route(
        self,
        gtfs_route: dict[str, str],
        raw_id: str,
        key: tuple[str, tuple[str, ...]],
        trips: list[tuple[_Trip, list[int]]],
        stops: dict[str, dict[str, Any]],
        shapes: dict[str, list[list[float]]],
        services: dict[str, dict[str, list[Any]]],
        frequencies: dict[str, list[tuple[int, int, int]]],
    ) -> dict[str, Any] | None:
        shape_id, stop_ids = key
        path = shapes.get(shape_id, [])
        if len(path) < 2:
            path = _line([[stops[s]["point"][1], stops[s]["point"][0]] for s in stop_ids])
        if len(path) < 2:
            self.skipped["degenerate_path"] += len(trips)
            return None
        runs = []
        for trip, times in sorted(trips, key=lambda t: (t[1][0], t[0].id)):
            departures = [(trip.id, 0)]
            if trip.id in frequencies:
                departures = [
                    (f"{trip.id}.{format_hms(t).replace(':', '')}", t - times[0])
                    for start, end, headway in frequencies[trip.id]
                    for t in range(start, end, headway)
                ]
            for raw_run_id, shift in departures:
                run_times = [t + shift for t in times]
                if run_times[-1] >= MAX_SCHEDULE_S:
                    self.skipped["times_past_47h"] += 1
                    continue
                runs.append(
                    {
                        "id": self.run_ids(raw_run_id),
                        "times": [format_hms(t) for t in run_times],
                        **services[trip.service_id],
                    }
                )
        if not runs:
            return None
        base = " ".join(
            p for p in (gtfs_route.get("route_short_name"), gtfs_route.get("route_long_name")) if p
        )
        headsign = trips[0][0].headsign
        name = f"{base or gtfs_route['route_id']}" + (f" → {headsign}" if headsign else "")
        suffix = raw_id[len(gtfs_route["route_id"]) :]  # ".n" when the route has several
        route_id = self.route_ids(raw_id, safe_id(gtfs_route["route_id"]) + suffix)
        return {
            "id": route_id,
            "name": name[:200],
            "school_id": None,
            "path": {"type": "LineString", "coordinates": path},
            "corridor_m": CORRIDOR_M,
            "stops": [{"stop_id": self.stop_ids(s)} for s in stop_ids],
            "runs": runs,
        }


def _lat_lon(
    row: dict[str, str], lat_key: str = "stop_lat", lon_key: str = "stop_lon"
) -> tuple[float, float] | None:
    try:
        lat, lon = float(row[lat_key]), float(row[lon_key])
    except (KeyError, ValueError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return lat, lon


def _line(coordinates: list[list[float]]) -> list[list[float]]:
    """Drop consecutive repeated points (a zero-length segment helps nobody)."""
    out: list[list[float]] = []
    for point in coordinates:
        if not out or point != out[-1]:
            out.append(point)
    return out


def _distances(trip: _Trip, stops: dict[str, dict[str, Any]]) -> list[float]:
    """Distance of each stop along the trip: ``shape_dist_traveled`` if every stop has it."""
    try:
        given = [float(s[4]) for s in trip.stops]
        if all(b >= a for a, b in zip(given, given[1:], strict=False)):
            return given
    except ValueError:
        pass
    out = [0.0]
    for a, b in zip(trip.stops, trip.stops[1:], strict=False):
        (lat1, lon1), (lat2, lon2) = stops[a[1]]["point"], stops[b[1]]["point"]
        out.append(out[-1] + segment_m(lat1, lon1, lat2, lon2))
    return out


def _interpolate(known: list[int | None], along: list[float]) -> list[int]:
    """Fill the ``None`` times linearly in distance between the timed stops around them
    (in stop count where those stops are at one place); the first and last are known."""
    times = list(known)
    last = 0
    for j in range(1, len(times)):
        t = times[j]
        if t is None:
            continue
        t0 = times[last]
        assert t0 is not None
        span = along[j] - along[last]
        for k in range(last + 1, j):
            f = (along[k] - along[last]) / span if span > 0 else (k - last) / (j - last)
            times[k] = round(t0 + f * (t - t0))
        last = j
    return [int(t) for t in times if t is not None]
