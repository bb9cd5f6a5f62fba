"""MQTT ingest end to end: a real broker, `xiaoche ingest` as a subprocess, a real database."""

import threading
import time

import orjson
from sqlalchemy import select

from backend.extensions import db
from backend.models import LivePosition, Reject
from gps_ingest.publisher import WindowedPublisher
from tests.integration.ingest.conftest import count_pings, wait_for_count

BASE_LAT, BASE_LON = 27.43, 113.20


def device_pings(device_index: int, count: int, start_ts: float, step_s: float = 5.0):
    """A slow drive north (≈ 8 km/h): every fix passes the filters."""
    return [{"ts": start_ts + i * step_s, "lat": BASE_LAT + device_index * 0.01 + i * 0.0001,
             "lon": BASE_LON, "speed_kmh": 8.0} for i in range(count)]


def publish_all(url, messages, pause_every=0, pause_s=0.0):
    """Publish QoS 1 and wait for every PUBACK; optionally pause so the stream takes a while."""
    publisher = WindowedPublisher(url, window=1000)
    try:
        for i, (topic, payload) in enumerate(messages, 1):
            publisher.publish(topic, payload, qos=1)
            if pause_every and i % pause_every == 0:
                time.sleep(pause_s)
        publisher.flush(timeout=120)
    finally:
        publisher.close()


def single_ping_messages(devices, per_device, start_ts):
    messages = []
    for i, device in enumerate(devices):
        for p in device_pings(i, per_device, start_ts):
            messages.append((f"xiaoche/v1/devices/{device}/pings", orjson.dumps(p)))
    # interleave devices as a real fleet would
    return sorted(messages, key=lambda m: orjson.loads(m[1])["ts"])


def test_5000_pings_from_50_devices_are_stored_exactly_once_even_when_sent_twice(
        app, fleet, mqtt_url, ingest_process):
    ingest_process.start()
    messages = single_ping_messages(fleet, 100, time.time() - 3600)
    publish_all(mqtt_url, messages)
    assert wait_for_count(app, fleet, 5000, 120, ingest_process) == 5000
    publish_all(mqtt_url, messages)
    time.sleep(3)  # give the duplicates time to arrive; none may be stored
    assert wait_for_count(app, fleet, 5001, 5, ingest_process) == 5000


def test_a_backlog_array_after_newer_pings_is_stored_and_the_live_position_stays(
        app, fleet, mqtt_url, ingest_process):
    ingest_process.start()
    device = fleet[0]
    now = time.time()
    recent = device_pings(0, 10, now - 100, step_s=10)
    publish_all(mqtt_url, [(f"xiaoche/v1/devices/{device}/pings", orjson.dumps(p))
                           for p in recent])
    assert wait_for_count(app, [device], 10, 60, ingest_process) == 10
    backlog = [{"ts": now - 2000 + 10 * i, "lat": BASE_LAT - 0.001 * i, "lon": BASE_LON - 0.01,
                "speed_kmh": 20.0} for i in range(100)]
    publish_all(mqtt_url, [(f"xiaoche/v1/devices/{device}/pings", orjson.dumps(backlog))])
    assert wait_for_count(app, [device], 110, 60, ingest_process) == 110
    with app.app_context():
        live = db.session.get(LivePosition, device.replace("-d", "-v"))
        assert live.ts == recent[-1]["ts"] and live.lat == recent[-1]["lat"]


def test_killing_the_ingest_mid_stream_loses_nothing_and_stores_nothing_twice(
        app, fleet, mqtt_url, ingest_process):
    ingest_process.start()
    messages = single_ping_messages(fleet[:30], 100, time.time() - 3600)
    publisher_done = threading.Event()

    def publish():
        # ≈ 1 000 messages/s, so the stream lasts ≈ 3 s and the kill lands inside it
        publish_all(mqtt_url, messages, pause_every=50, pause_s=0.05)
        publisher_done.set()

    thread = threading.Thread(target=publish)
    thread.start()
    # let part of the stream through, then kill -9 in the middle of it
    wait_for_count(app, fleet, 600, 60, ingest_process)
    ingest_process.kill9()
    stored_at_kill = count_pings(app, fleet)
    thread.join(120)
    assert publisher_done.is_set(), "the broker did not acknowledge every publish"
    assert stored_at_kill < 3000, "the kill came too late to test anything"
    ingest_process.start()  # same client id: the broker kept the session and the messages
    assert wait_for_count(app, fleet, 3000, 120, ingest_process) == 3000
    time.sleep(2)
    assert count_pings(app, fleet) == 3000  # the unique (device, ts) absorbed redeliveries


def test_bad_messages_get_their_reason_and_the_good_ones_around_them_are_stored(
        app, fleet, mqtt_url, ingest_process):
    ingest_process.start()
    good_device, other = fleet[0], fleet[1]
    now = time.time()
    topic = f"xiaoche/v1/devices/{good_device}/pings"
    messages = [
        (topic, orjson.dumps(device_pings(0, 1, now - 60)[0])),
        (topic, b"{this is not json"),
        (topic, b"x" * (10 * 1024 * 1024)),
        (topic, orjson.dumps(device_pings(0, 10_000, now - 200_000, step_s=1))),
        (topic, orjson.dumps({"ts": now - 50, "lat": "north", "lon": 113.2})),
        ("xiaoche/v1/devices/nobody-here/pings", orjson.dumps(device_pings(0, 1, now - 40)[0])),
        (f"owntracks/{other}/phone", orjson.dumps({"_type": "transition", "event": "enter"})),
        (f"owntracks/{other}/phone", orjson.dumps(
            {"_type": "location", "tst": int(now - 30), "lat": BASE_LAT, "lon": BASE_LON,
             "vel": 12, "acc": 10})),
        (topic, orjson.dumps(device_pings(0, 3, now - 20)[1:])),
    ]
    publish_all(mqtt_url, messages)
    assert wait_for_count(app, [good_device, other], 4, 60, ingest_process) == 4
    deadline = time.time() + 30
    wanted = {"bad_json", "payload_too_large", "too_many_items", "bad_type", "unknown_device"}
    reasons = set()
    while time.time() < deadline and not wanted <= reasons:
        with app.app_context():
            reasons = set(db.session.scalars(select(Reject.reason)))
            db.session.rollback()
        time.sleep(0.2)
    assert wanted <= reasons, reasons
    assert ingest_process.process.poll() is None, "the worker must keep running"
