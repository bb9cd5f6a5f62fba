"""Device offline / back online: one pair per silence during a scheduled run, never at night,
never repeated by a restarted scheduler; told to the staff who see the bus, nobody else."""

from __future__ import annotations

import datetime as dt

import orjson
from sqlalchemy import select

from backend.extensions import db
from backend.ingest.pipeline import IngestPipeline
from backend.models import Event, VehicleWatch
from backend.offline_service import watch_devices
from gps_ingest.filters import FilterConfig
from gps_ingest.pipeline import Message
from tests.drives import local_ts
from tests.integration.notify_rules.test_timeline import notes

MONDAY = dt.date(2026, 11, 9)  # zt-am-1 runs 06:50-07:20
LONGFENG = (27.4805, 113.261)


def heard(app, at: float) -> None:
    """bus-07's device sends a fix at ``at``, received then (the pipeline's clock)."""
    with app.app_context():
        pipe = IngestPipeline(db.engine, FilterConfig(max_age_s=0), clock=lambda: at)
    body = {"ts": at, "lat": LONGFENG[0], "lon": LONGFENG[1], "speed_kmh": 0}
    pipe.process([Message(payload=orjson.dumps(body), received_at=at, kind="pings",
                          device_id="dev-bus-07")])


def kinds(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Event.kind).where(Event.kind.like("device_%"))
                                       .order_by(Event.id)))


def t(hhmm: str, day: dt.date = MONDAY) -> float:
    return local_ts(day, hhmm + ":00")


def test_one_offline_and_one_online_per_silence_in_a_scheduled_run(app, imported):
    heard(app, t("06:45"))
    assert watch_devices(app, t("06:47")).offline == 0  # silent, but no run scheduled yet
    # the run starts with the device silent for 5 minutes already: staff hear of it at once
    assert watch_devices(app, t("06:50")).offline == 1
    assert kinds(app) == ["device_offline"]
    for minute in ("06:51", "06:55", "07:00"):  # still silent: said once, not every tick
        assert watch_devices(app, t(minute)).offline == 0
    heard(app, t("07:01"))
    assert watch_devices(app, t("07:02")).online == 1
    assert watch_devices(app, t("07:03")).online == 0
    assert kinds(app) == ["device_offline", "device_online"]

    staff = notes(app, "houqin.wang")
    assert [n.kind for n in staff] == ["device_offline", "device_online"]
    assert "湘B·D1234" in staff[0].body
    assert notes(app, "admin") and notes(app, "houqin.chen") == []  # 龙凤 staff do not see bus-07
    assert notes(app, "zhang.lanlan") == []  # parents are not told of devices


def test_a_silence_outside_any_run_is_not_offline(app, imported):
    heard(app, t("07:40"))
    for hhmm in ("08:00", "12:00", "23:00"):
        assert watch_devices(app, t(hhmm)).offline == 0
    sunday = MONDAY - dt.timedelta(days=1)  # zt-am-1 runs on school days only
    heard(app, t("06:00", sunday))
    assert watch_devices(app, t("06:55", sunday)).offline == 0
    assert kinds(app) == []


def test_a_short_gap_is_not_offline(app, imported):
    heard(app, t("06:52"))
    assert watch_devices(app, t("06:54")).offline == 0  # two minutes: a dead zone, not offline
    heard(app, t("06:54"))
    assert watch_devices(app, t("06:56")).offline == 0
    assert kinds(app) == []


def test_the_watch_state_survives_a_restart(app, imported):
    heard(app, t("06:45"))
    watch_devices(app, t("06:52"))
    with app.app_context():
        row = db.session.get(VehicleWatch, "bus-07")
        assert row.silence_from == t("06:45")
    # a new process (no caches) neither repeats the offline nor forgets the online
    assert watch_devices(app, t("06:58")).offline == 0
    heard(app, t("07:05"))
    assert watch_devices(app, t("07:06")).online == 1
    assert kinds(app) == ["device_offline", "device_online"]


def test_silence_threshold_is_configurable(app, imported):
    app.config["OFFLINE_AFTER_S"] = 600
    try:
        heard(app, t("06:50"))
        assert watch_devices(app, t("06:58")).offline == 0
        assert watch_devices(app, t("07:00")).offline == 1
    finally:
        app.config.pop("OFFLINE_AFTER_S")
