"""The whole ingest pipeline on in-memory ports: each path a message can take, without a database
(gps_ingest/fakes.py stands in for backend/ingest's SQL store and device directory)."""

from __future__ import annotations

import orjson
import pytest

from gps_ingest.pipeline import Message
from routing.gcj02 import gcj02_to_wgs84
from tests.unit.ingest.pipeline_world import (
    BUS,
    CAR,
    LAT,
    LON,
    NOW,
    fix,
    pings,
    reasons,
    scans,
    world,
)


def test_a_bus_ping_is_stored_with_its_vehicle_and_moves_the_live_position():
    pipeline, store = world()
    [result] = pipeline.process([pings("bus-07", [fix(0), fix(1)])])
    assert (result.accepted, result.duplicates, result.rejected) == (2, 0, [])
    stored = store.tables.pings
    assert sorted(stored) == [("bus-07", fix(0)["ts"]), ("bus-07", fix(1)["ts"])]
    assert {row["vehicle_id"] for row in stored.values()} == {"veh-07"}
    live = store.tables.live["veh-07"]
    assert (live["ts"], live["lat"], live["device_id"]) == (fix(1)["ts"], fix(1)["lat"], "bus-07")
    assert store.commits == 1


def test_what_is_not_ours_is_kept_as_a_reject_with_its_reason():
    pipeline, store = world()
    results = pipeline.process([
        Message(payload=b"[]", received_at=NOW, topic="somebody/else"),
        pings("nobody", [fix(0)]),
        pings("reader-1", [fix(0)]),  # a device on no vehicle sends no pings
        pings("bus-07", [{"ts": NOW - 60, "lat": 91.0, "lon": LON}]),
    ])
    assert reasons(results) == ["unknown_topic", "unknown_device", "no_vehicle", "bad_lat"]
    assert [r["reason"] for r in store.tables.rejects] == reasons(results)
    assert store.tables.rejects[0]["topic"] == "somebody/else"
    assert store.tables.pings == {}


def test_osmand_needs_a_device_set_up_for_it_and_the_same_id_as_the_token():
    pipeline, store = world()
    query = {"id": "bus-07", "lat": str(LAT), "lon": str(LON), "timestamp": str(int(NOW - 60))}
    refused = pipeline.process([Message(b"", NOW, kind="osmand_query", params=query)])
    assert reasons(refused) == ["osmand_disabled"]
    mismatch = pipeline.process([Message(b"", NOW, kind="osmand_query", device_id="car-li",
                                         params=query)])
    assert reasons(mismatch) == ["device_mismatch"]
    [ok] = pipeline.process([Message(b"", NOW, kind="osmand_query",
                                     params={**query, "id": "car-li"})])
    assert ok.accepted == 1 and list(store.tables.pings) == [("car-li", NOW - 60)]


def test_a_gcj02_device_is_stored_in_wgs84():
    pipeline, store = world()
    pipeline.process([pings(CAR.device_id, [fix(0)])])
    [row] = store.tables.pings.values()
    assert (row["lat"], row["lon"]) == pytest.approx(gcj02_to_wgs84(fix(0)["lat"], LON))


def test_the_first_ping_after_a_restart_is_judged_against_the_stored_last_fix():
    _, store = world()
    first, _ = world(store=store)
    first.process([pings("bus-07", [fix(0)])])
    restarted, _ = world(store=store)  # a new process: nothing cached, the store remembers
    far = {"ts": fix(0)["ts"] + 10, "lat": LAT + 0.5, "lon": LON}  # 55 km in 10 s
    assert reasons(restarted.process([pings("bus-07", [far])])) == ["implausible_jump"]


def test_a_redelivered_batch_is_counted_as_duplicates_and_the_steps_see_only_the_new():
    seen = []
    pipeline, store = world(after_store=[lambda conn, stored: seen.append(
        [s.ping.ts for s in stored])])
    batch = [pings("bus-07", [fix(0), fix(1)])]
    pipeline.process(batch)
    [again] = pipeline.process(batch + [pings("bus-07", [fix(2)])])[:1]
    assert (again.accepted, again.duplicates) == (0, 2)
    assert seen == [[fix(0)["ts"], fix(1)["ts"]], [fix(2)["ts"]]]
    assert len(store.tables.pings) == 3


def test_the_steps_after_storage_run_in_order_in_the_transaction_scans_after_pings():
    calls = []
    pipeline, store = world(
        after_store=[lambda conn, stored: calls.append(("track", conn, len(stored))),
                     lambda conn, stored: calls.append(("alarms", conn, len(stored)))],
        after_scans=[lambda conn, stored: calls.append(("scans", conn, len(stored)))])
    pipeline.process([pings("bus-07", [fix(0)])])
    assert [c[0] for c in calls] == ["track", "alarms"]  # no scans in the batch: no scan step
    calls.clear()
    card = {"ts": NOW - 30, "card_id": "c-1", "action": "board"}
    results = pipeline.process([pings("bus-07", [fix(1)]), scans("reader-1", [card])])
    assert [r.accepted for r in results] == [1, 1]
    assert [(name, n) for name, _, n in calls] == [("track", 1), ("alarms", 1), ("scans", 1)]
    conns = {id(conn) for _, conn, _ in calls}  # one transaction's, holding what it stored
    assert len(conns) == 1 and ("bus-07", fix(1)["ts"]) in calls[0][1].pings
    assert list(store.tables.scans) == [("reader-1", NOW - 30, "c-1")]


def test_a_step_that_fails_leaves_nothing_of_the_batch_stored():
    def broken(conn, stored):
        raise RuntimeError("tracking failed")

    pipeline, store = world(after_store=[broken])
    with pytest.raises(RuntimeError):
        pipeline.process([pings("bus-07", [fix(0)]), pings("nobody", [fix(0)])])
    assert (store.tables.pings, store.tables.rejects, store.tables.live) == ({}, [], {})


def test_a_message_the_store_refuses_costs_only_itself_as_unstorable():
    pipeline, store = world(refuse=lambda row: row["seq"] is not None and row["seq"] >= 2**63)
    results = pipeline.process([
        pings("bus-07", [fix(0)]),
        pings("bus-07", [{**fix(1), "seq": 2**63}]),
        pings("bus-07", [fix(2)]),
    ])
    assert [r.accepted for r in results] == [1, 0, 1]
    assert reasons(results) == ["unstorable"]
    assert results[1].rejected[0].detail.startswith("the database refused it: ")
    assert sorted(ts for _, ts in store.tables.pings) == [fix(0)["ts"], fix(2)["ts"]]
    assert [r["reason"] for r in store.tables.rejects] == ["unstorable"]
    assert orjson.loads(store.tables.rejects[0]["payload_head"])[0]["seq"] == 2**63
    assert pipeline.counters["unstorable"] == 1


def test_the_gps_ingest_package_loads_nothing_of_the_backend():
    import subprocess
    import sys

    code = ("import sys, gps_ingest.pipeline, gps_ingest.fakes, gps_ingest.jt808_gateway, "
            "gps_ingest.mqtt_client; print(sorted({m.split('.')[0] for m in sys.modules} "
            "& {'backend', 'notifications', 'flask', 'flask_sqlalchemy', 'sqlalchemy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert BUS.vehicle_id == "veh-07"
