"""JT/T 808 tables: device models (their firmware's quirks) and the texts to the terminals.

Texts to JT/T 808 terminals (0x8300) are the outbox between the API and the gateway.

The API and the gateway holding a terminal's TCP connection may be different processes (or
hosts), so a text goes through the database: the API inserts a row ``queued``; the gateway
that holds the terminal claims it (a conditional update, so two gateways never both send it),
sends it, and records the terminal's answer (0x0001 to the text's serial). Status:

- ``queued``: waiting for the terminal to be connected (and authenticated) to a gateway;
- ``sent``: written to the terminal, its answer not in yet (a connection lost before the
  answer puts it back to ``queued``: the terminal may not have shown it);
- ``ok`` / ``failed`` / ``unsupported``: the terminal's answer (result 0, 1 or 2, 3);
- ``expired``: ``expires_at`` passed before it could be sent.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, Index, Integer, String, Unicode
from sqlalchemy.orm import Mapped, mapped_column

from backend.extensions import db
from backend.models.district import ID
from backend.models.tracking import BigId

TEXT_STATUSES = ("queued", "sent", "ok", "failed", "unsupported", "expired", "unanswered")
#: the statuses that will not change any more
FINAL_STATUSES = ("ok", "failed", "unsupported", "expired", "unanswered")


class DeviceModel(db.Model):
    """A device model (the bundle's ``device_models``): what holds for every device of it. A
    model whose firmware computes the JT/T 808 check byte wrong has ``jt808_accept_bad_check``:
    its terminals' frames are taken anyway once authenticated, as with the device's own flag."""

    __tablename__ = "device_models"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str | None] = mapped_column(Unicode(200))
    jt808_accept_bad_check: Mapped[bool] = mapped_column(Boolean, default=False)


class Jt808Text(db.Model):
    __tablename__ = "jt808_texts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    vehicle_id: Mapped[str] = mapped_column(ID, index=True)
    device_id: Mapped[str] = mapped_column(ID)
    text: Mapped[str] = mapped_column(Unicode(1000))
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # times written to the terminal
    serial: Mapped[int | None] = mapped_column(Integer)  # the platform serial of the last send
    sent_at: Mapped[float | None] = mapped_column(Float)
    answered_at: Mapped[float | None] = mapped_column(Float)
    result: Mapped[int | None] = mapped_column(Integer)  # the terminal's 0x0001 result code
    __table_args__ = (Index("ix_jt808_texts_status", "status"),)
