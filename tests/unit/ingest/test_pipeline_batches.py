"""Whatever order, duplication and batching the broker delivers a device's fixes in, each accepted
fix is stored once, the steps after storage see it once, and the live position is the newest."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.ingest.pipeline_world import fix, pings, world


@st.composite
def deliveries(draw):
    """(fixes, batches): n fixes of one bus, each sent 1-3 times, in any order, as messages of
    1-4 fixes, grouped into batches (one transaction each)."""
    n = draw(st.integers(1, 12))
    copies = [k for k in range(n) for _ in range(draw(st.integers(1, 3)))]
    order = draw(st.permutations(copies))
    messages = []
    rest = list(order)
    while rest:
        size = draw(st.integers(1, 4))
        messages.append(rest[:size])
        rest = rest[size:]
    batches = []
    while messages:
        size = draw(st.integers(1, 3))
        batches.append(messages[:size])
        messages = messages[size:]
    return n, batches


@settings(max_examples=150, deadline=None)
@given(deliveries())
def test_each_fix_is_stored_once_whatever_the_delivery(delivery):
    n, batches = delivery
    seen: list[float] = []
    pipeline, store = world(after_store=[lambda conn, stored: seen.extend(s.ping.ts for s in stored)])
    accepted = duplicates = 0
    rejected: list[str] = []
    for batch in batches:
        results = pipeline.process([pings("bus-07", [fix(k) for k in message])
                                    for message in batch])
        accepted += sum(r.accepted for r in results)
        duplicates += sum(r.duplicates for r in results)
        rejected += [x.reason for r in results for x in r.rejected]
    sent = sum(len(message) for batch in batches for message in batch)
    assert sorted(ts for _, ts in store.tables.pings) == [fix(k)["ts"] for k in range(n)]
    assert sorted(seen) == [fix(k)["ts"] for k in range(n)]  # the steps see each fix once
    assert accepted == n
    assert set(rejected) <= {"duplicate"}  # a twin inside one message
    assert accepted + duplicates + len(rejected) == sent
    assert store.tables.live["veh-07"]["ts"] == fix(n - 1)["ts"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=20), st.integers(1, 5))
def test_a_jump_is_refused_whichever_batch_it_arrives_in(order, jump_at):
    """A fix 50 km off the road between two honest ones is refused, never stored, whatever
    arrives before it."""
    honest = sorted(set(order))
    jump = {**fix(honest[0]), "ts": fix(honest[0])["ts"] + jump_at, "lat": fix(0)["lat"] + 0.45}
    pipeline, store = world()
    for k in order:
        pipeline.process([pings("bus-07", [fix(k)])])
    [result] = pipeline.process([pings("bus-07", [jump])])
    assert [r.reason for r in result.rejected] == ["implausible_jump"]
    assert ("bus-07", jump["ts"]) not in store.tables.pings
