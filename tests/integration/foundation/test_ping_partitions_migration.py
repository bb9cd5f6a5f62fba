"""Migration 0013 converts an existing ``pings`` table: on PostgreSQL into one partitioned by
day (every row copied with its id, the id sequence going on, the dedupe key still working), and
back on downgrade; on SQLite the table is left as it is. Runs on a database of its own (a new
schema on PostgreSQL, a new file on SQLite), migrated step by step."""

from __future__ import annotations

import re
from pathlib import Path

from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from backend.extensions import db
from backend.ingest.store import insert_pings
from backend.ping_partitions import DAY_S, day_partitions, is_partitioned
from tests.conftest import _postgres_url, make_test_app, postgres_schema

MIGRATION = (Path(__file__).resolve().parents[3] / "backend" / "migrations" / "versions"
             / "0013_ping_partitions_access_log.py")
# the revision 0013 follows, however migrations are chained when branches merge
BEFORE = re.search(r"^down_revision = '(\w+)'", MIGRATION.read_text(encoding="utf-8"),
                   re.M).group(1)


def ping(device: str, ts: float) -> dict:
    return {"device_id": device, "vehicle_id": None, "ts": ts, "lat": 27.43, "lon": 113.2,
            "speed_kmh": None, "heading_deg": None, "accuracy_m": None, "alt_m": None,
            "battery_pct": None, "seq": None, "received_at": ts}


def test_an_existing_pings_table_is_converted_with_its_rows_and_ids(tmp_path):
    pg = _postgres_url()
    if pg is None:
        check_conversion(f"sqlite:///{tmp_path / 'convert.sqlite3'}", tmp_path)
        return
    with postgres_schema(pg, "xc_convert_") as (_, _, url):
        check_conversion(url, tmp_path)


def check_conversion(url: str, tmp_path) -> None:
    app = make_test_app(url, tmp_path / "instance")
    directory = app.extensions["migrate"].directory
    stamps = [1_780_000_000.0 + day * DAY_S + 60 for day in range(5)]
    try:
        with app.app_context():
            upgrade(directory=directory, revision=BEFORE)
            engine = db.engine
            with engine.begin() as conn:
                for device in ("dev-a", "dev-b"):
                    insert_pings(conn, [ping(device, ts) for ts in stamps])
                before = conn.execute(text(
                    "SELECT id, device_id, ts FROM pings ORDER BY id")).all()

            upgrade(directory=directory)
            with engine.begin() as conn:
                assert is_partitioned(conn) is (engine.dialect.name == "postgresql")
                assert conn.execute(text(
                    "SELECT id, device_id, ts FROM pings ORDER BY id")).all() == before
                if is_partitioned(conn):
                    days = set(day_partitions(conn))
                    assert {int(ts // DAY_S) for ts in stamps} <= days
                assert insert_pings(conn, [ping("dev-a", stamps[0])]) == set()  # dedupe
                assert insert_pings(conn, [ping("dev-a", stamps[0] + 1)]) == {
                    ("dev-a", stamps[0] + 1)}
                newest = conn.execute(text("SELECT max(id) FROM pings")).scalar()
                assert newest > before[-1][0]  # the id sequence went on (a conflict uses one)

            if engine.dialect.name == "postgresql":
                downgrade(directory=directory, revision=BEFORE)
                with engine.connect() as conn:
                    assert not is_partitioned(conn)
                    assert conn.execute(text("SELECT count(*) FROM pings")).scalar() == (
                        len(before) + 1)
                upgrade(directory=directory)
                with engine.connect() as conn:
                    assert is_partitioned(conn)
    finally:
        with app.app_context():
            db.engine.dispose()
