"""JT/T 808 message bodies: the ones a school bus's terminal sends, and the platform's answers.

=======  ===================================  =====================================
id       message                              here
=======  ===================================  =====================================
0x0001   terminal general response            :func:`decode_general_response`
0x0002   heartbeat                            (empty body)
0x0100   registration                         :func:`decode_registration`
0x0102   authentication                       :func:`decode_authentication`
0x0200   location report                      :func:`decode_location`
0x0704   batch / blind-area upload            :func:`decode_batch`
0x0702   driver identity (card in / out)      :func:`decode_driver`
0x8001   platform general response            :func:`encode_general_response`
0x8100   registration answer (+ auth code)    :func:`encode_registration_answer`
0x8300   text message to the driver           :func:`encode_text`
=======  ===================================  =====================================

Times in a body are BCD ``YYMMDDhhmmss`` in GMT+8 (Beijing time, the standard's own clock);
they are turned into epoch seconds UTC here. Pure: no I/O, no clock; a body that is too short
or malformed gives :class:`BodyError`, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from gps_ingest.records import BAD_TS, TRUNCATED_FRAME

GENERAL_RESPONSE = 0x0001
HEARTBEAT = 0x0002
REGISTRATION = 0x0100
DEREGISTRATION = 0x0003
AUTHENTICATION = 0x0102
LOCATION = 0x0200
BATCH = 0x0704
DRIVER = 0x0702
PLATFORM_RESPONSE = 0x8001
REGISTRATION_ANSWER = 0x8100
TEXT = 0x8300

BEIJING = timezone(timedelta(hours=8))

# alarm word bits (JT/T 808-2013 table 24) that matter to school-transport staff
ALARM_EMERGENCY = 1 << 0
ALARM_OVERSPEED = 1 << 1
ALARM_FATIGUE = 1 << 2
ALARM_POWER_CUT = 1 << 8
# status word bits (table 25)
STATUS_ACC = 1 << 0
STATUS_POSITIONED = 1 << 1
STATUS_SOUTH = 1 << 2
STATUS_WEST = 1 << 3

# 0x8001 / 0x8100 result codes
OK, FAILURE, MESSAGE_ERROR, UNSUPPORTED = 0, 1, 2, 3
REG_OK, REG_VEHICLE_TAKEN, REG_NO_VEHICLE, REG_TERMINAL_TAKEN, REG_NO_TERMINAL = 0, 1, 2, 3, 4

BASIC_LOCATION = 28

# 0x8300 flags (2013 table 38): shown on the terminal's screen and read aloud (TTS)
TEXT_DISPLAY = 1 << 2
TEXT_TTS = 1 << 3
TEXT_MAX_BYTES = 1000  # GBK bytes; the body, with its flag (and 2019 type) bytes, stays < 1024


@dataclass(frozen=True, slots=True)
class BodyError:
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Location:
    """The basic location information (28 bytes) and the additional items xiaoche reads."""

    alarm: int
    status: int
    lat: float  # degrees, south negative
    lon: float  # degrees, west negative
    altitude_m: int
    speed_kmh: float
    course_deg: int
    ts: float | None  # epoch seconds UTC; None when the BCD time is not a time
    time_text: str  # the BCD digits as sent, for a reject's detail
    mileage_km: float | None = None  # item 0x01
    fuel_l: float | None = None  # item 0x02
    signal: int | None = None  # item 0x30, mobile network signal strength
    satellites: int | None = None  # item 0x31, GNSS satellites in use

    @property
    def positioned(self) -> bool:
        return bool(self.status & STATUS_POSITIONED)


def bcd_time(data: bytes) -> float | None:
    """Epoch seconds UTC of a BCD ``YYMMDDhhmmss`` Beijing time, None if it is not one."""
    digits = data.hex()
    if len(digits) != 12 or not digits.isdigit():
        return None
    try:
        moment = datetime(2000 + int(digits[0:2]), int(digits[2:4]), int(digits[4:6]),
                          int(digits[6:8]), int(digits[8:10]), int(digits[10:12]),
                          tzinfo=BEIJING)
    except ValueError:
        return None
    return moment.timestamp()


def decode_location(body: bytes) -> Location | BodyError:
    """A 0x0200 body (or one item of a 0x0704): basic information, then the additional items
    ``id BYTE · length BYTE · value``. Unknown items are skipped; items cut short by the end
    of the body end the list (vendor extensions are often sloppy) without costing the fix."""
    if len(body) < BASIC_LOCATION:
        return BodyError(TRUNCATED_FRAME, f"a location of {len(body)} bytes; the basic "
                                          f"information alone is {BASIC_LOCATION}")
    alarm = int.from_bytes(body[0:4], "big")
    status = int.from_bytes(body[4:8], "big")
    lat = int.from_bytes(body[8:12], "big") / 1e6
    lon = int.from_bytes(body[12:16], "big") / 1e6
    if status & STATUS_SOUTH:
        lat = -lat
    if status & STATUS_WEST:
        lon = -lon
    extras: dict[str, float | int] = {}
    pos, n = BASIC_LOCATION, len(body)
    while pos + 2 <= n:
        item, length = body[pos], body[pos + 1]
        value = body[pos + 2:pos + 2 + length]
        if len(value) < length:
            break
        if item == 0x01 and length == 4:
            extras["mileage_km"] = int.from_bytes(value, "big") / 10
        elif item == 0x02 and length == 2:
            extras["fuel_l"] = int.from_bytes(value, "big") / 10
        elif item == 0x30 and length == 1:
            extras["signal"] = value[0]
        elif item == 0x31 and length == 1:
            extras["satellites"] = value[0]
        pos += 2 + length
    return Location(alarm=alarm, status=status, lat=lat, lon=lon,
                    altitude_m=int.from_bytes(body[16:18], "big", signed=True),
                    speed_kmh=int.from_bytes(body[18:20], "big") / 10,
                    course_deg=int.from_bytes(body[20:22], "big"),
                    ts=bcd_time(body[22:28]), time_text=body[22:28].hex(),
                    **extras)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Batch:
    """A 0x0704 upload: ``backlog`` (type 1) is what the terminal kept through a blind area."""

    backlog: bool
    items: list[Location | BodyError]


def decode_batch(body: bytes) -> Batch | BodyError:
    """``count WORD · type BYTE · count × (length WORD · location)``; an item cut short ends
    the list with a :class:`BodyError` in its place."""
    if len(body) < 3:
        return BodyError(TRUNCATED_FRAME, f"a batch upload of {len(body)} bytes; at least 3")
    count = int.from_bytes(body[0:2], "big")
    items: list[Location | BodyError] = []
    pos = 3
    for index in range(count):
        if pos + 2 > len(body):
            items.append(BodyError(TRUNCATED_FRAME, f"item {index} of {count} is missing"))
            break
        length = int.from_bytes(body[pos:pos + 2], "big")
        chunk = body[pos + 2:pos + 2 + length]
        if len(chunk) < length:
            items.append(BodyError(TRUNCATED_FRAME, f"item {index} says {length} bytes, "
                                                    f"{len(chunk)} remain"))
            break
        items.append(decode_location(chunk))
        pos += 2 + length
    return Batch(backlog=body[2] == 1, items=items)


def location_error(location: Location) -> BodyError | None:
    """Why a decoded location cannot be a ping (its time), if it cannot."""
    if location.ts is None:
        return BodyError(BAD_TS, f"time {location.time_text!r} is not BCD YYMMDDhhmmss")
    return None


@dataclass(frozen=True, slots=True)
class Registration:
    province: int
    city: int
    manufacturer: str
    model: str
    terminal_id: str
    plate_color: int
    plate: str


def _text(data: bytes) -> str:
    """A fixed-width text field: NUL padding stripped, GBK as the standard says (lenient)."""
    return data.rstrip(b"\x00").strip().decode("gbk", errors="replace")


def decode_registration(body: bytes, version: int | None) -> Registration | BodyError:
    """0x0100: province, city, manufacturer, model, terminal id, plate colour, plate. The
    field widths are 5/20/7 bytes in 2013 (5/8/7 in 2011, told apart by the length) and
    11/30/30 in 2019."""
    if version is not None:
        widths = (11, 30, 30)
    elif len(body) >= 4 + 5 + 20 + 7 + 1:
        widths = (5, 20, 7)
    else:
        widths = (5, 8, 7)
    need = 4 + sum(widths) + 1
    if len(body) < need:
        return BodyError(TRUNCATED_FRAME, f"a registration of {len(body)} bytes; at least {need}")
    pos = 4
    fields = []
    for width in widths:
        fields.append(_text(body[pos:pos + width]))
        pos += width
    return Registration(province=int.from_bytes(body[0:2], "big"),
                        city=int.from_bytes(body[2:4], "big"), manufacturer=fields[0],
                        model=fields[1], terminal_id=fields[2], plate_color=body[pos],
                        plate=_text(body[pos + 1:]))


def decode_authentication(body: bytes, version: int | None) -> str:
    """0x0102's auth code: the whole body in 2013; ``length BYTE · code · IMEI · software
    version`` in 2019."""
    if version is not None and body:
        return body[1:1 + body[0]].decode("ascii", errors="replace")
    return body.decode("ascii", errors="replace")


@dataclass(frozen=True, slots=True)
class Driver:
    """0x0702: a driver's qualification card inserted (``inserted``) or taken out."""

    inserted: bool
    ts: float | None
    read_ok: bool = False
    name: str | None = None
    certificate: str | None = None  # qualification certificate code (从业资格证编码)
    authority: str | None = None
    valid_until: str | None = None  # BCD YYYYMMDD


def decode_driver(body: bytes) -> Driver | BodyError:
    """``status BYTE (1 in, 2 out) · time BCD[6]``, and for a card read (result 0):
    ``name length · name · certificate [20] · authority length · authority · validity BCD[4]``.
    """
    if len(body) < 7:
        return BodyError(TRUNCATED_FRAME, f"a driver card message of {len(body)} bytes; at "
                                          "least 7")
    inserted, ts = body[0] == 1, bcd_time(body[1:7])
    if not inserted or len(body) < 8 or body[7] != 0:
        return Driver(inserted=inserted, ts=ts)
    pos = 8
    try:
        name_len = body[pos]
        name = _text(body[pos + 1:pos + 1 + name_len])
        pos += 1 + name_len
        certificate = _text(body[pos:pos + 20])
        pos += 20
        authority_len = body[pos]
        authority = _text(body[pos + 1:pos + 1 + authority_len])
        pos += 1 + authority_len
        valid_until = body[pos:pos + 4].hex() if len(body) >= pos + 4 else None
    except IndexError:
        return BodyError(TRUNCATED_FRAME, "the driver card fields end before their lengths")
    return Driver(inserted=True, ts=ts, read_ok=True, name=name, certificate=certificate,
                  authority=authority, valid_until=valid_until)


@dataclass(frozen=True, slots=True)
class GeneralResponse:
    serial: int
    message_id: int
    result: int


def decode_general_response(body: bytes) -> GeneralResponse | BodyError:
    """0x0001 (terminal) or 0x8001 (platform): ``serial WORD · message id WORD · result``."""
    if len(body) < 5:
        return BodyError(TRUNCATED_FRAME, f"a general response of {len(body)} bytes; 5")
    return GeneralResponse(int.from_bytes(body[0:2], "big"), int.from_bytes(body[2:4], "big"),
                           body[4])


def encode_general_response(serial: int, message_id: int, result: int = OK) -> bytes:
    """The body of 0x8001: the answered message's serial and id, and the result."""
    return serial.to_bytes(2, "big") + message_id.to_bytes(2, "big") + bytes([result])


def encode_registration_answer(serial: int, result: int, auth_code: str = "") -> bytes:
    """The body of 0x8100: the registration's serial, the result, the auth code on success."""
    body = serial.to_bytes(2, "big") + bytes([result])
    return body + auth_code.encode("ascii") if result == REG_OK else body


def decode_registration_answer(body: bytes) -> tuple[int, int, str] | BodyError:
    """(serial, result, auth code) of a 0x8100 — what a terminal reads (tests, the bench)."""
    if len(body) < 3:
        return BodyError(TRUNCATED_FRAME, f"a registration answer of {len(body)} bytes")
    return (int.from_bytes(body[0:2], "big"), body[2],
            body[3:].decode("ascii", errors="replace"))


def encode_text(text: str, version: int | None, emergency: bool = False) -> bytes:
    """The body of 0x8300, a text shown and read aloud to the driver: ``flag BYTE`` (2013:
    bit 0 emergency; 2019: bits 0-1 the kind, 2 emergency, 3 notice), in 2019 ``type BYTE``
    (1, a notice), then the text in GBK. Raises ``UnicodeEncodeError`` for a text GBK cannot
    carry and ``ValueError`` past :data:`TEXT_MAX_BYTES` (the API refuses both first).

    >>> encode_text("请回电", None).hex()
    '0cc7ebbbd8b5e7'
    >>> encode_text("请回电", 1, emergency=True)[:2].hex()
    '0e01'
    """
    data = text.encode("gbk")
    if len(data) > TEXT_MAX_BYTES:
        raise ValueError(f"a text of {len(data)} GBK bytes; at most {TEXT_MAX_BYTES}")
    flag = TEXT_DISPLAY | TEXT_TTS
    if version is None:
        return bytes([flag | (1 if emergency else 0)]) + data
    return bytes([flag | (2 if emergency else 3), 1]) + data


def decode_text(body: bytes, version: int | None) -> tuple[int, str]:
    """(flag, text) of a 0x8300 body — what a terminal reads (tests)."""
    start = 1 if version is None else 2
    return body[0], body[start:].decode("gbk", errors="replace")
