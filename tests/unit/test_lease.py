"""The scheduler lease on the real test database, with explicit times: who may run the jobs."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine

from backend.extensions import db
from backend.lease import Lease, LeaseKeeper

T0 = 1_800_000_000.0
TTL = 30.0


@pytest.fixture
def engine(app):
    with app.app_context():
        yield db.engine


def lease(engine, holder: str, name: str = "scheduler") -> Lease:
    return Lease(engine, name=name, holder=holder, ttl_s=TTL)


def test_the_first_asker_gets_the_lease_and_a_second_is_refused(engine):
    a, b = lease(engine, "a"), lease(engine, "b")
    assert a.try_acquire(T0)
    state = a.current()
    assert (state.holder, state.acquired_at, state.expires_at) == ("a", T0, T0 + TTL)
    assert not b.try_acquire(T0 + 1)
    assert not b.try_acquire(T0 + TTL)  # expires_at itself still belongs to the holder
    assert a.current().holder == "a"


def test_acquiring_again_renews_and_keeps_the_start(engine):
    a = lease(engine, "a")
    assert a.try_acquire(T0)
    assert a.try_acquire(T0 + 10)
    state = a.current()
    assert (state.acquired_at, state.expires_at) == (T0, T0 + 10 + TTL)


def test_an_expired_lease_is_taken_over(engine):
    a, b = lease(engine, "a"), lease(engine, "b")
    assert a.try_acquire(T0)
    assert b.try_acquire(T0 + TTL + 0.001)
    state = b.current()
    assert (state.holder, state.acquired_at) == ("b", T0 + TTL + 0.001)
    # the old holder learns it on its next renewal, however late, and cannot take it back
    assert not a.renew(T0 + TTL + 1)
    assert not a.try_acquire(T0 + TTL + 1)
    assert b.current().holder == "b"


def test_renewing_extends_only_our_own_lease(engine):
    a, b = lease(engine, "a"), lease(engine, "b")
    assert not a.renew(T0)  # nobody holds it: renewing is not acquiring
    assert a.try_acquire(T0)
    assert a.renew(T0 + 10)
    assert not b.try_acquire(T0 + TTL + 5)  # renewed until T0 + 40
    assert a.current().expires_at == T0 + 10 + TTL
    assert not b.renew(T0 + 11)


def test_a_released_lease_is_free_at_once_and_only_its_holder_releases_it(engine):
    a, b = lease(engine, "a"), lease(engine, "b")
    assert a.try_acquire(T0)
    assert not b.release()
    assert a.current().holder == "a"
    assert a.release()
    assert a.current() is None
    assert b.try_acquire(T0 + 1)
    assert not a.renew(T0 + 2)


def test_leases_of_different_names_are_independent(engine):
    assert lease(engine, "a", name="one").try_acquire(T0)
    assert lease(engine, "b", name="two").try_acquire(T0)


def test_a_lease_must_last(engine):
    with pytest.raises(ValueError):
        Lease(engine, ttl_s=0)


def race(database_url: str, name: str, now: float, n: int = 8) -> list[str]:
    """``n`` threads, each with its own engine (its own connection), ask at the same moment."""
    barrier = threading.Barrier(n)
    winners: list[str] = []
    errors: list[BaseException] = []

    def contender(i: int) -> None:
        engine = create_engine(database_url, connect_args=connect_args(database_url))
        try:
            candidate = Lease(engine, name=name, holder=f"h{i}", ttl_s=TTL)
            engine.connect().close()  # connected before the start, so they really race
            barrier.wait()
            if candidate.try_acquire(now):
                winners.append(candidate.holder)
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return winners


def connect_args(url: str) -> dict:
    return {"timeout": 30} if url.startswith("sqlite") else {}


def test_racing_for_a_free_lease_has_exactly_one_winner(app):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    for round_ in range(5):
        winners = race(url, f"race-{round_}", T0)
        assert len(winners) == 1, winners


def test_racing_for_an_expired_lease_has_exactly_one_winner(app, engine):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    for round_ in range(5):
        name = f"expired-{round_}"
        assert lease(engine, "crashed", name=name).try_acquire(T0)
        winners = race(url, name, T0 + TTL + 1)
        assert len(winners) == 1, winners
        assert lease(engine, "x", name=name).current().holder == winners[0]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def keeper(self, engine, holder: str, clock) -> LeaseKeeper:
        return LeaseKeeper(lease(engine, holder), clock=clock,
                           on_acquired=lambda: self.calls.append(f"{holder} runs"),
                           on_lost=lambda: self.calls.append(f"{holder} pauses"))


def test_the_keeper_runs_the_jobs_only_while_holding_the_lease(engine, caplog):
    now = {"t": T0}
    calls = Recorder()
    a = calls.keeper(engine, "a", lambda: now["t"])
    b = calls.keeper(engine, "b", lambda: now["t"])
    caplog.set_level("INFO", logger="backend.lease")
    a.step()
    b.step()
    assert calls.calls == ["a runs"] and a.holding and not b.holding
    assert "scheduler: holding the lease" in caplog.text
    assert "standby: scheduler a holds the lease until" in caplog.text
    now["t"] += a.interval_s
    a.step()  # renewed
    b.step()
    assert calls.calls == ["a runs"]
    # a stalls (its host suspended) past its lease: b takes over, a pauses on its next round
    now["t"] += TTL + 1
    b.step()
    a.step()
    assert calls.calls == ["a runs", "b runs", "a pauses"]
    assert b.holding and not a.holding
    a.step()  # a is a standby now
    assert calls.calls == ["a runs", "b runs", "a pauses"]
    # a clean stop pauses the jobs; the release lets the standby take over at once
    b.stop()
    b.release()
    a.step()
    assert calls.calls == ["a runs", "b runs", "a pauses", "b pauses", "a runs"]


def test_the_keeper_pauses_before_its_lease_can_expire_when_the_database_is_away(engine):
    now = {"t": T0}
    calls = Recorder()
    a = calls.keeper(engine, "a", lambda: now["t"])
    a.step()
    good_renew = a.lease.renew

    def failing_renew(at=None):
        from sqlalchemy.exc import OperationalError

        raise OperationalError("UPDATE", {}, Exception("connection refused"))

    a.lease.renew = failing_renew
    now["t"] += a.interval_s
    a.step()  # one failed renewal: the lease still has two rounds to go
    assert calls.calls == ["a runs"] and a.holding
    now["t"] += a.interval_s
    a.step()  # the next round would be too late
    assert calls.calls == ["a runs", "a pauses"] and not a.holding
    a.lease.renew = good_renew
    now["t"] += a.interval_s
    a.step()  # still its lease (nobody took it): it runs again
    assert calls.calls == ["a runs", "a pauses", "a runs"]
