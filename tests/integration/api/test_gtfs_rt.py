"""The GTFS-Realtime feeds of the school buses: bus-07 driven mid-trip through the real ingest
pipeline (as in test_routes_live), read back as protobuf by staff of its school and an admin."""

from __future__ import annotations

import datetime as dt

import pytest
from google.transit import gtfs_realtime_pb2 as rt

from tests.conftest import login
from tests.drives import ZT_AM_1_STOPS, local_ts, on_schedule_drive
from tests.integration.api import test_routes_live
from tests.integration.api.test_routes_live import (  # the same drive and people
    LOGISTICS,
    MONDAY,
    OTHER_LOGISTICS,
    PARENT,
    drive,
    live,
)

at = test_routes_live.at  # its fixture that sets the API's clock

ADMIN = ("admin", "demo-admin-1")
TRIP_ID = "20261109-zt-am-1-bus-07"
POSITIONS = "/api/v1/gtfs-rt/vehicle-positions.pb"
TRIP_UPDATES = "/api/v1/gtfs-rt/trip-updates.pb"


def feed(client, url: str, who) -> rt.FeedMessage:
    response = client.get(url, headers=login(client, *who))
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/x-protobuf"
    message = rt.FeedMessage()
    message.ParseFromString(response.data)
    return message


def epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


@pytest.fixture
def mid_trip(client, app, imported, at):
    """bus-07 on zt-am-1 at 07:00, past 石塘村, before 东安村; the clock 5 s after its last ping."""
    rows = [r for r in on_schedule_drive(imported, MONDAY) if r[0] <= local_ts(MONDAY, "07:00:00")]
    drive(app, "dev-bus-07", rows)
    at(rows[-1][0] + 5)
    return rows[-1]


@pytest.mark.parametrize("who", [LOGISTICS, ADMIN], ids=["logistics", "admin"])
def test_vehicle_positions_show_the_bus_on_its_trip_with_speed_in_metres_per_second(
    client, mid_trip, who
):
    last_ts, lat, lon, speed_kmh = mid_trip
    message = feed(client, POSITIONS, who)
    assert message.header.gtfs_realtime_version == "2.0"
    assert message.header.incrementality == rt.FeedHeader.FULL_DATASET
    assert message.header.timestamp == int(last_ts + 5)
    assert [e.id for e in message.entity] == ["bus-07"]  # nobody else has sent a fix yet
    position = message.entity[0].vehicle
    assert (position.trip.trip_id, position.trip.route_id, position.trip.start_date) == (
        TRIP_ID,
        "zt-am-1",
        "20261109",
    )
    assert (position.vehicle.id, position.vehicle.label) == ("bus-07", "湘B·D1234")
    assert position.position.latitude == pytest.approx(lat, abs=1e-5)
    assert position.position.longitude == pytest.approx(lon, abs=1e-5)
    assert speed_kmh == 25.0
    assert position.position.speed == pytest.approx(25.0 / 3.6, rel=1e-6)
    assert position.timestamp == int(last_ts)


@pytest.mark.parametrize("who", [LOGISTICS, ADMIN], ids=["logistics", "admin"])
def test_trip_updates_carry_the_live_views_etas_for_the_stops_ahead(client, mid_trip, who):
    body = live(client, LOGISTICS).get_json()
    message = feed(client, TRIP_UPDATES, who)
    assert [e.id for e in message.entity] == [TRIP_ID]
    update = message.entity[0].trip_update
    assert (update.trip.trip_id, update.trip.route_id, update.trip.start_date) == (
        TRIP_ID,
        "zt-am-1",
        "20261109",
    )
    assert update.vehicle.id == "bus-07"
    assert update.delay == round(body["delay_s"])
    assert update.timestamp == int(mid_trip[0])
    stops = list(update.stop_time_update)
    assert [(s.stop_sequence, s.stop_id) for s in stops] == list(enumerate(ZT_AM_1_STOPS))
    assert [s["status"] for s in body["stops"]] == ["visited", "visited", "upcoming", "upcoming"]
    for stu, stop in zip(stops[2:], body["stops"][2:], strict=True):  # the stops ahead: ETAs
        assert stu.schedule_relationship == rt.TripUpdate.StopTimeUpdate.SCHEDULED
        assert stu.arrival.time == round(epoch(stop["eta"]))
    assert stops[2].arrival.time < stops[3].arrival.time
    for stu, stop in zip(stops[:2], body["stops"][:2], strict=True):  # visited: actual times
        assert stu.arrival.time == round(epoch(stop["arrived_at"]))
        assert stu.departure.time == round(epoch(stop["departed_at"]))


def test_format_json_is_the_same_feed_for_debugging(client, mid_trip):
    response = client.get(
        TRIP_UPDATES, headers=login(client, *ADMIN), query_string={"format": "json"}
    )
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["header"]["gtfs_realtime_version"] == "2.0"
    assert body["entity"][0]["trip_update"]["trip"]["trip_id"] == TRIP_ID
    assert [s["stop_id"] for s in body["entity"][0]["trip_update"]["stop_time_update"]] == (
        ZT_AM_1_STOPS
    )
    assert (
        client.get(
            POSITIONS, headers=login(client, *ADMIN), query_string={"format": "xml"}
        ).status_code
        == 422
    )


def test_staff_of_another_school_see_nothing_of_the_route(client, mid_trip):
    positions = feed(client, POSITIONS, OTHER_LOGISTICS)
    assert "bus-07" not in [e.id for e in positions.entity]
    assert all(e.vehicle.trip.route_id != "zt-am-1" for e in positions.entity)
    updates = feed(client, TRIP_UPDATES, OTHER_LOGISTICS)
    assert all(e.trip_update.trip.route_id != "zt-am-1" for e in updates.entity)
    assert list(updates.entity) == []


def test_parents_are_refused_and_anonymous_callers_asked_to_log_in(client, imported):
    for url in (POSITIONS, TRIP_UPDATES):
        refused = client.get(url, headers=login(client, *PARENT))
        assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
        assert client.get(url).status_code == 401


def test_after_the_trip_the_bus_has_a_position_but_no_trip_and_no_trip_update(
    client, app, imported, at
):
    rows = on_schedule_drive(imported, MONDAY)
    drive(app, "dev-bus-07", rows)
    at(rows[-1][0] + 60)
    positions = feed(client, POSITIONS, LOGISTICS)
    assert [e.id for e in positions.entity] == ["bus-07"]
    assert not positions.entity[0].vehicle.HasField("trip")
    assert list(feed(client, TRIP_UPDATES, LOGISTICS).entity) == []
