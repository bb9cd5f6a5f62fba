"""The ingest's store (``gps_ingest.ports.IngestStore``) over SQLAlchemy Core: batched writes,
never an ORM object per ping (DESIGN).

Every function takes the batch's open connection; :class:`SqlStore` opens one transaction per
batch and the pipeline commits once for the whole batch; only then are the messages
acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, func, select, tuple_
from sqlalchemy import exc as exc_mod
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from backend.models import LivePosition, Ping, Reject, Scan
from gps_ingest.ports import PING_COLUMNS, PingRow, StorageRefused
from routing.newest import newest_per_key

PINGS = Ping.__table__
SCANS = Scan.__table__
REJECTS = Reject.__table__
LIVE = LivePosition.__table__


def _insert(conn: Connection, table):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


__all__ = ["PING_COLUMNS", "PingRow", "SqlStore", "insert_ping_rows", "insert_pings"]
_PG_TYPES = {"device_id": "text", "vehicle_id": "text", "seq": "bigint"}
_PG_COLUMN_TYPES = [_PG_TYPES.get(c, "float8") for c in PING_COLUMNS]
_COLUMNS = ", ".join(PING_COLUMNS)
# A few rows (an HTTP request, a quiet moment on MQTT): one short statement over arrays, one
# round trip. PostgreSQL expands the arrays itself; a multi-row VALUES insert of 500 rows × 12
# parameters is a long statement that psycopg re-parses in Python on every batch (it caches only
# short ones) — that parsing alone was 70 % of the ingest's time.
_PG_INSERT_PINGS = (
    f"INSERT INTO pings ({_COLUMNS}) SELECT * FROM unnest("
    + ", ".join(f"%s::{t}[]" for t in _PG_COLUMN_TYPES)
    + ") ON CONFLICT (device_id, ts) DO NOTHING RETURNING device_id, ts"
)
# More rows (a busy batch, a backlog of arrays): psycopg dumps each element of those arrays in
# Python, ~8 µs a row. A binary COPY (rows formatted in C, ~1 µs a row) into a temporary table,
# then one INSERT … SELECT with the same ON CONFLICT, costs two round trips more; the ingest of
# 100-ping arrays stored about twice as many pings per second (bench/ingest.py). The table lives
# as long as the database session and is emptied at every commit; it is created per transaction
# "if not exists", so a session that lost it (a transaction-pooling proxy, a new connection, a
# rolled-back batch that had created it) simply gets it again.
COPY_MIN_ROWS = 64
_PG_STAGE = "xiaoche_ping_stage"
_PG_CREATE_STAGE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_PG_STAGE} ("
    + ", ".join(f"{c} {t}" for c, t in zip(PING_COLUMNS, _PG_COLUMN_TYPES, strict=True))
    + ") ON COMMIT DELETE ROWS"
)
_PG_COPY_STAGE = f"COPY {_PG_STAGE} ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_PG_INSERT_STAGED = (
    f"INSERT INTO pings ({_COLUMNS}) SELECT {_COLUMNS} FROM {_PG_STAGE} "
    f"ON CONFLICT (device_id, ts) DO NOTHING RETURNING device_id, ts"
)


def insert_pings(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[tuple[str, float]]:
    """Insert pings, skipping (device_id, ts) already stored; return the keys newly stored."""
    return insert_ping_rows(conn, [tuple(r[c] for c in PING_COLUMNS) for r in rows])


def insert_ping_rows(conn: Connection, rows: Sequence[PingRow]) -> set[tuple[str, float]]:
    """:func:`insert_pings` for rows given as tuples of the :data:`PING_COLUMNS` values (no
    dict per ping). Of two rows with the same (device_id, ts) in ``rows``, one is stored."""
    if not rows:
        return set()
    if conn.dialect.name != "postgresql":
        stmt = (_insert(conn, PINGS).on_conflict_do_nothing(index_elements=["device_id", "ts"])
                .returning(PINGS.c.device_id, PINGS.c.ts))
        params = [dict(zip(PING_COLUMNS, r, strict=True)) for r in rows]
        try:
            return {(r[0], r[1]) for r in conn.execute(stmt, params)}
        except OverflowError as exc:  # sqlite3 binds no integer beyond 64 bits (a seq of 2**63)
            raise exc_mod.DataError(str(stmt), None, exc) from exc
    if len(rows) < COPY_MIN_ROWS:
        arrays = [list(column) for column in zip(*rows, strict=True)]
        return _pg_driver(conn, _PG_INSERT_PINGS, arrays, lambda cursor: set(
            cursor.execute(_PG_INSERT_PINGS, arrays).fetchall()))

    def staged(cursor) -> set[tuple[str, float]]:
        cursor.execute(_PG_CREATE_STAGE)
        with cursor.copy(_PG_COPY_STAGE) as copy:
            copy.set_types(_PG_COLUMN_TYPES)
            write = copy.write_row
            for row in rows:
                write(row)
        return set(cursor.execute(_PG_INSERT_STAGED).fetchall())

    return _pg_driver(conn, _PG_COPY_STAGE, None, staged)


def _pg_driver(conn: Connection, statement: str, params: Any, work):
    """Run ``work(cursor)`` on psycopg's own cursor of ``conn`` (COPY has no SQLAlchemy API),
    raising what the driver raises as SQLAlchemy does (``DataError``, ``IntegrityError``, …): the
    pipeline keeps a message the database refuses as a reject by catching those.

    A value the binary COPY cannot even encode is a ``DataError`` too: an integer beyond
    ``bigint`` (a ``seq`` of 2**63, which JSON allows) or a string that is not valid Unicode.
    Over arrays the same values reach PostgreSQL, which refuses them with a ``DataError``.
    """
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        return work(cursor)
    except dbapi.Error as exc:
        raise exc_mod.DBAPIError.instance(statement, params, exc, dbapi.Error) from exc
    except (OverflowError, UnicodeError) as exc:
        raise exc_mod.DataError(statement, params, exc) from exc
    finally:
        cursor.close()


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


_LIVE_COLUMNS = ("vehicle_id", "device_id", "ts", "lat", "lon", "speed_kmh", "heading_deg",
                 "received_at")
_PG_UPSERT_LIVE = (
    f"INSERT INTO live_positions ({', '.join(_LIVE_COLUMNS)}) SELECT * FROM unnest("
    "%s::text[], %s::text[], %s::float8[], %s::float8[], %s::float8[], %s::float8[], "
    "%s::float8[], %s::float8[]) ON CONFLICT (vehicle_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _LIVE_COLUMNS[1:])
    + " WHERE live_positions.ts < excluded.ts"
)


# the channel on which a commit that moved a live position is announced (backend.streams.runner)
LIVE_CHANNEL = "xiaoche_live"
_NOTIFY_LIVE = f"NOTIFY {LIVE_CHANNEL}"


def upsert_live_positions(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Move each vehicle's live position only forward in the device's own time."""
    rows = list(rows)
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        # one statement for the batch, vehicles in id order (two ingest processes lock the rows
        # they share in the same order); one row per vehicle, its newest, as a statement may
        # update a row only once
        newest = newest_per_key(rows, key=itemgetter("vehicle_id"), ts=itemgetter("ts"))
        arrays = [[newest[v][c] for v in sorted(newest)] for c in _LIVE_COLUMNS]
        _pg_driver(conn, _PG_UPSERT_LIVE, arrays,
                   lambda cursor: cursor.execute(_PG_UPSERT_LIVE, arrays))
        # the API processes' stream hubs LISTEN: delivered at commit, once per transaction
        _pg_driver(conn, _NOTIFY_LIVE, (), lambda cursor: cursor.execute(_NOTIFY_LIVE))
        return
    ins = _insert(conn, LIVE)
    columns = ("device_id", "ts", "lat", "lon", "speed_kmh", "heading_deg", "received_at")
    stmt = ins.on_conflict_do_update(
        index_elements=["vehicle_id"],
        set_={c: ins.excluded[c] for c in columns},
        where=LIVE.c.ts < ins.excluded.ts,
    )
    conn.execute(stmt, rows)


RECENT_FIX_S = 2 * 86400  # where latest_fixes looks first


def latest_fixes(conn: Connection, device_ids: Iterable[str], now: float | None = None
                 ) -> dict[str, tuple[float, float, float]]:
    """(ts, lat, lon) of the newest stored ping of each device, for the jump filter's cold start.

    Looked up in the last ``RECENT_FIX_S`` first, then over everything only for the devices not
    found there: the same answer (a device with a ping in the window has its newest there), but
    on PostgreSQL's daily partitions the first read touches two or three partitions instead of
    every one of a year's."""
    ids = sorted(set(device_ids))
    if not ids:
        return {}
    since = (time.time() if now is None else now) - RECENT_FIX_S
    found = _newest_fixes(conn, ids, since)
    rest = [i for i in ids if i not in found]
    if rest:
        found.update(_newest_fixes(conn, rest, None))
    return found


def _newest_fixes(conn: Connection, ids: list[str], since: float | None
                  ) -> dict[str, tuple[float, float, float]]:
    where = [PINGS.c.device_id.in_(ids)]
    if since is not None:
        where.append(PINGS.c.ts >= since)
    newest = (select(PINGS.c.device_id, func.max(PINGS.c.ts).label("ts"))
              .where(*where).group_by(PINGS.c.device_id).subquery())
    query = select(PINGS.c.device_id, PINGS.c.ts, PINGS.c.lat, PINGS.c.lon).where(
        *where[1:], tuple_(PINGS.c.device_id, PINGS.c.ts).in_(
            select(newest.c.device_id, newest.c.ts)))
    return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(query)}


class SqlTransaction:
    """One batch's transaction on ``conn`` (``gps_ingest.ports.StoreTransaction``)."""

    def __init__(self, conn: Connection) -> None:
        self.connection = conn

    def latest_fixes(self, device_ids: Iterable[str]) -> dict[str, tuple[float, float, float]]:
        return latest_fixes(self.connection, device_ids)

    def live_fixes(self, device_ids: Iterable[str]) -> dict[str, tuple[float, float, float]]:
        ids = sorted(set(device_ids))
        if not ids:
            return {}
        rows = self.connection.execute(select(LIVE.c.device_id, LIVE.c.ts, LIVE.c.lat, LIVE.c.lon)
                                       .where(LIVE.c.device_id.in_(ids)))
        found: dict[str, tuple[float, float, float]] = {}
        for device_id, ts, lat, lon in rows:  # a device on two vehicles' rows: its newest
            if device_id not in found or ts > found[device_id][0]:
                found[device_id] = (ts, lat, lon)
        return found

    def insert_pings(self, rows: Sequence[PingRow]) -> set[tuple[str, float]]:
        return insert_ping_rows(self.connection, rows)

    def insert_scans(self, rows: Sequence[dict[str, Any]]) -> set[tuple[float, str]]:
        return insert_scans(self.connection, rows)

    def insert_rejects(self, rows: Sequence[dict[str, Any]]) -> None:
        insert_rejects(self.connection, rows)

    def upsert_live_positions(self, rows: Iterable[dict[str, Any]]) -> None:
        upsert_live_positions(self.connection, rows)


class SqlStore:
    """``gps_ingest.ports.IngestStore`` on a database: one transaction per batch, what the
    database refuses (``DataError``, ``IntegrityError``, in the steps after storage too) raised
    as ``StorageRefused``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        try:
            with self.engine.begin() as conn:
                yield SqlTransaction(conn)
        except (exc_mod.DataError, exc_mod.IntegrityError) as exc:
            raise StorageRefused(str(exc.orig), type(exc.orig).__name__) from exc
