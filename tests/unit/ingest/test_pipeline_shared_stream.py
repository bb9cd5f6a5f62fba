"""Two ingest workers on one shared subscription: a device's messages come to either, so the last
fix one of them cached may be older than what the other stored since. The jump filter must judge a
ping against the device's newest stored fix, not a stale cached one."""

from __future__ import annotations

from gps_ingest.fakes import MemoryDirectory, MemoryStore
from gps_ingest.filters import FilterConfig
from gps_ingest.pipeline import IngestPipeline
from tests.unit.ingest.pipeline_world import BUS, LAT, LON, M_PER_DEG_LAT, NOW, fix, pings


def worker(store: MemoryStore, shared_stream: bool = True) -> IngestPipeline:
    return IngestPipeline(store, MemoryDirectory([BUS]), FilterConfig(), clock=lambda: NOW,
                          shared_stream=shared_stream)


def jump_after_the_other_worker_drove_on(shared_stream: bool) -> list[str]:
    """Worker a sees the bus's first fix; b the next five (250 m north, 50 s later); then a gets
    a fix 3 km south 10 s after b's last: within reach of a's cached fix (60 s earlier at up to
    200 km/h: 3.4 km), out of reach of the bus's real last fix (10 s: 0.66 km)."""
    store = MemoryStore()
    a, b = worker(store, shared_stream), worker(store, shared_stream)
    a.process([pings("bus-07", [fix(0)])])
    for k in range(1, 6):
        b.process([pings("bus-07", [fix(k)])])
    jump = {"ts": fix(6)["ts"], "lat": LAT - 3000 / M_PER_DEG_LAT, "lon": LON}
    [result] = a.process([pings("bus-07", [jump])])
    return [r.reason for r in result.rejected]


def test_a_worker_judges_a_jump_against_the_fix_another_worker_stored_since():
    assert jump_after_the_other_worker_drove_on(shared_stream=True) == ["implausible_jump"]


def test_without_a_shared_stream_the_cache_is_trusted_one_device_one_worker():
    # what a worker with the device to itself does (the cache is then never stale): no read
    assert jump_after_the_other_worker_drove_on(shared_stream=False) == []


def test_a_cached_fix_newer_than_the_live_position_is_kept():
    store = MemoryStore()
    a = worker(store)
    a.process([pings("bus-07", [fix(0), fix(1)])])
    # a backlog fix stored by another worker does not move the live position back
    worker(store).process([pings("bus-07", [{**fix(0), "ts": fix(0)["ts"] - 5}])])
    [result] = a.process([pings("bus-07", [fix(2)])])
    assert (result.accepted, result.rejected) == (1, [])
