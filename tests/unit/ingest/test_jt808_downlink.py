"""The downlink of texts (0x8300) on a store and connections of plain Python objects: what is
claimed is written once, what could not be written or was not answered goes back, answers
that are not ours are ignored, and a store that is down stops nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gps_ingest.jt808.messages import HEARTBEAT, TEXT, UNSUPPORTED, GeneralResponse, decode_text
from gps_ingest.jt808_downlink import Downlink, QueuedText
from tests.loops import run


class FakeStore:
    def __init__(self, texts: list[QueuedText], claimable: set[int] | None = None):
        self.texts = texts
        self.claimable = claimable if claimable is not None else {t.id for t in texts}
        self.sent: dict[int, int] = {}
        self.answers: dict[int, int] = {}
        self.requeued: list[int] = []
        self.down = False

    def queued(self, now):
        if self.down:
            raise ConnectionError("the database is down")
        return [t for t in self.texts if t.id not in self.sent]

    def claim(self, sends, now):
        claimed = [i for i, _ in sends if i in self.claimable]
        self.sent.update((i, s) for i, s in sends if i in claimed)
        return claimed

    def answered(self, text_id, result, now):
        self.answers[text_id] = result

    def requeue(self, text_ids):
        self.requeued.extend(text_ids)
        for i in text_ids:
            self.sent.pop(i, None)


@dataclass(eq=False)
class FakeTerminal:
    device_id: str
    version: int | None = None
    open: bool = True
    serial: int = 100
    texts: dict[int, int] = field(default_factory=dict)
    written: list[tuple[int, int, bytes]] = field(default_factory=list)

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial


def send(terminal: FakeTerminal, message_id, body, serial) -> bool:
    if not terminal.open:
        return False
    terminal.written.append((message_id, serial, body(terminal.version)))
    return True


def downlink(store, *terminals: FakeTerminal) -> Downlink:
    return Downlink(store, 0.01, {t.device_id: t for t in terminals}, send, clock=lambda: 1000.0)


def test_texts_go_only_to_the_terminals_connected_here_in_their_own_version():
    store = FakeStore([QueuedText(1, "a", "请回电"), QueuedText(2, "elsewhere", "x"),
                       QueuedText(3, "b", "路线变更", emergency=True)])
    a, b = FakeTerminal("a"), FakeTerminal("b", version=1)
    assert run(downlink(store, a, b).send_due()) == 2
    assert [(m, s, decode_text(body, None)) for m, s, body in a.written] == [
        (TEXT, 101, (0x0C, "请回电"))]  # shown and read aloud
    assert decode_text(b.written[0][2], 1) == (0x0E, "路线变更")  # 2019: emergency kind 2
    assert store.sent == {1: 101, 3: 101} and a.texts == {101: 1} and b.texts == {101: 3}


def test_a_text_another_gateway_claimed_first_is_not_written():
    store = FakeStore([QueuedText(1, "a", "x")], claimable=set())
    a = FakeTerminal("a")
    assert run(downlink(store, a).send_due()) == 0
    assert a.written == [] and a.texts == {}


def test_a_connection_closing_before_the_write_puts_its_text_back():
    store = FakeStore([QueuedText(1, "a", "x")])
    a = FakeTerminal("a", open=False)
    assert run(downlink(store, a).send_due()) == 0
    assert store.requeued == [1] and a.texts == {}


def test_only_an_answer_to_one_of_our_texts_is_recorded_and_a_lost_connection_requeues_the_rest():
    store = FakeStore([QueuedText(1, "a", "x"), QueuedText(2, "a", "y")])
    a = FakeTerminal("a")
    link = downlink(store, a)

    async def scenario():
        await link.send_due()
        await link.on_response(a, GeneralResponse(101, HEARTBEAT, 0))  # not about a text
        await link.on_response(a, GeneralResponse(999, TEXT, 0))  # no text of ours
        await link.on_response(a, GeneralResponse(101, TEXT, UNSUPPORTED))
        await link.on_close(a)

    run(scenario())
    assert store.answers == {1: UNSUPPORTED}
    assert store.requeued == [2] and "a" not in link.terminals


def test_a_store_that_is_down_stops_the_round_not_the_poller():
    store = FakeStore([QueuedText(1, "a", "x")])
    a = FakeTerminal("a")
    link = downlink(store, a)
    store.down = True

    async def scenario():
        poller = asyncio.create_task(link.run())
        await asyncio.sleep(0.05)  # a few failing rounds
        store.down = False
        await asyncio.sleep(0.05)
        poller.cancel()

    run(scenario())
    assert [s for _, s, _ in a.written] == [a.serial] and store.sent == {1: a.serial}
