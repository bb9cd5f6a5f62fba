"""The jobs in APScheduler's table: what is stored, kept, replaced and removed when a scheduler
takes the lease; and a scheduler runs nothing while another one holds it."""

from __future__ import annotations

import datetime as dt
import pickle
import time

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.job import Job
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING
from sqlalchemy import insert, select

import backend.scheduler
from backend.extensions import db
from backend.lease import Lease
from backend.models import apscheduler_jobs
from backend.scheduler import (
    AUDIT_JOB_ID,
    DISPATCH_JOB_ID,
    MEAL_REMINDER_JOB_ID,
    MEMORY,
    OFFLINE_JOB_ID,
    PERSISTENT,
    LeasedScheduler,
    make_scheduler,
)
from routing.calendar import zone

SHANGHAI = zone("Asia/Shanghai")


@pytest.fixture
def schedulers():
    """Schedulers a test activates; shut down at the end however the test went."""
    made = []
    yield made
    for scheduler in made:
        if scheduler.running:
            scheduler.shutdown(wait=True)


def activated(app, schedulers):
    scheduler = make_scheduler(app)
    schedulers.append(scheduler)
    scheduler.activate()
    return scheduler


def stored_rows(app) -> dict[str, float | None]:
    with app.app_context():
        rows = db.session.execute(select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time))
        result = {row.id: row.next_run_time for row in rows}
        db.session.remove()
    return result


def local_hh_mm(ts: float) -> tuple[int, int]:
    local = dt.datetime.fromtimestamp(ts, SHANGHAI)
    return local.hour, local.minute


def wait_for(condition, timeout_s: float = 60, what: str = "") -> None:
    deadline = time.time() + timeout_s
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.05)


def test_the_daily_jobs_are_stored_in_the_table_the_dispatcher_in_memory(app, schedulers):
    app.config["AUDIT_AT"] = "03:00"
    scheduler = activated(app, schedulers)
    rows = stored_rows(app)
    assert set(rows) == {AUDIT_JOB_ID, MEAL_REMINDER_JOB_ID}
    assert local_hh_mm(rows[AUDIT_JOB_ID]) == (3, 0)
    assert local_hh_mm(rows[MEAL_REMINDER_JOB_ID]) == (10, 0)
    job = scheduler.get_job(DISPATCH_JOB_ID, jobstore=MEMORY)
    assert job.trigger.interval == dt.timedelta(seconds=2)
    assert (job.coalesce, job.max_instances) == (True, 1)
    watch = scheduler.get_job(OFFLINE_JOB_ID, jobstore=MEMORY)
    assert watch.trigger.interval == dt.timedelta(seconds=30)
    assert watch.func_ref == "backend.scheduler:offline_watch_job"
    audit = scheduler.get_job(AUDIT_JOB_ID, jobstore=PERSISTENT)
    assert audit.func_ref == "backend.scheduler:nightly_audit_job" and audit.args == ()
    assert (audit.coalesce, audit.max_instances, audit.misfire_grace_time) == (True, 1, 3600)


def test_a_retention_policy_adds_its_nightly_job_an_hour_after_the_audit(app, schedulers):
    from backend.scheduler import RETENTION_JOB_ID

    app.config["AUDIT_AT"] = "03:00"
    app.config["RETENTION_DAYS"] = 180
    activated(app, schedulers)
    rows = stored_rows(app)
    assert set(rows) == {AUDIT_JOB_ID, MEAL_REMINDER_JOB_ID, RETENTION_JOB_ID}
    assert local_hh_mm(rows[RETENTION_JOB_ID]) == (4, 0)


def test_a_changed_audit_time_replaces_the_stored_trigger(app, schedulers):
    app.config["AUDIT_AT"] = "03:00"
    activated(app, schedulers).shutdown()
    app.config["AUDIT_AT"] = "04:15"
    scheduler = activated(app, schedulers)
    assert local_hh_mm(stored_rows(app)[AUDIT_JOB_ID]) == (4, 15)
    now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=SHANGHAI)
    trigger = scheduler.get_job(AUDIT_JOB_ID).trigger
    assert trigger.get_next_fire_time(None, now) == dt.datetime(2026, 11, 24, 4, 15,
                                                                tzinfo=SHANGHAI)


def test_jobs_no_longer_in_the_table_leave_the_store(app, schedulers, caplog):
    first = activated(app, schedulers)
    first.pause()
    first.add_job("backend.scheduler:meal_reminder_job", "interval", hours=1, id="retired",
                  jobstore=PERSISTENT)
    # a job whose function was deleted from the code since it was stored
    state = first.get_job("retired").__getstate__()
    state.update(id="deleted", func="backend.scheduler:no_such_job")
    first.shutdown()
    with app.app_context():
        db.session.execute(insert(apscheduler_jobs).values(
            id="deleted", next_run_time=time.time() + 3600, job_state=pickle.dumps(state)))
        db.session.commit()
    assert set(stored_rows(app)) == {AUDIT_JOB_ID, MEAL_REMINDER_JOB_ID, "retired", "deleted"}
    activated(app, schedulers)
    assert set(stored_rows(app)) == {AUDIT_JOB_ID, MEAL_REMINDER_JOB_ID}


def test_a_run_missed_while_no_scheduler_ran_happens_once_after_a_takeover(app, imported,
                                                                          schedulers):
    first = activated(app, schedulers)
    first.pause()  # the holder stops just before 00:30 …
    due = dt.datetime.now(SHANGHAI) - dt.timedelta(minutes=10)
    first.modify_job(AUDIT_JOB_ID, jobstore=PERSISTENT, next_run_time=due)
    kept = dt.datetime.now(SHANGHAI) + dt.timedelta(days=3)
    first.modify_job(MEAL_REMINDER_JOB_ID, jobstore=PERSISTENT, next_run_time=kept)
    first.shutdown()

    second = make_scheduler(app)  # … and the standby takes over ten minutes later
    schedulers.append(second)
    ran: list[str] = []
    second.add_listener(lambda event: ran.append((event.job_id, event.exception)),
                        EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    second.activate()
    wait_for(lambda: (AUDIT_JOB_ID, None) in ran, what="the missed audit")
    wait_for(lambda: stored_rows(app)[AUDIT_JOB_ID] > time.time(), what="the next audit")
    assert local_hh_mm(stored_rows(app)[AUDIT_JOB_ID]) == (0, 30)
    assert [job for job, _ in ran].count(AUDIT_JOB_ID) == 1
    # an unchanged job keeps its stored next run time rather than one computed afresh
    assert stored_rows(app)[MEAL_REMINDER_JOB_ID] == pytest.approx(kept.timestamp())


def test_the_dispatcher_runs_every_interval(app, schedulers, monkeypatch):
    calls: list[float] = []
    monkeypatch.setattr(backend.scheduler, "dispatch_once",
                        lambda app_: calls.append(time.time()))
    app.config["DISPATCH_INTERVAL_S"] = 0.05
    activated(app, schedulers)
    wait_for(lambda: len(calls) >= 3, what="three dispatches")
    assert DISPATCH_JOB_ID not in stored_rows(app)


def test_bad_intervals_are_refused(app):
    app.config["SCHEDULER_LEASE_S"] = 0
    with pytest.raises(ValueError, match="XIAOCHE_SCHEDULER_LEASE_S"):
        LeasedScheduler(app)
    app.config["DISPATCH_INTERVAL_S"] = -1
    with pytest.raises(ValueError, match="XIAOCHE_DISPATCH_INTERVAL_S"):
        make_scheduler(app)


def test_a_half_configured_push_channel_is_refused_at_start(app):
    app.config.update(WEBHOOK_URL="https://school.example/hook", WEBHOOK_SECRET=None)
    with pytest.raises(ValueError, match="WEBHOOK"):
        LeasedScheduler(app)


def test_a_standby_neither_runs_nor_touches_the_stored_jobs(app):
    with app.app_context():
        other = Lease(db.engine, holder="other-host:1:x", ttl_s=30)
    assert other.try_acquire()
    standby = LeasedScheduler(app)
    try:
        standby.keeper.step()
        assert not standby.holding and not standby.scheduler.running
        assert stored_rows(app) == {}
    finally:
        standby.stop()
    assert other.current().holder == "other-host:1:x"  # a standby's stop releases nothing


def test_a_holder_that_lost_the_lease_pauses_its_jobs_and_resumes_on_winning_it_back(app):
    app.config["SCHEDULER_LEASE_S"] = 30
    leased = LeasedScheduler(app)
    try:
        leased.keeper.step()
        assert leased.holding and leased.scheduler.state == STATE_RUNNING
        with app.app_context():
            thief = Lease(db.engine, holder="thief", ttl_s=30)
        assert thief.try_acquire(time.time() + 31)  # as if our lease had run out
        leased.keeper.step()
        assert not leased.holding and leased.scheduler.state == STATE_PAUSED
        assert thief.release()
        leased.keeper.step()
        assert leased.holding and leased.scheduler.state == STATE_RUNNING
    finally:
        leased.stop()
    assert leased.lease.current() is None


def test_the_lease_keeper_thread_takes_the_free_lease(app):
    leased = LeasedScheduler(app)
    leased.start()
    try:
        wait_for(lambda: leased.holding, what="the lease")
        wait_for(lambda: leased.scheduler.state == STATE_RUNNING, what="the jobs")
    finally:
        leased.stop()
    assert not leased.scheduler.running


def test_job_state_pickles_without_the_app(app, schedulers):
    scheduler = activated(app, schedulers)
    for job_id in (AUDIT_JOB_ID, MEAL_REMINDER_JOB_ID):
        state = pickle.loads(pickle.dumps(scheduler.get_job(job_id).__getstate__()))
        restored = Job.__new__(Job)
        restored.__setstate__(state)
        assert restored.func.__module__ == "backend.scheduler"
