"""What ingest hands on: decoded pings and scans, rejects with a named reason, event time.

Pure: no I/O, no clock.  Everything downstream of the decoders sees only these frozen
dataclasses, never a raw payload.

Reject reasons
--------------
A reason is a short, stable snake_case string: it is API (``GET /api/v1/admin/rejects`` groups
by it, the HTTP ingest answer lists it).  :data:`REASONS` is the one list, with what each means;
the ``detail`` of a :class:`Reject` says in words what exactly was wrong with the message.

Whole message (``Reject.index`` is ``None``):

- ``payload_too_large`` — the payload is over 1 MiB (:data:`gps_ingest.decoders.MAX_PAYLOAD_BYTES`).
- ``bad_encoding`` — the payload is not UTF-8.
- ``bad_json`` — the payload is not JSON (empty, truncated, a syntax error).
- ``not_an_object`` — the JSON is not an object or an array of objects (also per item).
- ``too_many_items`` — an array of more than 1000 items (:data:`gps_ingest.decoders.MAX_ARRAY`).
- ``encrypted`` — an OwnTracks ``_type: encrypted`` message, or a JT/T 808 frame whose body is
  RSA-encrypted: xiaoche has no key, so a device with encryption switched on would otherwise
  lose every position without anyone noticing.

JT/T 808 frames (:mod:`gps_ingest.jt808`; whole message, the frame as hex in the reject log):

- ``not_a_frame`` — bytes outside the 0x7e delimiters (before the first, or garbage between).
- ``frame_too_long`` — more bytes between two 0x7e than the longest frame can have.
- ``bad_escape`` — a 0x7d not followed by 0x01 or 0x02.
- ``truncated_frame`` — shorter than its header, or a body shorter than its message needs.
- ``bad_checksum`` — the check byte is not the XOR of the frame (policy: refused).
- ``bad_length`` — the body is not as long as the header says.
- ``no_fix`` — a location whose status word says it is not positioned (bit 1 clear).
- ``unknown_terminal`` — no device has the terminal's phone number as ``jt808_phone``.
- ``unauthenticated`` — a location from a connection that has not authenticated (0x0102).

Per item (``Reject.index`` is the position in an array payload, ``None`` for a single object):

- ``missing_field`` — a required field (``ts``, ``lat``, ``lon``, ``card_id``, ``action``,
  OwnTracks ``_type``/``tst``) is absent or null.
- ``bad_type`` — a field has the wrong JSON type (a string where a number belongs, a boolean…).
- ``bad_ts`` — the time is not epoch seconds nor ISO-8601 with an offset (a naive ISO string,
  milliseconds sent as seconds, a negative number).
- ``bad_lat`` / ``bad_lon`` — latitude outside [-90, 90] / longitude outside [-180, 180].
- ``nan`` — a number is NaN or ±Infinity.
- ``bad_speed`` — a negative or absurd (> 1000 km/h) speed.
- ``bad_heading`` — a heading outside [0, 360].
- ``bad_accuracy`` — a negative or absurd (> 100 km) accuracy.
- ``bad_battery`` — a battery level outside [0, 100] %.
- ``bad_altitude`` — an altitude outside ±100 km.
- ``bad_action`` — a scan whose ``action`` is neither ``board`` nor ``alight``.
- ``bad_card_id`` — a scan's ``card_id`` longer than 64 characters or with control characters
  (a card reader sends a short printable id; anything else would not fit the column).
- ``mock_location`` — the phone says the fix is simulated (Traccar Client ``mock: true``).

Filters (:mod:`gps_ingest.filters`, plausibility of a well-formed ping):

- ``null_island`` — exactly (0, 0): a receiver with no fix yet.
- ``future_ts`` — more than ``max_future_s`` (5 min) ahead of the server's clock.
- ``too_old`` — older than ``max_age_s`` (7 days; ``XIAOCHE_MAX_PING_AGE_S``).
- ``low_accuracy`` — the device's own accuracy estimate is worse than ``max_accuracy_m``.
- ``implausible_jump`` — farther from the device's neighbouring accepted fix than the
  maximum speed allows.
- ``duplicate`` — the same device and ``ts`` twice in one batch (the first is kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

# -- reasons -------------------------------------------------------------------------------------

PAYLOAD_TOO_LARGE = "payload_too_large"
BAD_ENCODING = "bad_encoding"
BAD_JSON = "bad_json"
NOT_AN_OBJECT = "not_an_object"
TOO_MANY_ITEMS = "too_many_items"
ENCRYPTED = "encrypted"
MISSING_FIELD = "missing_field"

#: what an id (of a device, vehicle, stop …) may be: the bundle's rule (SPEC §3)
ID_RE = r"^[A-Za-z0-9._-]{1,64}$"
BAD_TYPE = "bad_type"
BAD_TS = "bad_ts"
BAD_LAT = "bad_lat"
BAD_LON = "bad_lon"

# A position's range, decided here once: the decoders and the filters use these.
LAT_MIN, LAT_MAX = -90.0, 90.0
LON_MIN, LON_MAX = -180.0, 180.0


def coordinate_problem(lat: float, lon: float) -> tuple[str, str] | None:
    """``(reason, detail)`` when a finite latitude or longitude is out of range, else None.

    >>> coordinate_problem(95.2, 113.0)
    ('bad_lat', 'lat 95.2 out of range [-90, 90]')
    """
    if not LAT_MIN <= lat <= LAT_MAX:
        return BAD_LAT, f"lat {lat!r} out of range [-90, 90]"
    if not LON_MIN <= lon <= LON_MAX:
        return BAD_LON, f"lon {lon!r} out of range [-180, 180]"
    return None
NAN = "nan"
BAD_SPEED = "bad_speed"
BAD_HEADING = "bad_heading"
BAD_ACCURACY = "bad_accuracy"
BAD_BATTERY = "bad_battery"
BAD_ALTITUDE = "bad_altitude"
BAD_ACTION = "bad_action"
BAD_CARD_ID = "bad_card_id"
MOCK_LOCATION = "mock_location"
NULL_ISLAND = "null_island"
FUTURE_TS = "future_ts"
TOO_OLD = "too_old"
LOW_ACCURACY = "low_accuracy"
IMPLAUSIBLE_JUMP = "implausible_jump"
DUPLICATE = "duplicate"
NOT_A_FRAME = "not_a_frame"
FRAME_TOO_LONG = "frame_too_long"
BAD_ESCAPE = "bad_escape"
TRUNCATED_FRAME = "truncated_frame"
BAD_CHECKSUM = "bad_checksum"
BAD_LENGTH = "bad_length"
NO_FIX = "no_fix"
UNKNOWN_TERMINAL = "unknown_terminal"
UNAUTHENTICATED = "unauthenticated"

#: Every reason the decoders and filters give, with its meaning (the README links here).
REASONS: dict[str, str] = {
    PAYLOAD_TOO_LARGE: "the payload is over 1 MiB",
    BAD_ENCODING: "the payload is not UTF-8",
    BAD_JSON: "the payload is not JSON (empty, truncated, a syntax error)",
    NOT_AN_OBJECT: "the message (or an array item) is not a JSON object",
    TOO_MANY_ITEMS: "an array of more than 1000 items",
    ENCRYPTED: "an encrypted OwnTracks message or JT/T 808 body; xiaoche has no key to read it",
    MISSING_FIELD: "a required field is absent or null",
    BAD_TYPE: "a field has the wrong JSON type",
    BAD_TS: "the time is neither epoch seconds nor ISO-8601 with an offset",
    BAD_LAT: "latitude outside [-90, 90]",
    BAD_LON: "longitude outside [-180, 180]",
    NAN: "a number is NaN or Infinity",
    BAD_SPEED: "speed negative or over 1000 km/h",
    BAD_HEADING: "heading outside [0, 360]",
    BAD_ACCURACY: "accuracy negative or over 100 km",
    BAD_BATTERY: "battery outside [0, 100] %",
    BAD_ALTITUDE: "altitude outside ±100 km",
    BAD_ACTION: "a scan action other than board or alight",
    BAD_CARD_ID: "a card id longer than 64 characters or with control characters",
    MOCK_LOCATION: "the phone reports a simulated (mock) location",
    NULL_ISLAND: "exactly (0, 0): a receiver without a fix",
    FUTURE_TS: "ts too far ahead of the server clock",
    TOO_OLD: "ts older than the configured maximum age",
    LOW_ACCURACY: "the fix's own accuracy estimate is worse than the configured maximum",
    IMPLAUSIBLE_JUMP: "too far from the neighbouring fix for the maximum speed",
    DUPLICATE: "the same device and ts twice in one batch",
    NOT_A_FRAME: "JT/T 808: bytes outside the 0x7e delimiters",
    FRAME_TOO_LONG: "JT/T 808: more bytes between two 0x7e than any frame has",
    BAD_ESCAPE: "JT/T 808: a 0x7d not followed by 0x01 or 0x02",
    TRUNCATED_FRAME: "JT/T 808: shorter than its header, or a body shorter than its message needs",
    BAD_CHECKSUM: "JT/T 808: the check byte is not the XOR of the frame",
    BAD_LENGTH: "JT/T 808: the body is not as long as the header says",
    NO_FIX: "JT/T 808: the terminal says the location is not positioned (status bit 1)",
    UNKNOWN_TERMINAL: "JT/T 808: no device has the terminal's phone number (jt808_phone)",
    UNAUTHENTICATED: "JT/T 808: a location before the connection authenticated (0x0102)",
}


# -- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PingRecord:
    """One position fix of one device, WGS-84 (or GCJ-02 until the pipeline converts it).

    ``item_index`` is where the ping was in an array payload, so that a filter's reject can name
    it; it is not part of the ping's identity (``compare=False``).
    """

    device_id: str
    ts: float  # epoch seconds UTC
    lat: float
    lon: float
    speed_kmh: float | None = None
    heading_deg: float | None = None
    accuracy_m: float | None = None
    alt_m: float | None = None
    battery_pct: float | None = None
    seq: int | None = None
    item_index: int | None = field(default=None, compare=False, repr=False)
    #: a JT/T 808 terminal's alarm word (its bits: :mod:`gps_ingest.jt808.alarms`); None for
    #: the other protocols, which have none
    alarm: int | None = None


_new = object.__new__
(_set_device_id, _set_ts, _set_lat, _set_lon, _set_speed, _set_heading, _set_accuracy, _set_alt,
 _set_battery, _set_seq, _set_index, _set_alarm) = (getattr(PingRecord, name).__set__
                                                    for name in PingRecord.__slots__)


def new_ping(device_id: str, ts: float, lat: float, lon: float, speed_kmh: float | None,
             heading_deg: float | None, accuracy_m: float | None, alt_m: float | None,
             battery_pct: float | None, seq: int | None, item_index: int | None,
             alarm: int | None = None) -> PingRecord:
    """``PingRecord(...)`` for the decoders' hot path, about twice as fast.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``; this sets
    the slots directly.  The result is an ordinary, equal, still frozen ``PingRecord``
    (``tests/unit/ingest`` checks both constructors agree).
    """
    p = _new(PingRecord)
    _set_device_id(p, device_id)
    _set_ts(p, ts)
    _set_lat(p, lat)
    _set_lon(p, lon)
    _set_speed(p, speed_kmh)
    _set_heading(p, heading_deg)
    _set_accuracy(p, accuracy_m)
    _set_alt(p, alt_m)
    _set_battery(p, battery_pct)
    _set_seq(p, seq)
    _set_index(p, item_index)
    _set_alarm(p, alarm)
    return p


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """A rider's card scanned on a bus."""

    device_id: str
    ts: float
    card_id: str
    action: str  # "board" | "alight"
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """Why (part of) a message was not accepted.

    ``index`` is the item's position in an array payload; ``None`` for the whole message or for
    a message that is a single object. ``ts`` is the ping's own time when a filter refused a
    decoded ping (what a subsidy review asks: did a trip rest on fixes that were filtered out?).
    """

    reason: str
    index: int | None = None
    detail: str = ""
    ts: float | None = None


@dataclass
class Decoded:
    """What a decoder made of one payload.

    ``ignored`` counts valid messages that are not positions (OwnTracks ``lwt``, ``transition``,
    ``card``…): they are neither pings nor rejects.
    """

    pings: list[PingRecord] = field(default_factory=list)
    scans: list[ScanRecord] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    ignored: int = 0


# -- event time ----------------------------------------------------------------------------------

#: Epoch seconds at or above this are taken for milliseconds sent by mistake (year 5138).
MAX_EPOCH_S = 1e11


def parse_time(value: object) -> float:
    """Epoch seconds (UTC) from epoch seconds or an ISO-8601 string with an offset.

    Raises :class:`ValueError` with a message for a device integrator otherwise: a naive ISO
    string (whose zone we would have to guess), a boolean, NaN, a negative number, or
    milliseconds where seconds belong.

    >>> parse_time(1700000000)
    1700000000.0
    >>> parse_time("2023-11-14T22:13:20Z")
    1700000000.0
    >>> parse_time("2023-11-15T06:13:20+08:00")
    1700000000.0
    >>> parse_time("2023-11-14T22:13:20")
    Traceback (most recent call last):
    ...
    ValueError: time '2023-11-14T22:13:20' has no UTC offset; add 'Z' or '+08:00'
    """
    kind = type(value)
    if kind is float or kind is int:
        return _epoch(value)  # type: ignore[arg-type]
    if kind is str:
        return _iso(value)  # type: ignore[arg-type]
    if kind is bool:
        raise ValueError(f"time {value!r} is a boolean, not epoch seconds or ISO-8601")
    if isinstance(value, int | float) and not isinstance(value, bool):  # numpy/int subclasses
        return _epoch(float(value))
    raise ValueError(f"time {value!r} is a {kind.__name__}, not epoch seconds or ISO-8601")


def _epoch(value: float) -> float:
    if 0 <= value < MAX_EPOCH_S:
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"time {value!r} is not a finite number")
    if value < 0:
        raise ValueError(f"time {value!r} is before 1970")
    if value < MAX_EPOCH_S * 1000:
        raise ValueError(f"time {value!r} looks like milliseconds; send epoch seconds")
    raise ValueError(f"time {value!r} is too far in the future to be epoch seconds")


def _iso(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"time {text[:64]!r} is not ISO-8601 (like '2026-11-23T06:50:00+08:00')"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"time {text[:64]!r} has no UTC offset; add 'Z' or '+08:00'")
    return _epoch(moment.timestamp())
