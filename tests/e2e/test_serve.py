"""`xiaoche serve` as a user runs it: one process, embedded broker, sample district, HTTP API."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from gps_ingest.publisher import WindowedPublisher


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


@contextlib.contextmanager
def running(command: str, tmp_path, extra_env: dict[str, str] | None = None
            ) -> Iterator[tuple[str, int, subprocess.Popen, Path]]:
    """``xiaoche COMMAND --port P`` on a fresh embedded instance in ``tmp_path``, as a user runs
    it: (base URL, embedded MQTT port, process, log file) once it answers ``/healthz``; stopped
    with SIGTERM as a service manager does."""
    http_port, mqtt_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOCHE_")}
    env.update(XIAOCHE_INSTANCE_PATH=str(tmp_path / "instance"),
               XIAOCHE_EMBEDDED_MQTT_PORT=str(mqtt_port))
    env.update(extra_env or {})
    log_path = tmp_path / f"{command}.log"
    log = open(log_path, "wb")  # noqa: SIM115  (closed below)
    process = subprocess.Popen([sys.executable, "-m", "backend.cli", command, "--port",
                                str(http_port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None:
        try:
            if http("GET", f"{base}/healthz")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.3)
    try:
        assert process.poll() is None, log_path.read_text()
        yield base, mqtt_port, process, log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


@pytest.fixture
def served(tmp_path):
    with running("serve", tmp_path) as (base, mqtt_port, _, _):
        yield base, f"mqtt://127.0.0.1:{mqtt_port}"


def test_serve_on_a_fresh_instance_imports_the_sample_and_ingests_over_mqtt(served, tmp_path):
    base, mqtt_url = served
    status, body = http("GET", f"{base}/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert (tmp_path / "instance" / "xiaoche.sqlite3").exists()

    status, body = http("POST", f"{base}/api/v1/auth/token",
                        {"username": "houqin.wang", "password": "demo-logistics-1"})
    assert status == 200
    token = json.loads(body)["access_token"]

    now = time.time()
    publisher = WindowedPublisher(mqtt_url)
    try:
        for i in range(5):
            publisher.publish("xiaoche/v1/devices/dev-bus-07/pings", orjson.dumps(
                {"ts": now - 50 + 10 * i, "lat": 27.452 - 0.0005 * i, "lon": 113.231}))
        publisher.flush(30)
    finally:
        publisher.close()

    deadline = time.time() + 30
    count = 0
    while time.time() < deadline and count < 5:
        status, body = http("GET", f"{base}/api/v1/vehicles/bus-07/track", token=token)
        assert status == 200, body
        count = json.loads(body)["properties"]["count"]
        time.sleep(0.3)
    assert count == 5

    status, body = http("GET", f"{base}/api/v1/openapi.json")
    assert status == 200 and "/api/v1/auth/token" in json.loads(body)["paths"]


def test_serve_keeps_tokens_in_query_strings_out_of_its_log(served, tmp_path):
    base, _ = served
    status, _ = http("GET", f"{base}/api/v1/me?access_token=not-a-real-token-5ecret")
    assert status == 401
    time.sleep(0.5)  # the request line is logged after the response
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert "GET /api/v1/me " in log and "5ecret" not in log


def test_serve_pushes_a_broadcast_to_the_parents_app_over_its_embedded_broker(served):
    """The whole outbox path in the one process: a staff broadcast → notification rows → the
    scheduler's dispatcher → MQTT QoS 1 on the parent's own topic of the embedded broker."""
    import queue

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from gps_ingest.mqtt_client import parse_mqtt_url

    base, mqtt_url = served
    host, port, *_ = parse_mqtt_url(mqtt_url)
    received: queue.Queue = queue.Queue()
    subscribed = queue.Queue()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"app-{time.time_ns()}",
                         protocol=paho.MQTTv311)
    client.on_message = lambda c, u, m: received.put((m.topic, m.qos, m.payload))
    client.on_subscribe = lambda *a: subscribed.put(True)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(
        "xiaoche/v1/users/zhang.lanlan/notifications", qos=1)
    client.connect(host, port)
    client.loop_start()
    try:
        subscribed.get(timeout=20)
        # the parent keeps no quiet hours: the sample's 22:00-06:00 would hold the push (as it
        # should) whenever this runs at night in Shanghai
        status, body = http("POST", f"{base}/api/v1/auth/token",
                            {"username": "zhang.lanlan", "password": "demo-parent-1"})
        parent = json.loads(body)["access_token"]
        status, body = http("GET", f"{base}/api/v1/me/preferences", token=parent)
        assert status == 200, body
        status, body = http("PUT", f"{base}/api/v1/me/preferences",
                            {**json.loads(body), "quiet_hours": None}, token=parent)
        assert status == 200, body
        status, body = http("POST", f"{base}/api/v1/auth/token",
                            {"username": "houqin.wang", "password": "demo-logistics-1"})
        token = json.loads(body)["access_token"]
        status, body = http("POST", f"{base}/api/v1/routes/zt-am-1/messages",
                            {"title": "校车晚点", "body": "今天晚到10分钟"}, token=token)
        assert status == 201, body
        topic, qos, payload = received.get(timeout=30)
        item = json.loads(payload)
        assert topic == "xiaoche/v1/users/zhang.lanlan/notifications" and qos == 1
        assert item["kind"] == "staff_message" and item["body"] == "今天晚到10分钟"
        assert item["route_id"] == "zt-am-1"
    finally:
        client.loop_stop()
        client.disconnect()


def test_serve_with_a_jt808_port_takes_a_terminal_into_the_same_pipeline(tmp_path):
    """XIAOCHE_JT808_PORT turns the gateway on inside `serve`: a bundle gives bus 07's device a
    terminal phone, the terminal registers, authenticates and reports, and the staff API shows
    the fix as it shows an MQTT one."""
    from gps_ingest.jt808.messages import LOCATION, OK, REG_OK
    from tests.jt808_terminal import Terminal

    jt808_port = free_port()
    env = {"XIAOCHE_JT808_PORT": str(jt808_port), "XIAOCHE_JT808_HOST": "127.0.0.1"}
    with running("serve", tmp_path, env) as (base, _, _, log_path):
        assert f"JT/T 808 on 127.0.0.1:{jt808_port}" in log_path.read_text()
        status, body = http("POST", f"{base}/api/v1/auth/token",
                            {"username": "admin", "password": "demo-admin-1"})
        token = json.loads(body)["access_token"]
        status, body = http("POST", f"{base}/api/v1/admin/import", {"devices": [
            {"id": "dev-bus-07", "vehicle_id": "bus-07", "jt808_phone": "13907310007"}]},
            token=token)
        assert status == 200, body
        terminal = Terminal(jt808_port, "13907310007")
        try:
            result, code = terminal.register()
            assert result == REG_OK and terminal.authenticate(code) == OK
            ts = int(time.time()) - 20
            serial = terminal.location(ts, 27.452, 113.231)
            assert terminal.answer() == (serial, LOCATION, OK)
        finally:
            terminal.close()
        status, body = http("GET", f"{base}/api/v1/vehicles/bus-07/track", token=token)
        assert status == 200 and json.loads(body)["properties"]["count"] == 1
