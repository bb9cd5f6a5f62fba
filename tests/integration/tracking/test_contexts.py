"""Tracking contexts read for many vehicles at once (``build_contexts``): the same contexts as
one vehicle at a time, with substitutions, a teacher's car and the ETA history."""

from __future__ import annotations

import datetime as dt

from backend.extensions import db
from backend.models import RouteSubstitution
from backend.tracking_service import ETA_HISTORY_RUNS, EVENTS, ContextCache, build_contexts
from routing import model as rm

VEHICLES = ["bus-07", "bus-12", "bus-spare", "car-liu", "truck-01"]
SUBSTITUTED = dt.date(2026, 11, 24)


def _history(conn, run_id: str, count: int) -> None:
    rows = [{"kind": "trip_completed", "ts": 1_000.0 + k, "vehicle_id": "bus-07",
             "route_id": "zt-am-1", "trip_id": f"trip-{k}", "run_id": run_id, "stop_id": None,
             "details": {"segment_s": [float(k), float(k + 1)]}, "created_at": 0.0}
            for k in range(count)]
    # the newest completed trip has no segment times: it counts among the last runs, adds none
    rows.append({**rows[-1], "ts": 2_000.0, "trip_id": "trip-new", "details": {}})
    conn.execute(EVENTS.insert(), rows)


def test_contexts_built_together_are_those_built_one_by_one(app, imported):
    with app.app_context():
        conn = db.session.connection()
        db.session.add(RouteSubstitution(route_id="zt-am-1", service_date=SUBSTITUTED.isoformat(),
                                         vehicle_id="bus-spare", set_by="test", set_at=0.0))
        db.session.flush()
        run_id = build_contexts(conn, ["bus-07"])["bus-07"].routes[0].runs[0].id
        _history(conn, run_id, 12)

        together = build_contexts(conn, [*VEHICLES, "no-such-bus"])
        assert sorted(together) == sorted(VEHICLES)  # an unknown vehicle has no context
        for vehicle_id in VEHICLES:
            assert together[vehicle_id] == build_contexts(conn, [vehicle_id])[vehicle_id]

        bus07, spare, car = together["bus-07"], together["bus-spare"], together["car-liu"]
        assert [r.id for r in bus07.routes] == ["zt-am-1", "zt-pm-1"]
        assert all(SUBSTITUTED in run.except_dates for run in bus07.routes[0].runs)
        assert [r.id for r in spare.routes] == ["zt-am-1"]
        assert all(run.dates == frozenset({SUBSTITUTED}) for run in spare.routes[0].runs)
        assert car.kind == "teacher_car" and car.teacher_id == "t-liu"
        assert car.assignments == (rm.Assignment("longfeng", frozenset({2, 4})),)
        assert [s.id for s in bus07.routes[0].stops][-1] == bus07.routes[0].school_id
        # the last ETA_HISTORY_RUNS completed trips with times, newest first (the one without
        # times left out; none has a service date, so no weekday type is preferred)
        assert bus07.segment_history[run_id] == [
            [float(k), float(k + 1)] for k in range(11, 11 - ETA_HISTORY_RUNS, -1)]
        # the substitute drives the same run: its ETAs learn from the same trips
        assert spare.segment_history[run_id] == bus07.segment_history[run_id]
        db.session.rollback()


def test_the_cache_builds_only_what_is_missing_or_stale(app, imported, monkeypatch):
    import backend.tracking_service as tracking

    built: list[list[str]] = []
    real = tracking.build_contexts

    def counting(conn, vehicle_ids):
        built.append(sorted(vehicle_ids))
        return real(conn, vehicle_ids)

    monkeypatch.setattr(tracking, "build_contexts", counting)
    cache = ContextCache(ttl_s=60.0)
    with app.app_context():
        conn = db.session.connection()
        first = cache.get_many(conn, ["bus-07", "bus-12", "no-such-bus"])
        again = cache.get_many(conn, ["bus-07", "bus-12", "car-liu"])
        assert first["no-such-bus"] is None and again["bus-07"] is first["bus-07"]
        assert built == [["bus-07", "bus-12", "no-such-bus"], ["car-liu"]]
        cache.clear()
        assert cache.get(conn, "bus-07") == first["bus-07"] and built[-1] == ["bus-07"]
        db.session.rollback()
