"""Texts to the drivers of JT/T 808 terminals (0x8300): queued by the staff, sent by a gateway.

:func:`queue_text` is the API's use case (``POST /vehicles/{id}/texts``); :class:`TextOutbox` is
the gateway's side of the same table (``gps_ingest.jt808_downlink.TextStore``): what is due,
claimed by a conditional update, answered, put back. See ``backend.models.jt808`` for the
statuses.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, and_, or_, select, update

from backend.errors import ApiError
from backend.extensions import db
from backend.models import Device, Jt808Text
from backend.timefmt import iso
from gps_ingest.jt808.messages import MESSAGE_ERROR, OK, TEXT_MAX_BYTES, UNSUPPORTED
from gps_ingest.jt808_downlink import QueuedText

TABLE = Jt808Text.__table__
#: a text sent but never answered is sent again after this long (a gateway that died with it,
#: an answer lost), at most :data:`MAX_ATTEMPTS` times in all
RESEND_AFTER_S = 300.0
#: what a text still waiting at its expiry becomes: never sent, or sent and never answered
PAST_EXPIRY = {"queued": "expired", "sent": "unanswered"}
MAX_ATTEMPTS = 3
DEFAULT_EXPIRES_IN_S = 3600
STATUS_OF_RESULT = {OK: "ok", MESSAGE_ERROR: "failed", UNSUPPORTED: "unsupported"}


def status_of(result: int) -> str:
    """The text's status for the terminal's result code (1 failure, 2 message error: failed)."""
    return STATUS_OF_RESULT.get(result, "failed")


def terminal_of(vehicle_id: str) -> str:
    """The vehicle's JT/T 808 device (the first by id if it has several), or a 409."""
    device_id = db.session.scalar(
        select(Device.id).where(Device.vehicle_id == vehicle_id, Device.jt808_phone.is_not(None))
        .order_by(Device.id))
    if device_id is None:
        raise ApiError(409, f"vehicle {vehicle_id} has no JT/T 808 terminal (a device with "
                            "jt808_phone in the bundle): a text cannot reach its driver",
                       title="No terminal")
    return device_id


def check_text(text: str) -> str:
    """The text as sent, or a 422 saying why a terminal could not show it."""
    text = text.strip()
    if not text:
        raise ApiError(422, "the text is empty", errors={"text": ["empty"]})
    try:
        size = len(text.encode("gbk"))
    except UnicodeEncodeError as exc:
        bad = text[exc.start:exc.end]
        raise ApiError(422, f"{bad!r} cannot be sent: terminals show GBK text only",
                       errors={"text": [f"{bad!r} is not in GBK"]}) from exc
    if size > TEXT_MAX_BYTES:
        raise ApiError(422, f"the text is {size} bytes in GBK; at most {TEXT_MAX_BYTES}",
                       errors={"text": [f"at most {TEXT_MAX_BYTES} GBK bytes"]})
    return text


def queue_text(vehicle_id: str, text: str, emergency: bool, expires_in_s: float,
               username: str) -> Jt808Text:
    """Queue a text for the vehicle's terminal; committed. A gateway holding the terminal's
    connection sends it within its poll interval, or when the terminal next connects."""
    text = check_text(text)
    device_id = terminal_of(vehicle_id)
    now = time.time()
    row = Jt808Text(vehicle_id=vehicle_id, device_id=device_id, text=text, emergency=emergency,
                    status="queued", created_at=now, created_by=username,
                    expires_at=now + expires_in_s, attempts=0)
    db.session.add(row)
    db.session.commit()
    return row


def text_body(row: Jt808Text, now: float | None = None) -> dict:
    """A text as the API shows it; past its expiry a queued text is ``expired`` and a sent one
    the terminal never answered ``unanswered``, even before a gateway marked it so (none may be
    running)."""
    now = time.time() if now is None else now
    status = row.status
    if row.expires_at <= now and status in PAST_EXPIRY:
        status = PAST_EXPIRY[status]
    return {"id": row.id, "vehicle_id": row.vehicle_id, "device_id": row.device_id,
            "text": row.text, "emergency": row.emergency, "status": status,
            "created_at": iso(row.created_at), "created_by": row.created_by,
            "expires_at": iso(row.expires_at), "attempts": row.attempts,
            "sent_at": iso(row.sent_at) if row.sent_at is not None else None,
            "answered_at": iso(row.answered_at) if row.answered_at is not None else None,
            "result": row.result}


def _due(now: float):
    """Queued and not expired, or sent long ago, unanswered, with tries left."""
    return or_(and_(TABLE.c.status == "queued", TABLE.c.expires_at > now),
               and_(TABLE.c.status == "sent", TABLE.c.sent_at < now - RESEND_AFTER_S,
                    TABLE.c.attempts < MAX_ATTEMPTS, TABLE.c.expires_at > now))


class TextOutbox:
    """The gateway's port on ``jt808_texts`` (``gps_ingest.jt808_downlink.TextStore``)."""

    def __init__(self, engine: Engine, limit: int = 500) -> None:
        self.engine = engine
        self.limit = limit

    def queued(self, now: float) -> list[QueuedText]:
        with self.engine.begin() as conn:
            for status, final in PAST_EXPIRY.items():
                conn.execute(update(TABLE).where(TABLE.c.status == status,
                                                 TABLE.c.expires_at <= now)
                             .values(status=final))
            rows = conn.execute(select(TABLE.c.id, TABLE.c.device_id, TABLE.c.text,
                                       TABLE.c.emergency).where(_due(now))
                                .order_by(TABLE.c.id).limit(self.limit)).all()
        return [QueuedText(r.id, r.device_id, r.text, bool(r.emergency)) for r in rows]

    def claim(self, sends: list[tuple[int, int]], now: float) -> list[int]:
        claimed = []
        with self.engine.begin() as conn:
            for text_id, serial in sends:
                done = conn.execute(update(TABLE).where(TABLE.c.id == text_id, _due(now))
                                    .values(status="sent", serial=serial, sent_at=now,
                                            attempts=TABLE.c.attempts + 1))
                if done.rowcount == 1:
                    claimed.append(text_id)
        return claimed

    def answered(self, text_id: int, result: int, now: float) -> None:
        with self.engine.begin() as conn:
            # an answer that comes after a poll marked the text unanswered at its expiry (sent
            # just before it) still says what the driver did
            conn.execute(update(TABLE).where(TABLE.c.id == text_id,
                                             TABLE.c.status.in_(("sent", "unanswered")))
                         .values(status=status_of(result), result=result, answered_at=now))

    def requeue(self, text_ids: list[int]) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(TABLE).where(TABLE.c.id.in_(text_ids), TABLE.c.status == "sent")
                         .values(status="queued"))
