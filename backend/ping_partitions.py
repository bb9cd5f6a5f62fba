"""``pings`` partitioned by day on PostgreSQL (issue 17): a county-year is ~800 M rows, and the
retention policy then drops whole days instead of deleting rows one by one.

Layout (migration ``0013``): ``pings`` is ``PARTITION BY RANGE (ts)`` — the device's own fix
time, epoch seconds — with one partition per UTC day, ``pings_pYYYYMMDD`` holding
``[day 00:00, next day 00:00)``, and a ``pings_default`` partition. Why ``ts`` and not
``received_at``: every read of pings is by ``ts`` (the audit reads a vehicle's service day, the
track export a window, the jump filter a device's newest fix), the dedupe key is
``(device_id, ts)`` — a unique constraint on a partitioned table must hold the partition key, and
this one already does, so ``ON CONFLICT (device_id, ts)`` is unchanged — and the retention
policy is stated on ``ts`` too. The primary key becomes ``(id, ts)`` for the same reason.

No insert ever fails for want of a partition: a ping of a day without one (a backlog older
than the partitions, a device clock far off) lands in ``pings_default``. The scheduler's
:func:`ensure_partitions` job creates the next ``XIAOCHE_PING_PARTITIONS_AHEAD_DAYS`` days every
hour, and when it creates a day whose rows already sit in the default partition it moves them
into the new table before attaching it (PostgreSQL refuses to attach a range the default
partition holds rows of). SQLite keeps one plain table: every function here is a no-op there.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, exc, text

log = logging.getLogger(__name__)

DAY_S = 86400
DEFAULT_PARTITION = "pings_default"
_NAME = re.compile(r"pings_p(\d{8})")
#: how long dropping or attaching a partition waits for the lock on ``pings``: a long reader (the
#: audit) is not killed; the job tries again at its next run
LOCK_TIMEOUT = "10s"


def is_partition_name(name: str) -> bool:
    """A table that is a partition of ``pings`` (not in the models; ``db check`` skips it)."""
    return name == DEFAULT_PARTITION or _NAME.fullmatch(name) is not None


def partition_name(day: int) -> str:
    """The partition of UTC day ``day`` (days since the epoch)."""
    return "pings_p" + time.strftime("%Y%m%d", time.gmtime(day * DAY_S))


def day_of_name(name: str) -> int:
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a day partition of pings")
    stamp = match.group(1)
    return int(_epoch(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:])) // DAY_S)


def _epoch(year: int, month: int, day: int) -> float:
    import calendar

    return calendar.timegm((year, month, day, 0, 0, 0))


def is_partitioned(conn: Connection) -> bool:
    """Whether ``pings`` is a partitioned table here (PostgreSQL after migration 0013)."""
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.execute(text(
        "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.relname = 'pings' AND c.relnamespace = to_regnamespace(current_schema())"
    )).first())


def day_partitions(conn: Connection) -> dict[int, str]:
    """The day partitions of ``pings`` in the current schema: {day: table name}."""
    names = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'pings' "
        "AND p.relnamespace = to_regnamespace(current_schema())")).scalars()
    return {day_of_name(n): n for n in names if _NAME.fullmatch(n)}


def create_day(conn: Connection, day: int) -> int:
    """Create the partition of ``day`` (in the caller's transaction), moving into it what the
    default partition holds of that day; returns the rows moved.

    Made as a table of its own and then attached: ``ATTACH PARTITION`` locks ``pings`` only
    against other schema changes (``SHARE UPDATE EXCLUSIVE``), so the ingest's inserts go on,
    where ``CREATE TABLE … PARTITION OF`` would lock them out while it waits for the lock. The
    default partition is locked for the moment of the attach (its rows are checked against the
    new range; it is small: only pings of days that had no partition). A lock not granted within
    :data:`LOCK_TIMEOUT` raises ``OperationalError``: the job tries again at its next run.
    """
    name, lo, hi = partition_name(day), day * DAY_S, (day + 1) * DAY_S
    conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    # inserts into the default partition wait from the move to the attach: a ping of the day
    # landing there in between would make the attach fail (it goes into the new day after)
    conn.execute(text(f"LOCK TABLE {DEFAULT_PARTITION} IN EXCLUSIVE MODE"))
    conn.execute(text(f"CREATE TABLE {name} (LIKE pings INCLUDING DEFAULTS)"))
    moved = conn.execute(text(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE ts >= {lo} AND ts < {hi} "
        f"RETURNING *) INSERT INTO {name} SELECT * FROM moved")).rowcount
    conn.execute(text(f"ALTER TABLE pings ATTACH PARTITION {name} "
                      f"FOR VALUES FROM ({lo}) TO ({hi})"))
    return max(int(moved or 0), 0)


@dataclass
class Ensured:
    created: int = 0
    moved: int = 0


def ensure_partitions(engine: Engine, days_ahead: int, now: float | None = None,
                      days_back: int = 1) -> Ensured:
    """Create the day partitions from ``days_back`` days before ``now``'s UTC day to
    ``days_ahead`` days after it that do not exist yet, one transaction each."""
    now = time.time() if now is None else now
    today = int(now // DAY_S)
    out = Ensured()
    with engine.connect() as conn:
        if not is_partitioned(conn):
            return out
        have = day_partitions(conn)
    for day in range(today - days_back, today + days_ahead + 1):
        if day in have:
            continue
        try:
            with engine.begin() as conn:
                out.moved += create_day(conn, day)
        except (exc.OperationalError, exc.IntegrityError):  # a lock not granted in time, or
            # rows of the day in the default partition after all: the next run makes it
            log.warning("pings: could not create %s now", partition_name(day), exc_info=True)
            continue
        out.created += 1
    if out.created:
        log.info("pings: %d day partitions created (%d rows moved out of %s)", out.created,
                 out.moved, DEFAULT_PARTITION)
    return out


def drop_days_before(engine: Engine, cutoff: float) -> tuple[int, int]:
    """Drop every day partition that ends at or before ``cutoff``: (partitions, rows) dropped.
    What is older than ``cutoff`` in a partition that straddles it, or in the default
    partition, is for the caller to delete."""
    with engine.connect() as conn:
        if not is_partitioned(conn):
            return 0, 0
        old = sorted(d for d in day_partitions(conn) if (d + 1) * DAY_S <= cutoff)
    dropped = rows = 0
    for day in old:
        name = partition_name(day)
        try:
            with engine.begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                count = conn.execute(text(f"SELECT count(*) FROM {name}")).scalar() or 0
                conn.execute(text(f"DROP TABLE {name}"))
        except exc.OperationalError:  # the lock not granted: its rows go by DELETE instead
            log.warning("pings: could not drop %s now; its rows are deleted instead", name,
                        exc_info=True)
            continue
        dropped += 1
        rows += int(count)
    return dropped, rows
