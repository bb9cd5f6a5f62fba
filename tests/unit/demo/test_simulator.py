"""The simulator's ticks, with the broker and the database replaced by recorders."""

from __future__ import annotations

import json
import random

import orjson
import pytest

from backend.demo import SAMPLE_BUNDLE
from backend.demo.fleet import sample_fleet
from backend.demo.plan import Fix, fix_at
from backend.demo.simulator import FleetSimulator, noisy
from gps_ingest.filters import haversine_m
from routing.gcj02 import gcj02_to_wgs84

BUNDLE = json.loads(SAMPLE_BUNDLE.read_text(encoding="utf-8"))
START = 1_795_400_000.0


class Recorder:
    def __init__(self, device):
        self.device = device
        self.sent: list[tuple[str, dict]] = []

    def publish(self, topic, payload, qos=1):
        assert qos == 1
        self.sent.append((topic, orjson.loads(payload)))


def simulator(**kwargs):
    timelines, devices = sample_fleet(BUNDLE, START)
    imported = []
    recorders = {}

    def connect(device):
        recorders[device.device_id] = Recorder(device)
        return recorders[device.device_id]

    sim = FleetSimulator(None, "mqtt://unused", timelines, devices, publisher=connect,
                         import_runs=lambda legs, now, fresh: imported.append((legs, now, fresh))
                         or len(legs),
                         **kwargs)
    return sim, timelines, recorders, imported


def test_each_tick_publishes_every_vehicles_position_now_on_its_own_topic():
    sim, timelines, recorders, imported = simulator()
    sim.tick(START + 100.0)
    assert sorted(recorders) == ["dev-bus-07", "dev-bus-12", "dev-car-liu", "dev-truck-01"]
    for device_id, recorder in recorders.items():
        topic, ping = recorder.sent[0]
        assert topic == f"xiaoche/v1/devices/{device_id}/pings"
        assert ping["ts"] == START + 100.0  # the wall clock: the ingest refuses future fixes
        assert {"lat", "lon", "speed_kmh", "accuracy_m", "seq"} <= set(ping)
    bus = fix_at(timelines[0].leg_at(START + 100.0), START + 100.0)
    ping = recorders["dev-bus-07"].sent[0][1]
    assert haversine_m(ping["lat"], ping["lon"], bus.lat, bus.lon) < 10.0
    assert len(imported) == 1 and imported[0][1:] == (START + 100.0, True)  # planned ahead


def test_a_gcj02_device_sends_gcj02():
    sim, timelines, recorders, _ = simulator()
    sim.tick(START + 10.0)
    ping = recorders["dev-bus-12"].sent[0][1]
    true = fix_at(timelines[1].leg_at(START + 10.0), START + 10.0)
    assert haversine_m(ping["lat"], ping["lon"], true.lat, true.lon) > 100  # the offset
    assert haversine_m(*gcj02_to_wgs84(ping["lat"], ping["lon"]), true.lat, true.lon) < 10.0


def test_scans_go_out_once_when_their_time_has_come():
    sim, timelines, recorders, _ = simulator()
    board = timelines[0].leg_at(START).scans[0]  # 李明 boards at 龙凤村
    t = START
    while t < board.ts + 20:
        sim.tick(t)
        t += 5.0
    scans = [p for topic, p in recorders["dev-bus-07"].sent if topic.endswith("/scans")]
    assert scans == [[{"ts": round(board.ts, 3), "card_id": "04A1B2C3", "action": "board",
                       "lat": pytest.approx(board.lat), "lon": pytest.approx(board.lon)}]]


def test_runs_are_imported_again_only_when_the_plan_runs_short():
    sim, _, _, imported = simulator(horizon_s=3600.0)
    for k in range(10):
        sim.tick(START + 5.0 * k)
    assert len(imported) == 1
    sim.tick(START + 2400.0)  # less than half the horizon is planned ahead now
    assert len(imported) == 2 and all(leg.starts_at > START for leg in imported[1][0])
    assert imported[1][2] is False  # only the first import replaces an earlier demo's plan


def test_runs_that_could_not_be_imported_are_imported_at_the_next_tick():
    timelines, devices = sample_fleet(BUNDLE, START)
    calls = []

    def flaky_import(legs, now, fresh):
        calls.append((len(legs), fresh))
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        return len(legs)

    sim = FleetSimulator(None, "mqtt://unused", timelines, devices, import_runs=flaky_import,
                         publisher=Recorder)
    sim.tick(START)  # logged; the positions still go out
    assert sim.published == 4
    sim.tick(START + 5.0)
    sim.tick(START + 10.0)
    assert len(calls) == 2 and calls[0] == calls[1]  # the same runs again, still a fresh start
    assert calls[1][0] > 0 and calls[1][1] is True


def test_noise_is_a_few_metres_and_a_standing_bus_reports_no_speed_or_heading():
    rng = random.Random(3)
    moving, standing = Fix(27.45, 113.23, 30.0, 225.0), Fix(27.45, 113.23, 0.0, 225.0)
    for _ in range(200):
        p = noisy(moving, rng)
        assert haversine_m(p["lat"], p["lon"], 27.45, 113.23) <= 13.0
        assert 25.0 < p["speed_kmh"] < 35.0 and p["heading_deg"] == 225
        assert 4.0 <= p["accuracy_m"] <= 9.0
    still = noisy(standing, rng)
    assert still["speed_kmh"] == 0.0 and still["heading_deg"] is None
