"""ETAs and the notifications that depend on them are made per ping, in event time: a trip whose
pings arrive as one backlog array tells parents what the same pings sent one by one do."""

from __future__ import annotations

import datetime as dt

from tests.drives import on_schedule_drive, truth_arrivals

from .test_timeline import PARENT_EN, PARENT_ZH, feed, notes, pipeline

MONDAY = dt.date(2026, 11, 9)


def told(app, who) -> list[tuple[str, str | None, float]]:
    return [(n.kind, n.stop_id, n.created_at) for n in notes(app, who[0])]


def test_a_backlog_array_gets_bus_approaching_at_the_same_event_time_as_live_pings(
        app, imported):
    rows = on_schedule_drive(imported, MONDAY)
    assert len(rows) <= 1000  # one array, as a device uploads after a dead zone
    feed(pipeline(app), rows, per_batch=len(rows))
    approaching = [n for n in notes(app, PARENT_EN[0]) if n.kind == "bus_approaching"]
    assert len(approaching) == 1
    arrival = truth_arrivals(imported, MONDAY)[1]  # 石塘村
    # stamped with the ping whose prediction crossed the threshold, not the batch's last ping
    assert arrival - 5 * 60 - 10 <= approaching[0].created_at < arrival


def test_one_array_and_one_ping_at_a_time_say_the_same_things_at_the_same_times(app, imported):
    rows = on_schedule_drive(imported, MONDAY)
    feed(pipeline(app), rows, per_batch=1)
    single = {who: told(app, who) for who in (PARENT_ZH, PARENT_EN)}
    with app.app_context():
        from sqlalchemy import delete

        from backend.extensions import db
        from backend.models import Event, Notification, Ping, TrackerState
        for table in (Notification, Event, Ping, TrackerState):
            db.session.execute(delete(table))
        db.session.commit()
    feed(pipeline(app), rows, per_batch=len(rows))
    for who in (PARENT_ZH, PARENT_EN):
        assert sorted(told(app, who)) == sorted(single[who]), who
