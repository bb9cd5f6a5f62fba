"""`xiaoche replay` as a user runs it: a recorded drive of bus-07 on zt-am-1 fed through ingest.

The drive is the sample district's route zt-am-1 (backend/sample/lukou.json): the bus waits at
龙凤村, leaves at 06:50, reaches each stop 30 s before its scheduled time, waits there and leaves
on time, and reaches 朱亭学校 at 07:19:30, sampled every 10 s along the route's own path.

The date is a Monday in the past (2026-11-09): a trace is history, and a "recorded" ping ahead
of the server clock is refused as ``future_ts`` like any other.  It is also more than the default
7 days old, so it passes only because replay switches the ``too_old`` limit off.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from backend.extensions import db
from backend.ingest.service import filter_config
from backend.models import Event, Ping
from backend.replay import ReplayError, replay_trace, report_lines
from gps_ingest.traces import TraceError
from tests.drives import (
    EVERY_S,
    SHANGHAI,
    ZT_AM_1_STOPS,
    local_ts,
    on_schedule_drive,
    truth_arrivals,
)

REPO = Path(__file__).resolve().parents[2]
MONDAY = dt.date(2026, 11, 9)


def iso_utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_gpx(path: Path, rows) -> Path:
    points = "\n".join(
        f'<trkpt lat="{lat}" lon="{lon}"><time>{iso_utc(ts)}</time></trkpt>'
        for ts, lat, lon, _ in rows
    )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">'
        f"<trk><name>bus-07</name><trkseg>\n{points}\n</trkseg></trk></gpx>\n",
        encoding="utf-8",
    )
    return path


def write_csv(path: Path, rows, header: bool = True) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        if header:
            out.writerow(["ts", "lat", "lon", "speed_kmh"])
        out.writerows(rows)
    return path


# -- running the command -------------------------------------------------------------------------


@pytest.fixture
def replay_cli(imported, _migrated, tmp_path):
    """Run `xiaoche replay …` in a subprocess on the test database with the sample imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOCHE_")}
    env.update(
        XIAOCHE_DATABASE_URL=_migrated,
        XIAOCHE_INSTANCE_PATH=str(tmp_path / "cli"),
        XIAOCHE_SECRET_KEY="x",
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "backend.cli", "replay", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def event_lines(stdout: str) -> list[list[str]]:
    """The event lines of the output, split: date, time, zone, kind, route, stop, details…"""
    lines = [line.split() for line in stdout.splitlines()]
    return [parts for parts in lines if len(parts) >= 6 and parts[0][:4].isdigit()]


def summary(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if "pings read" in line)


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


# -- end to end ----------------------------------------------------------------------------------


def test_replaying_an_on_schedule_gpx_drive_prints_the_trip_start_every_stop_and_completion(
    replay_cli, imported, tmp_path
):
    rows = on_schedule_drive(imported, MONDAY)
    trace = write_gpx(tmp_path / "bus-07-monday.gpx", rows)

    done = replay_cli(str(trace), "--device", "dev-bus-07")

    assert done.returncode == 0, done.stderr
    events = event_lines(done.stdout)
    kinds = [e[3] for e in events]
    assert kinds[0] == "trip_started" and kinds[-1] == "trip_completed", done.stdout
    arrived = [(e[4], e[5]) for e in events if e[3] == "stop_arrived"]
    assert arrived == [("zt-am-1", stop) for stop in ZT_AM_1_STOPS], done.stdout
    assert "stop_missed" not in kinds and "overspeed" not in kinds, done.stdout
    # local time in the district's timezone, on the drive's date, in order
    assert {e[0] for e in events} == {MONDAY.isoformat()}
    assert [f"{e[0]} {e[1]}" for e in events] == sorted(f"{e[0]} {e[1]}" for e in events)
    # each arrival within one sampling interval of when the bus entered the stop's circle
    arrived_at = [local_ts(MONDAY, e[1]) for e in events if e[3] == "stop_arrived"]
    for seen, truth in zip(arrived_at, truth_arrivals(imported, MONDAY), strict=True):
        assert abs(seen - truth) <= EVERY_S, (iso_utc(seen), iso_utc(truth))
    assert f"pings read {len(rows)}, stored {len(rows)}, duplicates 0, rejected 0" in summary(
        done.stdout
    )
    assert "trip_started 1" in summary(done.stdout) and "stop_arrived 4" in summary(done.stdout)
    assert "Traceback" not in done.stderr


def test_replaying_the_same_trace_again_stores_nothing_and_reports_every_ping_as_a_duplicate(
    replay_cli, imported, app, tmp_path
):
    rows = on_schedule_drive(imported, MONDAY)
    trace = write_csv(tmp_path / "bus-07.csv", rows)
    first = replay_cli(str(trace), "--device", "dev-bus-07")
    assert first.returncode == 0, first.stderr
    assert len(event_lines(first.stdout)) >= 6
    events_after_first = count(app, Event)

    again = replay_cli(str(trace), "--device", "dev-bus-07")

    assert again.returncode == 0, again.stderr
    assert event_lines(again.stdout) == []
    assert (
        f"pings read {len(rows)}, stored 0, duplicates {len(rows)}, rejected 0; events 0"
        in summary(again.stdout)
    )
    assert count(app, Ping) == len(rows)
    assert count(app, Event) == events_after_first


def test_an_unknown_device_is_a_clear_error_and_nothing_is_written(
    replay_cli, imported, app, tmp_path
):
    trace = write_csv(tmp_path / "bus-07.csv", on_schedule_drive(imported, MONDAY))

    done = replay_cli(str(trace), "--device", "dev-nobody")

    assert done.returncode != 0
    assert "no device 'dev-nobody' is registered" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert count(app, Ping) == 0


def test_a_bad_trace_line_stops_the_replay_naming_file_and_line_and_nothing_is_written(
    replay_cli, imported, app, tmp_path
):
    rows = on_schedule_drive(imported, MONDAY)
    rows[41] = (rows[41][0], 95.2, rows[41][2], rows[41][3])  # line 43 with the header
    trace = write_csv(tmp_path / "bus-07.csv", rows)

    done = replay_cli(str(trace), "--device", "dev-bus-07")

    assert done.returncode != 0
    assert "bus-07.csv:43: bad_lat: lat 95.2 out of range" in done.stderr, done.stderr
    assert "--skip-bad" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert count(app, Ping) == 0


def test_skip_bad_reads_past_bad_lines_and_names_the_first_few(replay_cli, imported, tmp_path):
    rows: list = list(on_schedule_drive(imported, MONDAY))
    for n in (10, 20, 30, 40, 50, 60, 70):
        rows[n] = (rows[n][0], rows[n][1], "east", rows[n][3])
    trace = write_csv(tmp_path / "bus-07.csv", rows)

    done = replay_cli(str(trace), "--device", "dev-bus-07", "--skip-bad")

    assert done.returncode == 0, done.stderr
    assert "skipped 7 bad line(s):" in done.stdout
    assert "bus-07.csv:12: lon 'east' is not a number" in done.stdout
    assert "… and 2 more" in done.stdout
    assert f"pings read {len(rows) - 7}, stored {len(rows) - 7}" in summary(done.stdout)
    assert [e[5] for e in event_lines(done.stdout) if e[3] == "stop_arrived"] == ZT_AM_1_STOPS


# -- replay_trace() itself -----------------------------------------------------------------------


def test_replay_trace_sorts_a_shuffled_old_trace_into_event_time_and_tracks_the_trip(
    app, imported, tmp_path
):
    rows = on_schedule_drive(imported, MONDAY)
    shuffled = rows[1::2] + rows[::2]  # out of order, as a merged backlog would be
    trace = write_csv(tmp_path / "shuffled.csv", shuffled, header=False)

    result = replay_trace(app, trace, "dev-bus-07", progress=False)

    assert (result.pings_read, result.stored, result.duplicates) == (len(rows), len(rows), 0)
    assert not result.rejected  # 13+ days old, yet no too_old: replay has no age limit
    assert [
        (e.kind, e.stop_id) for e in result.events if e.kind.startswith(("trip", "stop_a"))
    ] == [
        ("trip_started", None),
        *[("stop_arrived", s) for s in ZT_AM_1_STOPS],
        ("trip_completed", None),
    ]
    assert {e.route_id for e in result.events} == {"zt-am-1"}
    assert result.events[0].trip_id == "20261109-zt-am-1-bus-07"
    assert result.events_by_kind["stop_arrived"] == 4
    assert report_lines(result)[-1].startswith("dev-bus-07 (bus-07): pings read")
    # the app's live pipeline keeps its own age limit
    assert filter_config(app).max_age_s == 604800.0


def test_replay_trace_reports_jumps_and_in_file_duplicates_by_reason(app, imported, tmp_path):
    rows = on_schedule_drive(imported, MONDAY)
    ts, lat, lon, speed = rows[100]
    extra = [
        (ts, lat, lon, speed),  # the same fix twice in the file
        (ts + 1.0, lat + 0.5, lon, speed),
    ]  # 55 km away one second later
    trace = write_csv(tmp_path / "noisy.csv", rows + extra)

    result = replay_trace(app, trace, "dev-bus-07", progress=False)

    assert result.rejected == {"duplicate": 1, "implausible_jump": 1}
    assert result.stored == len(rows)
    assert "rejected 2 (duplicate 1, implausible_jump 1)" in report_lines(result)[-1]


def test_replay_trace_refuses_an_unknown_device_before_reading_the_trace(app, imported, tmp_path):
    with pytest.raises(ReplayError, match="no device 'dev-x' is registered"):
        replay_trace(app, tmp_path / "does-not-matter.csv", "dev-x", progress=False)


def test_replay_trace_raises_the_trace_error_of_a_bad_line_before_writing(app, imported, tmp_path):
    trace = tmp_path / "bad.csv"
    trace.write_text(f"ts,lat,lon\n{local_ts(MONDAY, '06:40:00')},27.45,113.23\nnot-a-time,1,2\n")

    with pytest.raises(TraceError, match=r"bad\.csv:3: "):
        replay_trace(app, trace, "dev-bus-07", progress=False)
    assert count(app, Ping) == 0


def test_a_trace_older_than_what_the_tracker_has_seen_is_stored_and_the_report_says_why_no_events(
    app, imported, tmp_path
):
    monday = on_schedule_drive(imported, MONDAY)
    replay_trace(app, write_csv(tmp_path / "monday.csv", monday), "dev-bus-07", progress=False)
    last_seen = dt.datetime.fromtimestamp(monday[-1][0], tz=SHANGHAI)
    week_before = MONDAY - dt.timedelta(days=7)
    rows = on_schedule_drive(imported, week_before)

    result = replay_trace(
        app, write_csv(tmp_path / "earlier.csv", rows), "dev-bus-07", progress=False
    )

    assert (result.stored, result.events) == (len(rows), [])
    assert report_lines(result)[-1].startswith(
        f"note: the tracker of bus-07 had already processed pings up to {last_seen:%Y-%m-%d %H:%M:%S}"
    )


def test_a_trace_sent_in_many_small_messages_and_transactions_gives_the_same_events(
    app, imported, tmp_path, monkeypatch
):
    import backend.replay
    from backend.ingest.pipeline import IngestPipeline

    rows = on_schedule_drive(imported, MONDAY)
    monkeypatch.setattr(backend.replay, "PINGS_PER_MESSAGE", 20)
    monkeypatch.setattr(backend.replay, "MESSAGES_PER_BATCH", 3)
    sizes: list[list[int]] = []
    process = IngestPipeline.process

    def recording(self, messages):
        sizes.append([len(orjson.loads(m.payload)) for m in messages])
        return process(self, messages)

    monkeypatch.setattr(IngestPipeline, "process", recording)

    # written newest first: only replaying in event time gets the trip right across batches
    result = replay_trace(
        app, write_csv(tmp_path / "t.csv", rows[::-1]), "dev-bus-07", progress=False
    )

    assert len(sizes) == -(-len(rows) // 60) and all(len(s) <= 3 for s in sizes)
    assert sum(map(sum, sizes)) == len(rows) and max(max(s) for s in sizes) == 20
    assert result.stored == len(rows)
    assert [(e.kind, e.stop_id) for e in result.events if e.kind != "stop_departed"] == [
        ("trip_started", None),
        *[("stop_arrived", s) for s in ZT_AM_1_STOPS],
        ("trip_completed", None),
    ]


# -- ETAs and fleets (SPEC v1.1) ------------------------------------------------------------------


def test_replay_with_etas_prints_every_prediction_as_a_json_line_in_event_time(
    replay_cli, imported, tmp_path
):
    rows = on_schedule_drive(imported, MONDAY)
    trace = write_csv(tmp_path / "bus-07.csv", rows)

    done = replay_cli(str(trace), "--device", "dev-bus-07", "--etas")

    assert done.returncode == 0, done.stderr
    etas = [orjson.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert etas, done.stdout
    assert {tuple(sorted(e)) for e in etas} == {tuple(sorted(
        ("as_of", "trip_id", "run_id", "vehicle_id", "stop_id", "eta", "uncertainty_s")))}
    as_of = [dt.datetime.fromisoformat(e["as_of"]) for e in etas]
    assert as_of == sorted(as_of)  # event time, not batch order
    assert {e["vehicle_id"] for e in etas} == {"bus-07"}
    # one prediction per ping for the school while the trip runs: per ping, not per batch
    school = [e for e in etas if e["stop_id"] == ZT_AM_1_STOPS[-1]]
    assert len(school) >= len(rows) // 2
    assert all(e["uncertainty_s"] > 0 for e in etas)
    # the ETAs close in on the arrival as the bus does (this drive is much faster than the
    # timetable on its last stretch, and nothing was learned: the distance left says it)
    arrival = truth_arrivals(imported, MONDAY)[-1]

    def error_at(seconds_before: float) -> float:
        e = min(school, key=lambda e: abs(
            dt.datetime.fromisoformat(e["as_of"]).timestamp() - (arrival - seconds_before)))
        return abs(dt.datetime.fromisoformat(e["eta"]).timestamp() - arrival)

    assert error_at(10) < 60
    assert error_at(10) < error_at(60) < error_at(300)
    assert all(dt.datetime.fromisoformat(e["eta"]) >= dt.datetime.fromisoformat(e["as_of"])
               for e in etas)
    # the event report still follows
    assert "trip_completed" in [e[3] for e in event_lines(done.stdout)]


def test_a_fleet_csv_with_a_device_id_column_replays_every_device_without_device(
    replay_cli, app, imported, tmp_path
):
    rows = on_schedule_drive(imported, MONDAY)
    trace = tmp_path / "fleet.csv"
    with trace.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["device_id", "ts", "lat", "lon", "speed_kmh"])
        for row in rows:  # the spare bus parked where bus-07 starts, the same minutes
            out.writerow(["dev-bus-07", *row])
            out.writerow(["dev-bus-spare", row[0] + 0.5, rows[0][1], rows[0][2], 0.0])

    done = replay_cli(str(trace), "--etas")

    assert done.returncode == 0, done.stderr
    assert f"pings read {2 * len(rows)}, stored {2 * len(rows)}" in summary(done.stdout)
    events = event_lines(done.stdout)
    arrived = [(e[4], e[5]) for e in events if e[3] == "stop_arrived"]
    assert arrived == [("zt-am-1", stop) for stop in ZT_AM_1_STOPS], done.stdout
    assert all(e[-1] == "vehicle=bus-07" for e in events)
    etas = [orjson.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert etas and {e["vehicle_id"] for e in etas} == {"bus-07"}
    assert count(app, Ping) == 2 * len(rows)


def test_a_trace_without_a_device_id_column_needs_device(replay_cli, imported, tmp_path):
    trace = write_csv(tmp_path / "one.csv", on_schedule_drive(imported, MONDAY)[:5])
    done = replay_cli(str(trace))
    assert done.returncode != 0
    assert "--device" in done.stderr and "nothing was written" in done.stderr
