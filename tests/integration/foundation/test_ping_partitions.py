"""Pings partitioned by day on PostgreSQL (issue 17): a county-year of day partitions, the
retention job dropping the days past the policy whole, and no ping lost for want of a
partition. On SQLite ``pings`` stays one table and the same policy runs as DELETEs: every test
here runs on both, with the assertions of the backend it runs on."""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from backend.access_log import access_log_of
from backend.extensions import db
from backend.ingest.store import insert_pings
from backend.models import AccessEntry, Event, Ping, TripAudit
from backend.ping_partitions import (
    DAY_S,
    DEFAULT_PARTITION,
    day_partitions,
    ensure_partitions,
    is_partitioned,
    partition_name,
)
from backend.retention import purge

NOW = 1_790_000_000.0  # 2026-09-21 14:13 UTC
TODAY = int(NOW // DAY_S)
YEAR_DAYS = 400  # a county-year and more


def on_postgres() -> bool:
    return db.engine.dialect.name == "postgresql"


def ping(device: str, vehicle: str, ts: float) -> dict:
    return {"device_id": device, "vehicle_id": vehicle, "ts": ts, "lat": 27.43, "lon": 113.2,
            "speed_kmh": None, "heading_deg": None, "accuracy_m": None, "alt_m": None,
            "battery_pct": None, "seq": None, "received_at": ts}


def count_pings() -> int:
    return db.session.scalar(select(func.count()).select_from(Ping))


def test_pings_is_partitioned_on_postgresql_and_one_table_on_sqlite(app):
    with app.app_context(), db.engine.connect() as conn:
        assert is_partitioned(conn) is on_postgres()
        if on_postgres():
            key = conn.execute(text(
                "SELECT pg_get_partkeydef('pings'::regclass)")).scalar()
            assert key == "RANGE (ts)"
            assert conn.execute(text("SELECT to_regclass(:n)"), {"n": DEFAULT_PARTITION}
                                ).scalar() is not None


def test_a_county_year_of_day_partitions_and_the_retention_job_drops_the_days_past_it(
        app, imported):
    days, per_day = 30, 3
    with app.app_context():
        made = ensure_partitions(db.engine, days_ahead=2, now=NOW, days_back=YEAR_DAYS)
        with db.engine.connect() as conn:
            have = day_partitions(conn) if on_postgres() else {}
        if on_postgres():
            wanted = set(range(TODAY - YEAR_DAYS, TODAY + 3))
            assert wanted <= set(have), "a county-year of day partitions"
            assert len(wanted) >= 365
            assert made.created <= len(wanted)
        else:
            assert (made.created, have) == (0, {})
        # three pings a day for two buses over the whole year, through the ingest's own insert
        rows = [ping(device, vehicle, (TODAY - age) * DAY_S + 3600 * (i + 1))
                for device, vehicle in (("dev-bus-07", "bus-07"), ("dev-bus-12", "bus-12"))
                for age in range(YEAR_DAYS) for i in range(per_day)]
        with db.engine.begin() as conn:
            assert len(insert_pings(conn, rows)) == len(rows)
        events, audits = (db.session.scalar(select(func.count()).select_from(m))
                          for m in (Event, TripAudit))
        cutoff = NOW - days * DAY_S
        expect_kept = sum(1 for r in rows if r["ts"] >= cutoff)

        purged = purge(db.engine, days=days, now=NOW)

        print(f"\n{len(have)} day partitions; retention of {days} days dropped "
              f"{purged.partitions_dropped} of them, {purged.counts['pings']} pings gone, "
              f"{expect_kept} kept")
        assert purged.counts["pings"] == len(rows) - expect_kept
        assert count_pings() == expect_kept
        assert db.session.scalar(select(func.min(Ping.ts))) >= cutoff
        # the kept days keep every ping, deduplication included
        with db.engine.begin() as conn:
            kept = [r for r in rows if r["ts"] >= cutoff]
            assert insert_pings(conn, kept) == set()
        assert (db.session.scalar(select(func.count()).select_from(Event)),
                db.session.scalar(select(func.count()).select_from(TripAudit))) == (events,
                                                                                     audits)
        with db.engine.connect() as conn:
            left = day_partitions(conn) if on_postgres() else {}
        if on_postgres():
            cutoff_day = int(cutoff // DAY_S)
            assert purged.partitions_dropped >= YEAR_DAYS - days - 1
            assert not [d for d in left if (d + 1) * DAY_S <= cutoff], "days past the policy"
            assert set(range(cutoff_day, TODAY + 3)) <= set(left), "the kept days stay"
        else:
            assert purged.partitions_dropped == 0
        again = purge(db.engine, days=days, now=NOW)
        assert (again.counts["pings"], again.partitions_dropped) == (0, 0)


def test_a_ping_of_a_day_without_a_partition_is_stored_and_moved_into_its_day_later(app):
    far = (TODAY + 500) * DAY_S + 60.0  # no partition is made this far ahead
    with app.app_context():
        with db.engine.begin() as conn:
            stored = insert_pings(conn, [ping("dev-x", None, far), ping("dev-x", None, far)])
        assert stored == {("dev-x", far)}
        if on_postgres():
            with db.engine.connect() as conn:
                assert conn.execute(text(f"SELECT count(*) FROM {DEFAULT_PARTITION}")
                                    ).scalar() == 1
        made = ensure_partitions(db.engine, days_ahead=0, now=far)
        if on_postgres():
            assert (made.created >= 1, made.moved) == (True, 1)
            with db.engine.connect() as conn:
                name = partition_name(int(far // DAY_S))
                assert conn.execute(text(f"SELECT count(*) FROM {name}")).scalar() == 1
                assert conn.execute(text(f"SELECT count(*) FROM {DEFAULT_PARTITION}")
                                    ).scalar() == 0
        else:
            assert (made.created, made.moved) == (0, 0)
        with db.engine.begin() as conn:  # still one ping, still deduplicated
            assert insert_pings(conn, [ping("dev-x", None, far)]) == set()
        assert count_pings() == 1


def test_the_access_log_is_kept_as_long_as_the_raw_pings(app, imported):
    with app.app_context():
        log = access_log_of(app)
        log.record(1, "route_live", "zt-am-1", now=NOW - 40 * DAY_S)
        log.record(1, "stream", None, now=NOW - 2 * DAY_S)
        assert log.flush() == 2
        purged = purge(db.engine, days=30, now=NOW)
        assert purged.counts["access_log"] == 1
        assert [e.kind for e in db.session.scalars(select(AccessEntry))] == ["stream"]


def test_a_ping_arriving_while_its_day_is_made_does_not_stop_the_job(app, monkeypatch):
    """Between moving the default partition's rows of a day and attaching that day, the ingest
    may insert one more ping of it: it must wait for the new day, not land in the default
    partition where it makes the attach fail (and the hourly job with it)."""
    import backend.ping_partitions as partitions

    far = (TODAY + 600) * DAY_S + 60.0  # a day no other test makes
    side = []
    real_text = partitions.text

    def text_then_ingest(sql: str):
        if sql.startswith("ALTER TABLE pings ATTACH") and not side:
            # the ingest, meanwhile, on a connection of its own (waiting at most 1 s)
            try:
                with db.engine.begin() as other:
                    if on_postgres():
                        other.execute(real_text("SET LOCAL lock_timeout = '1s'"))
                    side.append(len(insert_pings(other, [ping("dev-x", None, far + 1)])))
            except OperationalError:
                side.append("waited")
        return real_text(sql)

    monkeypatch.setattr(partitions, "text", text_then_ingest)
    with app.app_context():
        with db.engine.begin() as conn:
            insert_pings(conn, [ping("dev-x", None, far)])
        made = ensure_partitions(db.engine, days_ahead=0, now=far, days_back=0)
        if on_postgres():
            assert (made.created, made.moved, side) == (1, 1, ["waited"])
            with db.engine.connect() as conn:
                name = partition_name(int(far // DAY_S))
                assert conn.execute(text(f"SELECT count(*) FROM {name}")).scalar() == 1
        else:
            assert (made.created, side) == (0, [])
        with db.engine.begin() as conn:  # the ingest's retry of the ping that waited
            insert_pings(conn, [ping("dev-x", None, far + 1)])
        assert count_pings() == 2
