"""`xiaoche demo` as a user runs it, and the runs it imports for its simulated fleet."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from backend.extensions import db
from backend.models import Route
from tests.conftest import login
from tests.e2e.test_serve import free_port, http, running
from tests.e2e.world import Site, bus_run, every


@pytest.fixture
def demo(tmp_path):
    with running("demo", tmp_path) as (base, _, process, log_path):
        yield base, process, log_path


def test_the_demo_shows_a_bus_on_a_trip_within_a_minute_and_stops_cleanly(demo):
    base, process, log_path = demo
    output = log_path.read_text(errors="replace")
    assert f"open {base}/ and log in as" in output
    assert "zhang.lanlan / demo-parent-1" in output and "admin / demo-admin-1" in output
    status, page = http("GET", f"{base}/")
    assert status == 200 and "校车".encode() in page

    status, body = http("POST", f"{base}/api/v1/auth/token",
                        {"username": "admin", "password": "demo-admin-1"})
    assert status == 200
    token = json.loads(body)["access_token"]
    deadline = time.time() + 60
    moving = []
    while time.time() < deadline and not moving:
        status, body = http("GET", f"{base}/api/v1/vehicles/live", token=token)
        assert status == 200, body
        moving = [v for v in json.loads(body) if v["kind"] == "school_bus" and v["online"]
                  and v["position"] is not None and v["trip_id"] is not None]
        time.sleep(1.0)
    assert moving, log_path.read_text(errors="replace")[-3000:]
    route_id = moving[0]["route_id"]
    status, body = http("GET", f"{base}/api/v1/routes/{route_id}/live", token=token)
    assert status == 200 and json.loads(body)["active"] is True

    status, body = http("GET", f"{base}/api/v1/admin/rejects", token=token)
    assert status == 200 and json.loads(body)["counts"] == {}  # every simulated ping taken

    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert "Traceback" not in log_path.read_text(errors="replace")


@pytest.mark.parametrize("command", ["demo", "serve"])
def test_a_taken_port_stops_the_start_with_what_to_do_before_anything_is_announced(
        command, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOCHE_")}
        env.update(XIAOCHE_INSTANCE_PATH=str(tmp_path / "instance"),
                   XIAOCHE_EMBEDDED_MQTT_PORT=str(free_port()))
        done = subprocess.run([sys.executable, "-m", "backend.cli", command, "--port", str(port)],
                              env=env, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert f"cannot listen on 127.0.0.1:{port}" in output and "--port" in output
    assert "open http" not in output and "API on http" not in output
    assert "Traceback" not in output


def test_demo_runs_join_the_routes_timetable_and_the_tracker_follows_them(app, imported, client):
    site = Site(app, "")
    first = bus_run("zt-am-1", depart_in_s=-20.0)
    site.run(first)
    site.run(first)  # importing the same run again changes nothing
    with app.app_context():
        runs = {r.id: r for r in db.session.get(Route, "zt-am-1").runs}
    demo_runs = [r for r in runs if r.startswith("demo-zt-am-1-")]
    assert "zt-am-1" in runs and runs["zt-am-1"].days == [1, 2, 3, 4, 5]  # its own run stays
    assert len(demo_runs) == 1 and runs[demo_runs[0]].dates and runs[demo_runs[0]].days is None

    site.feed("dev-bus-07", first, every(first.starts_at, time.time()))
    body = client.get("/api/v1/routes/zt-am-1/live",
                      headers=login(client, "wang.jun", "demo-parent-2")).get_json()
    assert body["active"] is True and body["run_id"] == demo_runs[0]
    assert body["trip_id"].endswith(f"-{demo_runs[0]}-bus-07")
    assert body["stops"][1]["eta"] is not None  # 石塘村, still ahead
