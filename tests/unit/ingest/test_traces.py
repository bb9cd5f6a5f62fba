"""Recorded traces read back as pings: GPX, CSV, OwnTracks .rec, JSON lines."""

from __future__ import annotations

import pytest

from gps_ingest.traces import TraceError, read_trace

TS = 1_700_000_000.0

GPX = """<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">
  <trk><name>morning run</name><trkseg>
    <trkpt lat="27.6200" lon="113.0800"><ele>81.5</ele><time>2023-11-14T22:13:20Z</time></trkpt>
    <trkpt lat="27.6210" lon="113.0805"><ele>82.0</ele><time>2023-11-14T22:13:30Z</time></trkpt>
  </trkseg></trk>
  <rte><rtept lat="27.6300" lon="113.0900"><time>2023-11-15T06:14:20+08:00</time></rtept></rte>
</gpx>
"""


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_gpx_track_and_route_become_pings_with_time_and_elevation(tmp_path):
    pings = list(read_trace(write(tmp_path, "run.gpx", GPX)))
    assert [(p.device_id, p.ts, p.lat, p.lon, p.alt_m) for p in pings] == [
        ("", TS, 27.62, 113.08, 81.5),
        ("", TS + 10, 27.621, 113.0805, 82.0),
        ("", TS + 60, 27.63, 113.09, None),
    ]


def test_a_gpx_point_without_time_is_an_error_naming_the_point(tmp_path):
    text = GPX.replace("<time>2023-11-14T22:13:30Z</time>", "")
    with pytest.raises(TraceError, match=r"track 1 segment 1 point 2: no <time>"):
        list(read_trace(write(tmp_path, "run.gpx", text)))
    skipped: list[TraceError] = []
    assert len(list(read_trace(tmp_path / "run.gpx", skipped))) == 2
    assert len(skipped) == 1


def test_gpx_is_recognised_by_content_without_its_extension(tmp_path):
    assert len(list(read_trace(write(tmp_path, "download", GPX)))) == 3


def test_a_csv_with_a_header_reads_its_columns_by_name(tmp_path):
    text = ("time,latitude,longitude,speed_kmh,accuracy_m\n"
            "2023-11-14T22:13:20Z,27.62,113.08,38.5,6\n"
            "1700000010,27.621,113.0805,,\n")
    pings = list(read_trace(write(tmp_path, "trip.csv", text)))
    assert [(p.ts, p.lat, p.lon, p.speed_kmh, p.accuracy_m) for p in pings] == [
        (TS, 27.62, 113.08, 38.5, 6.0), (TS + 10, 27.621, 113.0805, None, None)]


def test_a_csv_without_a_header_is_ts_lat_lon_speed_heading_accuracy(tmp_path):
    text = "1700000000,27.62,113.08,38.5,271,6\n\n# a comment\n1700000010,27.621,113.0805\n"
    pings = list(read_trace(write(tmp_path, "trip.csv", text)))
    assert [(p.ts, p.speed_kmh, p.heading_deg, p.accuracy_m) for p in pings] == [
        (TS, 38.5, 271.0, 6.0), (TS + 10, None, None, None)]


def test_a_bad_csv_line_is_an_error_naming_its_line_or_is_skipped_and_counted(tmp_path):
    text = "ts,lat,lon\n1700000000,27.62,113.08\n1700000010,95.2,113.08\n1700000020,abc,1\n" \
           "2023-11-14T22:13:50,27.6,113.0\n1700000040,27.63,113.09\n"
    path = write(tmp_path, "trip.csv", text)
    with pytest.raises(TraceError, match=r"trip.csv:3: bad_lat: lat 95.2 out of range"):
        list(read_trace(path))
    skipped: list[TraceError] = []
    assert [p.ts for p in read_trace(path, skipped)] == [TS, TS + 40]
    assert [e.line for e in skipped] == [3, 4, 5]
    assert "no UTC offset" in skipped[2].message


def test_a_csv_header_without_lat_is_an_error(tmp_path):
    with pytest.raises(TraceError, match=r"trip.csv:1: .*lacks the columns \['lat'\]"):
        list(read_trace(write(tmp_path, "trip.csv", "ts,latt,lon\n1700000000,1,2\n")))


REC = (
    '2023-11-14T22:13:20Z\t*                 \t{"_type":"location","lat":27.62,"lon":113.08,'
    '"tst":1700000000,"vel":38,"acc":6}\n'
    '2023-11-14T22:13:25Z\tlwt               \t{"_type":"lwt","tst":1700000005}\n'
    '2023-11-14T22:13:30Z\t*                 \t{"_type":"location","lat":27.621,"lon":113.0805,'
    '"tst":1700000010}\n'
)


def test_an_owntracks_rec_file_yields_its_locations_and_passes_over_other_messages(tmp_path):
    pings = list(read_trace(write(tmp_path, "2023-11.rec", REC)))
    assert [(p.ts, p.lat, p.speed_kmh, p.accuracy_m) for p in pings] == [
        (TS, 27.62, 38.0, 6.0), (TS + 10, 27.621, None, None)]
    assert len(list(read_trace(write(tmp_path, "no-extension", REC)))) == 2


def test_a_broken_rec_line_names_its_line(tmp_path):
    text = REC + "2023-11-14T22:13:40Z\t*\t{not json\n"
    with pytest.raises(TraceError, match=r"\.rec:4: "):
        list(read_trace(write(tmp_path, "x.rec", text)))


def test_json_lines_mix_owntracks_messages_and_native_pings(tmp_path):
    text = ('{"_type":"location","lat":27.62,"lon":113.08,"tst":1700000000}\n'
            '{"ts":"2023-11-14T22:13:30Z","lat":27.621,"lon":113.0805,"speed_kmh":40}\n'
            '{"_type":"transition","tst":1700000020}\n')
    pings = list(read_trace(write(tmp_path, "day.jsonl", text)))
    assert [(p.ts, p.speed_kmh) for p in pings] == [(TS, None), (TS + 10, 40.0)]


def test_a_json_line_that_is_not_an_object_or_misses_a_field_is_an_error(tmp_path):
    path = write(tmp_path, "day.jsonl", '[1]\n{"ts":1700000000,"lat":1}\n')
    skipped: list[TraceError] = []
    assert list(read_trace(path, skipped)) == []
    assert [(e.line, e.message) for e in skipped] == [
        (1, "a line must hold one JSON object"), (2, "missing_field: lon is required")]
