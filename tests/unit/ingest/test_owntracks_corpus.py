"""Every file of the OwnTracks JSON test corpus and Traccar's real-device payloads, decoded.

The expectation per file was written by reading each file (tests/data/owntracks/README.md
names the sources).  Upstream labels a file invalid against the JSON *schema*; for ingest the
question is narrower — is it a position, and if so a usable one?  An invalid message that is not
a location (an ``lwt`` without ``tst``, a ``transition`` whose ``lat`` is a string, a ``card``
with bad base64) is simply not a position: ``ignored``, like its valid siblings.
"""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest

from gps_ingest.decoders import decode_owntracks

CORPUS = Path(__file__).resolve().parents[2] / "data" / "owntracks"

# file -> (pings, ignored, reject reasons)
EXPECTED: dict[str, tuple[int, int, list[str]]] = {
    "array.json": (1, 1, []),  # a location and an lwt
    "array-one.json": (1, 0, []),  # (despite its name, one location object)
    "array-empty.json": (0, 0, []),  # nothing in it, nothing wrong with it
    "one.json": (0, 1, []),  # an lwt
    "array-nothing.json": (0, 1, []),  # blank payload: how a client clears its retained message
    "e.json": (0, 0, ["encrypted"]),
    "e-nodata.json": (0, 0, ["encrypted"]),
    "e-nobase64.json": (0, 0, ["encrypted"]),
    "object-empty.json": (0, 0, ["missing_field"]),  # no _type
    "card-without-face.json": (0, 1, []),
    "card-without-name.json": (0, 1, []),
    "card-without-all.json": (0, 1, []),
    "card-invalid-b64.json": (0, 1, []),
    "card-vw.json": (0, 1, []),
    "card-volvo.json": (0, 1, []),
    "cmd-illegal-action.json": (0, 1, []),
    "cmd-without-action.json": (0, 1, []),
    "cmd-status.json": (0, 1, []),
    "cmd-waypoints.json": (0, 1, []),
    "cmd-clearWaypoints.json": (0, 1, []),
    "cmd-reportLocation.json": (0, 1, []),
    "cmd-reportSteps.json": (0, 1, []),
    "cmd-setWaypoints.json": (0, 1, []),
    "cmd-setWaypoints-update.json": (0, 1, []),
    "cmd-setWaypoints-delete.json": (0, 1, []),
    "cmd-setWaypoints-illegal.json": (0, 0, ["bad_json"]),  # "tst": 010 is not JSON
    "cmd-setConfiguration-badconfiguration.json": (0, 1, []),
    "cmd-setConfiguration-config-wrongtype.json": (0, 1, []),
    "cmd-setConfiguration-noconfiguration.json": (0, 1, []),
    "cmd-setConfiguration-config-notype.json": (0, 1, []),
    "cmd-setConfiguration-lock.json": (0, 1, []),
    "cmd-setConfiguration-unlock.json": (0, 1, []),
    "untour-illegal.json": (0, 1, []),
    "steps-kaputt.json": (0, 1, []),
    "location-lat-missing.json": (0, 0, ["missing_field"]),
    "tour-invalid-request.json": (0, 1, []),
    "transition-illegal-lat.json": (0, 1, []),  # a transition is not a position either way
    "cmd-dump.json": (0, 1, []),
    "l.json": (1, 0, []),
    "l2.json": (1, 0, []),
    "location-5s.json": (1, 0, []),
    "location-short.json": (1, 0, []),
    "location-sk.json": (1, 0, []),
    "tour.json": (0, 1, []),
    "tours-request.json": (0, 1, []),
    "tours-response-0.json": (0, 1, []),
    "tours-response-2.json": (0, 1, []),
    "untour.json": (0, 1, []),
    "status.json": (0, 1, []),
    "steps.json": (0, 1, []),
    "steps-long.json": (0, 1, []),
    "steps-long-invalid.json": (0, 1, []),
    "steps-nohave.json": (0, 1, []),
    "transition.json": (0, 1, []),
    "w.json": (0, 1, []),
    "waypoint-circular.json": (0, 1, []),
    "waypoints-follow-only.json": (0, 1, []),
    "lwt.json": (0, 1, []),
    "lwt-notst.json": (0, 1, []),
    "lwt-extra.json": (0, 1, []),
}


def corpus_files() -> list[str]:
    with (CORPUS / "EXPECTED_json-schema.tsv").open() as f:
        return [row["file"] for row in csv.DictReader(f, delimiter="\t")]


def test_the_expectation_table_covers_exactly_the_corpus():
    assert sorted(EXPECTED) == sorted(corpus_files())
    assert all((CORPUS / f"json-schema_{name}").exists() for name in EXPECTED)


@pytest.mark.parametrize("name", corpus_files())
def test_each_corpus_file_decodes_to_what_reading_it_says(name):
    decoded = decode_owntracks("phone-1", (CORPUS / f"json-schema_{name}").read_bytes())
    pings, ignored, reasons = EXPECTED[name]
    assert len(decoded.pings) == pings
    assert decoded.ignored == ignored
    assert [r.reason for r in decoded.rejects] == reasons
    assert all(r.detail for r in decoded.rejects)
    assert all(p.device_id == "phone-1" for p in decoded.pings)


def test_a_full_location_message_maps_every_field():
    (ping,) = decode_owntracks("p", (CORPUS / "json-schema_location-5s.json").read_bytes()).pings
    assert (ping.ts, ping.lat, ping.lon) == (1701263310.0, 53.430722, 5.112126)
    assert (ping.speed_kmh, ping.heading_deg, ping.accuracy_m, ping.alt_m, ping.battery_pct) == (
        1.0, 252.0, 9.0, 93.0, 94.0)


def test_a_tracker_reporting_accuracy_minus_one_has_unknown_accuracy_not_a_reject():
    (ping,) = decode_owntracks("p", (CORPUS / "json-schema_l2.json").read_bytes()).pings
    assert ping.accuracy_m is None
    assert (ping.ts, ping.lat, ping.lon) == (1698947571.0, 53.026676, 9.543561)
    assert (ping.speed_kmh, ping.heading_deg, ping.alt_m, ping.battery_pct) == (0.0, 80.0, 142.4, 6.0)


def test_a_location_without_speed_or_heading_leaves_them_unknown():
    (ping,) = decode_owntracks("p", (CORPUS / "json-schema_l.json").read_bytes()).pings
    assert (ping.ts, ping.lat, ping.lon, ping.accuracy_m, ping.alt_m, ping.battery_pct) == (
        1699882482.0, 52.195913, 7.688245, 35.0, 0.0, 75.0)
    assert ping.speed_kmh is None and ping.heading_deg is None


def test_the_missing_lat_reject_says_which_field():
    (reject,) = decode_owntracks(
        "p", (CORPUS / "json-schema_location-lat-missing.json").read_bytes()).rejects
    assert reject.index is None and "lat" in reject.detail


def test_the_array_keeps_positions_of_its_items():
    decoded = decode_owntracks("p", (CORPUS / "json-schema_array.json").read_bytes())
    assert decoded.pings[0].item_index == 0


# Traccar's OwnTracksProtocolDecoderTest: its only explicit value is accuracy 15 on the first
# payload; every payload must decode to a position.  The other values are read off the payloads
# (vel is km/h in OwnTracks; Traccar converts to knots, we keep km/h).
TRACCAR = [
    dict(ts=1551874878.0, lat=46.0681247, lon=11.1512805, accuracy_m=15.0, alt_m=440.0,
         battery_pct=46.0, speed_kmh=0.0, heading_deg=None),
    dict(ts=1497349316.0, lat=48.85833, lon=2.29513, accuracy_m=None, alt_m=None,
         battery_pct=None, speed_kmh=None, heading_deg=None),
    dict(ts=1497349316.0, lat=48.85833, lon=2.29513, accuracy_m=5.0, alt_m=167.0,
         battery_pct=67.0, speed_kmh=61.0, heading_deg=271.0),
    dict(ts=1497476456.0, lat=48.85, lon=2.295, accuracy_m=None, alt_m=None,
         battery_pct=None, speed_kmh=None, heading_deg=None),
    dict(ts=1736161169.0, lat=37.0, lon=-122.0, accuracy_m=5.0, alt_m=0.0,
         battery_pct=None, speed_kmh=None, heading_deg=None),
    dict(ts=1736519167.0, lat=47.420051, lon=13.654704, accuracy_m=10.0, alt_m=1113.0,
         battery_pct=None, speed_kmh=0.0, heading_deg=113.0),
]


def traccar_lines() -> list[bytes]:
    return (CORPUS / "traccar_owntracks_payloads.jsonl").read_bytes().splitlines()


def test_there_are_six_real_device_payloads():
    assert len(traccar_lines()) == len(TRACCAR) == 6


@pytest.mark.parametrize("number", range(6))
def test_real_device_payloads_decode_with_the_values_they_carry(number):
    decoded = decode_owntracks("dev", traccar_lines()[number])
    assert decoded.rejects == [] and decoded.ignored == 0
    (ping,) = decoded.pings
    for name, value in TRACCAR[number].items():
        assert getattr(ping, name) == value, name


def test_real_device_payloads_sent_as_one_http_array_decode_together():
    payload = b"[" + b",".join(traccar_lines()) + b"]"
    decoded = decode_owntracks("dev", payload)
    assert [p.ts for p in decoded.pings] == [t["ts"] for t in TRACCAR]
    assert [p.item_index for p in decoded.pings] == list(range(6))


def test_an_array_mixing_a_location_an_lwt_and_a_bad_location_keeps_the_good_one():
    payload = orjson.dumps([
        {"_type": "location", "lat": 28.1, "lon": 113.0, "tst": 1700000000},
        {"_type": "lwt", "tst": 1700000000},
        {"_type": "location", "lat": "28.1", "lon": 113.0, "tst": 1700000000},
        "location",
    ])
    decoded = decode_owntracks("dev", payload)
    assert len(decoded.pings) == 1 and decoded.ignored == 1
    assert [(r.reason, r.index) for r in decoded.rejects] == [("bad_type", 2), ("not_an_object", 3)]
