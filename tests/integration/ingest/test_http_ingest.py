"""HTTP ingest (SPEC §4): the same pipeline as MQTT, answered only after commit."""

import csv
import io
import json
import time

import gpxpy
import pytest
from sqlalchemy import func, select

from backend.extensions import db
from backend.models import LivePosition, Ping, Reject, Scan
from tests.conftest import login

BUS07 = {"Authorization": "Bearer demo-token-bus-07"}


def ping(ts, lat=27.4520, lon=113.2310, **extra):
    return {"ts": ts, "lat": lat, "lon": lon, **extra}


def stored_pings(app, device_id="dev-bus-07"):
    with app.app_context():
        return db.session.scalars(select(Ping).where(Ping.device_id == device_id)
                                  .order_by(Ping.ts)).all()


def test_a_device_posts_a_ping_and_it_is_stored(client, app, imported):
    now = time.time()
    response = client.post("/api/v1/ingest/pings", headers=BUS07,
                           json=ping(now - 5, speed_kmh=31.5, heading_deg=200, accuracy_m=8))
    assert response.status_code == 202
    assert response.get_json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    [stored] = stored_pings(app)
    assert stored.vehicle_id == "bus-07" and stored.speed_kmh == 31.5
    assert abs(stored.ts - (now - 5)) < 1e-6


def test_the_same_ping_twice_is_stored_once(client, app, imported):
    body = [ping(time.time() - 30), ping(time.time() - 20)]
    first = client.post("/api/v1/ingest/pings", headers=BUS07, json=body).get_json()
    second = client.post("/api/v1/ingest/pings", headers=BUS07, json=body).get_json()
    assert first["accepted"] == 2 and second == {"accepted": 0, "duplicates": 2, "rejected": []}
    assert len(stored_pings(app)) == 2


def test_one_bad_element_of_a_backlog_is_rejected_with_its_index_and_the_rest_kept(
        client, app, imported):
    now = time.time()
    body = [ping(now - 50 + i) for i in range(5)]
    body[2]["lat"] = 95
    response = client.post("/api/v1/ingest/pings", headers=BUS07, json=body)
    assert response.status_code == 202
    result = response.get_json()
    assert result["accepted"] == 4
    assert [(r["index"], r["reason"]) for r in result["rejected"]] == [(2, "bad_lat")]
    with app.app_context():
        reject = db.session.scalars(select(Reject)).one()
    assert reject.reason == "bad_lat" and reject.device_id == "dev-bus-07"
    assert reject.payload_head.startswith("[")


def test_a_backlog_older_than_the_live_position_does_not_move_it_back(client, app, imported):
    now = time.time()
    client.post("/api/v1/ingest/pings", headers=BUS07, json=ping(now - 10, 27.4301, 113.2052))
    backlog = [ping(now - 600 + 10 * i, 27.45 - 0.0001 * i, 113.23) for i in range(20)]
    assert client.post("/api/v1/ingest/pings", headers=BUS07,
                       json=backlog).get_json()["accepted"] == 20
    with app.app_context():
        live = db.session.get(LivePosition, "bus-07")
    assert (live.lat, live.lon) == (27.4301, 113.2052)
    assert abs(live.ts - (now - 10)) < 1e-6
    assert len(stored_pings(app)) == 21


@pytest.mark.parametrize("body, status, reason", [
    (b"{not json", 400, "bad_json"),
    (b'"a string"', 400, "not_an_object"),
])
def test_a_payload_that_cannot_be_read_is_a_4xx_and_kept_as_a_reject(
        client, app, imported, body, status, reason):
    response = client.post("/api/v1/ingest/pings", headers=BUS07, data=body,
                           content_type="application/json")
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert reason in response.get_json()["detail"]
    with app.app_context():
        assert db.session.scalars(select(Reject.reason)).all() == [reason]


def test_a_wrong_device_token_is_a_401(client, imported):
    response = client.post("/api/v1/ingest/pings", json=ping(time.time()),
                           headers={"Authorization": "Bearer not-a-token-of-anyone"})
    assert response.status_code == 401


def test_future_and_too_old_pings_are_rejected_with_their_reasons(client, imported):
    now = time.time()
    body = [ping(now + 3600), ping(now - 30 * 86400), ping(now - 1)]
    result = client.post("/api/v1/ingest/pings", headers=BUS07, json=body).get_json()
    assert result["accepted"] == 1
    assert sorted(r["reason"] for r in result["rejected"]) == ["future_ts", "too_old"]


def test_a_gcj02_device_is_converted_to_wgs84_on_the_way_in(client, app, imported):
    from routing.gcj02 import wgs84_to_gcj02

    true_lat, true_lon = 27.4850, 113.2650
    lat, lon = wgs84_to_gcj02(true_lat, true_lon)
    client.post("/api/v1/ingest/pings", headers={"Authorization": "Bearer demo-token-bus-12"},
                json=ping(time.time() - 3, lat, lon))
    [stored] = stored_pings(app, "dev-bus-12")
    assert abs(stored.lat - true_lat) < 1e-5 and abs(stored.lon - true_lon) < 1e-5


def test_a_gcj02_devices_scan_positions_are_converted_too(client, app, imported):
    from routing.gcj02 import wgs84_to_gcj02

    true_lat, true_lon = 27.4850, 113.2650
    lat, lon = wgs84_to_gcj02(true_lat, true_lon)
    scans = [{"ts": time.time() - 30, "card_id": "04A1B2C3", "action": "board",
              "lat": lat, "lon": lon},
             {"ts": time.time() - 20, "card_id": "04A1B2C4", "action": "board"}]
    result = client.post("/api/v1/ingest/scans", headers={"Authorization": "Bearer demo-token-bus-12"},
                         json=scans).get_json()
    assert result["accepted"] == 2
    with app.app_context():
        stored = {s.card_id: s for s in db.session.scalars(select(Scan))}
    placed = stored["04A1B2C3"]
    assert abs(placed.lat - true_lat) < 1e-5 and abs(placed.lon - true_lon) < 1e-5
    assert stored["04A1B2C4"].lat is None and stored["04A1B2C4"].lon is None


def test_scans_are_stored_once(client, app, imported):
    scans = [{"ts": time.time() - 60, "card_id": "04A1B2C3", "action": "board"},
             {"ts": time.time() - 30, "card_id": "04A1B2C4", "action": "board"}]
    first = client.post("/api/v1/ingest/scans", headers=BUS07, json=scans).get_json()
    again = client.post("/api/v1/ingest/scans", headers=BUS07, json=scans).get_json()
    assert first["accepted"] == 2 and again["duplicates"] == 2
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Scan)) == 2


def test_osmand_query_from_traccar_client_is_stored_in_kmh(client, app, imported):
    ts = int(time.time()) - 5
    response = client.get(f"/api/v1/ingest/osmand?id=dev-car-liu&lat=27.4301&lon=113.2052"
                          f"&timestamp={ts}&speed=10&bearing=90&altitude=60&accuracy=5&batt=80")
    assert response.status_code == 200
    [stored] = stored_pings(app, "dev-car-liu")
    assert stored.speed_kmh == pytest.approx(18.52)
    assert stored.vehicle_id == "car-liu"


def test_osmand_json_body_is_stored(client, app, imported):
    body = {"device_id": "dev-car-liu", "location": {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5)),
        "coords": {"latitude": 27.44, "longitude": 113.21, "speed": 10, "heading": 45,
                   "accuracy": 6, "altitude": 50}, "is_moving": True},
        "battery": {"level": 0.5}}
    response = client.post("/api/v1/ingest/osmand", json=body)
    assert response.status_code == 200, response.get_json()
    [stored] = stored_pings(app, "dev-car-liu")
    assert stored.speed_kmh == pytest.approx(36.0) and stored.battery_pct == pytest.approx(50)


def test_osmand_for_a_device_not_set_up_for_it_is_refused(client, imported):
    response = client.get(f"/api/v1/ingest/osmand?id=dev-bus-07&lat=27.43&lon=113.2"
                          f"&timestamp={int(time.time())}")
    assert response.status_code == 403


@pytest.mark.parametrize("send, reason, names", [
    (dict(method="POST", data=b"", content_type="application/json"), "bad_json", "empty"),
    (dict(method="POST", json={"location": {"coords": {}}}), "missing_field", "device_id"),
    (dict(method="GET", query_string="lat=27.4&lon=113.2"), "missing_field", "id (or deviceid)"),
    (dict(method="GET"), "missing_field", "id (or deviceid)"),
])
def test_an_osmand_request_naming_no_device_is_a_400_that_says_what_is_missing(
        client, imported, send, reason, names):
    response = client.open("/api/v1/ingest/osmand", **send)
    assert response.status_code == 400, response.get_json()
    detail = response.get_json()["detail"]
    assert detail.startswith(f"{reason}:") and names in detail and "''" not in detail


@pytest.mark.parametrize("device_id, status, says", [
    ("bus\x0007", 400, "NUL"), ("x" * 65, 401, "unknown_device:"),
    ("bus 07", 401, "unknown_device:"), ("公交7", 401, "unknown_device:")])
def test_an_id_that_cannot_be_a_device_is_refused_without_a_database_error(
        client, imported, device_id, status, says, caplog):
    response = client.get("/api/v1/ingest/osmand", query_string={
        "id": device_id, "lat": "27.43", "lon": "113.2", "timestamp": str(int(time.time()))})
    assert response.status_code == status
    assert says in response.get_json()["detail"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_staff_read_back_exactly_what_was_stored_as_geojson_csv_and_gpx(client, imported):
    now = time.time()
    body = [ping(now - 100 + 10 * i, 27.45 - 0.001 * i, 113.23, speed_kmh=30.0) for i in range(5)]
    client.post("/api/v1/ingest/pings", headers=BUS07, json=body)
    staff = login(client, "houqin.wang", "demo-logistics-1")
    feature = client.get("/api/v1/vehicles/bus-07/track", headers=staff).get_json()
    assert feature["geometry"]["coordinates"] == [[113.23, 27.45 - 0.001 * i] for i in range(5)]
    assert len(feature["properties"]["times"]) == 5
    assert feature["properties"]["times"][0].endswith("Z")

    text = client.get("/api/v1/vehicles/bus-07/track?format=csv", headers=staff).get_data(True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [float(r["lat"]) for r in rows] == [27.45 - 0.001 * i for i in range(5)]

    xml = client.get("/api/v1/vehicles/bus-07/track?format=gpx", headers=staff).get_data(True)
    points = gpxpy.parse(xml).tracks[0].segments[0].points
    assert [p.latitude for p in points] == [27.45 - 0.001 * i for i in range(5)]

    gcj = client.get("/api/v1/vehicles/bus-07/track?crs=gcj02", headers=staff).get_json()
    assert gcj["geometry"]["coordinates"][0] != [113.23, 27.45]


def test_a_vehicle_outside_the_callers_schools_is_a_404(client, imported):
    other_school_staff = login(client, "houqin.chen", "demo-logistics-2")
    assert client.get("/api/v1/vehicles/bus-07/track",
                      headers=other_school_staff).status_code == 404
    parent = login(client, "zhang.lanlan", "demo-parent-1")
    assert client.get("/api/v1/vehicles/bus-07/track", headers=parent).status_code == 403


def test_rejects_are_listed_for_admins_with_counts_and_a_cursor(client, imported):
    now = time.time()
    for i in range(3):
        client.post("/api/v1/ingest/pings", headers=BUS07, json=[ping(now + 3600 + i)])
    client.post("/api/v1/ingest/pings", headers=BUS07, data=b"nope",
                content_type="application/json")
    admin = login(client, "admin", "demo-admin-1")
    page = client.get("/api/v1/admin/rejects?limit=2", headers=admin).get_json()
    assert page["counts"] == {"future_ts": 3, "bad_json": 1}
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = client.get(f"/api/v1/admin/rejects?limit=2&cursor={page['next_cursor']}",
                      headers=admin).get_json()
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None
    only = client.get("/api/v1/admin/rejects?reason=bad_json", headers=admin).get_json()
    assert [i["reason"] for i in only["items"]] == ["bad_json"]
    assert json.loads(json.dumps(only))  # serialisable
    assert client.get("/api/v1/admin/rejects?cursor=%%%", headers=admin).status_code == 400



def test_a_message_the_database_refuses_is_kept_as_a_reject_and_the_rest_of_the_batch_stored(
        app, imported):
    """What slips past the decoders must not hold an MQTT batch back forever (redelivery)."""
    import orjson
    from sqlalchemy.exc import DataError

    from backend.ingest.pipeline import IngestPipeline
    from gps_ingest.filters import FilterConfig
    from gps_ingest.pipeline import Message

    def refuse_bus_12(conn, stored):  # the database refusing one vehicle's row, as PostgreSQL
        if any(s.vehicle_id == "bus-12" for s in stored):  # refuses a NUL or an over-long text
            raise DataError("INSERT …", {}, ValueError("text fields cannot contain NUL bytes"))

    now = time.time()
    with app.app_context():
        pipeline = IngestPipeline(db.engine, FilterConfig(), after_store=[refuse_bus_12])
        results = pipeline.process([
            Message(payload=orjson.dumps({"ts": now - 60, "lat": 27.45, "lon": 113.23}),
                    received_at=now, topic="xiaoche/v1/devices/dev-bus-07/pings"),
            Message(payload=orjson.dumps({"ts": now - 50, "lat": 27.46, "lon": 113.24}),
                    received_at=now, topic="xiaoche/v1/devices/dev-bus-12/pings"),
            Message(payload=orjson.dumps({"ts": now - 40, "lat": 27.4501, "lon": 113.2301}),
                    received_at=now, topic="xiaoche/v1/devices/dev-bus-07/pings")])
        assert [r.accepted for r in results] == [1, 0, 1]
        assert [r.reason for r in results[1].rejected] == ["unstorable"]
        assert db.session.scalar(select(func.count()).select_from(Ping)) == 2
        assert db.session.scalars(select(Reject.reason)).all() == ["unstorable"]
