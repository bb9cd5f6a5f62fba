"""Texts down to the drivers (JT/T 808 0x8300), sent by the gateway that holds the terminal.

The staff queue a text through the API (``backend.jt808_texts``); the API and the gateway may
be different processes, so the text waits in the database (an outbox table, the
:class:`TextStore` port) and every gateway looks there every ``poll_s`` for the texts of the
terminals connected and authenticated **to it**. It claims each (a conditional update: a
terminal is connected to one gateway, and two never both send a text), writes 0x8300 with a
serial of the connection, and records the terminal's answer — its general response 0x0001 to
that serial: 0 ok, 1 failed, 2 message error, 3 unsupported. A connection lost before the
answer puts its texts back in the queue (the terminal may never have shown them); a text sent
but never answered is sent again after ``resend_after_s``, a few times at most (the store
decides: :meth:`TextStore.queued`).

Why the database and not the broker: the gateway needs no broker (``xiaoche jt808`` runs
without one), the text must wait while the terminal is offline (hours, in a valley) and survive
restarts of either side, and the staff read its status from the same row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gps_ingest.jt808.messages import TEXT, GeneralResponse, encode_text

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueuedText:
    id: int
    device_id: str
    text: str
    emergency: bool = False


class TextStore(Protocol):
    def queued(self, now: float) -> list[QueuedText]:
        """Texts due to be sent (queued and not expired, or sent long ago and never
        answered), oldest first."""

    def claim(self, sends: list[tuple[int, int]], now: float) -> list[int]:
        """Mark ``(text id, serial)`` as sent, each only if still due; the ids claimed."""

    def answered(self, text_id: int, result: int, now: float) -> None:
        """Record the terminal's answer to a sent text."""

    def requeue(self, text_ids: list[int]) -> None:
        """Put sent, unanswered texts back in the queue (their connection was lost)."""


class Terminal(Protocol):
    """What the downlink needs of a gateway's connection."""

    device_id: str | None
    texts: dict[int, int]  # serial of a sent text → its id, until answered

    def next_serial(self) -> int: ...


#: writes one frame (message id, body, serial) to a connection; False if it is closing
Send = Callable[[Terminal, int, Callable[[int | None], bytes], int], bool]


class Downlink:
    def __init__(self, store: TextStore, poll_s: float, terminals: dict[str, Terminal],
                 send: Send, clock: Callable[[], float] = time.time) -> None:
        """``terminals``: the gateway's authenticated connections by device id (kept by the
        gateway); ``send`` writes a frame in the terminal's own header version."""
        self.store = store
        self.poll_s = poll_s
        self.terminals = terminals
        self.send = send
        self.clock = clock
        self.stats = {"texts_sent": 0, "texts_answered": 0}

    async def run(self) -> None:
        """Every ``poll_s``, send what is due to the terminals connected here."""
        while True:
            await asyncio.sleep(self.poll_s)
            if not self.terminals:
                continue  # nothing could be sent: no query
            try:
                await self.send_due()
            except Exception as exc:  # the database is down: try again next time
                log.warning("JT/T 808: texts could not be read or claimed: %s", exc)

    async def send_due(self) -> int:
        """One round: read, claim, write; the number of texts written."""
        due = await asyncio.to_thread(self.store.queued, self.clock())
        plan: list[tuple[QueuedText, Terminal, int]] = []
        for text in due:
            terminal = self.terminals.get(text.device_id)
            if terminal is not None:
                plan.append((text, terminal, terminal.next_serial()))
        if not plan:
            return 0
        claimed = set(await asyncio.to_thread(
            self.store.claim, [(t.id, serial) for t, _, serial in plan], self.clock()))
        lost: list[int] = []
        written = 0
        for text, terminal, serial in plan:
            if text.id not in claimed:
                continue

            def body(version: int | None, text: QueuedText = text) -> bytes:
                return encode_text(text.text, version, text.emergency)

            if self.send(terminal, TEXT, body, serial):
                terminal.texts[serial] = text.id
                written += 1
            else:
                lost.append(text.id)  # the connection closed between the read and now
        if lost:
            await asyncio.to_thread(self.store.requeue, lost)
        self.stats["texts_sent"] += written
        return written

    async def on_response(self, terminal: Terminal, response: GeneralResponse) -> None:
        """A terminal's 0x0001: if it answers one of our texts, record it."""
        if response.message_id != TEXT:
            return
        text_id = terminal.texts.pop(response.serial, None)
        if text_id is None:
            return
        try:
            await asyncio.to_thread(self.store.answered, text_id, response.result, self.clock())
            self.stats["texts_answered"] += 1
        except Exception as exc:  # stays "sent"; sent again later, answered again
            log.warning("JT/T 808: the answer of %s to text %d was not recorded: %s",
                        terminal.device_id, text_id, exc)

    async def on_close(self, terminal: Terminal) -> None:
        """The connection ended: its texts not answered go back to the queue."""
        if self.terminals.get(terminal.device_id or "") is terminal:
            del self.terminals[terminal.device_id]  # type: ignore[arg-type]
        if not terminal.texts:
            return
        ids = list(terminal.texts.values())
        terminal.texts.clear()
        try:
            await asyncio.to_thread(self.store.requeue, ids)
        except Exception as exc:  # sent again after resend_after_s instead
            log.warning("JT/T 808: texts %s of %s were not put back in the queue: %s", ids,
                        terminal.device_id, exc)
