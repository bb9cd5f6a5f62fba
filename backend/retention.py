"""Retention (issue 17): raw positions are personal information (PIPL) and are not kept longer
than the district's policy, ``XIAOCHE_RETENTION_DAYS``.

What goes: the raw pings, the card scans, the reject log (it holds payload heads) and the access
log (who read which route: personal information too) older than that many days by their own
time. What stays: everything derived from them that the district must keep — trip audits, the
tracker's events, the subsidy ledger, meal audits, notifications, each vehicle's latest position.

On PostgreSQL ``pings`` is partitioned by UTC day (``backend.ping_partitions``): every day
partition that ends before the cutoff is dropped whole — no row-by-row delete, no bloat, no
vacuum. What remains older than the cutoff (the part of the day that straddles it, and rows in
the default partition) is deleted as on SQLite: in small transactions, one device-day of pings at
a time, by the ``(device_id, ts)`` index, so the ingest is never held up for long.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine, delete, func, select

from backend.models import AccessEntry, Device, Ping, Reject, Scan
from backend.ping_partitions import drop_days_before

log = logging.getLogger(__name__)

DAY_S = 86400.0


@dataclass
class Purged:
    cutoff: float
    counts: dict[str, int] = field(default_factory=lambda: {"pings": 0, "scans": 0,
                                                             "rejects": 0, "access_log": 0})
    partitions_dropped: int = 0  # PostgreSQL: whole days of pings (their rows are in counts)

    def line(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.cutoff))
        return (f"retention: removed what is older than {stamp}: "
                + ", ".join(f"{k} {v}" for k, v in self.counts.items())
                + f" ({self.partitions_dropped} day partitions of pings dropped)")


def purge(engine: Engine, days: float, now: float | None = None) -> Purged:
    """Delete raw pings, scans and rejects older than ``days`` (> 0) before ``now``."""
    if days <= 0:
        raise ValueError("retention needs a number of days above 0")
    now = time.time() if now is None else now
    out = Purged(now - days * DAY_S)
    out.partitions_dropped, out.counts["pings"] = drop_days_before(engine, out.cutoff)
    with engine.connect() as conn:
        devices = list(conn.execute(select(Device.id).order_by(Device.id)).scalars())
    for device_id in devices:
        out.counts["pings"] += _purge_device(engine, device_id, out.cutoff)
    with engine.begin() as conn:
        out.counts["scans"] = conn.execute(delete(Scan).where(Scan.ts < out.cutoff)).rowcount
    with engine.begin() as conn:
        out.counts["rejects"] = conn.execute(
            delete(Reject).where(Reject.received_at < out.cutoff)).rowcount
    with engine.begin() as conn:
        out.counts["access_log"] = conn.execute(
            delete(AccessEntry).where(AccessEntry.last_at < out.cutoff)).rowcount
    log.info(out.line())
    return out


def _purge_device(engine: Engine, device_id: str, cutoff: float) -> int:
    """One device's pings before ``cutoff``, a day per transaction (oldest first)."""
    with engine.connect() as conn:
        oldest = conn.execute(select(func.min(Ping.ts)).where(Ping.device_id == device_id)
                              ).scalar()
    removed = 0
    while oldest is not None and oldest < cutoff:
        until = min(oldest + DAY_S, cutoff)
        with engine.begin() as conn:
            removed += conn.execute(delete(Ping).where(Ping.device_id == device_id,
                                                       Ping.ts < until)).rowcount
        oldest = until if until < cutoff else None
    return removed
