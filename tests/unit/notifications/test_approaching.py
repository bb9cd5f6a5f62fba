"""Timelines of "the bus is 5 minutes away": one per parent and stop, at the right moment."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from notifications.model import EtaSnapshot, Preferences, Subscriber, first_per_key
from notifications.rules import messages_for

from .world import (
    CTX,
    DAD_EN,
    EVERYONE,
    LI_MING,
    MUM_ZH,
    OTHER_PARENT,
    ROUTE,
    SCHEDULE,
    TRIP,
    at,
    replay_snapshots,
)


def _replay(snapshots, subscribers=EVERYONE, chained=True):
    out, previous = [], None
    for snap in snapshots:
        out += messages_for(snap, subscribers, CTX, previous=previous if chained else None)
        previous = snap
    return [m for m in out if m.kind == "bus_approaching"]


def test_a_replayed_trip_tells_each_parent_once_five_minutes_before_their_stop():
    sent = _replay(replay_snapshots())
    assert sorted(m.user_id for m in sent) == [MUM_ZH.user_id, DAD_EN.user_id]
    by_user = {m.user_id: m for m in sent}
    mum, dad = by_user[MUM_ZH.user_id], by_user[DAD_EN.user_id]
    assert mum.created_at == SCHEDULE["shiwan"] - 300  # the first snapshot within 5 min
    assert dad.created_at == SCHEDULE["tangjia"] - 300
    assert (mum.title, mum.body) == ("校车即将到站", "湘B·D1234校车约5分钟后到达石湾，请做好准备。")
    assert (dad.title, dad.body) == ("Bus arriving soon",
                                     "Bus 湘B·D1234 arrives at 唐家坪 in about 5 min.")
    assert (mum.route_id, mum.stop_id, mum.trip_id) == (ROUTE.id, "shiwan", TRIP)


def test_without_the_previous_snapshot_the_dedupe_key_still_keeps_one_per_stop():
    sent = _replay(replay_snapshots(), chained=False)
    assert len(sent) > 2  # every snapshot under the threshold proposes one ...
    kept, _ = first_per_key(sent)
    assert [(m.user_id, m.created_at) for m in kept] == [
        (MUM_ZH.user_id, SCHEDULE["shiwan"] - 300), (DAD_EN.user_id, SCHEDULE["tangjia"] - 300)]


def test_parents_of_another_route_hear_nothing():
    assert not [m for m in _replay(replay_snapshots()) if m.user_id == OTHER_PARENT.user_id]


def test_a_parent_choosing_ten_minutes_is_told_ten_minutes_before():
    early = Subscriber(5, "parent", Preferences(notify_before_min=10), children=(LI_MING,))
    (m,) = _replay(replay_snapshots(), [early])
    assert m.created_at == SCHEDULE["shiwan"] - 600 and "约10分钟" in m.body


def test_within_metres_fires_on_distance_when_the_eta_is_still_far():
    near = Subscriber(6, "parent", Preferences(notify_within_m=500.0), children=(LI_MING,))
    snap = EtaSnapshot(ROUTE.id, TRIP, "bus-07", as_of=at("06:50"),
                       etas={"shiwan": at("06:58")}, distances_m={"shiwan": 420.0})
    (m,) = messages_for(snap, [near, MUM_ZH], CTX)
    assert m.user_id == 6 and m.body == "湘B·D1234校车距石湾约420米，请做好准备。"
    # a later snapshot crossing the minutes threshold is the same cause: same key
    later = EtaSnapshot(ROUTE.id, TRIP, "bus-07", as_of=at("06:54"),
                        etas={"shiwan": at("06:58")}, distances_m={"shiwan": 200.0})
    again = [x for x in messages_for(later, [near], CTX)]
    assert [x.dedupe_key for x in again] == [m.dedupe_key]


def test_two_children_at_one_stop_give_one_message():
    sibling = LI_MING.__class__("s-009", "李华", ROUTE.id, "shiwan")
    both = Subscriber(7, "parent", children=(LI_MING, sibling))
    assert len(_replay(replay_snapshots(), [both])) == 1


@st.composite
def noisy_approach(draw):
    """ETA snapshots of one stop: time advances, the true ETA is fixed, the prediction wobbles
    (it can go up again), sometimes the stop is already visited (``None``)."""
    n = draw(st.integers(1, 40))
    t, eta = 0.0, draw(st.floats(100.0, 3600.0))
    snaps = []
    for _ in range(n):
        t += draw(st.floats(5.0, 60.0))
        noise = draw(st.floats(-240.0, 240.0))
        value = draw(st.one_of(st.just(None), st.just(eta + noise))) if draw(st.booleans()) \
            else eta + noise
        snaps.append(EtaSnapshot(ROUTE.id, TRIP, "bus-07", as_of=t, etas={"shiwan": value}))
    return snaps


@settings(max_examples=300, deadline=None)
@given(noisy_approach(), st.booleans())
def test_any_noisy_eta_sequence_gives_at_most_one_approach_per_parent_trip_and_stop(snaps,
                                                                                    chained):
    proposed = _replay(snaps, [MUM_ZH], chained=chained)
    assert len({m.dedupe_key for m in proposed}) <= 1
    kept, _ = first_per_key(proposed)
    under = [s for s in snaps
             if s.etas["shiwan"] is not None and s.etas["shiwan"] - s.as_of <= 300.0]
    if not under:
        assert kept == []
    else:
        assert [m.created_at for m in kept] == [under[0].as_of]
