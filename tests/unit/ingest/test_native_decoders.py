"""Our own ping and scan payloads, topics and event time: what is kept, what is refused, and why."""

from __future__ import annotations

import doctest
import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gps_ingest import decoders, records
from gps_ingest.decoders import (
    MAX_ARRAY,
    MAX_PAYLOAD_BYTES,
    decode_native_pings,
    decode_owntracks,
    decode_scans,
    parse_topic,
)
from gps_ingest.records import REASONS, PingRecord, parse_time

TS = 1_700_000_000


def ping(**fields) -> dict:
    return {"ts": TS, "lat": 27.62, "lon": 113.08} | fields


def reasons(decoded) -> list[tuple[str, int | None]]:
    return [(r.reason, r.index) for r in decoded.rejects]


def test_the_module_examples_hold():
    for module in (decoders, records):
        assert doctest.testmod(module).failed == 0


def test_every_reason_used_is_listed_with_a_meaning():
    constants = {v for k, v in vars(records).items() if k.isupper() and isinstance(v, str)
                 and v in REASONS}
    assert constants == set(REASONS)
    assert all(meaning for meaning in REASONS.values())
    assert all(r.replace("_", "").isalpha() and r.islower() for r in REASONS)


# -- topics --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("topic", "expected"), [
    ("xiaoche/v1/devices/bus-07/pings", ("pings", "bus-07")),
    ("xiaoche/v1/devices/bus_07.a/scans", ("scans", "bus_07.a")),
    ("owntracks/teacher-li/iphone", ("owntracks", "teacher-li")),
    ("owntracks/teacher-li/iphone/event", ("owntracks", "teacher-li")),
    ("xiaoche/v1/devices/bus-07/commands", None),
    ("xiaoche/v1/devices/bus 07/pings", None),
    ("xiaoche/v1/devices//pings", None),
    ("xiaoche/v2/devices/bus-07/pings", None),
    ("owntracks/teacher-li", None),
    ("owntracks/a/b/c/d", None),
    ("", None),
    ("xiaoche/v1/devices/" + "x" * 65 + "/pings", None),
])
def test_topics_name_their_kind_and_device_or_are_not_ours(topic, expected):
    assert parse_topic(topic) == expected


# -- a good ping ---------------------------------------------------------------------------------


def test_a_full_native_ping_keeps_every_field():
    payload = orjson.dumps(ping(speed_kmh=38.5, heading_deg=271, accuracy_m=6.5, alt_m=81,
                                battery_pct=77, seq=1042, extra="ignored"))
    decoded = decode_native_pings("bus-07", payload)
    assert decoded.rejects == []
    assert decoded.pings == [PingRecord("bus-07", float(TS), 27.62, 113.08, 38.5, 271.0, 6.5,
                                        81.0, 77.0, 1042)]
    assert decoded.pings[0].item_index is None


def test_an_iso_ts_with_an_offset_is_the_same_instant_as_epoch_seconds():
    decoded = decode_native_pings("b", orjson.dumps(ping(ts="2023-11-15T06:13:20+08:00")))
    assert decoded.pings[0].ts == TS


def test_an_empty_array_is_a_valid_message_with_nothing_in_it():
    decoded = decode_native_pings("b", b"[]")
    assert (decoded.pings, decoded.rejects, decoded.ignored) == ([], [], 0)


def test_a_utf8_bom_does_not_make_a_payload_bad_json():
    assert len(decode_native_pings("b", b"\xef\xbb\xbf" + orjson.dumps(ping())).pings) == 1


# -- whole-message rejects -----------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "reason"), [
    (b"", "bad_json"),
    (b"   \n", "bad_json"),
    (b'{"ts": 1700000000, "lat": 27.6', "bad_json"),
    (b"{'ts': 1}", "bad_json"),
    (b"\xff\xfe{}", "bad_encoding"),
    (b'{"card": "\xe4\xb8"}', "bad_encoding"),
    (b"42", "not_an_object"),
    (b'"ping"', "not_an_object"),
    (b"null", "not_an_object"),
    (b"[" * 100_000, "bad_json"),  # deeper than any parser should recurse
])
def test_a_payload_that_is_not_json_objects_is_refused_whole(payload, reason):
    decoded = decode_native_pings("b", payload)
    assert decoded.pings == []
    assert reasons(decoded) == [(reason, None)]
    assert decoded.rejects[0].detail


def test_a_10_mb_payload_is_refused_before_parsing():
    payload = b"[" + b",".join([orjson.dumps(ping())] * 250_000) + b"]"
    assert len(payload) > 10 * MAX_PAYLOAD_BYTES
    decoded = decode_native_pings("b", payload)
    assert reasons(decoded) == [("payload_too_large", None)]
    assert str(len(payload)) in decoded.rejects[0].detail


def test_an_array_of_10000_pings_is_too_many_items():
    payload = orjson.dumps([{"ts": TS + i, "lat": 1, "lon": 2} for i in range(10_000)])
    assert len(payload) <= MAX_PAYLOAD_BYTES  # refused for its count, not its size
    decoded = decode_native_pings("b", payload)
    assert reasons(decoded) == [("too_many_items", None)]
    assert "10000" in decoded.rejects[0].detail


def test_an_array_of_exactly_1000_pings_is_accepted():
    payload = orjson.dumps([ping(ts=TS + i) for i in range(MAX_ARRAY)])
    assert len(decode_native_pings("b", payload).pings) == MAX_ARRAY


# -- per-item rejects ----------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "reason", "detail"), [
    (ping(lat=91), "bad_lat", "lat 91 out of range [-90, 90]"),
    (ping(lat=95.2), "bad_lat", "lat 95.2 out of range [-90, 90]"),
    (ping(lon=-180.5), "bad_lon", "lon -180.5 out of range [-180, 180]"),
    (ping(lat="27.62"), "bad_type", "lat must be a number, got string '27.62'"),
    (ping(lat=True), "bad_type", "lat must be a number, got boolean True"),
    (ping(lon=None), "missing_field", "lon is required"),
    ({"ts": TS, "lat": 27.6}, "missing_field", "lon is required"),
    ({"lat": 27.6, "lon": 113.0}, "missing_field", "ts is required"),
    (ping(ts=True), "bad_ts", "boolean"),
    (ping(ts="2023-11-14T22:13:20"), "bad_ts", "has no UTC offset"),
    (ping(ts="yesterday"), "bad_ts", "not ISO-8601"),
    (ping(ts=TS * 1000), "bad_ts", "looks like milliseconds"),
    (ping(ts=-5), "bad_ts", "before 1970"),
    (ping(speed_kmh=-3), "bad_speed", "speed_kmh -3 out of range [0, 1000]"),
    (ping(speed_kmh=5000), "bad_speed", "out of range"),
    (ping(heading_deg=361), "bad_heading", "heading_deg 361 out of range [0, 360]"),
    (ping(accuracy_m=-1), "bad_accuracy", "accuracy_m -1"),
    (ping(battery_pct=101), "bad_battery", "battery_pct 101"),
    (ping(alt_m=1e9), "bad_altitude", "alt_m"),
    (ping(seq=1.5), "bad_type", "seq must be an integer"),
    (ping(seq="7"), "bad_type", "seq must be an integer"),
])
def test_a_bad_field_rejects_the_ping_and_says_what_is_wrong(fields, reason, detail):
    decoded = decode_native_pings("b", orjson.dumps(fields))
    assert decoded.pings == []
    assert reasons(decoded) == [(reason, None)]
    assert detail in decoded.rejects[0].detail


def test_optional_fields_sent_as_null_are_unknown():
    decoded = decode_native_pings("b", orjson.dumps(ping(speed_kmh=None, accuracy_m=None, seq=None)))
    assert decoded.rejects == [] and decoded.pings[0].speed_kmh is None


def test_null_island_is_well_formed_here_and_left_to_the_filters():
    decoded = decode_native_pings("b", orjson.dumps(ping(lat=0, lon=0)))
    assert decoded.pings[0].lat == 0.0 and decoded.rejects == []


def test_one_bad_element_in_an_array_of_five_keeps_the_other_four():
    items = [ping(ts=TS + i) for i in range(5)]
    items[2]["lat"] = 91
    decoded = decode_native_pings("b", orjson.dumps(items))
    assert [p.ts for p in decoded.pings] == [TS, TS + 1, TS + 3, TS + 4]
    assert [p.item_index for p in decoded.pings] == [0, 1, 3, 4]
    assert reasons(decoded) == [("bad_lat", 2)]


def test_non_objects_inside_an_array_are_rejected_one_by_one():
    decoded = decode_native_pings("b", orjson.dumps([ping(), 7, None, [ping()], ping(ts=TS + 1)]))
    assert len(decoded.pings) == 2
    assert reasons(decoded) == [("not_an_object", 1), ("not_an_object", 2), ("not_an_object", 3)]


# NaN: orjson (like RFC 8259) refuses the literal; firmware printing "%f" sends it anyway.  We
# decode such a payload with the standard library so only the items holding NaN are lost.


def test_a_nan_literal_rejects_only_the_ping_that_holds_it():
    payload = b'[{"ts": 1700000000, "lat": NaN, "lon": 113.0},' \
              b' {"ts": 1700000001, "lat": 27.6, "lon": 113.0}]'
    decoded = decode_native_pings("b", payload)
    assert [p.ts for p in decoded.pings] == [TS + 1]
    assert reasons(decoded) == [("nan", 0)]
    assert "lat" in decoded.rejects[0].detail


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_literals_in_any_number_field_are_nan(literal):
    for field in (b"ts", b"lat", b"speed_kmh", b"alt_m"):
        fields = {b"ts": b"1700000000", b"lat": b"27.6", b"lon": b"113.0"} | {field: literal}
        payload = b"{" + b",".join(b'"%s": %s' % kv for kv in fields.items()) + b"}"
        decoded = decode_native_pings("b", payload)
        assert reasons(decoded) == [("nan", None)], field


def test_a_nan_in_an_owntracks_message_is_rejected_too():
    decoded = decode_owntracks("p", b'{"_type": "location", "lat": 1, "lon": NaN, "tst": 1700000000}')
    assert reasons(decoded) == [("nan", None)]


def test_the_stdlib_would_have_accepted_the_nan_that_we_reject():
    assert json.loads('{"lat": NaN}')["lat"] != json.loads('{"lat": NaN}')["lat"]


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_no_byte_string_makes_a_decoder_raise(payload):
    for decode in (decode_native_pings, decode_owntracks, decode_scans):
        decoded = decode("d", payload)
        assert decoded.pings or decoded.scans or decoded.rejects or decoded.ignored or \
            payload.strip() in (b"[]",) or payload.strip().startswith(b"[")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["ts", "lat", "lon", "speed_kmh", "_type", "tst",
                                       "card_id", "action", "seq", "x"]), children, max_size=6),
    max_leaves=12)


@settings(max_examples=300)
@given(json_values)
def test_no_json_value_makes_a_decoder_raise_and_every_item_is_accounted_for(value):
    payload = json.dumps(value).encode()
    for decode in (decode_native_pings, decode_owntracks, decode_scans):
        decoded = decode("d", payload)
        items = len(value) if isinstance(value, list) else 1
        accounted = len(decoded.pings) + len(decoded.scans) + len(decoded.rejects) + decoded.ignored
        assert accounted == items or (accounted == 1 and decoded.rejects[0].index is None)


# -- scans ---------------------------------------------------------------------------------------


def test_scans_decode_with_and_without_a_position():
    payload = orjson.dumps([
        {"ts": TS, "card_id": "C-0042", "action": "board", "lat": 27.6, "lon": 113.1},
        {"ts": "2023-11-15T06:13:30+08:00", "card_id": "C-0043", "action": "alight"},
    ])
    decoded = decode_scans("bus-07", payload)
    assert decoded.rejects == []
    assert [(s.device_id, s.ts, s.card_id, s.action, s.lat, s.lon) for s in decoded.scans] == [
        ("bus-07", TS, "C-0042", "board", 27.6, 113.1),
        ("bus-07", TS + 10, "C-0043", "alight", None, None),
    ]


@pytest.mark.parametrize(("fields", "reason"), [
    ({"ts": TS, "card_id": "C1", "action": "enter"}, "bad_action"),
    ({"ts": TS, "card_id": "C1", "action": 1}, "bad_action"),
    ({"ts": TS, "card_id": "C1"}, "missing_field"),
    ({"ts": TS, "card_id": "", "action": "board"}, "missing_field"),
    ({"ts": TS, "card_id": 42, "action": "board"}, "bad_type"),
    ({"card_id": "C1", "action": "board"}, "missing_field"),
    ({"ts": "2023-11-14 22:13:20", "card_id": "C1", "action": "board"}, "bad_ts"),
    ({"ts": TS, "card_id": "C1", "action": "board", "lat": 27.6}, "missing_field"),
    ({"ts": TS, "card_id": "C1", "action": "board", "lat": 127.6, "lon": 1}, "bad_lat"),
    ({"ts": TS, "card_id": "C" * 65, "action": "board"}, "bad_card_id"),
    ({"ts": TS, "card_id": "C1\u0000", "action": "board"}, "bad_card_id"),
    ({"ts": TS, "card_id": "C1\n", "action": "board"}, "bad_card_id"),
])
def test_a_bad_scan_is_rejected_with_its_reason(fields, reason):
    decoded = decode_scans("b", orjson.dumps([fields]))
    assert decoded.scans == [] and reasons(decoded) == [(reason, 0)]


# -- event time ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (TS, TS),
    (TS + 0.25, TS + 0.25),
    ("2023-11-14T22:13:20Z", TS),
    ("2023-11-14T22:13:20.500Z", TS + 0.5),
    ("2023-11-15T06:13:20+08:00", TS),
    ("2023-11-15T06:13:20+0800", TS),
    (" 2023-11-14T22:13:20+00:00 ", TS),
])
def test_parse_time_reads_epoch_seconds_and_iso_with_an_offset(value, expected):
    assert parse_time(value) == expected


@pytest.mark.parametrize(("value", "words"), [
    ("2023-11-14T22:13:20", "no UTC offset"),
    ("2023-11-14", "no UTC offset"),
    ("14/11/2023 22:13", "not ISO-8601"),
    (True, "boolean"),
    (False, "boolean"),
    (None, "NoneType"),
    ([TS], "list"),
    (float("nan"), "not a finite number"),
    (float("inf"), "not a finite number"),
    (-1, "before 1970"),
    (TS * 1000, "milliseconds"),
    (10**30, "too far in the future"),
])
def test_parse_time_refuses_with_a_message_that_says_why(value, words):
    with pytest.raises(ValueError, match=words):
        parse_time(value)


def test_the_fast_constructor_builds_the_same_frozen_record_as_the_dataclass():
    import dataclasses

    fields = ("bus", 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9, 10, 11)
    fast, slow = records.new_ping(*fields), PingRecord(*fields)
    assert fast == slow and repr(fast) == repr(slow) and fast.item_index == 10
    assert [getattr(fast, f.name) for f in dataclasses.fields(PingRecord)] == list(fields)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.lat = 0.0  # type: ignore[misc]


def test_the_fast_path_and_the_careful_path_agree_on_a_good_ping():
    good = ping(speed_kmh=38, heading_deg=0, accuracy_m=5, alt_m=-3, battery_pct=100, seq=0)
    fast = decoders.native_ping("b", good, 4)
    careful = decoders._native_ping_carefully("b", good, 4)
    assert fast == careful and type(fast.speed_kmh) is float and fast.item_index == 4
