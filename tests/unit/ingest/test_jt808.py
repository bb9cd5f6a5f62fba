"""JT/T 808 framing and decoding (gps_ingest.jt808): the 112 frames of real terminals in
tests/data/jt808 (see its README), hand-built frames for what the set lacks (2019 headers
through the encoder, sub-packages, south/west), and properties of the framing under any reads."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gps_ingest.jt808.frame import (
    MAX_ESCAPED,
    BadFrame,
    Frame,
    FrameReader,
    encode_frame,
    escape,
    parse_frame,
    unescape,
    xor_check,
)
from gps_ingest.jt808.messages import (
    ALARM_EMERGENCY,
    BATCH,
    LOCATION,
    REG_OK,
    STATUS_POSITIONED,
    STATUS_SOUTH,
    STATUS_WEST,
    decode_authentication,
    decode_batch,
    decode_driver,
    decode_general_response,
    decode_location,
    decode_registration,
    decode_registration_answer,
    encode_general_response,
    encode_registration_answer,
)
from gps_ingest.jt808.positions import decode_frame, decode_frame_hex
from gps_ingest.jt808.reassembly import Reassembler
from gps_ingest.records import REASONS

DATA = Path(__file__).resolve().parents[2] / "data" / "jt808" / "frames.json"
FRAMES = json.loads(DATA.read_text(encoding="utf-8"))


def read_all(wire: bytes, accept_bad_check: bool = False):
    reader = FrameReader(accept_bad_check)
    return reader.feed(wire) + reader.close()


def utc(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def location_body(lat: float, lon: float, *, status: int = STATUS_POSITIONED, alarm: int = 0,
                  alt: int = 40, speed10: int = 356, course: int = 90,
                  bcd: str = "261203083015", extras: bytes = b"") -> bytes:
    if lat < 0:
        status |= STATUS_SOUTH
    if lon < 0:
        status |= STATUS_WEST
    return (alarm.to_bytes(4, "big") + status.to_bytes(4, "big")
            + round(abs(lat) * 1e6).to_bytes(4, "big") + round(abs(lon) * 1e6).to_bytes(4, "big")
            + alt.to_bytes(2, "big", signed=True) + speed10.to_bytes(2, "big")
            + course.to_bytes(2, "big") + bytes.fromhex(bcd) + extras)


# -- the set of real frames --------------------------------------------------------------------


def test_the_set_is_whole():
    assert len(FRAMES) == 112
    failing = [f for f in FRAMES if f["checksum_ok"] is not True]
    assert len(failing) == 12


@pytest.mark.parametrize("index", range(len(FRAMES)))
def test_every_frame_of_the_set_decodes_or_is_refused_with_its_reason(index):
    f = FRAMES[index]
    cuts = read_all(bytes.fromhex(f["hex"]))
    assert len(cuts) == 1, "one frame on the wire is one frame out, whatever its 0x7e inside"
    content, frame = cuts[0]
    if f["checksum_ok"] is None:  # not a JT/T 808 frame at all: no delimiters
        assert isinstance(frame, BadFrame) and frame.reason == "not_a_frame"
        return
    if not f["checksum_ok"]:
        assert isinstance(frame, BadFrame)
        data, escape_problem = unescape(content)
        if xor_check(data[:-1]) == data[-1]:
            # the set's checker gave up on a 0x7d the terminal did not escape; read literally,
            # the XOR holds, and the frame is refused for the escape
            assert escape_problem and frame.reason == "bad_escape"
        else:
            assert frame.reason == "bad_checksum"
        assert frame.header is not None and f"0x{frame.header.message_id:04x}" == f["message_id"]
        return
    if isinstance(frame, BadFrame):
        # vendor extensions whose header claims one byte more (or a pass-through cut short):
        # none is a location; the reject log says what is wrong with them
        assert f["message_id"] in ("0x5501", "0x5502", "0x0900") and "basic_location" not in f
        assert frame.reason == "bad_length"
        return
    header = frame.header
    assert (f"0x{header.message_id:04x}", header.protocol, header.phone, header.serial) == (
        f["message_id"], f["protocol"], f["terminal_phone"], f["serial"])
    assert frame.check_ok


@pytest.mark.parametrize("index", [i for i, f in enumerate(FRAMES) if "basic_location" in f])
def test_positions_equal_the_independent_decoding(index):
    f = FRAMES[index]
    ref = f["basic_location"]
    refs = ref.get("positions", [ref])
    ((_, frame),) = read_all(bytes.fromhex(f["hex"]))
    if not f["checksum_ok"]:
        assert isinstance(frame, BadFrame)
        return
    assert isinstance(frame, Frame)
    if frame.header.message_id == LOCATION:
        locations = [decode_location(frame.body)]
    else:
        batch = decode_batch(frame.body)
        assert batch.backlog == ref["blind_area"]
        locations = batch.items
    assert len(locations) == len(refs) == ref.get("count", 1)
    for loc, r in zip(locations, refs, strict=True):
        assert loc.lat == pytest.approx(r["lat"], abs=1e-6)
        assert loc.lon == pytest.approx(r["lon"], abs=1e-6)
        assert abs(loc.ts - utc(r["time_utc"])) <= 1
        assert (loc.altitude_m, loc.course_deg, loc.alarm, loc.status, loc.positioned) == (
            r["altitude_m"], r["course_deg"], r["alarm"], r["status"], r["valid"])
        assert loc.speed_kmh == pytest.approx(r["speed_kmh"], abs=0.05)


def test_the_set_gives_pings_for_positioned_fixes_and_no_fix_for_the_rest():
    pings = rejects = 0
    for f in FRAMES:
        if "basic_location" not in f or not f["checksum_ok"]:
            continue
        ((_, frame),) = read_all(bytes.fromhex(f["hex"]))
        _, decoded = decode_frame("dev-1", frame)
        refs = f["basic_location"].get("positions", [f["basic_location"]])
        assert len(decoded.pings) == sum(r["valid"] for r in refs)
        assert {r.reason for r in decoded.rejects} <= {"no_fix"}
        for p in decoded.pings:
            assert p.device_id == "dev-1" and p.alt_m is not None
        pings += len(decoded.pings)
        rejects += len(decoded.rejects)
    assert pings > 50 and rejects > 0


def test_additional_items_of_a_real_frame():
    # frame 0 of the set: a 0x0704 backlog whose item has mileage, signal and satellites
    ((_, frame),) = read_all(bytes.fromhex(FRAMES[0]["hex"]))
    (loc,) = decode_batch(frame.body).items
    assert loc.satellites == 14  # what Traccar's test asserts for this frame
    assert (loc.mileage_km, loc.signal) == (0x36C9 / 10, 31)  # items 01 04 000036c9, 30 01 1f


def test_registration_authentication_and_driver_card_of_real_terminals():
    by_id: dict[str, list[Frame]] = {}
    for f in FRAMES:
        if f["checksum_ok"]:
            ((_, frame),) = read_all(bytes.fromhex(f["hex"]))
            if isinstance(frame, Frame):
                by_id.setdefault(f["message_id"], []).append(frame)
    regs = [decode_registration(fr.body, fr.header.version) for fr in by_id["0x0100"]]
    assert {(r.model, r.plate) for r in regs} >= {("BSJ-M7B", "粤B88888"), ("HB-R03GBD", "苏BA6860")}
    (reg_2019,) = [r for fr, r in zip(by_id["0x0100"], regs, strict=True) if fr.header.version]
    assert (reg_2019.model, reg_2019.terminal_id) == ("MD300", "866496077582164")
    codes = {decode_authentication(fr.body, fr.header.version) for fr in by_id["0x0102"]}
    assert {"authentication", "2011110811332196"} <= codes
    (driver,) = [decode_driver(fr.body) for fr in by_id["0x0702"]]
    assert driver.inserted and driver.read_ok and driver.certificate == "0029b885"


# -- hand-built frames -------------------------------------------------------------------------


def test_a_2019_header_round_trips_with_its_20_digit_phone():
    wire = encode_frame(LOCATION, "13912345678", 7, location_body(30.5, 114.25), version=1)
    ((_, frame),) = read_all(wire)
    assert frame.header.version == 1 and frame.header.protocol == "2019"
    assert frame.header.phone == "00000000013912345678" and frame.header.serial == 7
    loc = decode_location(frame.body)
    assert (loc.lat, loc.lon, loc.speed_kmh, loc.course_deg) == (30.5, 114.25, 35.6, 90)
    assert loc.ts == utc("2026-12-03T00:30:15Z")  # 08:30:15 Beijing time


def test_south_and_west_status_bits_make_negative_degrees():
    ((_, frame),) = read_all(encode_frame(LOCATION, "13912345678", 1,
                                          location_body(-33.86785, -151.2073)))
    loc = decode_location(frame.body)
    assert (loc.lat, loc.lon) == (-33.86785, -151.2073)


def test_a_bad_bcd_time_an_unpositioned_fix_and_a_short_body_are_rejected_with_reasons():
    for body, reason in ((location_body(30, 114, bcd="2612ff083015"), "bad_ts"),
                         (location_body(30, 114, status=0), "no_fix"),
                         (location_body(30, 114)[:27], "truncated_frame")):
        _, decoded = decode_frame("d", parse_frame(encode_frame(LOCATION, "1", 1, body)[1:-1]))
        assert [r.reason for r in decoded.rejects] == [reason] and decoded.pings == []


def test_a_batch_keeps_each_item_time_and_one_bad_item_costs_only_itself():
    items = [location_body(30.0 + i / 1000, 114, bcd=f"2612030830{i:02d}") for i in range(3)]
    items[1] = location_body(30, 114, status=0)
    body = (3).to_bytes(2, "big") + b"\x01" + b"".join(len(b).to_bytes(2, "big") + b for b in items)
    _, decoded = decode_frame_hex("d", encode_frame(BATCH, "1", 9, body)[1:-1].hex().encode())
    assert [p.ts - utc("2026-12-03T00:30:00Z") for p in decoded.pings] == [0, 2]
    assert [p.item_index for p in decoded.pings] == [0, 2]
    assert [(r.reason, r.index) for r in decoded.rejects] == [("no_fix", 1)]


def test_sub_packages_are_put_back_together_in_any_order():
    body = (2).to_bytes(2, "big") + b"\x00" + b"".join(
        len(b).to_bytes(2, "big") + b for b in (location_body(30, 114), location_body(31, 115)))
    half = len(body) // 2
    parts = [encode_frame(BATCH, "1", 40 + i, chunk, packages=(2, i + 1))
             for i, chunk in enumerate((body[:half], body[half:]))]
    reassembler = Reassembler()
    cuts = read_all(parts[1] + parts[0])
    assert reassembler.add(cuts[0][1]) is None
    whole = reassembler.add(cuts[1][1])
    assert whole.serials == (40, 41) and whole.frame.header.serial == 40
    assert whole.frame.body == body and whole.frame.header.packages is None
    assert len(decode_batch(whole.frame.body).items) == 2
    assert reassembler.add(cuts[0][1]) is None  # a package again: a new message begins
    assert reassembler.open_messages == 1


def test_answers_encode_what_a_terminal_reads():
    assert decode_general_response(encode_general_response(513, LOCATION, 0)).serial == 513
    assert decode_registration_answer(encode_registration_answer(5, REG_OK, "abc")) == (5, 0, "abc")
    assert decode_registration_answer(encode_registration_answer(5, 4, "abc")) == (5, 4, "")


def test_alarm_words_are_kept():
    loc = decode_location(location_body(30, 114, alarm=ALARM_EMERGENCY))
    assert loc.alarm & ALARM_EMERGENCY


def test_broken_frames_get_their_reasons():
    good = encode_frame(LOCATION, "13912345678", 1, location_body(30, 114))
    inner = good[1:-1]
    data, _ = unescape(inner)
    wrong_length = bytearray(data)
    wrong_length[3] -= 1  # the header says one byte less
    wrong_length[-1] = xor_check(bytes(wrong_length[:-1]))
    cases = {
        "truncated_frame": inner[:8],
        "bad_checksum": inner[:-1] + bytes([inner[-1] ^ 0xFF]),
        "bad_length": escape(bytes(wrong_length)),
        "frame_too_long": b"\x01" * (MAX_ESCAPED + 1),
    }
    for reason, content in cases.items():
        result = parse_frame(content)
        assert isinstance(result, BadFrame) and result.reason == reason, reason
        assert reason in REASONS
    (garbage,) = read_all(b"hello" + good)[:1]
    assert garbage[1].reason == "not_a_frame"


# -- properties ---------------------------------------------------------------------------------

frame_bodies = st.binary(max_size=300)
phones = st.from_regex(r"[0-9]{1,12}", fullmatch=True)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 0xFFFF), phones, st.integers(0, 0xFFFF), frame_bodies,
                          st.sampled_from([None, 1])), min_size=1, max_size=6),
       st.lists(st.integers(1, 50), max_size=40))
def test_frames_survive_any_cutting_of_the_stream(messages, cuts):
    """Whatever the body (0x7e and 0x7d in it) and however TCP cuts the stream, each frame
    comes out whole, in order."""
    wire = b"".join(encode_frame(m, p, s, b, version=v) for m, p, s, b, v in messages)
    reader = FrameReader()
    out, pos = [], 0
    for size in cuts:
        out += reader.feed(wire[pos:pos + size])
        pos += size
    out += reader.feed(wire[pos:]) + reader.close()
    assert [fr.body for _, fr in out] == [b for _, _, _, b, _ in messages]
    assert [(fr.header.message_id, fr.header.serial) for _, fr in out] == [
        (m, s) for m, _, s, _, _ in messages]


@settings(max_examples=500)
@given(st.binary(max_size=600), st.lists(st.integers(1, 64), max_size=20))
def test_any_bytes_give_frames_or_reasons_never_an_exception(wire, cuts):
    reader = FrameReader()
    out, pos = [], 0
    for size in cuts:
        out += reader.feed(wire[pos:pos + size])
        pos += size
    out += reader.feed(wire[pos:]) + reader.close()
    for _content, frame in out:
        assert isinstance(frame, Frame) or frame.reason in REASONS
        _, decoded = decode_frame("d", frame)
        assert all(r.reason in REASONS for r in decoded.rejects)
    assert reader.buffered == 0


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_escape_then_unescape_is_the_identity_and_leaves_no_flag(data):
    escaped = escape(data)
    assert b"\x7e" not in escaped
    assert unescape(escaped) == (data, None)


@settings(max_examples=300)
@given(st.integers(-90_000_000, 90_000_000), st.integers(-180_000_000, 180_000_000),
       st.integers(0, 99), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23))
def test_locations_round_trip_to_a_micro_degree(lat_u, lon_u, yy, mm, dd, hh):
    bcd = f"{yy:02d}{mm:02d}{dd:02d}{hh:02d}0000"
    loc = decode_location(location_body(lat_u / 1e6, lon_u / 1e6, bcd=bcd))
    assert loc.lat == pytest.approx(lat_u / 1e6, abs=1e-9)
    assert loc.lon == pytest.approx(lon_u / 1e6, abs=1e-9)
    beijing = datetime.fromisoformat(f"20{yy:02d}-{mm:02d}-{dd:02d}T{hh:02d}:00:00+08:00")
    assert loc.ts == beijing.timestamp()


@settings(max_examples=300)
@given(st.lists(st.tuples(st.binary(max_size=60), frame_bodies), min_size=1, max_size=5),
       st.integers(1, 97))
def test_garbage_between_frames_never_costs_a_frame(items, cut):
    """Whatever comes between two frames (0x7e in it or not), every frame comes out whole and
    in order; the garbage comes out as refusals."""
    wire = b"".join(garbage + encode_frame(LOCATION, "13912345678", n, body)
                    for n, (garbage, body) in enumerate(items))
    reader = FrameReader()
    out = []
    for start in range(0, len(wire), cut):
        out += reader.feed(wire[start:start + cut])
    out += reader.close()
    frames = [fr for _, fr in out if isinstance(fr, Frame)]
    assert [(fr.header.serial, fr.body) for fr in frames] == [
        (n, body) for n, (_, body) in enumerate(items)]


# -- alarms -------------------------------------------------------------------------------------


def test_an_alarm_is_the_bit_set_where_it_was_clear():
    from gps_ingest.jt808.alarms import STAFF_ALARMS, alarm_edges, rising

    assert rising(0, 0b1_0000_0111) == ["emergency", "overspeed", "fatigue", "power_cut"]
    assert rising(ALARM_EMERGENCY, ALARM_EMERGENCY) == []  # still pressed: not a new alarm
    assert rising(0, 1 << 4) == []  # GNSS module fault: not one of the staff's
    words = [(1, 0), (2, ALARM_EMERGENCY), (3, ALARM_EMERGENCY), (4, 0), (5, ALARM_EMERGENCY)]
    assert alarm_edges(0, words) == ([(2, "emergency"), (5, "emergency")], ALARM_EMERGENCY)
    assert set(STAFF_ALARMS.values()) == {1, 2, 4, 256}


@settings(max_examples=300)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(0, 2**32 - 1), max_size=30))
def test_alarm_edges_count_each_rise_once(previous, words):
    from gps_ingest.jt808.alarms import STAFF_ALARMS, alarm_edges

    edges, last = alarm_edges(previous, list(enumerate(words)))
    assert last == (words[-1] if words else previous)
    for name, bit in STAFF_ALARMS.items():
        states = [bool(previous & bit)] + [bool(w & bit) for w in words]
        rises = sum(1 for a, b in zip(states, states[1:], strict=False) if b and not a)
        assert sum(1 for _, n in edges if n == name) == rises


def test_a_location_ping_carries_the_alarm_word():
    _, decoded = decode_frame("d", parse_frame(encode_frame(
        LOCATION, "1", 1, location_body(30, 114, alarm=ALARM_EMERGENCY | (1 << 4)))[1:-1]))
    assert decoded.pings[0].alarm == ALARM_EMERGENCY | (1 << 4)
