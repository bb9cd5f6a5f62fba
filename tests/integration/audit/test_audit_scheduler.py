"""The nightly audit job: called with a fixed "now", never by waiting for the clock."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from backend.extensions import db
from backend.models import TripAudit
from backend.scheduler import AUDIT_JOB_ID, audit_yesterday, make_scheduler
from routing.calendar import zone

SHANGHAI = zone("Asia/Shanghai")


def test_the_job_audits_the_local_yesterday_not_the_utc_one(app, monday_drive):
    # 00:30 on Tuesday in Shanghai is still Monday 16:30 in UTC
    now = dt.datetime(2026, 11, 23, 16, 30, tzinfo=dt.UTC)
    summary = audit_yesterday(app, now)
    assert summary.service_date == dt.date(2026, 11, 23)
    assert summary.trips == 1
    with app.app_context():
        assert db.session.scalars(select(TripAudit.service_date)).all() == ["2026-11-23"]


def test_the_job_accepts_epoch_seconds(app, monday_drive):
    now = dt.datetime(2026, 11, 24, 0, 30, tzinfo=SHANGHAI).timestamp()
    assert audit_yesterday(app, now).service_date == dt.date(2026, 11, 23)


def test_a_naive_now_is_refused(app, imported):
    with pytest.raises(ValueError, match="timezone-aware"):
        audit_yesterday(app, dt.datetime(2026, 11, 24, 0, 30))


def test_the_audit_is_scheduled_at_half_past_midnight_local_time(app, imported):
    scheduler = make_scheduler(app)
    job = scheduler.get_job(AUDIT_JOB_ID)
    now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=SHANGHAI)
    assert job.trigger.get_next_fire_time(None, now) == dt.datetime(
        2026, 11, 24, 0, 30, tzinfo=SHANGHAI
    )


def test_the_audit_time_is_configurable_and_checked(app, imported):
    app.config["AUDIT_AT"] = "05:15"
    job = make_scheduler(app).get_job(AUDIT_JOB_ID)
    now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=SHANGHAI)
    assert job.trigger.get_next_fire_time(None, now) == dt.datetime(
        2026, 11, 24, 5, 15, tzinfo=SHANGHAI
    )
    app.config["AUDIT_AT"] = "half past midnight"
    with pytest.raises(ValueError, match="XIAOCHE_AUDIT_AT"):
        make_scheduler(app)


def test_the_audit_at_setting_is_read_from_the_environment():
    from backend.settings import from_environment

    assert from_environment({})["AUDIT_AT"] == "00:30"
    assert from_environment({"XIAOCHE_AUDIT_AT": "01:00"})["AUDIT_AT"] == "01:00"


def test_the_started_scheduler_has_its_next_audit_planned_and_stops_cleanly(app, imported):
    from backend.scheduler import LeasedScheduler

    scheduler = LeasedScheduler(app)
    scheduler.keeper.step()  # what its thread does first: take the free lease, start the jobs
    try:
        assert scheduler.holding and scheduler.scheduler.running
        job = scheduler.scheduler.get_job(AUDIT_JOB_ID)
        next_run = job.next_run_time.astimezone(SHANGHAI)
        assert (next_run.hour, next_run.minute) == (0, 30)
    finally:
        scheduler.stop()
    assert not scheduler.scheduler.running
    assert scheduler.lease.current() is None  # released
