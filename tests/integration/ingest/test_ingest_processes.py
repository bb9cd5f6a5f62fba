"""The pipeline in processes of its own (backend/ingest/processes.py, XIAOCHE_INGEST_PROCESSES):
each device always to the same process, a batch committed by all before it is acked, a dead
process started again — and, end to end with `xiaoche ingest`, nothing lost or stored twice when
one of them is killed mid-stream."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.ingest.processes import PipelineProcessError, PipelineProcesses, shard_of
from tests.integration.ingest.conftest import count_pings, wait_for_count
from tests.integration.ingest.test_mqtt_ingest import (
    device_pings,
    publish_all,
    single_ping_messages,
)

# -- which process a message goes to --------------------------------------------------------------

DEVICE_ID = st.text(alphabet=st.characters(blacklist_characters="/+#\x00",
                                           blacklist_categories=("Cs",)), min_size=1, max_size=40)


@given(DEVICE_ID, st.integers(min_value=1, max_value=8))
def test_a_devices_pings_and_scans_go_to_one_process(device, count):
    shards = {shard_of(f"xiaoche/v1/devices/{device}/pings", count),
              shard_of(f"xiaoche/v1/devices/{device}/scans", count)}
    assert len(shards) == 1 and 0 <= shards.pop() < count


def test_owntracks_topics_go_by_their_device_and_unknown_topics_to_the_first():
    from gps_ingest.decoders import parse_topic

    owntracks = "owntracks/liu/dev-car-liu"
    kind, device = parse_topic(owntracks)
    assert shard_of(owntracks, 4) == shard_of(f"xiaoche/v1/devices/{device}/pings", 4)
    assert shard_of("not/ours", 4) == shard_of(None, 4) == 0


def test_a_fleet_is_spread_over_the_processes():
    counts = [0, 0]
    for i in range(200):
        counts[shard_of(f"xiaoche/v1/devices/bus-{i:03d}/pings", 2)] += 1
    assert min(counts) > 60


# -- PipelineProcesses on the test database -------------------------------------------------------


def failing_pipeline(app):
    """The app's pipeline, failing every batch that holds a message of a device named *boom*
    (module-level: the spawned processes import it)."""
    from backend.ingest.service import pipeline

    built = pipeline(app)
    process = built.process

    def failing(messages):
        if any("boom" in (m.topic or "") for m in messages):
            raise RuntimeError("boom")
        return process(messages)

    built.process = failing
    return built


def items_of(devices, per_device, start_ts):
    return [(topic, payload, time.time())
            for topic, payload in single_ping_messages(devices, per_device, start_ts)]


@pytest.fixture
def processes(app):
    running: list[PipelineProcesses] = []

    def start(count: int, **kwargs) -> PipelineProcesses:
        pool = PipelineProcesses(app, count, **kwargs)
        pool.start()
        running.append(pool)
        return pool

    yield start
    for pool in running:
        pool.stop()


def test_every_share_is_committed_before_process_returns_and_a_resend_stores_nothing(
        app, fleet, processes):
    pool = processes(2)
    items = items_of(fleet, 40, time.time() - 3600)  # 2 000 messages of 50 devices
    stored = sum(pool.process(items[i:i + 500])["stored"] for i in range(0, len(items), 500))
    assert stored == 2000 and count_pings(app, fleet) == 2000  # no waiting: committed
    again = pool.process(items[:500])
    assert again["stored"] == 0 and again["duplicates"] == 500 and count_pings(app, fleet) == 2000


def test_a_failed_share_fails_the_batch_while_the_other_is_kept(app, fleet, processes):
    pool = processes(2, factory=failing_pipeline)
    boom = next(d for d in (f"{fleet[0]}-boom-{i}" for i in range(50))
                if shard_of(f"xiaoche/v1/devices/{d}/pings", 2)
                != shard_of(f"xiaoche/v1/devices/{fleet[0]}/pings", 2))
    good = [(f"xiaoche/v1/devices/{fleet[0]}/pings", orjson.dumps(p), time.time())
            for p in device_pings(0, 10, time.time() - 600)]
    bad = [(f"xiaoche/v1/devices/{boom}/pings", orjson.dumps(device_pings(1, 1, time.time())[0]),
            time.time())]
    with pytest.raises(PipelineProcessError, match="boom"):
        pool.process(good + bad)  # the MQTT client does not ack: the broker sends both again
    assert count_pings(app, [fleet[0]]) == 10  # the good share is stored...
    assert pool.process(good)["stored"] == 0  # ...and its redelivery is a duplicate, stored once


def test_a_dead_process_is_started_again_for_the_next_batch(app, fleet, processes):
    pool = processes(2)
    first = pool.pids
    os.kill(first[0], signal.SIGKILL)
    deadline = time.time() + 10
    while pool._workers[0].process.is_alive() and time.time() < deadline:
        time.sleep(0.05)
    items = items_of(fleet, 10, time.time() - 600)  # 500 messages: both processes get a share
    assert pool.process(items)["stored"] == 500
    assert pool.pids[0] != first[0] and pool.pids[1] == first[1]
    assert count_pings(app, fleet) == 500


# -- end to end: `xiaoche ingest` with two pipeline processes --------------------------------------


def test_killing_a_pipeline_process_mid_stream_loses_nothing_and_stores_nothing_twice(
        app, fleet, mqtt_url, ingest_process):
    ingest_process.start(XIAOCHE_INGEST_PROCESSES="2")
    line = re.search(r"2 pipeline processes \(pid (\d+), (\d+)\)", ingest_process.output())
    assert line, ingest_process.output()
    victim = int(line.group(1))
    messages = single_ping_messages(fleet[:30], 100, time.time() - 3600)
    done = threading.Event()

    def publish():  # ≈ 1 000 messages/s: the kill lands inside the stream
        publish_all(mqtt_url, messages, pause_every=50, pause_s=0.05)
        done.set()

    thread = threading.Thread(target=publish)
    thread.start()
    wait_for_count(app, fleet, 600, 60, ingest_process)
    os.kill(victim, signal.SIGKILL)
    stored_at_kill = count_pings(app, fleet)
    thread.join(120)
    assert done.is_set(), "the broker did not acknowledge every publish"
    assert stored_at_kill < 3000, "the kill came too late to test anything"
    assert wait_for_count(app, fleet, 3000, 120, ingest_process) == 3000
    time.sleep(2)
    assert count_pings(app, fleet) == 3000
    assert ingest_process.running  # the ingest itself carried on
    assert "starting it again" in ingest_process.output(tail=None)
