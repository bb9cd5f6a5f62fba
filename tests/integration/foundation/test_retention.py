"""XIAOCHE_RETENTION_DAYS (issue 17): raw positions, card scans and rejects older than the
district's policy are deleted; what was derived from them (audits, events, ledgers) stays."""

import time

import pytest
from sqlalchemy import func, insert, select

from backend.extensions import db
from backend.models import Event, Ping, Reject, Scan, TripAudit
from backend.retention import DAY_S, purge

NOW = 1_790_000_000.0


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_what_is_older_than_the_policy_goes_and_what_was_derived_from_it_stays(app, imported):
    ages_days = [400, 200, 31, 29.9, 1, 0.01]
    with app.app_context():
        db.session.execute(insert(Ping), [
            {"device_id": device, "vehicle_id": vehicle, "ts": NOW - age * DAY_S + i,
             "lat": 27.43, "lon": 113.2, "received_at": NOW - age * DAY_S + i}
            for device, vehicle in (("dev-bus-07", "bus-07"), ("dev-bus-12", "bus-12"))
            for age in ages_days for i in range(3)])
        db.session.execute(insert(Scan), [
            {"device_id": "dev-bus-07", "vehicle_id": "bus-07", "ts": NOW - age * DAY_S,
             "card_id": "c1", "action": "board", "received_at": NOW - age * DAY_S}
            for age in ages_days])
        db.session.execute(insert(Reject), [
            {"received_at": NOW - age * DAY_S, "device_id": "dev-bus-07", "topic": "t",
             "reason": "bad_json", "detail": "d", "payload_head": "{"} for age in ages_days])
        db.session.commit()
        events, audits = count(Event), count(TripAudit)

        purged = purge(db.engine, days=30, now=NOW)

        assert purged.counts == {"pings": 2 * 3 * 3, "scans": 3, "rejects": 3, "access_log": 0}
        assert count(Ping) == 2 * 3 * 3
        assert db.session.scalar(select(func.min(Ping.ts))) >= NOW - 30 * DAY_S
        assert (count(Scan), count(Reject)) == (3, 3)
        assert (count(Event), count(TripAudit)) == (events, audits)
        assert purge(db.engine, days=30, now=NOW).counts == {"pings": 0, "scans": 0,
                                                             "rejects": 0, "access_log": 0}


def test_a_retention_of_zero_days_is_refused_not_a_deletion_of_everything(app):
    with app.app_context(), pytest.raises(ValueError):
        purge(db.engine, days=0, now=time.time())
