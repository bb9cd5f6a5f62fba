"""A named lease in the database: at most one process holds it at a time (``scheduler_leases``).

``xiaoche scheduler`` (and ``serve``) run the clock jobs only while holding the ``scheduler``
lease, so starting two schedulers — by mistake, or as a hot standby — runs each job once.

Every change is one atomic statement whose row count says who won, which is correct under
concurrency on SQLite (one writer at a time) and on PostgreSQL (a concurrent UPDATE of the same
row waits for the first one and then re-checks its WHERE clause on the row the first one wrote;
``INSERT … ON CONFLICT DO NOTHING`` waits for a concurrent insert of the same key and skips).

Times are epoch seconds from each process's own clock: hosts that share a lease must keep their
clocks in sync (NTP) to well within the renewal interval (a third of the lease).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import case, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from backend.models.outbox import SchedulerLease

log = logging.getLogger(__name__)

_LEASES = SchedulerLease.__table__


def default_holder() -> str:
    """``host:pid:random``: unique per process start, readable in the table and the logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseState:
    holder: str
    acquired_at: float
    expires_at: float


class Lease:
    """One named lease held by ``holder`` for ``ttl_s`` seconds after each acquire or renewal.

    Parameters
    ----------
    engine : Engine
        Where ``scheduler_leases`` is (each call runs in a transaction of its own).
    name : str
        The lease's name: processes competing for the same work use the same one.
    holder : str, optional
        Who asks (default: ``host:pid:random``).
    ttl_s : float
        How long the lease lasts without a renewal: how soon a standby takes over after the
        holder crashed.
    """

    def __init__(self, engine: Engine, name: str = "scheduler", holder: str | None = None,
                 ttl_s: float = 30.0):
        if ttl_s <= 0:
            raise ValueError(f"a lease must last a while, not {ttl_s} s")
        self.engine = engine
        self.name = name
        self.holder = holder or default_holder()
        self.ttl_s = float(ttl_s)

    def try_acquire(self, now: float | None = None) -> bool:
        """Take the lease if nobody holds it, it expired, or it is already ours (then renew it).

        Returns whether we hold it now.
        """
        now = time.time() if now is None else now
        expires = now + self.ttl_s
        take = (
            update(_LEASES)
            .where(_LEASES.c.name == self.name)
            .where((_LEASES.c.expires_at < now) | (_LEASES.c.holder == self.holder))
            .values(holder=self.holder, expires_at=expires,
                    acquired_at=case((_LEASES.c.holder == self.holder, _LEASES.c.acquired_at),
                                     else_=now))
        )
        with self.engine.begin() as conn:
            # Taken over (expired) or renewed (ours); else insert it unless someone holds it.
            # On SQLite the UPDATE takes the write lock even when it matches nothing, so the
            # INSERT needs no lock upgrade that could fail with SQLITE_BUSY.
            if conn.execute(take).rowcount == 1:
                return True
            return self._insert_if_absent(conn, now, expires)

    def _insert_if_absent(self, conn, now: float, expires: float) -> bool:
        row = {"name": self.name, "holder": self.holder, "acquired_at": now,
               "expires_at": expires}
        dialect = conn.dialect.name
        if dialect in ("postgresql", "sqlite"):
            module = postgresql if dialect == "postgresql" else sqlite
            # RETURNING, not the row count: drivers report -1 for an INSERT (psycopg)
            stmt = module.insert(_LEASES).values(row).on_conflict_do_nothing(
                index_elements=[_LEASES.c.name]).returning(_LEASES.c.name)
            return conn.execute(stmt).first() is not None
        try:  # other databases: a savepoint so a lost race does not end the transaction
            with conn.begin_nested():
                conn.execute(insert(_LEASES).values(row))
        except IntegrityError:
            return False
        return True

    def renew(self, now: float | None = None) -> bool:
        """Extend our lease; ``False`` when another process holds it now (we lost it)."""
        now = time.time() if now is None else now
        stmt = (update(_LEASES)
                .where(_LEASES.c.name == self.name, _LEASES.c.holder == self.holder)
                .values(expires_at=now + self.ttl_s))
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def release(self) -> bool:
        """Give the lease up (a standby may take it at once); ``False`` if it was not ours."""
        stmt = delete(_LEASES).where(_LEASES.c.name == self.name,
                                     _LEASES.c.holder == self.holder)
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def expire(self, now: float | None = None) -> bool:
        """Let the lease lapse now but keep its row (its holder's name stays readable): unlike
        :meth:`release`, which removes it, for work that others take over once it expired."""
        now = time.time() if now is None else now
        stmt = (update(_LEASES)
                .where(_LEASES.c.name == self.name, _LEASES.c.holder == self.holder)
                .values(expires_at=now - 0.001))
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def current(self) -> LeaseState | None:
        """Who holds (or last held) the lease, and until when; ``None`` if nobody does."""
        stmt = select(_LEASES.c.holder, _LEASES.c.acquired_at, _LEASES.c.expires_at).where(
            _LEASES.c.name == self.name)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else LeaseState(row.holder, row.acquired_at, row.expires_at)


class LeaseKeeper:
    """A thread that competes for a lease and keeps it: tries to acquire every ``ttl/3`` while
    on standby, renews every ``ttl/3`` while holding.

    ``on_acquired()`` is called when the lease is won, ``on_lost()`` as soon as it is lost: a
    renewal found another holder, or renewals failed (database unreachable) for so long that the
    lease may expire before the next attempt. ``stop()`` calls ``on_lost()`` if the lease is held;
    the caller releases the lease once its work has stopped.
    """

    def __init__(self, lease: Lease, on_acquired: Callable[[], None],
                 on_lost: Callable[[], None], clock: Callable[[], float] = time.time,
                 label: str = "scheduler"):
        self.lease = lease
        self.on_acquired = on_acquired
        self.on_lost = on_lost
        self.clock = clock
        self.label = label
        self.interval_s = lease.ttl_s / 3
        self.holding = False
        self._held_until = 0.0
        self._seen_holder: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{lease.name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop competing; our work is paused (``on_lost``) but the lease is kept until
        ``release()``."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.holding:
            self.holding = False
            self.on_lost()

    def release(self) -> None:
        try:
            if self.lease.release():
                log.info("%s: released the lease", self.label)
        except SQLAlchemyError as exc:
            log.warning("%s: could not release the lease (it expires by itself): %s",
                        self.label, exc)

    def _run(self) -> None:
        while True:
            try:
                self.step()
            except Exception:  # noqa: BLE001  (the keeper must outlive any one failure)
                log.exception("%s: lease step failed", self.label)
            if self._stop.wait(self.interval_s):
                return

    def step(self) -> None:
        """One round: renew if holding, else try to acquire."""
        now = self.clock()
        if self.holding:
            self._renew(now)
        else:
            self._acquire(now)

    def _renew(self, now: float) -> None:
        try:
            renewed = self.lease.renew(now)
        except SQLAlchemyError as exc:
            if now + self.interval_s < self._held_until:
                log.warning("%s: could not renew the lease (held until %s): %s", self.label,
                            _when(self._held_until), exc)
                return
            log.warning("%s: could not renew the lease before it expires; pausing: %s",
                        self.label, exc)
            renewed = False
        if renewed:
            self._held_until = now + self.lease.ttl_s
            return
        self.holding = False
        log.info("%s: lost the lease; jobs paused", self.label)
        self.on_lost()

    def _acquire(self, now: float) -> None:
        try:
            won = self.lease.try_acquire(now)
        except SQLAlchemyError as exc:
            log.warning("%s: could not reach the lease table: %s", self.label, exc)
            return
        if won:
            self.holding = True
            self._held_until = now + self.lease.ttl_s
            self._seen_holder = None
            log.info("%s: holding the lease (as %s)", self.label, self.lease.holder)
            try:
                self.on_acquired()
            except Exception:
                log.exception("%s: could not start the jobs; giving the lease up", self.label)
                self.holding = False
                self.on_lost()
                self.release()
            return
        state = self.lease.current()
        holder = state.holder if state else None
        if holder != self._seen_holder:
            self._seen_holder = holder
            until = _when(state.expires_at) if state else "?"
            log.info("standby: %s %s holds the lease until %s", self.label, holder, until)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def leases_named(engine: Engine, prefix: str) -> dict[str, LeaseState]:
    """Every lease whose name starts with ``prefix``, by name (held, expired or handed back)."""
    stmt = select(_LEASES.c.name, _LEASES.c.holder, _LEASES.c.acquired_at,
                  _LEASES.c.expires_at).where(_LEASES.c.name.startswith(prefix, autoescape=True))
    with engine.connect() as conn:
        return {row.name: LeaseState(row.holder, row.acquired_at, row.expires_at)
                for row in conn.execute(stmt)}
