"""Today's drives over each stretch reach every vehicle's context (``build_contexts``) from the
stored stop events of any run and vehicle, in one statement, only those of the ETA's window;
the run history prefers trips of the same weekday type."""

from __future__ import annotations

import datetime as dt

from backend.extensions import db
from backend.tracking_service import EVENTS, build_contexts
from routing import model as rm
from routing.calendar import service_day_start

MONDAY = dt.date(2026, 11, 9)


def _stop_events(conn, trip_id: str, vehicle_id: str, stops: list[str], t0: float) -> None:
    rows = []
    for j, stop in enumerate(stops):
        arrived = t0 + 300 * j
        rows.append({"kind": "stop_arrived", "ts": arrived, "stop_id": stop})
        rows.append({"kind": "stop_departed", "ts": arrived + 40, "stop_id": stop})
    conn.execute(EVENTS.insert(), [{**r, "vehicle_id": vehicle_id, "route_id": "zt-am-1",
                                    "trip_id": trip_id, "run_id": "x", "details": {},
                                    "created_at": 0.0} for r in rows])


def test_another_buses_drive_this_morning_is_in_every_context_of_its_stretches(app, imported):
    with app.app_context():
        conn = db.session.connection()
        route = build_contexts(conn, ["bus-07"])["bus-07"].routes[0]
        stops = [s.id for s in route.stops]
        day0 = service_day_start(MONDAY, rm.Calendar())
        _stop_events(conn, "early", "bus-12", stops, day0 + 6 * 3600)
        _stop_events(conn, "old", "bus-12", stops, day0 + 2 * 3600)  # outside the window
        as_of = day0 + 7 * 3600
        ctx = build_contexts(conn, ["bus-07", "bus-spare"], as_of=as_of)["bus-07"]
        first = ctx.segment_observations[(stops[0], stops[1])]
        assert first == (rm.SegmentObservation(day0 + 6 * 3600 + 300, 300.0, 40.0, "early"),)
        assert set(ctx.segment_observations) == {(a, b) for a, b in zip(stops, stops[1:], strict=False)}
        # a whole day, for the audit: both drives, the ETA itself keeps to those before it
        day = build_contexts(conn, ["bus-07"], as_of=day0, observed=(day0, day0 + 86400))
        assert len(day["bus-07"].segment_observations[(stops[0], stops[1])]) == 2
        db.session.rollback()


def test_the_run_history_prefers_trips_of_the_same_weekday_type(app, imported):
    with app.app_context():
        conn = db.session.connection()
        run_id = build_contexts(conn, ["bus-07"])["bus-07"].routes[0].runs[0].id
        rows = []
        for k in range(8):  # four weekdays, then four Sundays, newest last
            date = MONDAY + dt.timedelta(days=k) if k < 4 else \
                MONDAY + dt.timedelta(days=6 + 7 * (k - 4))
            rows.append({"kind": "trip_completed", "ts": 1000.0 + k, "vehicle_id": "bus-07",
                         "route_id": "zt-am-1", "trip_id": f"t{k}", "run_id": run_id,
                         "stop_id": None, "created_at": 0.0,
                         "details": {"segment_s": [float(k)], "service_date": date.isoformat()}})
        conn.execute(EVENTS.insert(), rows)
        monday = service_day_start(MONDAY + dt.timedelta(days=28), rm.Calendar()) + 7 * 3600
        sunday = monday + 6 * 86400
        history = build_contexts(conn, ["bus-07"], as_of=monday)["bus-07"].segment_history
        assert history[run_id] == [[3.0], [2.0], [1.0], [0.0]]
        history = build_contexts(conn, ["bus-07"], as_of=sunday)["bus-07"].segment_history
        assert history[run_id] == [[7.0], [6.0], [5.0], [4.0]]
        db.session.rollback()
