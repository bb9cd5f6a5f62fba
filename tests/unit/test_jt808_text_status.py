"""What a text to a driver says of itself once its expiry has passed: a queued one was never sent
(``expired``), a sent one the terminal never answered is ``unanswered`` — shown so at once, before
any gateway marks the row (none may be running)."""

from __future__ import annotations

from backend.jt808_texts import text_body
from backend.models import Jt808Text


def row(status: str, expires_at: float) -> Jt808Text:
    return Jt808Text(id=1, vehicle_id="bus-07", device_id="dev-bus-07", text="请回电",
                     emergency=False, status=status, created_at=0.0, created_by="houqin.wang",
                     expires_at=expires_at, attempts=3 if status == "sent" else 0,
                     sent_at=10.0 if status == "sent" else None)


def test_past_its_expiry_a_queued_text_is_expired_and_a_sent_one_unanswered():
    assert text_body(row("queued", 100.0), now=101.0)["status"] == "expired"
    assert text_body(row("sent", 100.0), now=101.0)["status"] == "unanswered"


def test_before_its_expiry_or_once_answered_nothing_changes():
    assert text_body(row("queued", 100.0), now=99.0)["status"] == "queued"
    assert text_body(row("sent", 100.0), now=99.0)["status"] == "sent"
    for final in ("ok", "failed", "unsupported"):
        assert text_body(row(final, 100.0), now=101.0)["status"] == final
