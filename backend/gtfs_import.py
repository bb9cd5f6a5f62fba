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
  Reading the zip and expanding the calendars is :mod:`backend.gtfs_feed`.
* ``frequencies.txt`` trips become one run per departure (``exact_times`` or not: the timetable
  is what the tracker matches against).
* Ids are made bundle-safe (``[A-Za-z0-9._-]{1,64}``) deterministically: an id that already is
  keeps its text; any other gets its unsafe characters replaced and a hash of the original.
* Trips the bundle cannot carry (fewer than two stops, times going backwards or past 47:59, a stop
  without coordinates, a service with no date) are skipped and counted, never half-imported.

The feed has no vehicles, devices, users or schools: the bundle has none of those.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backend.gtfs_feed import REQUIRED, Feed, GtfsError, Trip, gtfs_seconds, service_days
from routing.calendar import format_hms
from routing.geometry import segment_m

# A city bus stop is a pole and a shelter: 40 m covers GPS noise (10-15 m) and a bus length or
# two of queueing, and keeps most neighbouring stops' circles apart (the bundle default, 60 m,
# is sized for village stops along rural roads).
STOP_RADIUS_M = 40.0
# Corridor around a shape: the bundle default, wide enough for GPS noise on a multi-lane road.
CORRIDOR_M = 80.0
MAX_SCHEDULE_S = 48 * 3600  # the bundle accepts hours up to 47

__all__ = [
    "CORRIDOR_M",
    "MAX_SCHEDULE_S",
    "REQUIRED",
    "STOP_RADIUS_M",
    "Conversion",
    "GtfsError",
    "bundle_from_gtfs",
    "convert_gtfs",
    "safe_id",
]

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


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
    with Feed(path) as feed:
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


class _Converter:
    def __init__(
        self,
        feed: Feed,
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
        trips = self.feed.trips(routes, self.progress)
        services = service_days(self.feed)
        stops = self.feed.stops()
        frequencies = self.feed.frequencies(trips)
        patterns: dict[str, dict[tuple[str, tuple[str, ...]], list[tuple[Trip, list[int]]]]]
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
        wanted = {shape for by in patterns.values() for shape, _ in by}
        shapes = {k: _line(v) for k, v in self.feed.shapes(wanted, self.progress).items()}
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

    def _stop(self, stop_id: str, stop: dict[str, Any]) -> dict[str, Any]:
        lat, lon = stop["point"]
        return {
            "id": self.stop_ids(stop_id),
            "name": stop["name"][:200],
            "lat": lat,
            "lon": lon,
            "radius_m": STOP_RADIUS_M,
        }

    def _times(self, trip: Trip, stops: dict[str, dict[str, Any]]) -> list[int] | None:
        """One time per stop, non-timepoints interpolated; ``None`` (counted) when unusable."""
        reason = None
        if len(trip.stops) < 2:
            reason = "fewer_than_two_stops"
        elif any(s[1] not in stops for s in trip.stops):
            reason = "stop_without_coordinates"
        if reason is None:
            known = [gtfs_seconds(s[2]) if s[2] else gtfs_seconds(s[3]) for s in trip.stops]
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

    def _route(
        self,
        gtfs_route: dict[str, str],
        raw_id: str,
        key: tuple[str, tuple[str, ...]],
        trips: list[tuple[Trip, list[int]]],
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


def _line(coordinates: list[list[float]]) -> list[list[float]]:
    """Drop consecutive repeated points (a zero-length segment helps nobody)."""
    out: list[list[float]] = []
    for point in coordinates:
        if not out or point != out[-1]:
            out.append(point)
    return out


def _distances(trip: Trip, stops: dict[str, dict[str, Any]]) -> list[float]:
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
