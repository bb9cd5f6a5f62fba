"""Jobs that run on the clock (APScheduler 3), for `xiaoche serve` and the scheduler role.

Every job is a plain function of the app and an explicit ``now``, so tests call it with a fixed
time instead of waiting for the clock; the scheduler only decides *when* to call it.

The nightly trip audit runs at ``XIAOCHE_AUDIT_AT`` (default 00:30) in the district's timezone
and audits the local day that just ended, so that by morning ``GET /api/v1/audit/trips`` holds
yesterday's ground truth (DESIGN decision 1).

At ``XIAOCHE_MEAL_REPORT_CUTOFF`` (default 10:00) every school day, the logistics staff of each
school that has not reported its meals yet get a ``meal_report_missing`` notification.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from flask import Flask
from sqlalchemy import select

from backend.audit_service import AuditSummary, audit_date
from backend.extensions import db
from backend.meals_service import remind_missing_reports
from backend.models import District
from routing.calendar import zone

log = logging.getLogger(__name__)

AUDIT_JOB_ID = "daily_trip_audit"
MEAL_REMINDER_JOB_ID = "meal_report_reminder"
DEFAULT_TIMEZONE = "Asia/Shanghai"
_HH_MM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
# A run missed by up to an hour (process busy, host suspended) still happens once, not twice.
MISFIRE_GRACE_S = 3600


def parse_audit_at(text: str) -> tuple[int, int]:
    """``XIAOCHE_AUDIT_AT`` as ``(hour, minute)``.

    Examples
    --------
    >>> parse_audit_at("00:30")
    (0, 30)
    >>> parse_audit_at("25:00")
    Traceback (most recent call last):
    ...
    ValueError: XIAOCHE_AUDIT_AT='25:00' is not a local time HH:MM (00:00-23:59)
    """
    match = _HH_MM.match(str(text).strip())
    if match is None:
        raise ValueError(f"XIAOCHE_AUDIT_AT={text!r} is not a local time HH:MM (00:00-23:59)")
    return int(match.group(1)), int(match.group(2))


def district_timezone() -> str:
    """The timezone local dates are counted in (the first district's; one county per install)."""
    name = db.session.scalars(select(District.timezone).order_by(District.id)).first()
    return name or DEFAULT_TIMEZONE


def audit_yesterday(app: Flask, now: dt.datetime | float | None = None) -> AuditSummary:
    """Audit the local date before ``now`` (default: the wall clock) in the district timezone.

    Parameters
    ----------
    app : Flask
        The application (the job runs in a thread of its own, outside any app context).
    now : datetime (timezone-aware) or epoch seconds, optional
        When the job runs.
    """
    with app.app_context():
        tz = zone(district_timezone())
        if now is None:
            now = time.time()
        if isinstance(now, dt.datetime):
            if now.tzinfo is None:
                raise ValueError("now must be timezone-aware: a naive time has no local date")
            local = now.astimezone(tz)
        else:
            local = dt.datetime.fromtimestamp(now, tz)
        yesterday = local.date() - dt.timedelta(days=1)
        try:
            return audit_date(yesterday)
        finally:
            db.session.remove()


def make_scheduler(app: Flask) -> BackgroundScheduler:
    """A scheduler with every job registered, not started.

    Raises
    ------
    ValueError
        When ``XIAOCHE_AUDIT_AT`` is not ``HH:MM``: better to refuse to start than to never audit.
    """
    hour, minute = parse_audit_at(app.config.get("AUDIT_AT", "00:30"))
    cutoff = app.config.get("MEAL_REPORT_CUTOFF", "10:00")
    try:
        meal_hour, meal_minute = parse_audit_at(cutoff)
    except ValueError as exc:
        raise ValueError(f"XIAOCHE_MEAL_REPORT_CUTOFF={cutoff!r} is not a local time HH:MM "
                         "(00:00-23:59)") from exc
    with app.app_context():
        tz = zone(district_timezone())
        db.session.remove()
    scheduler = BackgroundScheduler(timezone=tz)
    jobs = ((audit_yesterday, hour, minute, AUDIT_JOB_ID, "audit yesterday's trips"),
            (remind_missing_reports, meal_hour, meal_minute, MEAL_REMINDER_JOB_ID,
             "remind schools of missing meal reports"))
    for job, at_hour, at_minute, job_id, name in jobs:
        scheduler.add_job(job, CronTrigger(hour=at_hour, minute=at_minute, timezone=tz),
                          args=[app], id=job_id, name=name, replace_existing=True,
                          coalesce=True, max_instances=1, misfire_grace_time=MISFIRE_GRACE_S)
    return scheduler


def start_scheduler(app: Flask) -> BackgroundScheduler:
    """Start the jobs in a background thread; the caller calls ``shutdown()`` on exit."""
    scheduler = make_scheduler(app)
    scheduler.start()
    job = scheduler.get_job(AUDIT_JOB_ID)
    log.info(
        "scheduler started; next trip audit at %s",
        job.next_run_time.isoformat() if job and job.next_run_time else "never",
    )
    return scheduler
