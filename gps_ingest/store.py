"""Batched writes of the ingest through SQLAlchemy Core (DESIGN: never an ORM object per ping).

Every function takes the batch's open connection; the caller commits once for the whole batch,
and only then are the messages acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, func, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from backend.models import LivePosition, Ping, Reject, Scan

PINGS = Ping.__table__
SCANS = Scan.__table__
REJECTS = Reject.__table__
LIVE = LivePosition.__table__


def _insert(conn: Connection, table):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


PING_COLUMNS = ("device_id", "vehicle_id", "ts", "lat", "lon", "speed_kmh", "heading_deg",
                "accuracy_m", "alt_m", "battery_pct", "seq", "received_at")
_PG_TYPES = {"device_id": "text[]", "vehicle_id": "text[]", "seq": "bigint[]"}
# One short statement whatever the batch size: PostgreSQL expands the arrays itself. A multi-row
# VALUES insert of 500 rows × 12 parameters is a long statement that psycopg re-parses in Python
# on every batch (it caches only short ones) — that parsing alone was 70 % of the ingest's time.
_PG_INSERT_PINGS = text(
    f"INSERT INTO pings ({', '.join(PING_COLUMNS)}) "
    f"SELECT * FROM unnest("
    + ", ".join(f"CAST(:{c} AS {_PG_TYPES.get(c, 'float8[]')})" for c in PING_COLUMNS)
    + ") ON CONFLICT (device_id, ts) DO NOTHING RETURNING device_id, ts"
)


def insert_pings(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[tuple[str, float]]:
    """Insert pings, skipping (device_id, ts) already stored; return the keys newly stored."""
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        arrays = {c: [r[c] for r in rows] for c in PING_COLUMNS}
        return {(r[0], r[1]) for r in conn.execute(_PG_INSERT_PINGS, arrays)}
    stmt = (_insert(conn, PINGS).on_conflict_do_nothing(index_elements=["device_id", "ts"])
            .returning(PINGS.c.device_id, PINGS.c.ts))
    return {(r[0], r[1]) for r in conn.execute(stmt, list(rows))}


def insert_scans(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[tuple[float, str]]:
    """Store one device's scans; returns the ``(ts, card_id)`` of those new (not redelivered)."""
    if not rows:
        return set()
    stmt = (_insert(conn, SCANS)
            .on_conflict_do_nothing(index_elements=["device_id", "ts", "card_id"])
            .returning(SCANS.c.ts, SCANS.c.card_id))
    return {(ts, card) for ts, card in conn.execute(stmt, list(rows)).all()}


def insert_rejects(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(REJECTS.insert(), list(rows))


def upsert_live_positions(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Move each vehicle's live position only forward in the device's own time."""
    rows = list(rows)
    if not rows:
        return
    ins = _insert(conn, LIVE)
    columns = ("device_id", "ts", "lat", "lon", "speed_kmh", "heading_deg", "received_at")
    stmt = ins.on_conflict_do_update(
        index_elements=["vehicle_id"],
        set_={c: ins.excluded[c] for c in columns},
        where=LIVE.c.ts < ins.excluded.ts,
    )
    conn.execute(stmt, rows)


def latest_fixes(conn: Connection, device_ids: Iterable[str]) -> dict[str, tuple[float, float, float]]:
    """(ts, lat, lon) of the newest stored ping of each device, for the jump filter's cold start."""
    ids = sorted(set(device_ids))
    if not ids:
        return {}
    newest = (select(PINGS.c.device_id, func.max(PINGS.c.ts).label("ts"))
              .where(PINGS.c.device_id.in_(ids)).group_by(PINGS.c.device_id).subquery())
    query = select(PINGS.c.device_id, PINGS.c.ts, PINGS.c.lat, PINGS.c.lon).where(
        tuple_(PINGS.c.device_id, PINGS.c.ts).in_(select(newest.c.device_id, newest.c.ts)))
    return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(query)}
