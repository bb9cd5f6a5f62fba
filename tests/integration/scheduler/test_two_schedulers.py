"""Two `xiaoche scheduler` processes on one database: the jobs run in one of them only; the other
takes over when the first is killed or stopped; the job table survives restarts."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from backend.extensions import db
from backend.lease import Lease
from backend.models import apscheduler_jobs
from backend.scheduler import AUDIT_JOB_ID
from routing.calendar import zone

pytestmark = pytest.mark.slow

SHANGHAI = zone("Asia/Shanghai")


def lease_holder(app) -> str | None:
    with app.app_context():
        state = Lease(db.engine).current()
    return state.holder if state else None


def stored_audit_time(app) -> tuple[int, int] | None:
    with app.app_context():
        ts = db.session.scalar(select(apscheduler_jobs.c.next_run_time)
                               .where(apscheduler_jobs.c.id == AUDIT_JOB_ID))
        db.session.remove()
    if ts is None:
        return None
    local = dt.datetime.fromtimestamp(ts, SHANGHAI)
    return local.hour, local.minute


def test_two_schedulers_run_the_jobs_once_and_the_standby_takes_over(app, scheduler_processes):
    a = scheduler_processes()
    a.wait_for(a.holding, "for the free lease")
    b = scheduler_processes()
    b.wait_for(b.standby, "to stand by")
    assert f"standby: scheduler {a.holder} holds the lease until" in b.output()
    assert lease_holder(app) == a.holder

    start = a.runs()
    a.wait_for(lambda: a.runs() >= start + 5, "for five more dispatches")
    assert b.runs() == 0 and not b.holding()

    # the holder dies without a word: the standby takes over once the lease ran out
    a.kill9()
    b.wait_for(b.holding, "to take over the expired lease")
    assert lease_holder(app) == b.holder
    b.wait_for(lambda: b.runs() >= 5, "for dispatches after the take-over")

    # the restarted one is the standby now, and runs nothing
    a2 = scheduler_processes()
    a2.wait_for(a2.standby, "to stand by")
    assert f"standby: scheduler {b.holder} holds the lease until" in a2.output()
    start = b.runs()
    b.wait_for(lambda: b.runs() >= start + 5, "for five more dispatches")
    assert a2.runs() == 0 and not a2.holding()

    # a clean stop releases the lease, and the standby takes over without waiting it out
    b.stop()
    assert b.process.returncode == 0
    assert "scheduler: released the lease" in b.output()
    a2.wait_for(a2.holding, "to take over the released lease")
    a2.wait_for(lambda: a2.runs() >= 3, "for dispatches after the take-over")
    assert lease_holder(app) == a2.holder


def test_the_job_table_survives_a_restart_and_follows_a_changed_audit_time(app,
                                                                           scheduler_processes):
    first = scheduler_processes(XIAOCHE_AUDIT_AT="03:00")
    first.wait_for(first.holding, "for the lease")
    first.wait_for(lambda: stored_audit_time(app) is not None, "for the stored audit job")
    assert stored_audit_time(app) == (3, 0)
    first.stop()
    assert first.process.returncode == 0
    assert lease_holder(app) is None
    assert stored_audit_time(app) == (3, 0)  # still there while no scheduler runs

    second = scheduler_processes(XIAOCHE_AUDIT_AT="04:20")
    second.wait_for(second.holding, "for the lease")
    second.wait_for(lambda: stored_audit_time(app) == (4, 20), "for the audit at 04:20")
    second.wait_for(lambda: "daily_trip_audit next at" in second.output()
                    and "04:20:00" in second.output(), "to log the next audit")
