"""backend.live_service.TtlCache: one load per key at a time, its waiters take its value."""

from __future__ import annotations

import threading

import pytest

from backend.live_service import TtlCache


def _gate_load(value, started: threading.Event, release: threading.Event, calls: list):
    def load():
        calls.append(threading.get_ident())
        started.set()
        assert release.wait(10)
        return value
    return load


def _run(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.start()


def test_callers_that_miss_while_a_load_runs_take_its_value():
    cache, calls, results = TtlCache(60.0), [], []
    started, release = threading.Event(), threading.Event()
    leader = threading.Thread(target=lambda: results.append(
        cache.get("k", _gate_load("answer", started, release, calls))))
    leader.start()
    assert started.wait(10)
    waiters = [threading.Thread(target=lambda: results.append(
        cache.get("k", lambda: calls.append("again") or "other"))) for _ in range(20)]
    _run(waiters)
    release.set()
    for t in [leader, *waiters]:
        t.join(10)
    assert results == ["answer"] * 21 and len(calls) == 1
    assert cache.get("k", lambda: "later") == "answer"  # and it is cached


def _loading(cache: TtlCache, key: str) -> tuple[threading.Thread, threading.Event]:
    """A thread loading ``key`` until the returned event is set (the load has begun)."""
    started, release = threading.Event(), threading.Event()
    leader = threading.Thread(target=cache.get, args=(key, _gate_load("a", started, release,
                                                                      [])))
    leader.start()
    assert started.wait(10)
    return leader, release


def test_a_caller_that_may_not_wait_loads_itself():
    cache = TtlCache(60.0)
    leader, release = _loading(cache, "k")
    assert cache.get("k", lambda: "its own", wait=False) == "its own"  # while the load runs
    release.set()
    leader.join(10)


def test_when_the_load_fails_its_waiters_load_themselves_and_it_raises():
    cache = TtlCache(60.0)
    started, release = threading.Event(), threading.Event()
    errors, results = [], []

    def failing():
        started.set()
        assert release.wait(10)
        raise RuntimeError("database went away")

    def lead():
        try:
            cache.get("k", failing)
        except RuntimeError as exc:
            errors.append(exc)

    leader = threading.Thread(target=lead)
    leader.start()
    assert started.wait(10)
    waiter = threading.Thread(target=lambda: results.append(cache.get("k", lambda: "retried")))
    waiter.start()
    release.set()
    leader.join(10)
    waiter.join(10)
    assert len(errors) == 1 and results == ["retried"]
    assert cache.get("k", lambda: "fresh") in ("retried", "fresh")


def test_other_keys_never_wait_for_a_load():
    cache = TtlCache(60.0)
    leader, release = _loading(cache, "k")
    assert cache.get("other", lambda: "b") == "b"
    release.set()
    leader.join(10)


@pytest.mark.parametrize("ttl_s", [0.0])
def test_an_expired_entry_is_loaded_again(ttl_s):
    cache = TtlCache(ttl_s)
    assert cache.get("k", lambda: 1) == 1
    assert cache.get("k", lambda: 2) == 2
