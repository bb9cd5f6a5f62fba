"""`xiaoche audit --date D` as an operator runs it: a subprocess on the test database."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import select

from backend.extensions import db
from backend.models import TripAudit


def run_cli(database_url: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOCHE_")}
    env.update(
        XIAOCHE_DATABASE_URL=database_url,
        XIAOCHE_SECRET_KEY="test",
        XIAOCHE_INSTANCE_PATH=str(tmp_path / "cli-instance"),
    )
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_audit_command_prints_a_summary_and_stores_the_trips(app, monday_drive, tmp_path):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    done = run_cli(url, tmp_path, "--date", "2026-11-23")
    assert done.returncode == 0, done.stderr
    assert "audited 2026-11-23: 1 vehicles, 1 trips, stops 4 visited, 0 missed" in done.stdout
    with app.app_context():
        assert db.session.scalars(select(TripAudit.trip_id)).all() == ["20261123-zt-am-1-bus-07"]


def test_the_audit_command_can_be_limited_to_one_vehicle(app, monday_drive, tmp_path):
    done = run_cli(
        app.config["SQLALCHEMY_DATABASE_URI"],
        tmp_path,
        "--date",
        "2026-11-23",
        "--vehicle",
        "bus-12",
    )
    assert done.returncode == 0, done.stderr
    assert "0 trips" in done.stdout


def test_a_bad_date_is_a_usage_error_naming_the_option(app, imported, tmp_path):
    done = run_cli(app.config["SQLALCHEMY_DATABASE_URI"], tmp_path, "--date", "2026-13-01")
    assert done.returncode == 2
    assert "Invalid value for '--date'" in done.stderr and "2026-13-01" in done.stderr


def test_an_unknown_vehicle_is_an_error_and_nothing_is_written(app, monday_drive, tmp_path):
    done = run_cli(
        app.config["SQLALCHEMY_DATABASE_URI"],
        tmp_path,
        "--date",
        "2026-11-23",
        "--vehicle",
        "no-such-bus",
    )
    assert done.returncode == 1
    assert "no such vehicle: no-such-bus" in done.stderr
    with app.app_context():
        assert db.session.scalars(select(TripAudit.trip_id)).all() == []


def test_the_scheduler_role_runs_until_it_is_told_to_stop(app, imported, tmp_path):
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOCHE_")}
    env.update(XIAOCHE_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               XIAOCHE_SECRET_KEY="test", XIAOCHE_INSTANCE_PATH=str(tmp_path / "sched"))
    process = subprocess.Popen([sys.executable, "-m", "backend.cli", "scheduler"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        deadline = time.time() + 60
        while "scheduler running" not in line and time.time() < deadline:
            line = process.stdout.readline()
            assert line or process.poll() is None, "the scheduler exited"
        assert "trip-audit" in line or "audit" in line, line
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()


def test_the_scheduler_refuses_a_bad_audit_time_with_a_message(app, imported, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOCHE_")}
    env.update(XIAOCHE_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               XIAOCHE_SECRET_KEY="test", XIAOCHE_INSTANCE_PATH=str(tmp_path / "sched"),
               XIAOCHE_AUDIT_AT="25:99")
    done = subprocess.run([sys.executable, "-m", "backend.cli", "scheduler"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "AUDIT_AT" in done.stderr or "25:99" in done.stderr, done.stderr
