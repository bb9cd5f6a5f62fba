"""The asyncio side of the stream fan-out (``backend.streams.loop_sink``): a stream whose
connection takes writes gets its frame written from the sink's one callback, without its
coroutine waking; one that cannot (a slow reader) is woken instead; the fan-out histogram counts a
poll's delivery once its last stream wrote."""

from __future__ import annotations

import asyncio
import threading

from hypothesis import given
from hypothesis import strategies as st

from backend.stream_service import Message
from backend.streams.fanout import FanoutHistogram
from backend.streams.loop_sink import LoopSink, _Live
from backend.streams.subscribers import Subscriber
from tests.loops import run

BODY = 'event: position\ndata: {"vehicle_id":"bus-07","ts":"t1"}\n\n'


def _message(n: int) -> Message:
    return Message(event="position", data={}, id=f"{n}.0:0", body=BODY)


async def _deliver_from_a_thread(sink: LoopSink, batch) -> None:
    """As the hub does: from its own thread, then let the loop run the callback."""
    thread = threading.Thread(target=sink.deliver, args=(batch, None))
    thread.start()
    thread.join()
    for _ in range(3):
        await asyncio.sleep(0)


def test_a_stream_that_takes_writes_gets_its_frame_without_waking_and_is_counted():
    async def main():
        loop = asyncio.get_running_loop()
        histogram = FanoutHistogram()
        sink = LoopSink(loop, histogram)
        written: list[bytes] = []
        subs = [Subscriber(n, 0, "wgs84", sink) for n in range(3)]
        for sub in subs:
            sink.events[sub] = asyncio.Event()
            sink.live[sub] = _Live(lambda data: written.append(data) or True, 0.0, 0)
        await _deliver_from_a_thread(sink, [(sub, [_message(1), _message(2)]) for sub in subs])
        assert written == [("id: 1.0:0\n" + BODY + "id: 2.0:0\n" + BODY).encode()] * 3
        assert not any(sink.events[sub].is_set() for sub in subs)  # no coroutine woke
        assert all(sub.queue == [] for sub in subs)
        assert all(sink.live[sub].size == len(written[0]) for sub in subs)
        assert histogram.count == 1  # one poll's delivery, observed once

    run(main())


def test_a_stream_that_cannot_take_a_write_is_woken_and_the_fan_out_waits_for_it():
    async def main():
        loop = asyncio.get_running_loop()
        histogram = FanoutHistogram()
        sink = LoopSink(loop, histogram)
        fast, slow = Subscriber(1, 0, "wgs84", sink), Subscriber(2, 0, "wgs84", sink)
        written: list[bytes] = []
        for sub in (fast, slow):
            sink.events[sub] = asyncio.Event()
        sink.live[fast] = _Live(lambda data: written.append(data) or True, 0.0, 0)
        sink.live[slow] = _Live(lambda data: False, 0.0, 0)  # its client does not read
        await _deliver_from_a_thread(sink, [(fast, [_message(1)]), (slow, [_message(1)])])
        assert len(written) == 1 and not sink.events[fast].is_set()
        assert sink.events[slow].is_set()
        assert slow.take() == [_message(1)]  # left for its coroutine, in order
        assert histogram.count == 0  # the slow stream has not written yet
        sink.written(slow)  # its coroutine sent it
        assert histogram.count == 1
        sink.written(slow)
        assert histogram.count == 1

    run(main())


@given(st.lists(st.floats(min_value=0, max_value=60, allow_nan=False), max_size=50))
def test_the_histogram_is_cumulative_as_prometheus_reads_it(values):
    histogram = FanoutHistogram()
    for value in values:
        histogram.observe(value)
    buckets = histogram.cumulative()
    assert buckets[-1] == ("+Inf", len(values))
    for le, n in buckets[:-1]:
        assert n == sum(1 for v in values if v <= float(le))
    assert histogram.count == len(values)
    assert abs(histogram.sum - sum(values)) < 1e-6


def test_streams_at_different_points_keep_their_own_ids_when_frames_are_shared():
    async def main():
        loop = asyncio.get_running_loop()
        sink = LoopSink(loop, FanoutHistogram())
        written: dict[int, bytes] = {}
        subs = [Subscriber(n, 0, "wgs84", sink) for n in range(4)]
        for sub in subs:
            sink.events[sub] = asyncio.Event()
            sink.live[sub] = _Live(lambda data, n=sub.user_id: written.setdefault(n, data) or True,
                                   0.0, 0)
        same = _message(7)  # the hub hands streams at the same point the same object
        batch = [(subs[0], [same]), (subs[1], [same]), (subs[2], [_message(8)]),
                 (subs[3], [_message(9)])]
        await _deliver_from_a_thread(sink, batch)
        assert written[0] == written[1] == ("id: 7.0:0\n" + BODY).encode()
        assert written[2] == ("id: 8.0:0\n" + BODY).encode()
        assert written[3] == ("id: 9.0:0\n" + BODY).encode()

    run(main())
