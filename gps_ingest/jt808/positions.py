"""A JT/T 808 frame as the ingest pipeline's decoder sees it: positions or rejects.

The gateway hands every location frame (0x0200, 0x0704) and every frame it refuses to the
pipeline (:data:`gps_ingest.pipeline.JT808`) as the hex of its escaped content; the pipeline
decodes it here, as it decodes an MQTT or HTTP payload with :mod:`gps_ingest.decoders`, so the
filters, storage, tracking and the reject log are the same for every way a position arrives.

Choices:

- a location whose status word says it is not positioned (bit 1 clear) is rejected ``no_fix``:
  terminals repeat their last fix (or zeros) then, and a stale fix with a new time would show a
  bus standing still while it drives;
- a course over 359 or a speed over 1000 km/h is "not known" (``None``), not a reason to lose the
  fix, as with the other third-party protocols;
- 0x0704 items keep their own times (a blind-area backlog arrives late; tracking goes by event
  time), and each bad item costs only itself (``Reject.index``);
- a message that is not a location decodes to nothing, counted as ``ignored``.
"""

from __future__ import annotations

from gps_ingest.jt808.frame import BadFrame, Frame, parse_frame
from gps_ingest.jt808.messages import (
    BATCH,
    LOCATION,
    BodyError,
    Location,
    decode_batch,
    decode_location,
    location_error,
)
from gps_ingest.records import (
    ENCRYPTED,
    NO_FIX,
    NOT_A_FRAME,
    Decoded,
    PingRecord,
    Reject,
    coordinate_problem,
    new_ping,
)

MAX_SPEED_KMH = 1000.0


def decode_frame_hex(device_id: str, payload: bytes,
                     accept_bad_check: bool = False) -> tuple[str | None, Decoded]:
    """(the terminal's phone, what the frame holds) from the hex of a frame's escaped content
    (what the gateway puts in a pipeline message); the phone is None when no header could be
    read."""
    try:
        content = bytes.fromhex(payload.decode("ascii"))
    except ValueError:
        return None, Decoded(rejects=[Reject(NOT_A_FRAME, None, "the payload is not the hex of "
                                                                "a frame")])
    frame = parse_frame(content, accept_bad_check)
    return decode_frame(device_id, frame)


def decode_frame(device_id: str, frame: Frame | BadFrame) -> tuple[str | None, Decoded]:
    if isinstance(frame, BadFrame):
        phone = frame.header.phone if frame.header else None
        return phone, Decoded(rejects=[Reject(frame.reason, None, frame.detail)])
    header = frame.header
    if header.encryption:
        return header.phone, Decoded(rejects=[Reject(ENCRYPTED, None, "the body is encrypted "
                                                                      f"({header.encryption})")])
    if header.message_id == LOCATION:
        return header.phone, _pings(device_id, [decode_location(frame.body)], None)
    if header.message_id == BATCH:
        batch = decode_batch(frame.body)
        if isinstance(batch, BodyError):
            return header.phone, Decoded(rejects=[Reject(batch.reason, None, batch.detail)])
        return header.phone, _pings(device_id, batch.items, 0)
    return header.phone, Decoded(ignored=1)


def _pings(device_id: str, items: list[Location | BodyError], first: int | None) -> Decoded:
    out = Decoded()
    for n, item in enumerate(items):
        index = None if first is None else first + n
        if isinstance(item, BodyError):
            out.rejects.append(Reject(item.reason, index, item.detail))
            continue
        ping = to_ping(device_id, item, index)
        if isinstance(ping, Reject):
            out.rejects.append(ping)
        else:
            out.pings.append(ping)
    return out


def to_ping(device_id: str, loc: Location, index: int | None = None) -> PingRecord | Reject:
    problem = location_error(loc)
    if problem is not None:
        return Reject(problem.reason, index, problem.detail)
    if not loc.positioned:
        return Reject(NO_FIX, index, f"status 0x{loc.status:08x}: bit 1 (positioned) is clear",
                      ts=loc.ts)
    out_of_range = coordinate_problem(loc.lat, loc.lon)  # type: ignore[arg-type]
    if out_of_range is not None:
        reason, detail = out_of_range
        return Reject(reason, index, detail, ts=loc.ts)
    return new_ping(device_id, loc.ts, loc.lat, loc.lon,  # type: ignore[arg-type]
                    loc.speed_kmh if loc.speed_kmh <= MAX_SPEED_KMH else None,
                    float(loc.course_deg) if loc.course_deg < 360 else None, None,
                    float(loc.altitude_m), None, None, index, loc.alarm)
