"""GET /stream: positions, ETAs and notifications as they are stored, for what the caller may see.

Here the stream generator runs with a fake clock against a real database, with pings stored
through the real ingest pipeline; ``test_stream_served.py`` runs it as deployed.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select

from backend.extensions import db
from backend.messages_service import broadcast_to_route
from backend.models import LivePosition, User
from backend.stream_service import HEARTBEAT, Message, ResumePoint, StreamConfig
from backend.streams.live import live_stream
from backend.timefmt import iso
from routing.gcj02 import wgs84_to_gcj02
from tests.conftest import login
from tests.drives import ZT_AM_1_STOPS, local_ts, on_schedule_drive
from tests.integration.api.test_routes_live import drive
from tests.integration.ingest.conftest import IngestProcess, mqtt_url  # noqa: F401  (fixture)

MONDAY = dt.date(2026, 11, 9)
PARENT = ("zhang.lanlan", "demo-parent-1")  # 李明 rides zt-am-1 from 龙凤村
OTHER_PARENT = ("liu.hua", "demo-parent-3")  # 刘洋 rides lf-am-1
LOGISTICS = ("houqin.wang", "demo-logistics-1")  # 朱亭学校
CONFIG = StreamConfig(poll_s=0.25, heartbeat_s=5.0, max_s=3600.0)


# -- the generator with a fake clock --------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.while_asleep: list[Callable[[], None]] = []  # one per sleep, between two polls

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.while_asleep:
            self.while_asleep.pop(0)()


class Stream:
    """One stream connection of a user, pulled by the test; a heartbeat means "nothing new"."""

    def __init__(self, app, who: tuple[str, str], resume: str | None = None,
                 crs: str = "wgs84", config: StreamConfig = CONFIG):
        self.app, self.clock = app, FakeClock()
        with app.app_context():
            user = db.session.scalars(select(User).filter_by(username=who[0])).one()
            user_id, version = user.id, user.token_version
        self.messages = live_stream(user_id, version, resume=resume, crs=crs, config=config,
                                    monotonic=self.clock.monotonic, sleep=self.clock.sleep)
        self.first = self.next()
        self.last_id = self.first.id

    def next(self) -> Message:
        with self.app.app_context():
            message = next(self.messages)
        if message.id is not None:
            self.last_id = message.id
        return message

    def events(self) -> list[Message]:
        """Everything sent until the stream goes quiet (its next heartbeat)."""
        out = []
        while (message := self.next()) != HEARTBEAT:
            out.append(message)
        return out


def kinds(messages: list[Message]) -> list[str | None]:
    return [m.event for m in messages]


@pytest.fixture
def at(app):
    """Set the live views' wall clock (trip in progress or not): ``at(ts)``."""
    def set_clock(ts: float) -> None:
        app.config["CLOCK"] = lambda: ts
    return set_clock


def mid_trip_rows(imported) -> list[tuple[float, float, float, float]]:
    until = local_ts(MONDAY, "07:00:00")  # past 石塘村 (06:58), before 东安村 (07:06)
    return [r for r in on_schedule_drive(imported, MONDAY) if r[0] <= until]


def test_a_stream_opens_with_retry_and_a_resume_point_and_keeps_alive_while_quiet(app, imported):
    stream = Stream(app, LOGISTICS)
    assert stream.first.encode() == f"retry: 3000\nid: {stream.first.id}\n\n"
    assert ResumePoint.parse(stream.first.id) == ResumePoint(0.0, 0)
    assert stream.next() == HEARTBEAT and stream.clock.now == pytest.approx(5.0)
    assert HEARTBEAT.encode() == ": keep-alive\n\n"
    assert stream.next() == HEARTBEAT and stream.clock.now == pytest.approx(10.0)


def test_the_server_ends_a_stream_after_its_maximum_life_so_no_worker_is_held_forever(
        app, imported):
    stream = Stream(app, LOGISTICS, config=StreamConfig(heartbeat_s=4.0, max_s=10.0))
    with app.app_context():
        rest = list(stream.messages)
    assert rest == [HEARTBEAT, HEARTBEAT] and stream.clock.now == pytest.approx(10.0)


def test_a_stream_holds_no_database_connection_while_it_sleeps(app, imported):
    stream = Stream(app, PARENT)
    checked_out = []
    with app.app_context():
        pool = db.engine.pool
    for _ in range(3):
        stream.clock.while_asleep.append(lambda: checked_out.append(pool.checkedout()))
    with app.app_context():
        broadcast_to_route("zt-am-1", "校车晚点", "晚到", "houqin.wang")
    assert kinds(stream.events()) == ["notification"]
    assert checked_out == [0, 0, 0]


def test_a_stream_ends_when_its_user_logs_out_everywhere(app, imported):
    stream = Stream(app, PARENT, config=StreamConfig(heartbeat_s=5.0, scope_refresh_s=10.0))
    assert stream.next() == HEARTBEAT  # t = 5 s: the token was checked at 0
    with app.app_context():
        db.session.scalars(select(User).filter_by(username=PARENT[0])).one().token_version += 1
        db.session.commit()
        rest = list(stream.messages)
    assert rest == [] and stream.clock.now == pytest.approx(10.0)  # checked again, ended


def test_staff_get_the_newest_position_and_the_etas_of_a_bus_the_ingest_stored(
        app, imported, at):
    stream = Stream(app, LOGISTICS)
    gcj = Stream(app, LOGISTICS, crs="gcj02")
    rows = mid_trip_rows(imported)
    drive(app, "dev-bus-07", rows)
    last = rows[-1]
    at(last[0] + 5)

    position, eta = stream.events()
    assert (position.event, eta.event) == ("position", "eta")
    assert position.data == {
        "vehicle_id": "bus-07", "route_id": "zt-am-1", "trip_id": "20261109-zt-am-1-bus-07",
        "lat": last[1], "lon": last[2], "ts": iso(last[0]), "speed_kmh": last[3],
        "heading_deg": position.data["heading_deg"]}
    assert eta.data["trip_id"] == "20261109-zt-am-1-bus-07" and eta.data["vehicle_id"] == "bus-07"
    assert eta.data["as_of"] == iso(last[0])  # the ping the prediction was made from
    assert [s["stop_id"] for s in eta.data["stops"]] == ZT_AM_1_STOPS
    upcoming = [s["eta"] for s in eta.data["stops"][2:]]
    assert all(upcoming) and upcoming[0] < upcoming[1] and eta.data["stops"][0]["eta"] is None
    assert position.encode().startswith(f"id: {position.id}\nevent: position\ndata: {{")

    (converted, _) = gcj.events()
    assert (converted.data["lat"], converted.data["lon"]) == pytest.approx(
        wgs84_to_gcj02(last[1], last[2]))
    assert stream.events() == []  # nothing new: nothing sent again


def test_a_parent_sees_the_bus_only_while_it_is_on_a_trip_of_their_childs_route(
        app, imported, at):
    parent, other, staff = (Stream(app, who) for who in (PARENT, OTHER_PARENT, LOGISTICS))
    rows = on_schedule_drive(imported, MONDAY)
    before = [(local_ts(MONDAY, "06:00:00") + 10 * i, 27.40, 113.10 + 0.0001 * i, 5.0)
              for i in range(5)]  # an hour before the run, somewhere else: not the parents' business
    drive(app, "dev-bus-07", before)
    at(before[-1][0] + 5)
    assert parent.events() == [] and other.events() == []
    (off_trip,) = staff.events()
    assert off_trip.event == "position" and off_trip.data["trip_id"] is None

    mid = mid_trip_rows(imported)
    drive(app, "dev-bus-07", mid)
    at(mid[-1][0] + 5)
    on_trip = parent.events()
    assert kinds(on_trip) == ["position", "eta"]
    assert on_trip[0].data["trip_id"] == "20261109-zt-am-1-bus-07"
    assert other.events() == []

    drive(app, "dev-bus-07", [r for r in rows if r[0] > mid[-1][0]])
    at(rows[-1][0] + 60)
    assert parent.events() == [] and other.events() == []  # the trip is over
    (after,) = staff.events()  # staff still follow it: the newest position, on no trip
    assert after.data["ts"] == iso(rows[-1][0]) and after.data["trip_id"] is None


def test_a_parent_does_not_see_a_bus_whose_device_fell_silent_past_its_trip(app, imported, at):
    parent = Stream(app, PARENT)
    drive(app, "dev-bus-07", mid_trip_rows(imported))
    at(local_ts(MONDAY, "09:00:00"))  # 07:20 + the tracker's hour of slack has passed
    assert parent.events() == []


def test_every_user_gets_their_own_notifications_and_nobody_elses(app, imported):
    parent, other, staff = (Stream(app, who) for who in (PARENT, OTHER_PARENT, LOGISTICS))
    with app.app_context():
        broadcast_to_route("zt-am-1", "校车晚点", "因道路施工，早班车晚到约10分钟。", "houqin.wang")
    (message,) = parent.events()
    assert message.event == "notification"
    assert message.data == {
        "id": message.data["id"], "kind": "staff_message", "title": "校车晚点",
        "body": "因道路施工，早班车晚到约10分钟。", "created_at": message.data["created_at"],
        "route_id": "zt-am-1", "stop_id": None, "trip_id": None}
    assert message.data["created_at"].endswith("Z")
    assert ResumePoint.parse(message.id).notification_id == message.data["id"]
    assert other.events() == [] and staff.events() == []


def test_a_client_resuming_with_last_event_id_gets_what_it_missed_and_nothing_older(
        app, imported, at):
    parent, staff = Stream(app, PARENT), Stream(app, LOGISTICS)
    with app.app_context():
        broadcast_to_route("zt-am-1", "第一条", "一", "houqin.wang")
    assert [m.data["title"] for m in parent.events()] == ["第一条"]
    before = [(local_ts(MONDAY, "06:00:00") + 10 * i, 27.40, 113.10 + 0.0001 * i, 5.0)
              for i in range(12)]
    drive(app, "dev-bus-07", before[:6])
    at(before[-1][0] + 5)
    assert [m.data["ts"] for m in staff.events()] == [iso(before[5][0])]
    parent_left, staff_left = parent.last_id, staff.last_id  # both disconnect here

    with app.app_context():
        broadcast_to_route("zt-am-1", "第二条", "二", "houqin.wang")
        broadcast_to_route("zt-am-1", "第三条", "三", "houqin.wang")
    drive(app, "dev-bus-07", before[6:])  # two batches: only the newest position is still there

    resumed = Stream(app, PARENT, resume=parent_left).events()
    assert [m.data["title"] for m in resumed] == ["第二条", "第三条"]
    assert [m.data["ts"] for m in Stream(app, LOGISTICS, resume=staff_left).events()] == [
        iso(before[-1][0])]
    assert Stream(app, PARENT, resume=resumed[-1].id).events() == []


@pytest.mark.parametrize("last_event_id", ["garbage", "1:2:3", "nan:1", "12.5", ":", "-1:-1"])
def test_a_last_event_id_we_did_not_give_out_starts_the_stream_from_now(
        app, imported, last_event_id):
    with app.app_context():
        broadcast_to_route("zt-am-1", "旧消息", "旧", "houqin.wang")
    stream = Stream(app, PARENT, resume=last_event_id)
    assert stream.first.id == Stream(app, PARENT).first.id
    assert stream.events() == []


def test_a_resume_point_ahead_of_the_store_is_not_trusted(app, imported):
    stream = Stream(app, PARENT, resume=f"{time.time() + 86400!r}:999999")
    assert ResumePoint.parse(stream.first.id) == ResumePoint(0.0, 0)
    with app.app_context():
        broadcast_to_route("zt-am-1", "新消息", "新", "houqin.wang")
    assert kinds(stream.events()) == ["notification"]


def test_a_position_committed_after_a_newer_one_still_reaches_the_stream(app, imported):
    """Two ingest processes stamp received_at before they commit: the slower commit shows a
    smaller received_at than one already streamed."""
    staff = Stream(app, LOGISTICS)
    now = time.time()

    def store(vehicle_id: str, received_at: float) -> None:
        with app.app_context():
            db.session.merge(LivePosition(vehicle_id=vehicle_id, device_id=f"dev-{vehicle_id}",
                                          ts=received_at - 1, lat=27.4, lon=113.1,
                                          received_at=received_at))
            db.session.commit()

    store("bus-07", now)
    # stamped before bus-07's, committed just after the poll that sent bus-07
    staff.clock.while_asleep.append(lambda: store("truck-01", now - 0.5))
    assert [m.data["vehicle_id"] for m in staff.events()] == ["bus-07", "truck-01"]
    assert staff.events() == []


def test_the_stream_answers_401_problem_json_without_a_token_and_takes_one_in_the_query(
        client, imported):
    response = client.get("/api/v1/stream")
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert client.get("/api/v1/stream", query_string={"access_token": "nope"}).status_code == 401
    token = login(client, *PARENT)["Authorization"].removeprefix("Bearer ")
    response = client.get("/api/v1/stream", query_string={"access_token": token},
                          buffered=False)
    try:
        assert response.status_code == 200 and response.mimetype == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-cache"
        assert next(iter(response.response)).startswith(b"retry: 3000\nid: ")
    finally:
        response.close()
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "text/event-stream" in spec["paths"]["/api/v1/stream"]["get"]["responses"]["200"][
        "content"]
