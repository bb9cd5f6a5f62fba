"""GTFS static → district bundle, as a pure conversion: the real Cairns feed and tiny handmade
feeds that each pin one translation rule (calendars, past-midnight times, missing shapes and
times, BOMs, unsafe ids)."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path

import pytest

from backend.bundle.schema import SECTIONS
from backend.gtfs_import import STOP_RADIUS_M, GtfsError, bundle_from_gtfs, convert_gtfs, safe_id
from tests.conftest import FIXTURES

CAIRNS = FIXTURES / "gtfs" / "cairns_gtfs.zip"
ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
BOM = "\ufeff"


def _schema_problems(bundle: dict) -> dict:
    """Field-level problems of every section (references need a database: not checked here)."""
    problems = {}
    for section in ("district", "stops", "routes"):
        schema, many = SECTIONS[section]
        errors = schema.validate(bundle[section], many=many)
        if errors:
            problems[section] = errors
    return problems


def _dates(first: str, last: str, weekdays: set[int]) -> list[str]:
    day, end, out = dt.date.fromisoformat(first), dt.date.fromisoformat(last), []
    while day <= end:
        if day.isoweekday() in weekdays:
            out.append(day.isoformat())
        day += dt.timedelta(days=1)
    return out


# --- the real feed ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cairns() -> dict:
    return bundle_from_gtfs(CAIRNS)


def _runs(bundle: dict) -> dict[str, dict]:
    return {run["id"]: run for route in bundle["routes"] for run in route["runs"]}


def test_every_cairns_trip_becomes_one_run_on_a_route_of_one_shape_and_stop_pattern(cairns):
    with zipfile.ZipFile(CAIRNS) as feed:
        trips = feed.read("trips.txt").decode().splitlines()[1:]
    trip_ids = {line.split(",")[2] for line in trips}
    assert set(_runs(cairns)) == trip_ids and len(trip_ids) == 1339
    assert len(cairns["routes"]) == 54 and len(cairns["stops"]) == 416
    for route in cairns["routes"]:
        for run in route["runs"]:
            assert len(run["times"]) == len(route["stops"])
    assert cairns["district"] == {
        "id": "cairns_gtfs",
        "timezone": "Australia/Brisbane",
        "name": "Department of Transport and Main Roads - TransLink Division (qconnect)",
    }
    assert {"vehicles", "devices", "users", "schools"}.isdisjoint(cairns)
    assert all(route["school_id"] is None for route in cairns["routes"])
    assert all(stop["radius_m"] == STOP_RADIUS_M for stop in cairns["stops"])


def test_the_cairns_bundle_passes_the_bundle_schema_field_by_field(cairns):
    assert _schema_problems(cairns) == {}
    for section in ("stops", "routes"):
        assert all(ID.match(item["id"]) for item in cairns[section])


def test_cairns_calendar_dates_remove_public_holidays_from_weekdays_and_add_them_to_sundays(
    cairns,
):
    runs = _runs(cairns)
    weekday = runs["CNS2014-CNS_MUL-Weekday-00-4165878"]["dates"]
    sunday = next(r["dates"] for i, r in runs.items() if "Sunday" in i)
    holidays = ["2014-06-09", "2014-10-06", "2014-12-25", "2014-12-26"]
    assert weekday == [
        d for d in _dates("2014-05-26", "2014-12-26", {1, 2, 3, 4, 5}) if d not in holidays
    ]
    assert sunday == sorted(_dates("2014-06-01", "2014-12-28", {7}) + holidays)


def test_a_cairns_stop_without_a_published_time_is_interpolated_between_its_neighbours(cairns):
    run = _runs(cairns)["CNS2014-CNS_MUL-Weekday-00-4165903"]  # stop 15 has no time in the feed
    times = run["times"]
    assert all(a <= b for a, b in zip(times, times[1:], strict=False))
    assert times[13] < times[14] < times[15]


def test_cairns_times_past_midnight_stay_on_their_service_day(cairns):
    run = _runs(cairns)["CNS2014-CNS_MUL-Weekday-00-4165936"]
    assert run["times"][-2:] == ["24:00:00", "24:02:00"]


def test_choosing_cairns_routes_keeps_only_their_patterns_and_stops(cairns):
    conversion = convert_gtfs(CAIRNS, ["110-423", "133-423"])
    bundle = conversion.bundle
    assert {r["id"].split(".")[0] for r in bundle["routes"]} == {"110-423", "133-423"}
    used = {s["stop_id"] for r in bundle["routes"] for s in r["stops"]}
    assert {s["id"] for s in bundle["stops"]} == used
    assert conversion.summary()["gtfs_routes"] == 2
    assert bundle_from_gtfs(CAIRNS, ["110-423", "133-423"]) == bundle  # deterministic


def test_an_unknown_route_id_is_refused_by_name():
    with pytest.raises(GtfsError, match="no route '42-nope'"):
        bundle_from_gtfs(CAIRNS, ["110-423", "42-nope"])


# --- handmade feeds ---------------------------------------------------------------------------

AGENCY = BOM + "agency_timezone,agency_name,agency_url\nAsia/Shanghai,渌口公交,http://x\n"
STOPS = BOM + (
    "stop_id,stop_name,stop_lat,stop_lon,location_type,parent_station\n"
    "S1,East gate,27.40,113.20,0,\n"
    "S 2,Market,27.40,113.21,0,\n"
    "S3,,27.40,113.24,0,\n"
    "ST,Station,27.41,113.25,1,\n"
    "S4,Platform 1,,,0,ST\n"
)
ROUTES = "route_id,route_short_name,route_long_name,route_type\nR1,1,Town loop,3\nR/2,2,,3\n"
TRIPS = (
    "route_id,service_id,trip_id,trip_headsign,shape_id\n"
    "R1,WK,T1,Market,SH1\n"
    "R1,WK,T2,Market,SH1\n"
    "R1,SAT,T3,East gate,\n"
    "R/2,PLAIN,T4,Night,\n"
    "R/2,EXTRA,T5,Platform,GHOST\n"
)
STOP_TIMES = (
    "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
    "T1,07:00:00,07:00:00,S1,1\n"
    "T1,07:10:00,07:11:00,S 2,2\n"
    "T1,07:30:00,07:30:00,S3,3\n"
    "T2,08:00:00,08:00:00,S1,1\n"
    "T2,,,S 2,2\n"
    "T2,08:20:00,08:20:00,S3,3\n"
    "T3,09:00:00,09:00:00,S3,1\n"
    "T3,09:20:00,09:20:00,S1,2\n"
    "T4,23:50:00,23:50:00,S1,2\n"  # rows out of order: stop_sequence decides
    "T4,24:10:00,24:10:00,S4,3\n"
    "T5,06:00:00,06:00:00,S1,1\n"
    "T5,06:10:00,06:10:00,S4,2\n"
)
SHAPES = (
    "shape_id,shape_pt_lat,shape_pt_lon,shape_pt_sequence\n"
    "SH1,27.40,113.24,30\n"
    "SH1,27.40,113.20,10\n"
    "SH1,27.401,113.21,20\n"
)
CALENDAR = (
    "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
    "WK,1,1,1,1,1,0,0,20260105,20260130\n"
    "SAT,0,0,0,0,0,1,0,20260110,20260124\n"
    "PLAIN,1,1,1,1,1,0,0,20260101,20260131\n"
)
CALENDAR_DATES = "service_id,date,exception_type\nWK,20260114,2\nWK,20260117,1\nEXTRA,20260131,1\n"
FILES = {
    "agency.txt": AGENCY,
    "stops.txt": STOPS,
    "routes.txt": ROUTES,
    "trips.txt": TRIPS,
    "stop_times.txt": STOP_TIMES,
    "shapes.txt": SHAPES,
    "calendar.txt": CALENDAR,
    "calendar_dates.txt": CALENDAR_DATES,
}


def _feed(tmp_path: Path, files: dict[str, str] = FILES, folder: str = "") -> Path:
    path = tmp_path / "town.zip"
    with zipfile.ZipFile(path, "w") as feed:
        for name, text in files.items():
            feed.writestr(folder + name, text.encode("utf-8"))
    return path


@pytest.fixture
def town(tmp_path) -> dict:
    return bundle_from_gtfs(_feed(tmp_path), district_id="town")


def _route(bundle: dict, route_id: str) -> dict:
    return next(r for r in bundle["routes"] if r["id"] == route_id)


def test_a_route_splits_per_shape_and_stop_pattern_with_one_run_per_trip(town):
    ids = [r["id"] for r in town["routes"]]
    r2 = safe_id("R/2")
    assert ids == [f"{r2}.1", f"{r2}.2", "R1.1", "R1.2"]  # in GTFS route_id order
    assert [run["id"] for run in _route(town, "R1.1")["runs"]] == ["T1", "T2"]
    assert [run["id"] for run in _route(town, "R1.2")["runs"]] == ["T3"]
    assert _route(town, "R1.1")["name"] == "1 Town loop → Market"
    assert _schema_problems(town) == {}


def test_shape_points_follow_their_sequence_and_a_trip_without_a_shape_follows_its_stops(town):
    assert _route(town, "R1.1")["path"]["coordinates"] == [
        [113.20, 27.40],
        [113.21, 27.401],
        [113.24, 27.40],
    ]
    assert _route(town, "R1.2")["path"]["coordinates"] == [[113.24, 27.40], [113.20, 27.40]]


def test_a_shape_id_missing_from_shapes_txt_falls_back_to_the_stops(town):
    ghost = _route(town, f"{safe_id('R/2')}.2")  # T5 names shape GHOST, which does not exist
    assert ghost["path"]["coordinates"] == [[113.20, 27.40], [113.25, 27.41]]


def test_calendar_dates_add_and_remove_days_and_bounds_become_explicit_dates(town):
    t1 = _route(town, "R1.1")["runs"][0]
    expected = [
        d for d in _dates("2026-01-05", "2026-01-30", {1, 2, 3, 4, 5}) if d != "2026-01-14"
    ] + ["2026-01-17"]
    assert "days" not in t1 and t1["dates"] == sorted(expected)
    t3 = _route(town, "R1.2")["runs"][0]
    assert t3["dates"] == ["2026-01-10", "2026-01-17", "2026-01-24"]
    t5 = _route(town, f"{safe_id('R/2')}.2")["runs"][0]
    assert t5["dates"] == ["2026-01-31"]  # a service known only from calendar_dates.txt


def test_a_plain_weekday_service_spanning_the_whole_feed_keeps_its_weekdays(town):
    t4 = _route(town, f"{safe_id('R/2')}.1")["runs"][0]
    assert t4["days"] == [1, 2, 3, 4, 5] and "dates" not in t4


def test_times_past_midnight_and_missing_times_are_carried_and_interpolated(town):
    t4 = _route(town, f"{safe_id('R/2')}.1")["runs"][0]
    assert t4["times"] == ["23:50:00", "24:10:00"]
    t1, t2 = _route(town, "R1.1")["runs"]
    assert t1["times"] == ["07:00:00", "07:10:00", "07:30:00"]  # arrival, not departure
    assert t2["times"] == ["08:00:00", "08:05:00", "08:20:00"]  # S 2 is a quarter of the way


def test_a_bom_and_unsafe_ids_are_handled_and_a_stop_takes_its_stations_position(town):
    assert town["district"] == {"id": "town", "name": "渌口公交", "timezone": "Asia/Shanghai"}
    stops = {s["id"]: s for s in town["stops"]}
    s2 = safe_id("S 2")
    assert s2 != "S 2" and ID.match(s2) and stops[s2]["name"] == "Market"
    assert [s["stop_id"] for s in _route(town, "R1.1")["stops"]] == ["S1", s2, "S3"]
    assert stops["S3"]["name"] == "S3"  # no name in the feed: the id stands in
    assert (stops["S4"]["lat"], stops["S4"]["lon"]) == (27.41, 113.25)
    assert "ST" not in stops  # a station no trip stops at is not a stop of the district


def test_unsafe_ids_that_clean_to_the_same_text_stay_distinct():
    assert safe_id("a b") != safe_id("a/b")
    assert safe_id("x" * 80) != safe_id("x" * 81) and len(safe_id("x" * 80)) == 64


def test_files_inside_one_folder_of_the_zip_are_found(tmp_path):
    bundle = bundle_from_gtfs(_feed(tmp_path, folder="gtfs/"), district_id="town")
    assert len(bundle["routes"]) == 4


def test_a_trip_whose_times_go_backwards_is_skipped_and_counted(tmp_path):
    files = dict(
        FILES,
        **{"stop_times.txt": STOP_TIMES.replace("T3,09:20:00,09:20:00", "T3,08:20:00,08:20:00")},
    )
    conversion = convert_gtfs(_feed(tmp_path, files))
    assert conversion.skipped == {"times_go_backwards": 1}
    assert "T3" not in {run["id"] for r in conversion.bundle["routes"] for run in r["runs"]}


def test_frequency_based_trips_become_one_run_per_departure(tmp_path):
    files = dict(
        FILES,
        **{
            "frequencies.txt": "trip_id,start_time,end_time,headway_secs\n"
            "T3,09:00:00,10:00:00,1200\n"
        },
    )
    runs = _route(bundle_from_gtfs(_feed(tmp_path, files)), "R1.2")["runs"]
    assert [(r["id"], r["times"]) for r in runs] == [
        ("T3.090000", ["09:00:00", "09:20:00"]),
        ("T3.092000", ["09:20:00", "09:40:00"]),
        ("T3.094000", ["09:40:00", "10:00:00"]),
    ]


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "feed.zip"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(GtfsError, match="not a GTFS zip"):
        bundle_from_gtfs(path)


def test_a_zip_without_stop_times_is_refused_naming_what_is_missing(tmp_path):
    files = {k: v for k, v in FILES.items() if k != "stop_times.txt"}
    with pytest.raises(GtfsError, match="missing stop_times.txt"):
        bundle_from_gtfs(_feed(tmp_path, files))


def test_a_feed_without_any_calendar_is_refused(tmp_path):
    files = {k: v for k, v in FILES.items() if not k.startswith("calendar")}
    with pytest.raises(GtfsError, match="calendar.txt or calendar_dates.txt"):
        bundle_from_gtfs(_feed(tmp_path, files))


def test_an_unknown_agency_timezone_is_refused(tmp_path):
    files = dict(FILES, **{"agency.txt": AGENCY.replace("Asia/Shanghai", "Mars/Olympus")})
    with pytest.raises(GtfsError, match="Mars/Olympus"):
        bundle_from_gtfs(_feed(tmp_path, files))
