"""`backend.ingest.store.insert_ping_rows`: few rows over arrays, many through a binary COPY into a
temporary table (PostgreSQL); the same answers either way and on SQLite — what is new, what was
already stored, what the database refuses."""

from __future__ import annotations

import time

import orjson
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DataError

from backend.extensions import db
from backend.ingest import store
from backend.ingest.pipeline import IngestPipeline
from backend.models import LivePosition, Ping, Reject
from gps_ingest.filters import FilterConfig
from gps_ingest.pipeline import Message

SIZES = [1, store.COPY_MIN_ROWS - 1, store.COPY_MIN_ROWS, 700]  # arrays, arrays, COPY, COPY


def rows(n: int, t0: float = 1_790_000_000.0, device: str = "dev-bus-07",
         vehicle: str = "bus-07") -> list[tuple]:
    """``n`` ping rows in store.PING_COLUMNS order, with every kind of value a column takes."""
    return [(device, vehicle, t0 + 5 * i + 0.125, 27.4 + i * 1e-5 + 1e-9, 113.2 - i * 1e-5,
             None if i % 3 else 31.7, None if i % 2 else 271.5, 4.0 + i % 7, None if i % 5 else
             85.25, None if i % 4 else 97.0, None if i % 6 else 2**62 + i, t0 + 5 * i + 9.5)
            for i in range(n)]


def stored_rows(conn) -> list[tuple]:
    columns = ", ".join(store.PING_COLUMNS)
    return [tuple(r) for r in conn.execute(text(f"SELECT {columns} FROM pings ORDER BY ts"))]


@pytest.mark.parametrize("n", SIZES)
def test_new_rows_are_stored_exactly_and_their_keys_returned(app, imported, n):
    batch = rows(n)
    with app.app_context(), db.engine.begin() as conn:
        assert store.insert_ping_rows(conn, batch) == {(r[0], r[2]) for r in batch}
    with app.app_context(), db.engine.connect() as conn:
        assert stored_rows(conn) == batch  # floats bit for bit, NULLs, 62-bit seq


@pytest.mark.parametrize("n", SIZES)
def test_what_is_already_stored_is_skipped_and_not_returned(app, imported, n):
    first, second = rows(n), rows(n, t0=1_790_000_000.0 + 5 * n)
    with app.app_context():
        with db.engine.begin() as conn:
            store.insert_ping_rows(conn, first)
        redelivered = [(*r[:3], r[3] + 1, *r[4:]) for r in first]  # another lat: still a twin
        with db.engine.begin() as conn:
            assert store.insert_ping_rows(conn, redelivered + second) == {
                (r[0], r[2]) for r in second}
        with db.engine.begin() as conn:  # the staging table was emptied by the commit
            assert store.insert_ping_rows(conn, first + second) == set()
        with db.engine.connect() as conn:
            assert stored_rows(conn) == first + second


@pytest.mark.parametrize("n", SIZES)
def test_two_rows_with_one_key_in_a_call_store_one(app, imported, n):
    batch = rows(n)
    twin = (*batch[-1][:3], 28.0, *batch[-1][4:])
    with app.app_context():
        with db.engine.begin() as conn:
            assert store.insert_ping_rows(conn, [*batch, twin]) == {(r[0], r[2]) for r in batch}
        assert db.session.query(Ping).count() == n
        db.session.rollback()


def test_a_rolled_back_batch_leaves_the_next_one_working(app, imported):
    """The staging table may have been created in the transaction that rolled back."""
    batch = rows(300)
    with app.app_context():
        with pytest.raises(RuntimeError), db.engine.begin() as conn:
            store.insert_ping_rows(conn, batch[:150])
            raise RuntimeError("the batch failed after storing")
        with db.engine.begin() as conn:
            assert store.insert_ping_rows(conn, batch) == {(r[0], r[2]) for r in batch}
        with db.engine.connect() as conn:
            assert stored_rows(conn) == batch


def test_the_dict_api_stores_the_same(app, imported):
    batch = rows(100)
    with app.app_context(), db.engine.begin() as conn:
        keys = store.insert_pings(conn, [dict(zip(store.PING_COLUMNS, r, strict=True))
                                         for r in batch])
        assert keys == {(r[0], r[2]) for r in batch}
        assert stored_rows(conn) == batch


@pytest.mark.parametrize("n", [1, 200])
def test_a_seq_beyond_bigint_is_a_data_error(app, imported, n):
    batch = rows(n)
    batch[-1] = (*batch[-1][:10], 2**63, batch[-1][11])
    with app.app_context():
        with pytest.raises(DataError), db.engine.begin() as conn:
            store.insert_ping_rows(conn, batch)
        assert db.session.query(Ping).count() == 0
        db.session.rollback()


def test_the_pipeline_keeps_a_message_the_database_refuses_and_stores_the_rest(app, imported):
    """A backlog array whose one ping has a seq JSON allows and bigint does not: that message is
    an ``unstorable`` reject, the arrays around it are stored (not redelivered forever)."""
    now = time.time()

    def array(t0: float, bad: bool = False) -> bytes:
        pings = [{"ts": t0 + i, "lat": 27.45 + i * 1e-5, "lon": 113.23, "seq": i}
                 for i in range(100)]
        if bad:
            pings[50]["seq"] = 2**63
        return orjson.dumps(pings)

    topic = "xiaoche/v1/devices/dev-bus-07/pings"
    with app.app_context():
        pipeline = IngestPipeline(db.engine, FilterConfig())
        results = pipeline.process([
            Message(payload=array(now - 900), received_at=now, topic=topic),
            Message(payload=array(now - 600, bad=True), received_at=now, topic=topic),
            Message(payload=array(now - 300), received_at=now, topic=topic)])
        assert [r.accepted for r in results] == [100, 0, 100]
        assert [r.reason for r in results[1].rejected] == ["unstorable"]
        assert db.session.query(Ping).count() == 200
        assert db.session.scalars(select(Reject.reason)).all() == ["unstorable"]
        live = db.session.get(LivePosition, "bus-07")
        assert live.ts == now - 300 + 99
        db.session.rollback()


def test_live_positions_take_each_vehicles_newest_and_never_go_back(app, imported):
    def live(vehicle: str, ts: float, lat: float) -> dict:
        return {"vehicle_id": vehicle, "device_id": f"dev-{vehicle}", "ts": ts, "lat": lat,
                "lon": 113.2, "speed_kmh": None, "heading_deg": 90.0, "received_at": ts + 1}

    with app.app_context():
        with db.engine.begin() as conn:  # two rows for one vehicle in one call
            store.upsert_live_positions(conn, [live("bus-12", 200.0, 27.2), live("bus-07", 100.0,
                                               27.1), live("bus-12", 150.0, 27.15)])
        with db.engine.begin() as conn:
            store.upsert_live_positions(conn, [live("bus-07", 90.0, 26.0),
                                               live("bus-12", 300.0, 27.3)])
        got = {p.vehicle_id: (p.ts, p.lat, p.heading_deg, p.received_at)
               for p in db.session.scalars(select(LivePosition))}
        assert got == {"bus-07": (100.0, 27.1, 90.0, 101.0), "bus-12": (300.0, 27.3, 90.0, 301.0)}
        db.session.rollback()


def test_latest_fixes_finds_each_devices_newest_ping_recent_old_or_ahead_of_the_clock(
        app, imported):
    """The recent window first, everything for the rest: the same answer as one read of all."""
    now = 1_790_000_000.0
    day = 86400.0
    recent = rows(3, t0=now - 3600)  # newest: now - 3600 + 10.125
    old = rows(2, t0=now - 40 * day, device="dev-bus-12", vehicle="bus-12")  # only old ones
    ahead = rows(1, t0=now + 600, device="dev-bus-07", vehicle="bus-07")  # a clock ahead
    with app.app_context(), db.engine.begin() as conn:
        store.insert_ping_rows(conn, recent + old)
        fixes = store.latest_fixes(conn, ["dev-bus-07", "dev-bus-12", "dev-nobody"], now=now)
        assert fixes == {"dev-bus-07": (recent[-1][2], recent[-1][3], recent[-1][4]),
                         "dev-bus-12": (old[-1][2], old[-1][3], old[-1][4])}
        store.insert_ping_rows(conn, ahead)
        assert store.latest_fixes(conn, ["dev-bus-07"], now=now)["dev-bus-07"][0] == ahead[0][2]
