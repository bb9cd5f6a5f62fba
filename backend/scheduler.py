"""Jobs that run on the clock (APScheduler 3), for `xiaoche scheduler` and `xiaoche serve`.

Every job is a plain function of the app and an explicit ``now``, so tests call it with a fixed
time instead of waiting for the clock; the scheduler only decides *when* to call it.

The nightly trip audit runs at ``XIAOCHE_AUDIT_AT`` (default 00:30) in the district's timezone
and audits the local day that just ended, so that by morning ``GET /api/v1/audit/trips`` holds
yesterday's ground truth (DESIGN decision 1).

At ``XIAOCHE_MEAL_REPORT_CUTOFF`` (default 10:00) every school day, the logistics staff of each
school that has not reported its meals yet get a ``meal_report_missing`` notification.

Every ``XIAOCHE_DISPATCH_INTERVAL_S`` (default 2 s) the notification outbox is dispatched, and
every ``XIAOCHE_OFFLINE_CHECK_S`` (30 s) devices silent during a scheduled run are reported.

The daily jobs live in APScheduler's ``SQLAlchemyJobStore`` (table ``apscheduler_jobs``), so a
run due while no scheduler was up (a crash, a fail-over at 00:30) still happens once within
``MISFIRE_GRACE_S``. Jobs run only in the process holding the ``scheduler`` lease
(``backend.lease``): a second scheduler waits on standby and takes over when the first stops.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from dataclasses import dataclass

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from backend.audit_service import AuditSummary, audit_date
from backend.dispatch_service import check_settings, close_channels, dispatch_once
from backend.districts import district_timezone
from backend.extensions import db
from backend.lease import Lease, LeaseKeeper
from backend.meals_service import remind_missing_reports
from routing.calendar import zone

log = logging.getLogger(__name__)

AUDIT_JOB_ID = "daily_trip_audit"
MEAL_REMINDER_JOB_ID = "meal_report_reminder"
RETENTION_JOB_ID = "retention"
DISPATCH_JOB_ID = "dispatch_outbox"
OFFLINE_JOB_ID = "device_offline_watch"
PARTITIONS_JOB_ID = "ping_partitions"
#: Job store aliases: the database table, and memory for the frequent dispatcher (see JobSpec).
PERSISTENT, MEMORY = "default", "memory"
JOBS_TABLE = "apscheduler_jobs"
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


# --- the jobs ------------------------------------------------------------------------------
# Stored jobs are pickled with a textual reference to their function, so they take no app
# argument: they find the app of the scheduler running in this process here.

_app: Flask | None = None


def use_app(app: Flask) -> None:
    """Make ``app`` the one the jobs of this process run against."""
    global _app
    _app = app


def running_app() -> Flask:
    if _app is None:
        raise RuntimeError("no app registered for the scheduled jobs (backend.scheduler.use_app)")
    return _app


def nightly_audit_job() -> None:
    summary = audit_yesterday(running_app())
    log.info("scheduler: audited %s: %d trips", summary.service_date, summary.trips)


def meal_reminder_job() -> None:
    sent = remind_missing_reports(running_app())
    log.info("scheduler: %d meal report reminders sent", sent)


def retention_job() -> None:
    from backend.extensions import db
    from backend.retention import purge

    app = running_app()
    with app.app_context():
        engine = db.engine
    purge(engine, float(app.config["RETENTION_DAYS"]))


def ping_partitions_job() -> None:
    from backend.extensions import db
    from backend.ping_partitions import ensure_partitions

    app = running_app()
    with app.app_context():
        engine = db.engine
    ensure_partitions(engine, int(app.config.get("PING_PARTITIONS_AHEAD_DAYS") or 7))


def dispatch_job() -> None:
    dispatch_once(running_app())


def offline_watch_job() -> None:
    from backend.offline_service import watch_devices

    watch_devices(running_app())


@dataclass(frozen=True)
class JobSpec:
    """One row of the job table. ``func`` is ``module:function`` (what the job store pickles)."""

    id: str
    func: str
    trigger: BaseTrigger
    name: str
    jobstore: str = PERSISTENT
    misfire_grace_time: int | None = MISFIRE_GRACE_S

    def matches(self, job: Job) -> bool:
        """Whether the stored ``job`` is this one, scheduled the same way (then its next run
        time, maybe one missed while no scheduler ran, is kept)."""
        return (job.func_ref == self.func and repr(job.trigger) == repr(self.trigger)
                and tuple(job.args) == () and not job.kwargs)


def _local_time(app: Flask, key: str, env: str, default: str) -> tuple[int, int]:
    text = app.config.get(key) or default
    try:
        return parse_audit_at(text)
    except ValueError as exc:
        raise ValueError(f"{env}={text!r} is not a local time HH:MM (00:00-23:59)") from exc


def _seconds(app: Flask, key: str, env: str, default: float) -> float:
    value = app.config.get(key)
    value = default if value is None else float(value)
    if value <= 0:
        raise ValueError(f"{env}={value!r} must be more than 0 seconds")
    return value


def job_specs(app: Flask, tz) -> tuple[JobSpec, ...]:
    """The job table, from the app's settings.

    Raises
    ------
    ValueError
        On a malformed setting: better to refuse to start than to never audit.
    """
    hour, minute = _local_time(app, "AUDIT_AT", "XIAOCHE_AUDIT_AT", "00:30")
    meal_hour, meal_minute = _local_time(app, "MEAL_REPORT_CUTOFF", "XIAOCHE_MEAL_REPORT_CUTOFF",
                                         "10:00")
    interval = _seconds(app, "DISPATCH_INTERVAL_S", "XIAOCHE_DISPATCH_INTERVAL_S", 2.0)
    offline_every = _seconds(app, "OFFLINE_CHECK_S", "XIAOCHE_OFFLINE_CHECK_S", 30.0)
    retention = float(app.config.get("RETENTION_DAYS") or 0)
    if retention < 0:
        raise ValueError(f"XIAOCHE_RETENTION_DAYS={retention:g} must be 0 (keep) or more")
    keep: tuple[JobSpec, ...] = () if not retention else (
        # an hour after the audit, which reads yesterday's pings first
        JobSpec(RETENTION_JOB_ID, f"{__name__}:retention_job",
                CronTrigger(hour=(hour + 1) % 24, minute=minute, timezone=tz),
                f"delete raw pings, scans and rejects older than {retention:g} days"),)
    return keep + (
        JobSpec(AUDIT_JOB_ID, f"{__name__}:nightly_audit_job",
                CronTrigger(hour=hour, minute=minute, timezone=tz), "audit yesterday's trips"),
        JobSpec(MEAL_REMINDER_JOB_ID, f"{__name__}:meal_reminder_job",
                CronTrigger(hour=meal_hour, minute=meal_minute, timezone=tz),
                "remind schools of missing meal reports"),
        # In memory, not in the table: every run would rewrite its row (next_run_time and the
        # pickled job) every 2 s, ~43,000 writes a day competing with the ingest for SQLite's
        # one writer, and nothing is lost by not persisting it: the outbox is the state, and
        # any scheduler that takes over dispatches it within one interval. No misfire limit:
        # a late run (a busy or suspended host) still happens, once (coalesced).
        JobSpec(DISPATCH_JOB_ID, f"{__name__}:dispatch_job", IntervalTrigger(
            seconds=interval, timezone=tz), "dispatch the notification outbox",
            jobstore=MEMORY, misfire_grace_time=None),
        # In memory for the same reason; its state is the vehicle_watch table.
        JobSpec(OFFLINE_JOB_ID, f"{__name__}:offline_watch_job", IntervalTrigger(
            seconds=offline_every, timezone=tz), "report devices silent during a scheduled run",
            jobstore=MEMORY, misfire_grace_time=None),
        # PostgreSQL: the day partitions of pings ahead (a no-op on SQLite). Hourly and in
        # memory: it is idempotent and cheap (one catalog query when nothing is missing).
        JobSpec(PARTITIONS_JOB_ID, f"{__name__}:ping_partitions_job", IntervalTrigger(
            hours=1, timezone=tz), "create the coming days' partitions of pings",
            jobstore=MEMORY, misfire_grace_time=None),
    )


class ClockScheduler(BackgroundScheduler):
    """APScheduler with the job table; ``activate()`` when the lease is won, ``pause()`` when
    it is lost.

    Before activation its jobs are pending (``get_job`` shows their triggers) and nothing
    touches the job store: a standby must not rewrite the jobs the holder is running.
    """

    def __init__(self, app: Flask):
        with app.app_context():
            tz = zone(district_timezone())
            db.session.remove()
            engine = db.engine
        self.app = app
        self.specs = job_specs(app, tz)
        super().__init__(
            timezone=tz,
            jobstores={PERSISTENT: SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE),
                       MEMORY: MemoryJobStore()},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        for spec in self.specs:
            self.add_job(spec.func, spec.trigger, id=spec.id, name=spec.name,
                         jobstore=spec.jobstore, replace_existing=True,
                         misfire_grace_time=spec.misfire_grace_time)
        self.add_listener(_log_run, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def activate(self) -> None:
        """Start (or resume) running the jobs, after bringing the job store up to date."""
        use_app(self.app)
        if not self.running:
            self.remove_all_jobs()  # the pending copies: sync_jobs writes the real ones
            self.start(paused=True)
        self.sync_jobs()
        self.resume()

    def _process_jobs(self):
        # APScheduler 3's loop processes due jobs once more after shutdown() stopped the
        # executors (agronholm/apscheduler#285): it cannot submit them, yet advances their next
        # run time in the shared store, so a scheduler stopped (paused first) just as the audit
        # fell due would skip it for everyone. Only a running scheduler processes jobs.
        if self.state != STATE_RUNNING:
            return None
        return super()._process_jobs()

    def sync_jobs(self) -> None:
        """Make the stores hold exactly the job table: jobs added, their triggers replaced when
        a setting changed (the next run time of an unchanged job is kept), and stored jobs no
        longer in the table removed (one whose function is gone the store drops on reading)."""
        stored = {job.id: job for job in self.get_jobs(jobstore=PERSISTENT)}
        for spec in self.specs:
            previous = stored.pop(spec.id, None) if spec.jobstore == PERSISTENT else None
            keep = {}
            if previous is not None and previous.next_run_time and spec.matches(previous):
                keep["next_run_time"] = previous.next_run_time
            self.add_job(spec.func, spec.trigger, id=spec.id, name=spec.name,
                         jobstore=spec.jobstore, replace_existing=True,
                         misfire_grace_time=spec.misfire_grace_time, **keep)
        for job_id in stored:
            self.remove_job(job_id, jobstore=PERSISTENT)
            log.info("scheduler: removed the job %s, no longer in the job table", job_id)


def _log_run(event: JobExecutionEvent) -> None:
    # APScheduler's own per-run INFO lines are silenced (LeasedScheduler): the dispatcher runs
    # every 2 s. The daily jobs log their result themselves at INFO.
    log.debug("scheduler: ran %s%s", event.job_id, " (failed)" if event.exception else "")


def make_scheduler(app: Flask) -> ClockScheduler:
    """A scheduler with every job registered (pending), not started.

    Raises
    ------
    ValueError
        When a setting (``XIAOCHE_AUDIT_AT`` …) is malformed.
    """
    return ClockScheduler(app)


class LeasedScheduler:
    """The scheduler role: runs the jobs only while holding the ``scheduler`` lease.

    ``start()`` returns at once; a thread acquires the lease (retrying every third of
    ``XIAOCHE_SCHEDULER_LEASE_S`` on standby), renews it as often, pauses the jobs the moment a
    renewal finds the lease lost, and resumes them when it is won again. ``stop()`` waits for
    running jobs, then releases the lease so a standby takes over at once.

    Raises
    ------
    ValueError
        On a malformed setting, including a half-configured push channel.
    """

    def __init__(self, app: Flask, holder: str | None = None):
        ttl = _seconds(app, "SCHEDULER_LEASE_S", "XIAOCHE_SCHEDULER_LEASE_S", 30.0)
        self.app = app
        self.scheduler = make_scheduler(app)
        check_settings(app)  # a half-configured push channel refuses to start, as dispatch does
        # one line per run of a 2-second job would drown the log; errors are still logged
        logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
        with app.app_context():
            self.lease = Lease(db.engine, name="scheduler", holder=holder, ttl_s=ttl)
        self.keeper = LeaseKeeper(self.lease, on_acquired=self._activate, on_lost=self._pause)

    @property
    def holding(self) -> bool:
        return self.keeper.holding

    def start(self) -> None:
        self.keeper.start()

    def stop(self) -> None:
        self.keeper.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        close_channels(self.app)
        self.keeper.release()

    def _activate(self) -> None:
        self.scheduler.activate()
        jobs = ", ".join(f"{job.id} next at {job.next_run_time}"
                         for job in self.scheduler.get_jobs(jobstore=PERSISTENT))
        log.info("scheduler running (%s)", jobs)

    def _pause(self) -> None:
        if self.scheduler.running:
            self.scheduler.pause()
