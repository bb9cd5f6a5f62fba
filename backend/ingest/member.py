"""Members of a shared subscription group: group-wide slots, and survivors that adopt the slot of
a member that died, so every slot's broker session always has a consumer.

**What the broker does** (measured against Mosquitto 2.0.11 on 127.0.0.1:1883, MQTT 5, QoS 1,
``$share/G/topic``, sessions with clean_start=False and an expiry): the broker hands each message of
the group to the next *session* of the group in turn, connected or not. When a member is killed
(kill -9, socket closed, no DISCONNECT), its session keeps its place in the rotation: of 200
messages published after the kill the survivor got 100, and six seconds later still 50 of 100.
Nothing is redispatched to the live members; a session that disconnected cleanly keeps its share
just the same. The queued messages are delivered when a client connects with the dead member's
client id (clean_start=False): all 150 came, in order, within a second. When a second client
connects with an id already connected, the broker closes the first one's socket (paho reports
reason 128, "unspecified error", not 0x8E "session taken over"), so "I was replaced" cannot be
told from "the network broke" by the reason code.

**The design.** A member's client id is ``{base}-{group}-{n}`` for a **slot** ``n`` of the group,
not of its host: slot ``n`` is the database lease ``ing:{group}:{n}`` (``backend.lease``,
``scheduler_leases``), which the member renews every ``ttl/3``. A member that starts takes the
lowest slot whose lease is free or expired — so a member restarted anywhere (another host, a
recreated container) takes a dead member's slot, and its queued session, back. Every member also
looks at the group's slots every ``ttl/3``: a slot whose lease has expired is **adopted** by the
first member that wins the slot's adoption lease ``ing:{group}:{n}:a`` — it opens a second MQTT
client with that slot's id, clean_start=False, drains the session into the same pipeline (acks
after commit as always) and stays connected, so the slot's share keeps being stored. The adopter
hands the slot back when its owner returns: it sees the slot's lease live again at its next look,
finishes and acks the batch in hand, disconnects and releases the adoption lease; the new owner
connects only after that (or after the adoption lease expired, if the adopter died too). An
adopted client never reconnects while the slot's lease is live, so an owner and an adopter never
take the id from each other in turn. A member that stops cleanly lets its slot's lease lapse at
once (the row stays), so a survivor adopts the slot without waiting for the ttl.

**Bound.** A message queued in a dead member's session is stored within
``ttl`` (its lease expiring) + ``ttl/3`` (the next look; one look more if the database was away
for longer than ``ttl``, when no lapsed lease tells a dead member) + a connect and the pipeline's
drain time;
``XIAOCHE_INGEST_SLOT_TTL_S`` (15 s by default) sets ``ttl``. Per-vehicle order in the database
is by timestamp; the tracker takes a late ping as the backlog it is (DESIGN, event time).

Times are each process's own clock: hosts of one group keep their clocks in sync (NTP), as for
the scheduler lease.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from backend.lease import Lease, LeaseState, default_holder, leases_named

log = logging.getLogger(__name__)

MAX_SLOTS = 256
NAME_MAX = 64  # scheduler_leases.name


class SlotClient(Protocol):
    """What a member runs for a slot (``MqttIngestClient``): started, and stopped cleanly."""

    def start(self) -> None: ...

    def stop(self, timeout: float = 10) -> None: ...


def _group_key(group: str) -> str:
    if len(f"ing:{group}:{MAX_SLOTS}:a") <= NAME_MAX:
        return group
    return hashlib.sha1(group.encode()).hexdigest()[:20]  # a long group name: its digest


class GroupMember:
    """This process's place in ``group``: its own slot, and the slots it adopted.

    Parameters
    ----------
    engine : Engine
        The database holding ``scheduler_leases``.
    base, group : str
        Client ids are ``{base}-{group}-{n}``.
    ttl_s : float
        How long a slot's lease lasts without renewal: how soon a dead member's slot is adopted.
    make_client : callable
        ``make_client(client_id, may_connect)`` → a :class:`SlotClient` for an adopted slot;
        ``may_connect()`` is False once the slot's owner is back (the client must then not
        reconnect).
    on_lost : callable
        Called (from the member's thread) when another process took this member's own slot:
        this process must stop, since two clients with one id take it from each other.
    """

    def __init__(self, engine: Engine, base: str, group: str, ttl_s: float,
                 make_client: Callable[[str, Callable[[], bool]], SlotClient],
                 on_lost: Callable[[], None] = lambda: None, holder: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if ttl_s <= 0:
            raise ValueError(f"XIAOCHE_INGEST_SLOT_TTL_S must be above 0, not {ttl_s}")
        self.engine = engine
        self.base = base
        self.group = group
        self.ttl_s = float(ttl_s)
        self.make_client = make_client
        self.on_lost = on_lost
        self.holder = holder or default_holder()
        self.clock = clock
        self._key = _group_key(group)
        self.slot: int | None = None
        self._own: Lease | None = None
        self._renewed_at: float | None = None  # when our own lease was last taken or renewed
        self.adopted: dict[int, tuple[Lease, SlotClient]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- names ---------------------------------------------------------------------------
    def slot_name(self, n: int) -> str:
        return f"ing:{self._key}:{n}"

    def client_id(self, n: int) -> str:
        return f"{self.base}-{self.group}-{n}"

    # --- own slot --------------------------------------------------------------------------
    def take_slot(self, wait_s: float | None = None) -> str:
        """Take the lowest free or expired slot; wait for its adopter (if any) to hand it back.

        Returns the client id to connect with.
        """
        for n in range(MAX_SLOTS):
            lease = Lease(self.engine, self.slot_name(n), self.holder, self.ttl_s)
            now = self.clock()
            if lease.try_acquire(now):
                self.slot, self._own, self._renewed_at = n, lease, now
                break
        else:
            raise RuntimeError(f"{MAX_SLOTS} members of group {self.group!r} are already live")
        self._await_adopter(self.slot, self.ttl_s + 2 if wait_s is None else wait_s)
        log.info("ingest group %s: slot %d (%s)", self.group, self.slot, self.client_id(self.slot))
        return self.client_id(self.slot)

    def _await_adopter(self, n: int, wait_s: float) -> None:
        """Until the adopter of slot ``n`` handed it back (released its adoption lease), or its
        adoption lease expired (the adopter is gone too), or ``wait_s`` passed."""
        adoption = Lease(self.engine, self.slot_name(n) + ":a", self.holder, self.ttl_s)
        deadline = time.monotonic() + wait_s
        while True:
            state = adoption.current()
            if state is None or state.expires_at < self.clock():
                return
            if time.monotonic() >= deadline:
                break
            self._renew_own()
            time.sleep(0.1)
        log.warning("ingest group %s: the adopter of slot %d did not hand it back within %.0f s; "
                    "connecting anyway", self.group, n, wait_s)

    def _renew_own(self) -> None:
        if self._own is None:
            return
        try:
            now = self.clock()
            if self._own.renew(now):
                self._renewed_at = now
                return
        except SQLAlchemyError as exc:  # the database is away: renew when it is back
            log.warning("ingest group %s: could not renew slot %s: %s", self.group, self.slot, exc)
            return
        log.error("ingest group %s: slot %s was taken by another member; stopping", self.group,
                  self.slot)
        self._own = None
        self.on_lost()

    # --- the member's thread ---------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"ingest-group-{self.group}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop looking and hand the adopted slots back (each client drains and acks); our own
        slot stays ours until :meth:`leave`, called once our own client has stopped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for n in list(self.adopted):
            self._give_back(n)

    def leave(self) -> None:
        """Let our slot's lease lapse now (the row stays), so a survivor adopts the slot at its
        next look rather than a ttl later: its session still gets its share of the stream."""
        if self._own is None:
            return
        try:
            self._own.expire()
        except SQLAlchemyError as exc:
            log.warning("ingest group %s: could not let slot %s lapse (it expires by itself in "
                        "%.0f s): %s", self.group, self.slot, self.ttl_s, exc)

    def _run(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the member must outlive any one failure
                log.exception("ingest group %s: step failed", self.group)

    def step(self) -> None:
        """One look: renew our slot and adoptions, hand back slots whose owner is back, adopt
        slots whose lease expired."""
        # our own lease had lapsed (the database was away for longer than the ttl): so had the
        # others', though their members are alive; give them a look of their own to renew first
        cut_off = self._renewed_at is not None and self.clock() - self._renewed_at > self.ttl_s
        self._renew_own()
        now = self.clock()
        try:
            leases = leases_named(self.engine, f"ing:{self._key}:")
        except SQLAlchemyError as exc:
            log.warning("ingest group %s: cannot read the slots: %s", self.group, exc)
            return
        for n, (lease, _client) in list(self.adopted.items()):
            owner = leases.get(self.slot_name(n))
            if owner is not None and owner.expires_at >= now:
                log.info("ingest group %s: slot %d's member is back; handing it over", self.group, n)
                self._give_back(n)
                self._renew_own()  # a hand-over may take a while: keep our own slot
            elif not lease.renew(now):
                log.warning("ingest group %s: lost the adoption of slot %d", self.group, n)
                self._give_back(n, release=False)
        if cut_off:
            log.info("ingest group %s: the slots could not be renewed for over %.0f s; adopting "
                     "none until the next look", self.group, self.ttl_s)
            return
        for name, state in leases.items():
            n = self._slot_number(name)
            if n is None or n == self.slot or n in self.adopted or state.expires_at >= now:
                continue
            if self._adopt(n, leases.get(name + ":a"), now):
                self._renew_own()

    def _slot_number(self, name: str) -> int | None:
        tail = name[len(f"ing:{self._key}:"):]
        return int(tail) if tail.isdigit() else None

    def _adopt(self, n: int, adoption_state: LeaseState | None, now: float) -> bool:
        """Adopt slot ``n`` unless a live member has already: whether we tried."""
        if adoption_state is not None and adoption_state.expires_at >= now:
            return False  # adopted by a live member already
        lease = Lease(self.engine, self.slot_name(n) + ":a", self.holder, self.ttl_s)
        if not lease.try_acquire(now):
            return False
        if not self._owner_away(n):
            # a member took the slot since our look and, seeing no adopter, connects with its
            # id: connecting too would throw it off the broker
            lease.release()
            return False
        client = self.make_client(self.client_id(n), lambda: self._owner_away(n))
        try:
            client.start()
        except Exception:
            log.exception("ingest group %s: could not adopt slot %d", self.group, n)
            lease.release()
            return True
        self.adopted[n] = (lease, client)
        log.warning("ingest group %s: adopted slot %d (%s) whose member is gone; draining its "
                    "session", self.group, n, self.client_id(n))
        return True

    def _owner_away(self, n: int) -> bool:
        """May the adopted client of slot ``n`` (re)connect: is the slot's lease still lapsed?"""
        try:
            state = Lease(self.engine, self.slot_name(n)).current()
        except SQLAlchemyError:
            return True  # unknown: keep draining (an owner waits for our adoption lease)
        return state is None or state.expires_at < self.clock()

    def _give_back(self, n: int, release: bool = True) -> None:
        lease, client = self.adopted.pop(n)
        try:
            client.stop()  # what it received is committed and acked; the rest stays queued
        finally:
            if release:
                try:
                    lease.release()
                except SQLAlchemyError as exc:
                    log.warning("ingest group %s: could not release the adoption of slot %d "
                                "(it expires by itself): %s", self.group, n, exc)

    @property
    def state(self) -> dict[str, Any]:
        return {"group": self.group, "slot": self.slot, "adopted": sorted(self.adopted)}
