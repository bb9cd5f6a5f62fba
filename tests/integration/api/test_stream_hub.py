"""The hub: one read and one encoding per ping for every open stream, nothing sent twice."""

from __future__ import annotations

from sqlalchemy import select

from backend import stream_service
from backend.extensions import db
from backend.messages_service import broadcast_to_route
from backend.models import User
from backend.streams.hub import StreamHub
from backend.streams.subscribers import ThreadSink
from tests.integration.api.test_routes_live import drive
from tests.integration.api.test_stream import (
    CONFIG,
    LOGISTICS,
    PARENT,
    FakeClock,
    mid_trip_rows,
)


def user_id(app, username: str) -> int:
    with app.app_context():
        return db.session.scalars(select(User.id).filter_by(username=username)).one()


def test_one_poll_computes_each_eta_once_and_hands_the_same_encoding_to_every_stream(
        app, imported, monkeypatch):
    clock = FakeClock()
    hub = StreamHub(app, CONFIG, clock.monotonic)
    sink = ThreadSink()
    parent, staff = user_id(app, PARENT[0]), user_id(app, LOGISTICS[0])
    with app.app_context():
        subs = [hub.open(who, None, None, "wgs84", sink)[0]
                for who in [parent] * 50 + [staff] * 50]
    rows = mid_trip_rows(imported)
    drive(app, "dev-bus-07", rows)
    app.config["CLOCK"] = lambda: rows[-1][0] + 5
    calls = []
    real_eta = stream_service._eta
    monkeypatch.setattr(stream_service, "_eta", lambda *a: calls.append(a) or real_eta(*a))
    clock.now += 0.25
    with app.app_context():
        delivered = hub.poll()
    assert len(calls) == 1  # one bus moved: one ETA, whatever the number of streams
    got = [sub.take() for sub in subs]
    assert delivered == 200 and all([m.event for m in g] == ["position", "eta"] for g in got)
    bodies = {id(m.body) for g in got for m in g}
    assert len(bodies) == 2  # the position's and the ETA's lines, encoded once
    assert got[0][0].encode() == f"id: {got[0][0].id}\n{got[0][0].body}"
    for sub in subs:
        hub.close(sub)
    assert hub.open_count == 0


def test_a_resumed_stream_gets_what_the_catch_up_read_once_even_when_the_hub_reads_it_too(
        app, imported):
    clock = FakeClock()
    hub = StreamHub(app, CONFIG, clock.monotonic)
    sink = ThreadSink()
    parent = user_id(app, PARENT[0])
    with app.app_context():
        first, opening = hub.open(parent, None, None, "wgs84", sink)
        broadcast_to_route("zt-am-1", "第一条", "一", "houqin.wang")
        resumed, caught_up = hub.open(parent, None, opening[0].id, "wgs84", sink)
        clock.now += 0.25
        hub.poll()
    assert [m.event for m in caught_up] == [None, "notification"]  # retry + id, then missed
    assert resumed.take() == []  # the hub read it as well: not sent twice
    assert [m.data["title"] for m in first.take()] == ["第一条"]


def test_a_parent_whose_child_changes_route_follows_the_new_route_after_the_bulk_refresh(
        app, imported):
    clock = FakeClock()
    config = stream_service.StreamConfig(poll_s=0.25, heartbeat_s=5.0, scope_refresh_s=10.0)
    hub = StreamHub(app, config, clock.monotonic)
    parent = user_id(app, PARENT[0])
    with app.app_context():
        sub, _ = hub.open(parent, None, None, "wgs84", ThreadSink())
        hub.poll()
        assert sub.scope.trip_route_ids == frozenset({"zt-am-1"})
        user = db.session.get(User, parent)
        user.students[0].route_id = "lf-am-1"
        db.session.commit()
        clock.now += 10.0
        hub.poll()
    assert sub.scope.trip_route_ids == frozenset({"lf-am-1"}) and not sub.closed


def test_in_a_server_scopes_are_re_read_apart_from_the_poll_that_finds_them_due(app, imported):
    """A server's hub re-reads scopes in a thread of its own: the poll that finds them due
    delivers its changes without waiting for the read (~0.5 s for 10,000 parents)."""
    clock = FakeClock()
    config = stream_service.StreamConfig(poll_s=0.25, heartbeat_s=5.0, scope_refresh_s=10.0)
    hub = StreamHub(app, config, clock.monotonic)
    hub.refresh_in_background = True
    parent = user_id(app, PARENT[0])
    with app.app_context():
        sub, _ = hub.open(parent, None, None, "wgs84", ThreadSink())
        hub.poll()
        hub._refresher.join(30)
        user = db.session.get(User, parent)
        user.students[0].route_id = "lf-am-1"
        db.session.commit()
        clock.now += 10.0
        hub.poll()
    hub._refresher.join(30)
    assert not hub._refresher.is_alive()
    assert sub.scope.trip_route_ids == frozenset({"lf-am-1"}) and not sub.closed
