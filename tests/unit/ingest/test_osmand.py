"""The OsmAnd protocol of the Traccar Client app: query/form fields and the JSON body.

Query strings are Traccar's own OsmAndProtocolDecoderTest requests (traccar/traccar,
src/test/java/org/traccar/protocol/OsmAndProtocolDecoderTest.java), URL-decoded.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson
import pytest

from gps_ingest.decoders import decode_osmand_json, decode_osmand_query

TS = 1_700_000_000


def query(text: str) -> dict[str, str]:
    return dict(parse_qsl(text, keep_blank_values=True))


def test_a_full_query_converts_speed_from_knots_to_kmh():
    device, decoded = decode_osmand_query(query(
        "id=123456789012345&timestamp=1504763810&lat=40.7232948571&lon=-74.0061408571"
        "&bearing=7.19889788244&speed=40&ignition=true&rpm=933&fuel=24"))
    assert device == "123456789012345" and decoded.rejects == []
    (p,) = decoded.pings
    assert (p.device_id, p.ts, p.lat, p.lon) == ("123456789012345", 1504763810.0, 40.7232948571,
                                                 -74.0061408571)
    assert p.speed_kmh == pytest.approx(40 * 1.852)
    assert p.heading_deg == pytest.approx(7.19889788244)


def test_altitude_accuracy_and_battery_are_read():
    _, decoded = decode_osmand_query(query(
        "id=d1&timestamp=1700000000&lat=27.6&lon=113.1&altitude=350.05&accuracy=12.5&batt=87"))
    (p,) = decoded.pings
    assert (p.alt_m, p.accuracy_m, p.battery_pct) == (350.05, 12.5, 87.0)


@pytest.mark.parametrize(("text", "ts"), [
    ("id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0", 1453920947.0),
    ("id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579&hdop=6.0", 1442068686.579),
    ("id=123456&timestamp=1377177267&lat=60.0&lon=30.0", 1377177267.0),
])
def test_timestamps_in_seconds_milliseconds_or_iso_are_all_read(text, ts):
    _, decoded = decode_osmand_query(query(text))
    assert decoded.pings[0].ts == pytest.approx(ts)


def test_deviceid_and_location_are_the_other_spellings_of_id_and_lat_lon():
    device, decoded = decode_osmand_query(query(
        "deviceid=123456&timestamp=1377177267&location=60.0,30.0&heading=90"))
    assert device == "123456"
    (p,) = decoded.pings
    assert (p.lat, p.lon, p.heading_deg) == (60.0, 30.0, 90.0)


def test_a_naive_time_is_refused_rather_than_guessed_in_the_servers_zone():
    # Traccar reads "2014-06-04 09:10:11" in its own JVM's zone; a decoder has no zone to guess.
    device, decoded = decode_osmand_query(query(
        "lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&id=353861053849681"))
    assert device == "353861053849681" and decoded.pings == []
    assert decoded.rejects[0].reason == "bad_ts"


def test_a_query_without_timestamp_is_refused_not_stamped_with_a_clock():
    _, decoded = decode_osmand_query(query(
        "id=861001000719969&lat=41.666667&lon=-0.883333&altitude=350.059479&speed=0.000000&batt=87"))
    assert [r.reason for r in decoded.rejects] == ["missing_field"]
    assert "timestamp" in decoded.rejects[0].detail


def test_a_query_without_id_decodes_but_names_no_device():
    device, decoded = decode_osmand_query(query("timestamp=1377177267&lat=60.0&lon=30.0"))
    assert device is None and len(decoded.pings) == 1


@pytest.mark.parametrize(("extra", "reason"), [
    ("&lat=91&lon=30", "bad_lat"),
    ("&lat=abc&lon=30", "bad_type"),
    ("&lat=nan&lon=30", "nan"),
    ("&lat=60&lon=inf", "nan"),
    ("&lat=60", "missing_field"),
    ("&lat=60&lon=30&speed=900", "bad_speed"),
    ("&lat=60&lon=30&batt=150", "bad_battery"),
    ("&location=60.0", "bad_type"),
])
def test_bad_query_values_are_rejected_with_a_reason(extra, reason):
    _, decoded = decode_osmand_query(query("id=d&timestamp=1700000000" + extra))
    assert decoded.pings == [] and [r.reason for r in decoded.rejects] == [reason]


def test_negative_speed_and_bearing_mean_unknown():
    _, decoded = decode_osmand_query(query(
        "id=d&timestamp=1700000000&lat=60&lon=30&speed=-1&bearing=-1&accuracy=-1"))
    (p,) = decoded.pings
    assert (p.speed_kmh, p.heading_deg, p.accuracy_m) == (None, None, None)


# -- JSON ----------------------------------------------------------------------------------------


def client_json(**location) -> dict:
    body = {
        "timestamp": "2023-11-14T22:13:20.000Z",
        "coords": {"latitude": 27.62, "longitude": 113.08, "speed": 10.0, "heading": 95.5,
                   "accuracy": 4.8, "altitude": 81.0},
        "is_moving": True,
        "odometer": 1200.5,
        "battery": {"level": 0.63, "is_charging": False},
        "activity": {"type": "in_vehicle"},
    }
    return {"device_id": "bus-07", "location": body | location}


def test_the_client_json_converts_speed_from_metres_per_second_and_battery_from_a_fraction():
    device, decoded = decode_osmand_json(orjson.dumps(client_json()))
    assert device == "bus-07" and decoded.rejects == []
    (p,) = decoded.pings
    assert (p.device_id, p.ts, p.lat, p.lon) == ("bus-07", TS, 27.62, 113.08)
    assert p.speed_kmh == pytest.approx(36.0)
    assert (p.heading_deg, p.accuracy_m, p.alt_m) == (95.5, 4.8, 81.0)
    assert p.battery_pct == pytest.approx(63.0)


def test_negative_speed_and_heading_in_the_json_mean_unknown():
    body = client_json()
    body["location"]["coords"] |= {"speed": -1, "heading": -1}
    body["location"]["battery"] = {"level": -1}
    (p,) = decode_osmand_json(orjson.dumps(body))[1].pings
    assert (p.speed_kmh, p.heading_deg, p.battery_pct) == (None, None, None)


@pytest.mark.parametrize("where", ["location", "root"])
def test_a_mock_location_is_rejected(where):
    body = client_json()
    (body["location"] if where == "location" else body)["mock"] = True
    device, decoded = decode_osmand_json(orjson.dumps(body))
    assert device == "bus-07" and decoded.pings == []
    assert [r.reason for r in decoded.rejects] == ["mock_location"]


def test_mock_false_is_an_ordinary_fix():
    assert len(decode_osmand_json(orjson.dumps(client_json(mock=False)))[1].pings) == 1


def test_a_numeric_device_id_is_read_as_text():
    body = client_json() | {"device_id": 123456}
    assert decode_osmand_json(orjson.dumps(body))[0] == "123456"


@pytest.mark.parametrize(("body", "reason"), [
    ({"device_id": "d"}, "missing_field"),
    ({"device_id": "d", "location": []}, "bad_type"),
    ({"device_id": "d", "location": {"timestamp": "2023-11-14T22:13:20Z"}}, "missing_field"),
    (client_json(timestamp="2023-11-14T22:13:20"), "bad_ts"),
    (client_json(coords={"latitude": 27.6}), "missing_field"),
    (client_json(coords={"latitude": -91, "longitude": 1}), "bad_lat"),
])
def test_a_malformed_client_json_is_rejected_with_a_reason(body, reason):
    _, decoded = decode_osmand_json(orjson.dumps(body))
    assert decoded.pings == [] and [r.reason for r in decoded.rejects] == [reason]


@pytest.mark.parametrize(("payload", "reason"), [
    (b"not json", "bad_json"),
    (b"[]", "not_an_object"),
    (b"\xff", "bad_encoding"),
])
def test_a_client_json_that_is_not_an_object_names_no_device(payload, reason):
    device, decoded = decode_osmand_json(payload)
    assert device is None and [r.reason for r in decoded.rejects] == [reason]
