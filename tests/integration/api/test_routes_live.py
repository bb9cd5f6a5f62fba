"""What parents and staff read of a route: the live bus with ETAs, its track, broadcasts and
substitute buses — on a real database, with pings stored through the real ingest pipeline."""

from __future__ import annotations

import datetime as dt
import time

import orjson
import pytest

from backend.extensions import db
from backend.ingest.pipeline import IngestPipeline
from backend.ingest.steps import tracking_step
from backend.models import RouteSubstitution
from backend.timefmt import iso
from gps_ingest.filters import FilterConfig
from gps_ingest.pipeline import Message
from routing.gcj02 import wgs84_to_gcj02
from tests.conftest import login
from tests.drives import ZT_AM_1_STOPS, local_ts, on_schedule_drive, truth_arrivals

MONDAY = dt.date(2026, 11, 9)
PARENT = ("zhang.lanlan", "demo-parent-1")  # 李明 rides zt-am-1 from 龙凤村
OTHER_PARENT = ("liu.hua", "demo-parent-3")  # 刘洋 rides lf-am-1
LOGISTICS = ("houqin.wang", "demo-logistics-1")  # 朱亭学校
OTHER_LOGISTICS = ("houqin.chen", "demo-logistics-2")  # 龙凤学校


def drive(app, device: str, rows) -> None:
    """Store ``rows`` through the ingest pipeline (with tracking), 6 pings a batch."""
    with app.app_context():
        pipeline = IngestPipeline(db.engine, FilterConfig(max_age_s=0),
                                  after_store=[tracking_step()])
    pings = [{"ts": ts, "lat": lat, "lon": lon, "speed_kmh": v} for ts, lat, lon, v in rows]
    for k in range(0, len(pings), 6):
        pipeline.process([Message(payload=orjson.dumps(pings[k:k + 6]), received_at=time.time(),
                                  kind="pings", device_id=device)])


@pytest.fixture
def at(app):
    """Set the API's clock: ``at(ts)``."""
    def set_clock(ts: float) -> None:
        app.config["CLOCK"] = lambda: ts
    return set_clock


def live(client, who, route="zt-am-1", **params):
    return client.get(f"/api/v1/routes/{route}/live", headers=login(client, *who),
                      query_string=params)


def test_before_any_trip_the_parent_sees_the_timetable_and_no_position(client, imported, at):
    at(local_ts(MONDAY, "06:00:00"))
    body = live(client, PARENT).get_json()
    assert body["active"] is False and body["position"] is None and body["trip_id"] is None
    assert [s["stop_id"] for s in body["stops"]] == ZT_AM_1_STOPS
    assert [s["name"] for s in body["stops"]][0] == "龙凤村"
    assert body["stops"][0]["scheduled_at"] == "2026-11-08T22:50:00Z"  # 06:50 in Shanghai
    assert {s["status"] for s in body["stops"]} == {"upcoming"}


def test_mid_trip_the_parent_sees_the_bus_the_visited_stops_and_etas_for_the_rest(
        client, app, imported, at):
    rows = on_schedule_drive(imported, MONDAY)
    until = local_ts(MONDAY, "07:00:00")  # past 石塘村 (06:58), before 东安村 (07:06)
    drive(app, "dev-bus-07", [r for r in rows if r[0] <= until])
    last = [r for r in rows if r[0] <= until][-1]
    at(last[0] + 5)

    body = live(client, PARENT).get_json()
    assert body["active"] is True and body["vehicle_id"] == "bus-07"
    assert body["last_trip"] is None and body["next_run"] is None  # during a trip: the trip
    assert body["trip_id"] == "20261109-zt-am-1-bus-07"
    assert body["position"]["lat"] == pytest.approx(last[1]) and body["position"]["ts"]
    assert [s["status"] for s in body["stops"]] == ["visited", "visited", "upcoming", "upcoming"]
    assert body["next_stop_id"] == "dongan-cun"
    etas = [s["eta"] for s in body["stops"][2:]]
    assert all(etas) and etas[0] < etas[1]
    assert body["stops"][0]["arrived_at"] and body["stops"][0]["departed_at"]
    # how sure: the uncertainty grows (never shrinks) with the stops ahead, none for stops done
    uncertainty = [s["eta_uncertainty_s"] for s in body["stops"]]
    assert uncertainty[:2] == [None, None] and 0 < uncertainty[2] <= uncertainty[3]

    gcj = live(client, PARENT, crs="gcj02").get_json()
    assert (gcj["position"]["lat"], gcj["position"]["lon"]) == pytest.approx(
        wgs84_to_gcj02(body["position"]["lat"], body["position"]["lon"]))
    assert gcj["crs"] == "gcj02"

    staff = live(client, LOGISTICS).get_json()
    assert staff["trip_id"] == body["trip_id"]


def test_after_the_trip_the_parent_no_longer_sees_the_bus(client, app, imported, at):
    rows = on_schedule_drive(imported, MONDAY)
    drive(app, "dev-bus-07", rows)
    at(rows[-1][0] + 60)
    body = live(client, PARENT).get_json()
    assert body["active"] is False and body["position"] is None


def test_after_the_trip_the_parent_reads_when_it_reached_school_and_the_next_run(
        client, app, imported, at):
    # before the day's first trip: no completed trip yet, the next run is this morning's
    at(local_ts(MONDAY, "06:00:00"))
    body = live(client, PARENT).get_json()
    assert body["last_trip"] is None
    assert body["next_run"]["service_date"] == "2026-11-09"
    assert body["next_run"]["departs_at"] == "2026-11-08T22:50:00Z"  # 06:50 in Shanghai

    rows = on_schedule_drive(imported, MONDAY)
    drive(app, "dev-bus-07", rows)
    at(rows[-1][0] + 60)
    body = live(client, PARENT).get_json()
    assert body["active"] is False
    last = body["last_trip"]
    assert last["trip_id"] == "20261109-zt-am-1-bus-07"
    with app.app_context():
        from sqlalchemy import select

        from backend.models import Event
        school = db.session.scalar(select(Event.ts).where(
            Event.trip_id == last["trip_id"], Event.kind == "stop_arrived",
            Event.stop_id == ZT_AM_1_STOPS[-1]))
        completed = db.session.scalar(select(Event.ts).where(
            Event.trip_id == last["trip_id"], Event.kind == "trip_completed"))
    assert school is not None
    assert last["arrived_at_last_stop"] == iso(school) and last["completed_at"] == iso(completed)
    assert abs(school - truth_arrivals(imported, MONDAY)[-1]) < 30  # when it entered the gate
    # zt-am-1 runs once a school day: the next run is Tuesday's 06:50
    assert body["next_run"]["service_date"] == "2026-11-10"
    assert body["next_run"]["departs_at"] == "2026-11-09T22:50:00Z"

    # the next day, before its trip: yesterday's trip is not "today's"
    at(local_ts(MONDAY + dt.timedelta(days=1), "06:00:00"))
    assert live(client, PARENT).get_json()["last_trip"] is None


def test_the_next_run_skips_the_weekend(client, imported, at):
    friday = MONDAY + dt.timedelta(days=4)
    at(local_ts(friday, "09:00:00"))
    body = live(client, PARENT).get_json()
    assert body["last_trip"] is None
    assert body["next_run"]["service_date"] == "2026-11-16"  # Monday


def test_a_bus_silent_past_its_trip_timeout_is_not_shown_as_live(client, app, imported, at):
    rows = on_schedule_drive(imported, MONDAY)
    drive(app, "dev-bus-07", rows[:60])
    at(local_ts(MONDAY, "09:00:00"))  # 07:20 + the tracker's hour of slack has passed
    assert live(client, PARENT).get_json()["active"] is False


def test_routes_outside_the_callers_scope_answer_404_and_other_roles_403(client, imported):
    assert live(client, OTHER_PARENT).status_code == 404
    assert live(client, OTHER_LOGISTICS).status_code == 404
    assert live(client, PARENT, route="no-such-route").status_code == 404
    assert live(client, ("liu.sheng", "demo-teacher-1")).status_code == 403
    assert client.get("/api/v1/routes/zt-am-1/live").status_code == 401
    assert live(client, PARENT, crs="mars").status_code == 422


def test_the_trip_track_covers_exactly_the_trip(client, app, imported, at):
    rows = on_schedule_drive(imported, MONDAY)
    before = [(local_ts(MONDAY, "06:00:00") + 10 * i, 27.40, 113.10 + 0.0001 * i, 5.0)
              for i in range(5)]  # the bus somewhere else an hour before: not the parents' business
    drive(app, "dev-bus-07", before + rows)
    trip_id = "20261109-zt-am-1-bus-07"
    response = client.get(f"/api/v1/trips/{trip_id}/track", headers=login(client, *PARENT))
    assert response.status_code == 200
    feature = response.get_json()
    times = feature["properties"]["times"]
    assert feature["geometry"]["type"] == "LineString"
    assert len(times) == len(feature["geometry"]["coordinates"]) > 100
    assert times[0] >= "2026-11-08T22:40:00Z" and feature["properties"]["in_progress"] is False
    assert client.get(f"/api/v1/trips/{trip_id}/track",
                      headers=login(client, *OTHER_PARENT)).status_code == 404
    assert client.get("/api/v1/trips/nope/track",
                      headers=login(client, *PARENT)).status_code == 404


def test_a_staff_broadcast_reaches_every_parent_of_the_route_and_nobody_else(client, imported):
    headers = login(client, *LOGISTICS)
    response = client.post("/api/v1/routes/zt-am-1/messages", headers=headers,
                           json={"title": "校车晚点", "body": "因道路施工，早班车晚到约10分钟。"})
    assert response.status_code == 201 and response.get_json()["recipients"] == 2
    items = client.get("/api/v1/me/notifications",
                       headers=login(client, *PARENT)).get_json()["items"]
    assert [(i["kind"], i["title"], i["route_id"]) for i in items] == [
        ("staff_message", "校车晚点", "zt-am-1")]
    assert client.get("/api/v1/me/notifications",
                      headers=login(client, *OTHER_PARENT)).get_json()["items"] == []
    assert client.post("/api/v1/routes/zt-am-1/messages", headers=login(client, *OTHER_LOGISTICS),
                       json={"title": "x", "body": "y"}).status_code == 404
    assert client.post("/api/v1/routes/zt-am-1/messages", headers=login(client, *PARENT),
                       json={"title": "x", "body": "y"}).status_code == 403
    bad = client.post("/api/v1/routes/zt-am-1/messages", headers=headers, json={"title": ""})
    assert bad.status_code == 422 and set(bad.get_json()["errors"]) >= {"title", "body"}


def test_a_substitute_bus_is_set_read_and_cancelled_for_a_date(client, imported, at):
    at(local_ts(MONDAY, "05:00:00"))
    headers = login(client, *LOGISTICS)
    url = "/api/v1/routes/zt-am-1/vehicle"
    put = client.put(url, headers=headers, query_string={"date": "2026-11-10"},
                     json={"vehicle_id": "bus-spare"})
    assert put.status_code == 200 and put.get_json()["vehicle_id"] == "bus-spare"
    got = client.get(url, headers=headers, query_string={"date": "2026-11-10"}).get_json()
    assert got["substitute"] is True and got["vehicle_ids"] == ["bus-spare"]
    assert client.get(url, headers=headers).get_json()["vehicle_ids"] == ["bus-07"]  # today
    assert client.put(url, headers=headers, json={"vehicle_id": "truck-01"}).status_code == 422
    assert client.put(url, headers=headers, json={"vehicle_id": "nope"}).status_code == 422
    assert client.put(url, headers=headers, query_string={"date": "2026-11-01"},
                      json={"vehicle_id": "bus-spare"}).status_code == 422
    assert client.put(url, headers=login(client, *OTHER_LOGISTICS),
                      json={"vehicle_id": "bus-spare"}).status_code == 404
    assert client.delete(url, headers=headers,
                         query_string={"date": "2026-11-10"}).status_code == 204
    assert client.delete(url, headers=headers,
                         query_string={"date": "2026-11-10"}).status_code == 404


def test_tracking_and_parents_follow_the_substitute_bus_that_day(client, app, imported, at):
    with app.app_context():
        db.session.add(RouteSubstitution(route_id="zt-am-1", service_date=MONDAY.isoformat(),
                                         vehicle_id="bus-spare", set_by="houqin.wang",
                                         set_at=time.time()))
        db.session.commit()
    rows = on_schedule_drive(imported, MONDAY)
    drive(app, "dev-bus-07", rows)  # bus-07 drives it too, but it is not its run today
    mid = [r for r in rows if r[0] <= local_ts(MONDAY, "07:00:00")]
    drive(app, "dev-bus-spare", mid)
    at(mid[-1][0] + 5)
    body = live(client, PARENT).get_json()
    assert body["active"] is True and body["vehicle_id"] == "bus-spare"
    assert body["trip_id"] == "20261109-zt-am-1-bus-spare"
    events = client.get("/api/v1/events", headers=login(client, "admin", "demo-admin-1"),
                        query_string={"kind": "trip_started"}).get_json()["items"]
    assert [(e["vehicle_id"], e["route_id"]) for e in events] == [("bus-spare", "zt-am-1")]
