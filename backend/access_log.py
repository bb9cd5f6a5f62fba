"""The access log (issue 17): who read which child's route, and when — for a privacy review.

Recorded: every answered read of live positions — ``GET /routes/{id}/live`` (the Flask view
and the WSGI fast path alike), every ``/stream`` opened, ``GET /vehicles/live`` — and of stored
tracks: ``GET /trips/{id}/track`` (with the trip's route), ``GET /vehicles/{id}/track``. A read costs
the request a dictionary update under a lock (no I/O): reads are gathered per process and
written by a background thread every ``XIAOCHE_ACCESS_LOG_FLUSH_S`` seconds, in one transaction,
one row per (user, kind, route) and interval with the first and last read's time and their
count — a parent's app polling ``/live`` every 5 s costs one row a flush, not one a request.
The username and role are looked up once per flush, not per read.

What a crash may lose: the reads of the last interval of a process killed with ``-9`` (a clean
exit writes them). Rows are kept as long as the raw pings are (``XIAOCHE_RETENTION_DAYS``,
``backend.retention``), and exported by ``xiaoche report access`` and
``GET /api/v1/audit/access`` (admin only).
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import threading
import time
import weakref
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import Engine, insert, select

from backend.finance_export import Column, Sheet, local_ts
from backend.models import AccessEntry, District, User

log = logging.getLogger(__name__)

KINDS = {"route_live": ("线路实时位置", "route live position"),
         "stream": ("实时推送连接", "live stream opened"),
         "vehicles_live": ("车辆实时位置列表", "vehicles' live positions"),
         "trip_track": ("行程轨迹", "a trip's track"),
         "vehicle_track": ("车辆轨迹", "a vehicle's track")}
ROLES = {"parent": ("家长", "parent"), "driver": ("司机", "driver"),
         "teacher": ("教师", "teacher"), "logistics": ("后勤", "logistics"),
         "finance": ("财务", "finance"), "admin": ("管理员", "admin")}
_EXTENSION = "xiaoche.access_log"
#: pending keys past which reads are counted as lost instead of kept (a database down for long)
MAX_PENDING = 200_000

Key = tuple[int, str, str | None]  # user_id, kind, route_id


class AccessLog:
    """One process's pending reads of one app, and the thread that writes them."""

    def __init__(self, app: Flask, flush_s: float) -> None:
        self.app = app
        self.flush_s = flush_s
        self._lock = threading.Lock()
        self._pending: dict[Key, list[float]] = {}  # key → [first_at, last_at, reads]
        self._pid = -1  # the process whose flusher knows it (a forked worker starts its own)
        self.next_flush = 0.0
        self.lost = 0

    def record(self, user_id: int, kind: str, route_id: str | None = None,
               now: float | None = None) -> None:
        now = time.time() if now is None else now
        key = (user_id, kind, route_id)
        with self._lock:
            hit = self._pending.get(key)
            if hit is not None:
                hit[1] = max(hit[1], now)
                hit[2] += 1
            elif len(self._pending) < MAX_PENDING:
                self._pending[key] = [now, now, 1]
            else:
                self.lost += 1
            if self._pid != os.getpid():
                self._pid = os.getpid()
                _flusher().add(self)

    def flush(self) -> int:
        """Write what is pending now; returns the rows written. On a failure the reads are put
        back (merged with those recorded meanwhile) and the error raised."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            with self.app.app_context():
                from backend.extensions import db

                _write(db.engine, pending)
        except Exception:
            with self._lock:
                for key, (first, last, reads) in pending.items():
                    hit = self._pending.setdefault(key, [first, last, 0])
                    hit[0], hit[1] = min(hit[0], first), max(hit[1], last)
                    hit[2] += reads
            raise
        return len(pending)


class _Flusher:
    """The one thread of a process that writes every app's pending reads on time. It holds the
    logs weakly, so an app dropped (a test's) is not kept alive by it."""

    TICK_S = 0.5

    def __init__(self) -> None:
        self.logs: weakref.WeakSet[AccessLog] = weakref.WeakSet()
        self.lock = threading.Lock()
        threading.Thread(target=self._run, name="access-log", daemon=True).start()
        atexit.register(self.flush_all)

    def add(self, access_log: AccessLog) -> None:
        with self.lock:
            access_log.next_flush = time.monotonic() + access_log.flush_s
            self.logs.add(access_log)

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK_S)
            now = time.monotonic()
            with self.lock:
                due = [a for a in self.logs if a.flush_s > 0 and a.next_flush <= now]
            for access_log in due:
                access_log.next_flush = now + access_log.flush_s
                try:
                    access_log.flush()
                except Exception:  # noqa: BLE001 — kept pending; tried again next interval
                    log.exception("access log: write failed; kept for the next try")

    def flush_all(self) -> None:
        with self.lock:
            logs = list(self.logs)
        for access_log in logs:
            try:
                access_log.flush()
            except Exception:  # noqa: BLE001 — exiting: say so, nothing more to do
                log.exception("access log: %d reads not written at exit",
                              len(access_log._pending))


_FLUSHER: tuple[int, _Flusher] | None = None
_FLUSHER_LOCK = threading.Lock()


def _flusher() -> _Flusher:
    """This process's flusher (a forked child makes its own: threads do not survive a fork)."""
    global _FLUSHER
    with _FLUSHER_LOCK:
        if _FLUSHER is None or _FLUSHER[0] != os.getpid():
            _FLUSHER = (os.getpid(), _Flusher())
        return _FLUSHER[1]


def _write(engine: Engine, pending: dict[Key, list[float]]) -> None:
    with engine.begin() as conn:
        users = {uid: (name, role) for uid, name, role in conn.execute(
            select(User.id, User.username, User.role).where(
                User.id.in_(sorted({k[0] for k in pending}))))}
        conn.execute(insert(AccessEntry), [
            {"user_id": uid, "username": users.get(uid, ("", ""))[0],
             "role": users.get(uid, ("", ""))[1], "kind": kind, "route_id": route_id,
             "first_at": first, "last_at": last, "reads": int(reads)}
            for (uid, kind, route_id), (first, last, reads) in pending.items()])


def access_log_of(app: Flask) -> AccessLog:
    log_ = app.extensions.get(_EXTENSION)
    if log_ is None:
        app = getattr(app, "_get_current_object", lambda: app)()  # not current_app's proxy
        log_ = app.extensions.setdefault(_EXTENSION, AccessLog(
            app, float(app.config.get("ACCESS_LOG_FLUSH_S", 5.0))))
    return log_


def forget_access_log(app: Flask) -> None:
    """Drop the app's unwritten reads and its log (a test's app at its end: its database is
    about to be emptied or dropped, and the next test's must not receive them)."""
    access_log = app.extensions.pop(_EXTENSION, None)
    if access_log is not None:
        with access_log._lock:
            access_log._pending.clear()
        if _FLUSHER is not None:
            with _FLUSHER[1].lock:
                _FLUSHER[1].logs.discard(access_log)


def record_access(app: Flask, user_id: int, kind: str, route_id: str | None = None) -> None:
    """Note one read by ``user_id`` (see the module's docstring); never raises into a request."""
    try:
        access_log_of(app).record(user_id, kind, route_id)
    except Exception:  # noqa: BLE001 — the answer is more urgent than its log line
        log.exception("access log: a read was not recorded")


def entries(since: float, until: float, username: str | None = None) -> list[AccessEntry]:
    """The rows whose reads fall in ``[since, until)``, oldest first (app context)."""
    from backend.extensions import db

    query = select(AccessEntry).where(AccessEntry.last_at >= since,
                                      AccessEntry.first_at < until)
    if username is not None:
        query = query.where(AccessEntry.username == username)
    return list(db.session.scalars(query.order_by(AccessEntry.first_at, AccessEntry.id)))


def district_zone() -> ZoneInfo:
    from backend.extensions import db

    return ZoneInfo(db.session.scalar(select(District.timezone).order_by(District.id))
                    or "Asia/Shanghai")


def day_window(first: dt.date, last: dt.date, zone: ZoneInfo) -> tuple[float, float]:
    """Epoch seconds of local ``first`` 00:00 to local ``last`` + 1 day 00:00."""
    start = dt.datetime.combine(first, dt.time(), zone)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), zone)
    return start.timestamp(), end.timestamp()


COLUMNS = (  # a text column first: the totals row writes 合计 (Total) there
    Column("username", "用户", "User"),
    Column("role", "角色", "Role", labels=ROLES),
    Column("kind", "读取内容", "What was read",
           labels={k: v for k, v in KINDS.items()}),
    Column("route_id", "线路", "Route"),
    Column("first_at", "首次读取", "First read", "time"),
    Column("last_at", "最后读取", "Last read", "time"),
    Column("reads", "次数", "Reads", "int", total=True),
)


def access_sheet(rows: list[AccessEntry], first: dt.date, last: dt.date,
                 zone: ZoneInfo) -> Sheet:
    out: list[dict[str, Any]] = [
        {"first_at": local_ts(r.first_at, zone), "last_at": local_ts(r.last_at, zone),
         "username": r.username, "role": r.role, "kind": r.kind,
         "route_id": r.route_id or "",
         "reads": r.reads} for r in rows]
    span = f"{first.isoformat()}–{last.isoformat()}"
    return Sheet(f"访问日志 {span}", f"Access log {span}", COLUMNS, out)
