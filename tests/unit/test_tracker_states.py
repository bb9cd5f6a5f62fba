"""backend.tracker_states on the real test database: the one place tracker-state rows are read,
locked and written."""

from __future__ import annotations

import pytest

from backend.extensions import db
from backend.models import TrackerState
from backend.tracker_states import (
    decode,
    last_ping_marks,
    last_ping_ts,
    load_state,
    load_states,
    lock_states,
    save_states,
    state_row,
)
from routing.state import TrackerState as RoutingState

T0 = 1_800_000_000.0


@pytest.fixture
def conn(app, imported):
    with app.app_context():
        yield db.session.connection()
        db.session.rollback()


def moved(last_ts: float, lat: float = 31.3) -> RoutingState:
    return RoutingState(last_ts=last_ts, last_lat=lat, last_lon=118.8, done_trips=["t-1"])


def test_a_vehicle_without_a_row_has_no_state(conn):
    assert load_state(conn, "bus-07") is None
    assert load_states(conn, ["bus-07", "bus-12"]) == {}
    assert load_states(conn, []) == {}
    assert last_ping_ts(conn, "bus-07") is None
    assert last_ping_marks(conn, ["bus-07"]) == ()


def test_locking_creates_empty_rows_that_decode_to_no_state(conn):
    states = lock_states(conn, ["bus-12", "bus-07"], T0)
    assert states == {"bus-07": None, "bus-12": None}
    rows = db.session.execute(db.select(TrackerState.vehicle_id, TrackerState.state,
                                        TrackerState.updated_at)
                              .order_by(TrackerState.vehicle_id)).all()
    assert [tuple(r) for r in rows] == [("bus-07", {}, T0), ("bus-12", {}, T0)]
    # the empty row reads back as no state everywhere, and as a row that exists
    assert load_state(conn, "bus-07") is None
    assert load_states(conn, ["bus-07", "bus-spare"]) == {"bus-07": None}


def test_saved_states_read_back_through_every_reader(conn):
    lock_states(conn, ["bus-07", "bus-12"], T0)
    save_states(conn, [state_row("bus-07", moved(T0 + 5), T0 + 6),
                       state_row("bus-12", moved(T0 + 3, lat=31.4), T0 + 6)])
    assert load_state(conn, "bus-07") == moved(T0 + 5)
    assert load_states(conn, ["bus-12", "bus-07", "bus-12"]) == {
        "bus-07": moved(T0 + 5), "bus-12": moved(T0 + 3, lat=31.4)}
    assert last_ping_ts(conn, "bus-12") == T0 + 3
    assert last_ping_marks(conn, ["bus-12", "bus-07", "bus-spare"]) == (
        ("bus-07", T0 + 5), ("bus-12", T0 + 3))
    # locking again returns what was saved, and creates nothing
    assert lock_states(conn, ["bus-07", "bus-12"], T0 + 9) == {
        "bus-07": moved(T0 + 5), "bus-12": moved(T0 + 3, lat=31.4)}
    assert db.session.scalar(db.select(db.func.count()).select_from(TrackerState)) == 2


def test_saving_writes_the_state_its_last_ts_and_when(conn):
    lock_states(conn, ["bus-07"], T0)
    save_states(conn, [state_row("bus-07", moved(T0 + 5), T0 + 6)])
    save_states(conn, [])  # nothing to write: no statement
    row = db.session.execute(db.select(TrackerState.state, TrackerState.last_ts,
                                       TrackerState.updated_at)).one()
    assert (decode(row.state), row.last_ts, row.updated_at) == (moved(T0 + 5), T0 + 5, T0 + 6)


def test_decode_round_trips_a_state_and_treats_empty_as_none():
    state = moved(T0)
    assert decode(state.to_dict()) == state
    assert decode({}) is None
    assert decode(None) is None
