"""Streams as deployed (``served.py``): a worker serving its own streams, streams handed over to
stream processes, a stream process that dies; pings through a real ingest process over MQTT."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.api.served import (
    Gunicorn,
    SseClient,
    follow_pings_and_resume,
    open_streams_on_both_workers,
)
from tests.integration.api.test_stream import LOGISTICS, PARENT
from tests.integration.ingest.conftest import IngestProcess, mqtt_url  # noqa: F401  (fixture)


@pytest.fixture
def ingest(_migrated, mqtt_url, tmp_path) -> Iterator[IngestProcess]:  # noqa: F811
    (tmp_path / "ingest").mkdir()
    process = IngestProcess(_migrated, mqtt_url, tmp_path / "ingest",
                            client_id=f"xiaoche-test-{uuid.uuid4().hex[:8]}")
    process.start(XIAOCHE_MAX_PING_AGE_S="0")
    yield process
    process.stop()


def served(migrated: str, tmp_path, stream_processes: int) -> Iterator[Gunicorn]:
    (tmp_path / "api").mkdir()
    server = Gunicorn(migrated, tmp_path / "api", XIAOCHE_STREAM_PROCESSES=str(stream_processes))
    yield server
    server.stop()


@pytest.fixture
def api(_migrated, tmp_path) -> Iterator[Gunicorn]:
    # each worker serves its own streams: what a worker falls back to without stream processes
    yield from served(_migrated, tmp_path, 0)


@pytest.mark.mqtt
@pytest.mark.slow
def test_streams_on_two_gunicorn_workers_follow_pings_an_ingest_process_stores(
        imported, mqtt_url, ingest, api):  # noqa: F811
    staff_token = api.token(LOGISTICS)
    streams = open_streams_on_both_workers(api, staff_token)  # not handed over: on the workers
    try:
        follow_pings_and_resume(mqtt_url, api.port, staff_token, streams)
    finally:
        for s in streams:
            s.close()


@pytest.fixture
def api_streams(_migrated, tmp_path) -> Iterator[Gunicorn]:
    """As ``xiaoche api`` runs by default, with two stream processes instead of one."""
    yield from served(_migrated, tmp_path, 2)


@pytest.mark.mqtt
@pytest.mark.slow
def test_streams_handed_to_two_stream_processes_follow_pings_and_resume(
        imported, mqtt_url, ingest, api_streams):  # noqa: F811
    api = api_streams
    staff_token = api.token(LOGISTICS)
    streams = open_streams_on_both_workers(api, staff_token, holders=api.stream_processes)
    try:
        for stream in streams:  # the workers dropped their end without a word
            assert api.worker_serving(stream.local_port) in api.stream_processes()
        follow_pings_and_resume(mqtt_url, api.port, staff_token, streams)
    finally:
        for s in streams:
            s.close()


@pytest.mark.slow
def test_a_stream_process_killed_for_good_is_restarted_and_no_stream_request_is_lost_meanwhile(
        imported, _migrated, tmp_path):
    (tmp_path / "api").mkdir()
    api = Gunicorn(_migrated, tmp_path / "api", workers=1)  # one stream process, the default
    try:
        token = api.token(PARENT)
        first = SseClient(api.port, token)
        first.wait_for(lambda e: e.id is not None)
        [victim] = api.stream_processes()
        assert api.worker_serving(first.local_port) == victim
        os.kill(victim, signal.SIGKILL)
        # its stream ends (the client resumes with Last-Event-ID, as after any restart) ...
        assert first.drain(10) == [] and not first.thread.is_alive() or first.thread.join(10)
        assert not first.thread.is_alive()
        first.close()
        # ... and every stream asked for meanwhile is answered: by the worker itself while the
        # stream process is down, by the new one once the master restarted it
        answered, deadline = [], time.monotonic() + 30
        while not (new := [p for p in api.stream_processes() if p != victim]):
            stream = SseClient(api.port, token, last_event_id=first.last_id)
            stream.wait_for(lambda e: e.id is not None)
            answered.append(stream)
            assert time.monotonic() < deadline, "the stream process was never restarted"
            time.sleep(0.2)
        # the new process loads the app before it serves (seconds; more on a busy machine)
        deadline = time.monotonic() + 90
        while True:
            stream = SseClient(api.port, token)
            stream.wait_for(lambda e: e.id is not None)
            answered.append(stream)
            if api.worker_serving(stream.local_port) == new[0]:
                break
            assert time.monotonic() < deadline, "the new stream process never took a stream"
            time.sleep(0.5)
        assert api.request("POST", "/api/v1/auth/token",
                           {"username": PARENT[0], "password": PARENT[1]})[0] == 200
        for stream in answered:
            stream.close()
    finally:
        api.stop()


@pytest.mark.mqtt
@pytest.mark.slow
def test_a_staff_broadcast_reaches_a_parents_stream_and_a_resumed_stream_gets_only_newer_ones(
        imported, api_streams):
    api = api_streams
    staff_token, parent_token = api.token(LOGISTICS), api.token(PARENT)
    parent = SseClient(api.port, parent_token)
    try:
        parent.wait_for(lambda e: e.id is not None)
        sent = time.monotonic()
        status, _ = api.request("POST", "/api/v1/routes/zt-am-1/messages",
                                {"title": "校车晚点", "body": "晚到约10分钟。"}, staff_token)
        assert status == 201
        got = parent.wait_for(lambda e: e.event == "notification")
        print(f"\nbroadcast→parent stream: {(got.received - sent) * 1000:.0f} ms")
        assert (got.data["kind"], got.data["title"], got.data["route_id"]) == (
            "staff_message", "校车晚点", "zt-am-1")
        left_at = parent.last_id
    finally:
        parent.close()

    for title in ("改道", "恢复"):
        assert api.request("POST", "/api/v1/routes/zt-am-1/messages",
                           {"title": title, "body": "…"}, staff_token)[0] == 201
    resumed = SseClient(api.port, parent_token, last_event_id=left_at)
    try:
        resumed.wait_for(lambda e: e.event == "notification" and e.data["title"] == "恢复")
        titles = [e.data["title"] for e in resumed.seen + resumed.drain(1)
                  if e.event == "notification"]
        assert titles == ["改道", "恢复"]
    finally:
        resumed.close()


def test_a_stream_process_whose_master_was_killed_ends_instead_of_lingering(_migrated, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "s.0"
    env = {**os.environ, "XIAOCHE_DATABASE_URL": _migrated, "XIAOCHE_SECRET_KEY": "orphan",
           "XIAOCHE_INSTANCE_PATH": str(tmp_path)}
    master = subprocess.Popen(  # stands in for gunicorn's master: starts one, then is killed
        [sys.executable, "-c", "import subprocess, sys, time\n"
         f"p = subprocess.Popen([sys.executable, '-m', 'backend.streams.stream_server', "
         f"{str(path)!r}])\nprint(p.pid, flush=True)\ntime.sleep(600)"],
        env=env, stdout=subprocess.PIPE)
    try:
        child = int(master.stdout.readline())
        deadline = time.monotonic() + 60
        while not path.exists():
            assert time.monotonic() < deadline, "the stream process never listened"
            time.sleep(0.2)
        master.kill()
        master.wait()
        deadline = time.monotonic() + 60
        while _alive(child):
            assert time.monotonic() < deadline, "the orphaned stream process lingered"
            time.sleep(0.2)
    finally:
        master.kill()
        master.stdout.close()


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@pytest.mark.slow
def test_metrics_count_the_streams_each_stream_process_holds(imported, api_streams):
    import http.client

    api = api_streams
    stream = SseClient(api.port, api.token(PARENT))
    try:
        stream.wait_for(lambda e: e.id is not None)
        deadline = time.monotonic() + 30
        while True:  # each stream process rewrites its status every 2 s
            connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
            connection.request("GET", "/metrics")
            text = connection.getresponse().read().decode()
            connection.close()
            up = [line for line in text.splitlines()
                  if line.startswith("xiaoche_stream_process_up{")]
            held = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("xiaoche_stream_process_streams_open{"))
            if held == 1.0:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.5)
        assert sorted(up) == ['xiaoche_stream_process_up{process="stream-0"} 1.0',
                              'xiaoche_stream_process_up{process="stream-1"} 1.0']
    finally:
        stream.close()


@pytest.mark.slow
def test_metrics_give_the_fan_out_latency_of_each_stream_process(imported, api_streams):
    """``xiaoche_stream_fanout_seconds``: from the change (notice or poll) to the last frame
    written, a histogram per stream process, read through a worker's ``/metrics``."""
    import http.client

    api = api_streams
    parent = SseClient(api.port, api.token(PARENT))
    try:
        parent.wait_for(lambda e: e.id is not None)
        assert api.request("POST", "/api/v1/routes/zt-am-1/messages",
                           {"title": "校车晚点", "body": "晚到约10分钟。"},
                           api.token(LOGISTICS))[0] == 201
        parent.wait_for(lambda e: e.event == "notification")
        deadline = time.monotonic() + 30
        while True:  # each stream process rewrites its status every 2 s
            connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
            connection.request("GET", "/metrics")
            text = connection.getresponse().read().decode()
            connection.close()
            counts = {line.split("{", 1)[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
                      for line in text.splitlines()
                      if line.startswith("xiaoche_stream_fanout_seconds_count{")}
            if sum(counts.values()) >= 1:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.5)
        assert set(counts) <= {'process="stream-0"', 'process="stream-1"'}, counts
        for labels, count in counts.items():
            inf = [line for line in text.splitlines() if line.startswith(
                "xiaoche_stream_fanout_seconds_bucket{") and labels in line and '+Inf' in line]
            assert len(inf) == 1 and float(inf[0].rsplit(" ", 1)[1]) == count, inf
    finally:
        parent.close()
