"""The one module that reads, locks and writes tracker states (table ``tracker_states``).

A vehicle's row holds its :class:`routing.state.TrackerState` as JSON, so any ingest process can
take the vehicle's next batch (DESIGN decision 4). An empty ``{}`` is the row a first-seen
vehicle gets when its batch locks it: it decodes to ``None``, as a vehicle without a row does.

Everything runs on a SQLAlchemy Core ``Connection`` (a request passes
``db.session.connection()``): the ingest's tracking step locks and saves inside its batch
transaction; the live views, the stream, the scan step and the run claims only read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from backend.models import TrackerState
from routing.state import TrackerState as RoutingState

STATES = TrackerState.__table__


def decode(raw: Mapping[str, Any] | None) -> RoutingState | None:
    """The tracker state a row's JSON holds (``None`` for no row or an empty one)."""
    return RoutingState.from_dict(raw) if raw else None


def load_state(conn: Connection, vehicle_id: str) -> RoutingState | None:
    """One vehicle's stored tracker state, as committed (``None`` when it has none)."""
    return decode(conn.scalar(select(STATES.c.state).where(STATES.c.vehicle_id == vehicle_id)))


def load_states(conn: Connection, vehicle_ids: Iterable[str]) -> dict[str, RoutingState | None]:
    """The stored tracker states of the vehicles of ``vehicle_ids`` that have a row, in one
    statement, without locking (an empty row decodes to ``None``)."""
    ids = sorted(set(vehicle_ids))
    if not ids:
        return {}
    return {vehicle_id: decode(raw) for vehicle_id, raw in conn.execute(
        select(STATES.c.vehicle_id, STATES.c.state).where(STATES.c.vehicle_id.in_(ids)))}


def lock_states(conn: Connection, vehicle_ids: Sequence[str],
                now: float) -> dict[str, RoutingState | None]:
    """Read the vehicles' tracker states, locking their rows on PostgreSQL until commit.

    One statement for the whole batch (rows locked in vehicle-id order, the same in every
    worker, so two workers never deadlock), plus one insert for vehicles seen for the first time.
    """
    query = (select(STATES.c.vehicle_id, STATES.c.state)
             .where(STATES.c.vehicle_id.in_(vehicle_ids)).order_by(STATES.c.vehicle_id))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    raw = dict(conn.execute(query).all())
    missing = [v for v in vehicle_ids if v not in raw]
    if missing:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(dialect.insert(STATES).on_conflict_do_nothing(index_elements=["vehicle_id"]),
                     [{"vehicle_id": v, "state": {}, "last_ts": None, "updated_at": now}
                      for v in missing])
        raw.update(conn.execute(query.where(STATES.c.vehicle_id.in_(missing))).all())
    return {v: decode(state) for v, state in raw.items()}


_SAVE_STATE = (STATES.update().where(STATES.c.vehicle_id == bindparam("vid"))
               .values(state=bindparam("state", type_=STATES.c.state.type),
                       last_ts=bindparam("last_ts"), updated_at=bindparam("updated_at")))


def state_row(vehicle_id: str, state: RoutingState, now: float) -> dict[str, Any]:
    """The row :func:`save_states` writes for ``state``."""
    return {"vid": vehicle_id, "state": state.to_dict(), "last_ts": state.last_ts,
            "updated_at": now}


def save_states(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Write a batch's states back (rows of :func:`state_row`), into rows
    :func:`lock_states` locked (or created) in the same transaction."""
    if rows:
        conn.execute(_SAVE_STATE, rows)


def last_ping_ts(conn: Connection, vehicle_id: str) -> float | None:
    """The ``ts`` of the newest ping the vehicle's tracker has taken (``None``: none yet)."""
    return conn.scalar(select(STATES.c.last_ts).where(STATES.c.vehicle_id == vehicle_id))


_LAST_PING_MARKS = (select(STATES.c.vehicle_id, STATES.c.last_ts)
                    .where(STATES.c.vehicle_id.in_(bindparam("ids", expanding=True))))


def last_ping_marks(conn: Connection, vehicle_ids: Sequence[str]
                    ) -> tuple[tuple[str, float], ...]:
    """(vehicle id, newest ping ts) of these vehicles' tracker states, sorted: one cached
    statement, what tells whether a state moved without reading its JSON."""
    rows = conn.execute(_LAST_PING_MARKS, {"ids": list(vehicle_ids)}).all()
    return tuple(sorted((vehicle_id, last_ts) for vehicle_id, last_ts in rows))
