"""Members of one shared group on the real test database, with explicit times: distinct
group-wide slots, a dead member's slot adopted by a survivor, and handed back when a member
takes it again (backend.ingest.member)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from backend.extensions import db
from backend.ingest.member import GroupMember

T0 = 1_800_000_000.0
TTL = 15.0


@dataclass
class FakeSlotClient:
    client_id: str
    may_connect: object
    log: list = field(default_factory=list)

    def start(self) -> None:
        self.log.append("start")

    def stop(self, timeout: float = 10) -> None:
        self.log.append("stop")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def group_of(app):
    """group_of(n) -> n members of a fresh group on one clock, each recording its adopted
    clients in ``member.made``."""
    group = f"g{uuid.uuid4().hex[:6]}"
    clock = Clock()
    with app.app_context():
        engine = db.engine

    def make(n):
        members = []
        for i in range(n):
            made: list[FakeSlotClient] = []
            member = GroupMember(
                engine, "xiaoche-ingest", group, TTL, holder=f"m{i}", clock=clock,
                make_client=lambda cid, may, made=made: made.append(FakeSlotClient(cid, may))
                or made[-1])
            member.made = made
            members.append(member)
        return members, clock

    return make


def test_members_get_distinct_slots_of_the_group_not_of_their_host(group_of):
    (a, b), _clock = group_of(2)
    assert a.take_slot(0) == f"xiaoche-ingest-{a.group}-0"
    assert b.take_slot(0) == f"xiaoche-ingest-{a.group}-1"
    a.step()
    b.step()
    assert a.made == [] and b.made == []  # both alive: nothing to adopt


def test_a_dead_members_slot_is_adopted_once_and_handed_back_to_the_next_member(group_of):
    (a, b, c, d), clock = group_of(4)
    a.take_slot(0)
    b.take_slot(0)  # slot 1; b is then killed: it renews no more
    d.take_slot(0)  # slot 2, alive
    for _ in range(3):  # the live members look every ttl/3; b's lease runs out
        assert a.made == [] and d.made == []
        clock.now += TTL / 3 + 0.1
        a.step()
        d.step()
    assert [m.client_id for m in a.made] == [f"xiaoche-ingest-{a.group}-1"]
    assert a.made[0].log == ["start"] and a.made[0].may_connect()
    assert d.made == []  # adopted by a live member already: not twice
    clock.now += TTL / 3
    a.step()  # renews the adoption
    d.step()
    assert a.adopted.keys() == {1} and d.made == [] and a.made[0].log == ["start"]

    assert c.take_slot(0) == f"xiaoche-ingest-{a.group}-1"  # a new member takes the dead slot
    assert not a.made[0].may_connect()  # the adopted client must not reconnect now
    a.step()
    assert a.made[0].log == ["start", "stop"] and a.adopted == {}
    assert c._own.current().holder == "m2"


def test_a_member_that_stops_cleanly_lets_its_slot_be_adopted_at_once(group_of):
    (a, b), clock = group_of(2)
    a.take_slot(0)
    b.take_slot(0)
    b.stop()
    b.leave()
    a.step()  # no waiting for the ttl: the stopped member's lease lapsed with it
    assert [m.client_id for m in a.made] == [f"xiaoche-ingest-{a.group}-1"]
    a.stop()  # hands the adopted slot back on its own stop
    assert a.made[0].log == ["start", "stop"]


def test_a_member_whose_slot_was_taken_is_told_to_stop(group_of):
    (a, b), clock = group_of(2)
    lost = []
    a.on_lost = lambda: lost.append(True)
    a.take_slot(0)
    clock.now += 2 * TTL  # a stalled past its lease (e.g. its database link was down)
    assert b.take_slot(0).endswith("-0")
    a.step()
    assert lost == [True]


def test_a_slot_taken_back_between_the_look_and_the_adoption_is_not_adopted(group_of,
                                                                              monkeypatch):
    """A survivor reads the slots (b's lapsed), then a new member takes b's slot and, finding no
    adopter, connects with its id; the survivor must not then connect with that id too (the
    broker would throw the new member off, and the two would take the id from each other)."""
    import backend.ingest.member as ingest_member

    (a, b, c), clock = group_of(3)
    a.take_slot(0)
    b.take_slot(0)  # slot 1; b dies
    clock.now += TTL + 1
    real = ingest_member.leases_named

    def look_then_c_takes_the_slot(engine, prefix):
        seen = real(engine, prefix)
        assert c.take_slot(0).endswith("-1")  # no adoption lease yet: c connects at once
        return seen

    monkeypatch.setattr(ingest_member, "leases_named", look_then_c_takes_the_slot)
    a.step()
    assert a.made == [] and a.adopted == {}
    assert ingest_member.Lease(a.engine, a.slot_name(1) + ":a").current() is None


def test_after_an_outage_longer_than_the_ttl_a_member_adopts_no_live_members_slot(group_of):
    """The database was away for longer than the ttl: every slot's lease lapsed, the members
    alive all along. The first to look again must not take the others' slots (its client would
    throw theirs off the broker) before they had a look of their own to renew them."""
    (a, b), clock = group_of(2)
    a.take_slot(0)
    b.take_slot(0)
    clock.now += 2 * TTL  # nobody could renew meanwhile
    a.step()
    assert a.made == []
    b.step()  # b is back too
    clock.now += TTL / 3
    a.step()
    assert a.made == [] and a.adopted == {}
    clock.now += 2 * TTL  # and a member that died meanwhile is adopted one look later
    a.step()
    clock.now += TTL / 3
    a.step()
    assert [m.client_id for m in a.made] == [f"xiaoche-ingest-{a.group}-1"]
