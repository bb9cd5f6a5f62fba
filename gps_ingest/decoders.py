"""Payload decoders: bytes (or query fields) in, :class:`~gps_ingest.records.Decoded` out.

Pure functions that never raise on bad input: whatever a device sends becomes pings, scans,
an ``ignored`` count, or rejects with a named reason (listed in :mod:`gps_ingest.records`).
One bad item of an array rejects only that item.

Choices made here, each for a reason a device integrator can check:

- JSON is decoded with orjson (the hot path).  Only when orjson refuses a payload do we look
  closer, off the hot path: not UTF-8 → ``bad_encoding``; valid JSON except for the
  ``NaN``/``Infinity`` literals (which RFC 8259 forbids but C firmware printing ``%f`` emits) →
  decoded with the standard library so that only the items holding a NaN are rejected (``nan``),
  not the whole backlog; anything else → ``bad_json`` with the parser's message.
- An empty array is a valid message with nothing in it (no reject, nothing stored).  An empty
  payload is ``bad_json`` for our own topics; on an OwnTracks topic it is how a client clears
  its retained message, so it is ``ignored``.
- Our own protocol is strict: a value out of range rejects the ping.  Third-party protocols
  (OwnTracks, OsmAnd/Traccar Client) use ``-1`` for "not known" (iOS CoreLocation, qtripp
  trackers, transistorsoft's plugin do): there a negative speed, heading, accuracy or battery
  means the field is absent, not that the fix is bad.
- OwnTracks ``_type: encrypted`` is rejected as ``encrypted``: we hold no key, and counting it
  as ``ignored`` would hide a phone whose every position is lost.
- OsmAnd without a timestamp is rejected (``missing_field``): Traccar stamps such a fix with the
  server's clock, but a decoder has no clock and a guessed time breaks event-time tracking.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from gps_ingest.records import (
    BAD_ACCURACY,
    BAD_ACTION,
    BAD_ALTITUDE,
    BAD_BATTERY,
    BAD_CARD_ID,
    BAD_ENCODING,
    BAD_HEADING,
    BAD_JSON,
    BAD_LAT,
    BAD_LON,
    BAD_SPEED,
    BAD_TS,
    BAD_TYPE,
    ENCRYPTED,
    LAT_MAX,
    LAT_MIN,
    LON_MAX,
    LON_MIN,
    MAX_EPOCH_S,
    MISSING_FIELD,
    MOCK_LOCATION,
    NAN,
    NOT_AN_OBJECT,
    PAYLOAD_TOO_LARGE,
    TOO_MANY_ITEMS,
    Decoded,
    PingRecord,
    Reject,
    ScanRecord,
    new_ping,
    parse_time,
)

MAX_PAYLOAD_BYTES = 1_048_576
MAX_ARRAY = 1000
MAX_CARD_ID = 64  # the scans.card_id and students.card_id columns

KNOTS_TO_KMH = 1.852  # exact, by definition of the nautical mile
MPS_TO_KMH = 3.6

# Field bounds; beyond them the value is a bug, not a measurement.
MAX_SPEED_KMH = 1000.0  # faster than any road vehicle by far, slower than an airliner's glitch
MAX_ACCURACY_M = 100_000.0  # a cell-tower fix is a few km; 100 km means "no idea"
MAX_ALTITUDE_M = 100_000.0  # no bus drives in space
SCAN_ACTIONS = frozenset({"board", "alight"})

_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_NATIVE_TOPIC = re.compile(r"xiaoche/v1/devices/([A-Za-z0-9._-]{1,64})/(pings|scans)")
_OWNTRACKS_TOPIC = re.compile(r"owntracks/([A-Za-z0-9._-]{1,64})/[^/]+(?:/[^/]+)?")


def parse_topic(topic: str) -> tuple[str, str] | None:
    """``(kind, device_id)`` for a topic devices publish to, ``None`` if it is not ours.

    ``owntracks/{device_id}/{phone}`` and its one-level subtopics (``…/event``, ``…/info``,
    ``…/step``, where OwnTracks publishes transitions and cards) are OwnTracks.

    >>> parse_topic("xiaoche/v1/devices/bus-07/pings")
    ('pings', 'bus-07')
    >>> parse_topic("owntracks/teacher-li/iphone")
    ('owntracks', 'teacher-li')
    >>> parse_topic("xiaoche/v1/devices/bus 07/pings") is None
    True
    """
    match = _NATIVE_TOPIC.fullmatch(topic)
    if match:
        return match.group(2), match.group(1)
    match = _OWNTRACKS_TOPIC.fullmatch(topic)
    if match:
        return "owntracks", match.group(1)
    return None


# -- validation helpers (raise _Invalid only on bad input: no exceptions on the happy path) -------


class _Invalid(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def _number(obj: Mapping[str, Any], key: str, lo: float, hi: float, out_of_range: str,
            required: bool, name: str | None = None) -> float | None:
    """``obj[key]`` as a float in [lo, hi]; ``None`` if absent and optional."""
    value: Any = obj.get(key)
    kind = type(value)
    if (kind is float or kind is int) and lo <= value <= hi:  # NaN fails the comparison
        return float(value)
    if value is None and not required:
        return None
    raise _bad_number(value, key if name is None else name, lo, hi, out_of_range)


def _bad_number(value: Any, name: str, lo: float, hi: float, out_of_range: str) -> _Invalid:
    kind = type(value)
    if value is None:
        return _Invalid(MISSING_FIELD, f"{name} is required")
    if kind is float and value != value or value in (float("inf"), float("-inf")):
        return _Invalid(NAN, f"{name} is {value!r}, not a finite number")
    if kind is float or kind is int:
        return _Invalid(out_of_range, f"{name} {value!r} out of range [{lo:g}, {hi:g}]")
    return _Invalid(BAD_TYPE, f"{name} must be a number, got {_json_type(value)} {_short(value)}")


def _lenient(obj: Mapping[str, Any], key: str, hi: float, out_of_range: str,
             name: str, scale: float = 1.0) -> float | None:
    """A third-party optional field where a negative number means "not known"."""
    value: Any = obj.get(key)
    kind = type(value)
    if kind is float or kind is int:
        if 0 <= value <= hi:
            return float(value) * scale
        if value < 0:
            return None
    if value is None:
        return None
    raise _bad_number(value, name, 0, hi, out_of_range)


def _ts(obj: Mapping[str, Any], key: str, name: str = "ts") -> float:
    value: Any = obj.get(key)
    kind = type(value)
    if (kind is int or kind is float) and 0 <= value < MAX_EPOCH_S:
        return float(value)
    if value is None:
        raise _Invalid(MISSING_FIELD, f"{name} is required")
    if kind is float and not value - value == 0:
        raise _Invalid(NAN, f"{name} is {value!r}, not a finite number")
    try:
        return parse_time(value)
    except ValueError as exc:
        raise _Invalid(BAD_TS, f"{name}: {exc}") from None


def _lat_lon(obj: Mapping[str, Any], lat_key: str, lon_key: str,
             names: tuple[str, str] = ("lat", "lon")) -> tuple[float, float]:
    lat = _number(obj, lat_key, LAT_MIN, LAT_MAX, BAD_LAT, True, names[0])
    lon = _number(obj, lon_key, LON_MIN, LON_MAX, BAD_LON, True, names[1])
    return lat, lon  # type: ignore[return-value]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- JSON framing ----------------------------------------------------------------------------------


def _allow_constant(name: str) -> float:
    return float(name)  # "NaN", "Infinity", "-Infinity": validated per field as `nan`


def _load(payload: bytes) -> tuple[Any, Reject | None]:
    """The decoded JSON, or the whole-message reject."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None, Reject(PAYLOAD_TOO_LARGE, None,
                            f"payload is {len(payload)} bytes; at most {MAX_PAYLOAD_BYTES}")
    try:
        return orjson.loads(payload), None
    except orjson.JSONDecodeError as exc:
        return _load_slowly(bytes(payload), str(exc))


def _load_slowly(payload: bytes, orjson_error: str) -> tuple[Any, Reject | None]:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, Reject(BAD_ENCODING, None, f"payload is not UTF-8 (byte {exc.start})")
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return None, Reject(BAD_JSON, None, "payload is empty")
    try:
        return json.loads(text, parse_constant=_allow_constant), None
    except (ValueError, RecursionError):
        return None, Reject(BAD_JSON, None, f"payload is not JSON: {orjson_error}")


def _decode_items(payload: bytes, one: Callable[[dict[str, Any], int | None, Decoded], None],
                  empty_is_ignored: bool = False) -> Decoded:
    """Frame a payload (one object or an array of them) and hand each object to ``one``."""
    out = Decoded()
    if empty_is_ignored and not payload.strip():
        out.ignored = 1
        return out
    data, reject = _load(payload)
    if reject is not None:
        out.rejects.append(reject)
        return out
    if type(data) is dict:
        _one_safely(one, data, None, out)
    elif type(data) is list:
        if len(data) > MAX_ARRAY:
            out.rejects.append(Reject(TOO_MANY_ITEMS, None,
                                      f"array of {len(data)} items; at most {MAX_ARRAY}"))
            return out
        for index, item in enumerate(data):
            if type(item) is dict:
                _one_safely(one, item, index, out)
            else:
                out.rejects.append(Reject(NOT_AN_OBJECT, index,
                                          f"item is a JSON {_json_type(item)}, not an object"))
    else:
        out.rejects.append(Reject(NOT_AN_OBJECT, None,
                                  f"payload is a JSON {_json_type(data)}, not an object or array"))
    return out


def _one_safely(one: Callable[[dict[str, Any], int | None, Decoded], None],
                item: dict[str, Any], index: int | None, out: Decoded) -> None:
    try:
        one(item, index, out)
    except _Invalid as bad:
        out.rejects.append(Reject(bad.reason, index, bad.detail))


# -- native pings ----------------------------------------------------------------------------------


_NUMBERS = (float, int)  # compared with type(): a bool is not a number here


def native_ping(device_id: str, obj: Mapping[str, Any], index: int | None = None) -> PingRecord:
    """A ping object of our protocol (SPEC §4) as a record; raises ``_Invalid`` if it is bad."""
    get: Callable[[str], Any] = obj.get
    ts, lat, lon = get("ts"), get("lat"), get("lon")
    speed, heading, accuracy = get("speed_kmh"), get("heading_deg"), get("accuracy_m")
    alt, battery, seq = get("alt_m"), get("battery_pct"), get("seq")
    # The hot path: one guard for a well-formed ping (NaN fails every comparison).  Anything
    # else takes the careful path below, which finds the reason.
    if (type(ts) in _NUMBERS and 0 <= ts < MAX_EPOCH_S
            and type(lat) in _NUMBERS and LAT_MIN <= lat <= LAT_MAX
            and type(lon) in _NUMBERS and LON_MIN <= lon <= LON_MAX
            and (speed is None or type(speed) in _NUMBERS and 0 <= speed <= MAX_SPEED_KMH)
            and (heading is None or type(heading) in _NUMBERS and 0 <= heading <= 360)
            and (accuracy is None or type(accuracy) in _NUMBERS and 0 <= accuracy <= MAX_ACCURACY_M)
            and (alt is None or type(alt) in _NUMBERS and -MAX_ALTITUDE_M <= alt <= MAX_ALTITUDE_M)
            and (battery is None or type(battery) in _NUMBERS and 0 <= battery <= 100)
            and (seq is None or type(seq) is int)):
        return new_ping(device_id, float(ts), float(lat), float(lon),
                        None if speed is None else float(speed),
                        None if heading is None else float(heading),
                        None if accuracy is None else float(accuracy),
                        None if alt is None else float(alt),
                        None if battery is None else float(battery), seq, index)
    return _native_ping_carefully(device_id, obj, index)


def _native_ping_carefully(device_id: str, obj: Mapping[str, Any],
                           index: int | None) -> PingRecord:
    seq = obj.get("seq")
    if seq is not None and type(seq) is not int:
        raise _Invalid(BAD_TYPE, f"seq must be an integer, got {_json_type(seq)} {_short(seq)}")
    lat, lon = _lat_lon(obj, "lat", "lon")
    return PingRecord(
        device_id,
        _ts(obj, "ts"),
        lat,
        lon,
        _number(obj, "speed_kmh", 0.0, MAX_SPEED_KMH, BAD_SPEED, False),
        _number(obj, "heading_deg", 0.0, 360.0, BAD_HEADING, False),
        _number(obj, "accuracy_m", 0.0, MAX_ACCURACY_M, BAD_ACCURACY, False),
        _number(obj, "alt_m", -MAX_ALTITUDE_M, MAX_ALTITUDE_M, BAD_ALTITUDE, False),
        _number(obj, "battery_pct", 0.0, 100.0, BAD_BATTERY, False),
        seq,
        index,
    )


def decode_native_pings(device_id: str, payload: bytes) -> Decoded:
    """``xiaoche/v1/devices/{id}/pings`` and ``POST /ingest/pings``: one object or an array.

    >>> d = decode_native_pings("bus-07", b'[{"ts": 1700000000, "lat": 27.6, "lon": 113.1},'
    ...                                     b' {"ts": 1700000010, "lat": 95.2, "lon": 113.1}]')
    >>> [(p.ts, p.lat) for p in d.pings], d.rejects
    ([(1700000000.0, 27.6)], [Reject(reason='bad_lat', index=1, detail='lat 95.2 out of range [-90, 90]', ts=None)])
    """

    def one(obj: dict[str, Any], index: int | None, out: Decoded) -> None:
        out.pings.append(native_ping(device_id, obj, index))

    return _decode_items(payload, one)


# -- OwnTracks -------------------------------------------------------------------------------------


def owntracks_ping(device_id: str, obj: Mapping[str, Any],
                   index: int | None = None) -> PingRecord:
    """An OwnTracks ``_type: location`` message as a record (``vel`` is already km/h)."""
    get: Callable[[str], Any] = obj.get
    ts, lat, lon = get("tst"), get("lat"), get("lon")
    vel, cog, acc, alt, batt = get("vel"), get("cog"), get("acc"), get("alt"), get("batt")
    if (type(ts) in _NUMBERS and 0 <= ts < MAX_EPOCH_S
            and type(lat) in _NUMBERS and LAT_MIN <= lat <= LAT_MAX
            and type(lon) in _NUMBERS and LON_MIN <= lon <= LON_MAX
            and (vel is None or type(vel) in _NUMBERS and 0 <= vel <= MAX_SPEED_KMH)
            and (cog is None or type(cog) in _NUMBERS and 0 <= cog <= 360)
            and (acc is None or type(acc) in _NUMBERS and 0 <= acc <= MAX_ACCURACY_M)
            and (alt is None or type(alt) in _NUMBERS and -MAX_ALTITUDE_M <= alt <= MAX_ALTITUDE_M)
            and (batt is None or type(batt) in _NUMBERS and 0 <= batt <= 100)):
        return new_ping(device_id, float(ts), float(lat), float(lon),
                        None if vel is None else float(vel),
                        None if cog is None else float(cog),
                        None if acc is None else float(acc),
                        None if alt is None else float(alt),
                        None if batt is None else float(batt), None, index)
    lat, lon = _lat_lon(obj, "lat", "lon")
    return PingRecord(
        device_id,
        _ts(obj, "tst", "tst"),
        lat,
        lon,
        _lenient(obj, "vel", MAX_SPEED_KMH, BAD_SPEED, "vel"),
        _lenient(obj, "cog", 360.0, BAD_HEADING, "cog"),
        _lenient(obj, "acc", MAX_ACCURACY_M, BAD_ACCURACY, "acc"),
        _number(obj, "alt", -MAX_ALTITUDE_M, MAX_ALTITUDE_M, BAD_ALTITUDE, False, "alt"),
        _lenient(obj, "batt", 100.0, BAD_BATTERY, "batt"),
        None,
        index,
    )


def decode_owntracks(device_id: str, payload: bytes) -> Decoded:
    """``owntracks/{device_id}/{phone}``: a message or an array of them (HTTP mode).

    ``_type: location`` is a ping; every other ``_type`` (``lwt``, ``transition``, ``card``,
    ``cmd``, ``steps``, ``waypoint(s)``, ``status``, ``request``) is counted in ``ignored``.
    A message without ``_type`` is ``missing_field``, an ``encrypted`` one ``encrypted``.
    """

    def one(obj: dict[str, Any], index: int | None, out: Decoded) -> None:
        kind = obj.get("_type")
        if kind == "location":
            out.pings.append(owntracks_ping(device_id, obj, index))
        elif kind is None:
            raise _Invalid(MISSING_FIELD, "_type is required (an OwnTracks message)")
        elif type(kind) is not str:
            raise _Invalid(BAD_TYPE, f"_type must be a string, got {_json_type(kind)}")
        elif kind == "encrypted":
            raise _Invalid(ENCRYPTED, "encrypted OwnTracks payload: turn encryption off in the "
                                      "app (Settings → Encryption key empty)")
        else:
            out.ignored += 1

    return _decode_items(payload, one, empty_is_ignored=True)


# -- scans -----------------------------------------------------------------------------------------


def decode_scans(device_id: str, payload: bytes) -> Decoded:
    """``xiaoche/v1/devices/{id}/scans``: ``{ts, card_id, action: board|alight, lat?, lon?}``."""

    def one(obj: dict[str, Any], index: int | None, out: Decoded) -> None:
        ts = _ts(obj, "ts")
        card_id = obj.get("card_id")
        if card_id is None or card_id == "":
            raise _Invalid(MISSING_FIELD, "card_id is required")
        if type(card_id) is not str:
            raise _Invalid(BAD_TYPE, f"card_id must be a string, got {_json_type(card_id)}")
        if len(card_id) > MAX_CARD_ID or not card_id.isprintable():
            raise _Invalid(BAD_CARD_ID, f"card_id {_short(card_id)} is not 1-{MAX_CARD_ID} "
                                        "printable characters")
        action = obj.get("action")
        if action is None:
            raise _Invalid(MISSING_FIELD, "action is required (board or alight)")
        if action not in SCAN_ACTIONS:
            raise _Invalid(BAD_ACTION, f"action {_short(action)} is neither 'board' nor 'alight'")
        lat = lon = None
        if obj.get("lat") is not None or obj.get("lon") is not None:
            lat, lon = _lat_lon(obj, "lat", "lon")
        out.scans.append(ScanRecord(device_id, ts, card_id, action, lat, lon))

    return _decode_items(payload, one)


# -- OsmAnd (Traccar Client) -----------------------------------------------------------------------


def _query_number(params: Mapping[str, str], key: str) -> float | int | None:
    text = params.get(key)
    if text is None or text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise _Invalid(BAD_TYPE, f"{key} must be a number, got {_short(text)}") from None


def _query_time(text: str) -> float:
    text = text.strip()
    if text.isdigit():
        value = int(text)
        # Traccar's rule: below 2^31 it is seconds, above it milliseconds.
        return float(value) if value < 2**31 else value / 1000.0
    try:
        return parse_time(text)
    except ValueError as exc:
        raise _Invalid(BAD_TS, f"timestamp: {exc}") from None


def decode_osmand_query(params: Mapping[str, str]) -> tuple[str | None, Decoded]:
    """The OsmAnd protocol's query or form fields, as Traccar's OsmAndProtocolDecoder reads them.

    ``id`` (or ``deviceid``), ``lat``/``lon`` (or ``location=lat,lon``), ``timestamp`` (epoch
    seconds, milliseconds, or ISO-8601 with an offset), ``speed`` in **knots**, ``bearing`` (or
    ``heading``), ``altitude``, ``accuracy``, ``batt`` (%).  Returns the device id it names.

    >>> device, d = decode_osmand_query({"id": "bus-07", "lat": "27.6", "lon": "113.1",
    ...                                  "timestamp": "1700000000", "speed": "10"})
    >>> device, d.pings[0].speed_kmh
    ('bus-07', 18.52)
    """
    device_id = params.get("id") or params.get("deviceid") or None
    out = Decoded()
    try:
        fields: dict[str, Any] = {}
        for key in ("lat", "lon", "speed", "bearing", "heading", "altitude", "accuracy", "batt"):
            fields[key] = _query_number(params, key)
        location = params.get("location")
        if location and fields["lat"] is None and fields["lon"] is None:
            parts = location.split(",")
            if len(parts) != 2:
                raise _Invalid(BAD_TYPE, f"location must be 'lat,lon', got {_short(location)}")
            fields["lat"] = _query_number({"location": parts[0]}, "location")
            fields["lon"] = _query_number({"location": parts[1]}, "location")
        if fields["bearing"] is None:
            fields["bearing"] = fields["heading"]
        stamp = params.get("timestamp")
        if stamp is None or stamp.strip() == "":
            raise _Invalid(MISSING_FIELD, "timestamp is required")
        lat, lon = _lat_lon(fields, "lat", "lon")
        out.pings.append(PingRecord(
            device_id or "",
            _query_time(stamp),
            lat,
            lon,
            _lenient(fields, "speed", MAX_SPEED_KMH / KNOTS_TO_KMH, BAD_SPEED, "speed",
                     KNOTS_TO_KMH),
            _lenient(fields, "bearing", 360.0, BAD_HEADING, "bearing"),
            _lenient(fields, "accuracy", MAX_ACCURACY_M, BAD_ACCURACY, "accuracy"),
            _number(fields, "altitude", -MAX_ALTITUDE_M, MAX_ALTITUDE_M, BAD_ALTITUDE, False),
            _lenient(fields, "batt", 100.0, BAD_BATTERY, "batt"),
        ))
    except _Invalid as bad:
        out.rejects.append(Reject(bad.reason, None, bad.detail))
    return device_id, out


def decode_osmand_json(payload: bytes) -> tuple[str | None, Decoded]:
    """The Traccar Client JSON body (transistorsoft background-geolocation's location).

    ``{"device_id", "location": {"timestamp", "coords": {latitude, longitude, speed (m/s),
    heading, accuracy, altitude}, "battery": {"level": 0..1}, "is_moving", "mock"}}``.
    ``battery``, ``is_moving`` and ``mock`` are read from ``location`` (where the client puts
    them) or from the root.  ``mock: true`` is rejected as ``mock_location``.
    """
    out = Decoded()
    data, reject = _load(payload)
    if reject is not None:
        out.rejects.append(reject)
        return None, out
    if type(data) is not dict:
        out.rejects.append(Reject(NOT_AN_OBJECT, None,
                                  f"payload is a JSON {_json_type(data)}, not an object"))
        return None, out
    raw_id = data.get("device_id")
    device_id = str(raw_id) if type(raw_id) in (str, int) and raw_id != "" else None
    try:
        out.pings.append(_osmand_json_ping(device_id or "", data))
    except _Invalid as bad:
        out.rejects.append(Reject(bad.reason, None, bad.detail))
    return device_id, out


def _osmand_json_ping(device_id: str, data: Mapping[str, Any]) -> PingRecord:
    location = _object(data, "location")
    coords = _object(location, "coords", "location.coords")
    mock = location.get("mock", data.get("mock"))
    if mock is True:
        raise _Invalid(MOCK_LOCATION, "location.mock is true: the phone reports a simulated "
                                      "location (a mock-location app)")
    battery = location.get("battery", data.get("battery"))
    level = battery if type(battery) is dict else {}
    lat, lon = _lat_lon(coords, "latitude", "longitude",
                        ("location.coords.latitude", "location.coords.longitude"))
    return PingRecord(
        device_id,
        _ts(location, "timestamp", "location.timestamp"),
        lat,
        lon,
        _lenient(coords, "speed", MAX_SPEED_KMH / MPS_TO_KMH, BAD_SPEED,
                 "location.coords.speed", MPS_TO_KMH),
        _lenient(coords, "heading", 360.0, BAD_HEADING, "location.coords.heading"),
        _lenient(coords, "accuracy", MAX_ACCURACY_M, BAD_ACCURACY, "location.coords.accuracy"),
        _number(coords, "altitude", -MAX_ALTITUDE_M, MAX_ALTITUDE_M, BAD_ALTITUDE, False, "location.coords.altitude"),
        _lenient(level, "level", 1.0, BAD_BATTERY, "battery.level", 100.0),
    )


def _object(obj: Mapping[str, Any], key: str, name: str | None = None) -> Mapping[str, Any]:
    value: Any = obj.get(key)
    if type(value) is dict:
        return value
    if value is None:
        raise _Invalid(MISSING_FIELD, f"{name or key} is required")
    raise _Invalid(BAD_TYPE, f"{name or key} must be an object, got {_json_type(value)}")


__all__ = [
    "MAX_ARRAY",
    "MAX_PAYLOAD_BYTES",
    "decode_native_pings",
    "decode_osmand_json",
    "decode_osmand_query",
    "decode_owntracks",
    "decode_scans",
    "native_ping",
    "owntracks_ping",
    "parse_topic",
]
