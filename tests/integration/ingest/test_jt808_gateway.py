"""The JT/T 808 gateway with real TCP terminals on loopback and the real database: the session,
answers only after commit, nothing lost or doubled across a killed connection or a restarted
gateway, and bad input refused with reasons while the connection and its neighbours go on."""

from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import select

from backend.bundle import import_bundle
from backend.extensions import db
from backend.models import Ping, Reject
from backend.runtime import start_jt808
from gps_ingest.jt808.frame import encode_frame, escape, unescape, xor_check
from gps_ingest.jt808.messages import (
    BATCH,
    FAILURE,
    LOCATION,
    MESSAGE_ERROR,
    OK,
    REG_NO_TERMINAL,
    REG_OK,
)
from tests.jt808_terminal import Terminal, location_body

LAT, LON = 27.4520, 113.2310
PHONES = {f"dev-jt-{i}": f"1390000{i:04d}" for i in range(4)}


@pytest.fixture
def terminals(app, imported):
    vehicles = [{"id": f"bus-jt-{i}", "kind": "school_bus", "route_ids": []} for i in range(4)]
    devices = [{"id": device, "vehicle_id": f"bus-jt-{i}", "token": f"token-jt-{i:04d}",
                "jt808_phone": phone} for i, (device, phone) in enumerate(PHONES.items())]
    devices[3]["jt808_accept_bad_check"] = True  # its firmware gets the check byte wrong
    with app.app_context():
        import_bundle({"vehicles": vehicles, "devices": devices})
    return PHONES


@pytest.fixture
def gateway(app, terminals):
    service = start_jt808(app, port=0, host="127.0.0.1")
    yield service
    service.stop()


def connect(gateway, device: str = "dev-jt-0", version: int | None = None) -> Terminal:
    terminal = Terminal(gateway.port, PHONES[device], version)
    result, code = terminal.register()
    assert result == REG_OK and code
    assert terminal.authenticate(code) == OK
    terminal.code = code  # type: ignore[attr-defined]
    return terminal


def stored_ts(app, device: str) -> list[float]:
    with app.app_context():
        ts = db.session.scalars(select(Ping.ts).where(Ping.device_id == device)
                                .order_by(Ping.ts)).all()
        db.session.rollback()
        return list(ts)


def rejects(app) -> list[tuple[str, str, str | None]]:
    """(reason, topic, device_id) of every reject, oldest first."""
    with app.app_context():
        rows = db.session.execute(select(Reject.reason, Reject.topic, Reject.device_id)
                                  .order_by(Reject.id)).all()
        db.session.rollback()
        return [tuple(r) for r in rows]


def fix(i: int, t0: float) -> tuple[float, float, float]:
    """The i-th fix of a bus driving east at about 40 km/h, one a second."""
    return (t0 + i, LAT, LON + i * 0.0001)


def test_register_authenticate_stream_and_every_answer_comes_after_commit(app, gateway):
    terminal = connect(gateway, version=None)
    assert terminal.heartbeat() == OK
    t0 = int(time.time()) - 600
    sent = {terminal.location(*fix(i, t0)): fix(i, t0)[0] for i in range(20)}
    for _ in range(20):
        serial, message_id, result = terminal.answer()
        assert (message_id, result) == (LOCATION, OK)
        # the answer is out: the position must already be committed
        assert sent[serial] in stored_ts(app, "dev-jt-0")
    backlog = [fix(i, t0 - 300) for i in range(5)]  # a blind area, five minutes earlier
    serial = terminal.batch(backlog)
    assert terminal.answer() == (serial, BATCH, OK)
    stored = stored_ts(app, "dev-jt-0")
    assert stored == sorted([f[0] for f in backlog] + list(sent.values()))  # event time kept
    with app.app_context():
        first = db.session.scalars(select(Ping).where(Ping.device_id == "dev-jt-0")
                                   .order_by(Ping.ts.desc())).first()
    assert first.vehicle_id == "bus-jt-0" and first.speed_kmh == 30.0 and first.alt_m == 50
    assert abs(first.lon - (LON + 19 * 0.0001)) < 1e-6 and abs(first.lat - LAT) < 1e-6
    terminal.close()


def test_a_2019_terminal_is_answered_in_its_own_header(app, gateway):
    terminal = connect(gateway, "dev-jt-1", version=1)
    t0 = int(time.time()) - 60
    serial = terminal.location(*fix(0, t0))
    assert terminal.answer() == (serial, LOCATION, OK)
    assert stored_ts(app, "dev-jt-1") == [t0]
    terminal.close()


@pytest.fixture(params=[0, 2], ids=["pipeline-here", "2-pipeline-processes"])
def any_gateway(request, app, terminals):
    """The gateway with its pipeline in this process (serve) or in two of its own (jt808)."""
    service = start_jt808(app, port=0, host="127.0.0.1", processes=request.param)
    yield service
    service.stop()


def test_killed_mid_stream_and_reconnected_loses_nothing_and_doubles_nothing(app, any_gateway):
    gateway = any_gateway
    t0 = int(time.time()) - 900
    fixes = [fix(i, t0) for i in range(120)]
    terminal = connect(gateway)
    code = terminal.code
    unanswered = {}
    for i, f in enumerate(fixes[:80]):
        unanswered[terminal.location(*f)] = f
        if i == 30:  # read a few answers, then lose power with the rest in flight
            for _ in range(10):
                serial, _, result = terminal.answer()
                assert result == OK
                del unanswered[serial]
    terminal.kill()
    # the terminal kept what was not answered (as terminals do) and sends it again, then the rest
    terminal = Terminal(gateway.port, PHONES["dev-jt-0"])
    assert terminal.authenticate(code) == OK  # the code of the first registration still holds
    pending = {terminal.location(*f): f for f in list(unanswered.values()) + fixes[80:]}
    while pending:
        serial, _, result = terminal.answer()
        assert result == OK
        pending.pop(serial)
    assert stored_ts(app, "dev-jt-0") == [f[0] for f in fixes]  # each once, none missing
    terminal.close()


def test_a_gateway_stopped_mid_stream_loses_nothing_and_doubles_nothing(app, terminals):
    t0 = int(time.time()) - 900
    fixes = [fix(i, t0) for i in range(60)]
    gw = start_jt808(app, port=0, host="127.0.0.1")
    first = connect(gw)
    unanswered = {first.location(*f): f for f in fixes[:40]}
    serial, _, _ = first.answer()
    unanswered.pop(serial)
    gw.stop()  # the process going down with locations in flight
    with pytest.raises(ConnectionError):
        while True:  # what was answered before the end; the rest is sent again below
            serial, _, result = first.answer()
            assert result == OK
            unanswered.pop(serial)
    first.close()
    gw2 = start_jt808(app, port=0, host="127.0.0.1")
    try:
        terminal = connect(gw2)
        pending = {terminal.location(*f): f for f in list(unanswered.values()) + fixes[40:]}
        while pending:
            serial, _, result = terminal.answer()
            assert result == OK
            pending.pop(serial)
        assert stored_ts(app, "dev-jt-0") == [f[0] for f in fixes]
        terminal.close()
    finally:
        gw2.stop()


def test_an_unknown_terminal_is_refused_with_a_reason_in_the_reject_log(app, gateway):
    stranger = Terminal(gateway.port, "13812345678")
    result, code = stranger.register()
    assert (result, code) == (REG_NO_TERMINAL, "")
    assert stranger.authenticate("guess") == FAILURE
    serial = stranger.location(time.time() - 5, LAT, LON)
    assert stranger.answer() == (serial, LOCATION, FAILURE)
    known = Terminal(gateway.port, PHONES["dev-jt-2"])
    assert known.authenticate("not-the-code") == FAILURE
    serial = known.location(time.time() - 5, LAT, LON)
    assert known.answer() == (serial, LOCATION, FAILURE)  # not authenticated: sent again later
    assert stored_ts(app, "dev-jt-2") == []
    reasons = rejects(app)
    assert reasons == [("unknown_terminal", "jt808:013812345678", None),
                       ("unknown_terminal", "jt808:013812345678", None),
                       ("unauthenticated", "jt808:013812345678", None),
                       ("unauthenticated", f"jt808:0{PHONES['dev-jt-2']}", None),
                       ("unauthenticated", f"jt808:0{PHONES['dev-jt-2']}", None)]
    stranger.close()
    known.close()


def _bad_frames(phone: str, t0: float) -> list[tuple[bytes, str]]:
    """Broken input, each with the reason it must be refused for."""
    good = encode_frame(LOCATION, phone, 900, location_body(t0, LAT, LON))
    data = bytearray(unescape(good[1:-1])[0])
    wrong_length = bytearray(data)
    wrong_length[3] -= 2
    wrong_length[-1] = xor_check(bytes(wrong_length[:-1]))
    bad_check = bytearray(data)
    bad_check[-1] ^= 0x55
    wrong_escape = bytearray(data)
    wrong_escape[20:21] = b"\x7d\x07"
    wrong_escape[-1] = xor_check(bytes(wrong_escape[:-1]))
    return [
        (b"\x7e" + escape(bytes(bad_check)) + b"\x7e", "bad_checksum"),
        (b"\x7e" + escape(bytes(wrong_length)) + b"\x7e", "bad_length"),
        (b"\x7e" + escape(bytes(wrong_escape[:20])) + bytes(wrong_escape[20:22])
         + escape(bytes(wrong_escape[22:])) + b"\x7e", "bad_escape"),
        (b"\x7e\x02\x00\x00\x7e", "truncated_frame"),
        (b"\x7e\x00\x7e", "truncated_frame"),  # garbage between frames
    ]


def test_fuzzed_frames_are_refused_with_reasons_and_the_connection_and_its_neighbours_go_on(
        app, gateway):
    t0 = int(time.time()) - 600
    neighbour = connect(gateway, "dev-jt-1")
    neighbour_done: list[float] = []

    def drive_neighbour():
        for i in range(40):
            serial = neighbour.location(*fix(i, t0))
            assert neighbour.answer() == (serial, LOCATION, OK)
            neighbour_done.append(fix(i, t0)[0])

    thread = threading.Thread(target=drive_neighbour)
    thread.start()
    terminal = connect(gateway)
    phone = "0" + PHONES["dev-jt-0"]
    expected = []
    for n, (wire, reason) in enumerate(_bad_frames(phone, t0 + 500)):
        terminal.send_raw(wire)
        serial = terminal.location(*fix(n, t0))  # a good one after each bad one
        while True:
            answered, message_id, result = terminal.answer()
            if answered == serial:
                assert result == OK
                break
            # an answered bad frame: "message error" (its header could be read)
            assert (answered, message_id, result) == (900, LOCATION, MESSAGE_ERROR)
        expected.append(reason)
    rng = random.Random(808)
    for n in range(5, 25):  # random garbage, then a good frame: refused, and the next one taken
        terminal.send_raw(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))))
        serial = terminal.location(*fix(n, t0))
        while (answer := terminal.answer())[0] != serial:
            assert answer[2] == MESSAGE_ERROR
        assert answer[2] == OK
    assert terminal.heartbeat() == OK  # still up
    thread.join(60)
    assert neighbour_done == [fix(i, t0)[0] for i in range(40)]
    assert stored_ts(app, "dev-jt-0") == [fix(n, t0)[0] for n in range(25)]
    reasons = [reason for reason, _, device in rejects(app) if device == "dev-jt-0"]
    assert reasons[:len(expected)] == expected
    assert len(reasons) >= 20 + len(expected)  # every garbage run is in the log too
    assert set(reasons) <= {"bad_checksum", "bad_length", "bad_escape", "truncated_frame",
                            "not_a_frame", "frame_too_long"}
    terminal.close()
    neighbour.close()


def test_a_connection_that_says_nothing_is_closed_after_the_idle_timeout(app, terminals):
    app.config["JT808_IDLE_S"] = 0.5
    gw = start_jt808(app, port=0, host="127.0.0.1")
    try:
        terminal = Terminal(gw.port, PHONES["dev-jt-0"])
        time.sleep(1.5)
        with pytest.raises(ConnectionError):
            terminal.read()
        terminal.close()
        assert gw.gateway.connections == 0
    finally:
        gw.stop()


def test_xiaoche_jt808_runs_the_gateway_alone(app, terminals, _migrated, tmp_path):
    import socket

    from tests.processes import XiaocheProcess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = XiaocheProcess(["jt808", "--host", "127.0.0.1", "--port", str(port)],
                             "xiaoche: JT/T 808 gateway on", _migrated, tmp_path)
    process.start()
    try:
        terminal = Terminal(port, PHONES["dev-jt-3"])
        result, code = terminal.register()
        assert result == REG_OK and terminal.authenticate(code) == OK
        ts = int(time.time()) - 30
        serial = terminal.location(ts, LAT, LON)
        assert terminal.answer() == (serial, LOCATION, OK)
        assert stored_ts(app, "dev-jt-3") == [ts]
        terminal.close()
    finally:
        process.stop()


def test_a_device_whose_firmware_gets_the_check_byte_wrong_can_be_taken_all_the_same(
        app, gateway):
    t0 = int(time.time()) - 120

    def bad_check(terminal: Terminal, i: int) -> int:
        terminal.serial += 1
        frame = encode_frame(LOCATION, terminal.phone, terminal.serial,
                             location_body(*fix(i, t0)))
        wire = bytearray(unescape(frame[1:-1])[0])
        wire[-1] ^= 0x5A
        terminal.send_raw(b"\x7e" + escape(bytes(wire)) + b"\x7e")
        return terminal.serial

    lenient, strict = connect(gateway, "dev-jt-3"), connect(gateway, "dev-jt-0")
    for i in range(3):
        serial = bad_check(lenient, i)
        assert lenient.answer() == (serial, LOCATION, OK)
        serial = bad_check(strict, i)
        assert strict.answer() == (serial, LOCATION, MESSAGE_ERROR)
    assert stored_ts(app, "dev-jt-3") == [t0, t0 + 1, t0 + 2]
    assert stored_ts(app, "dev-jt-0") == []
    assert [r for r, _, d in rejects(app)] == ["bad_checksum"] * 3
    lenient.close()
    strict.close()


def test_the_staff_alarms_of_a_terminal_become_events_once_each(app, gateway):
    from backend.models import Event
    from gps_ingest.jt808.messages import ALARM_EMERGENCY, ALARM_POWER_CUT

    terminal = connect(gateway)
    t0 = int(time.time()) - 300
    words = [0, ALARM_EMERGENCY, ALARM_EMERGENCY, ALARM_EMERGENCY | ALARM_POWER_CUT, 0,
             ALARM_EMERGENCY, 1 << 4]
    for i, word in enumerate(words):
        serial = terminal.location(*fix(i, t0), alarm=word)
        assert terminal.answer() == (serial, LOCATION, OK)
    terminal.close()
    with app.app_context():
        events = db.session.execute(select(Event.kind, Event.ts, Event.vehicle_id, Event.details)
                                    .where(Event.kind == "terminal_alarm")
                                    .order_by(Event.ts, Event.id)).all()
    assert [(e.ts - t0, e.details["alarm"]) for e in events] == [
        (1, "emergency"), (3, "power_cut"), (5, "emergency")]
    assert {e.vehicle_id for e in events} == {"bus-jt-0"}
    assert events[0].details["device_id"] == "dev-jt-0"


def test_a_driver_card_in_and_out_says_who_drives_and_is_answered_after_it_is_stored(
        app, gateway):
    from backend.models import Event
    from gps_ingest.jt808.messages import DRIVER
    from tests.jt808_terminal import driver_card_body

    t0 = int(time.time()) - 60
    stranger = Terminal(gateway.port, PHONES["dev-jt-1"])  # not authenticated
    serial = stranger.send(DRIVER, driver_card_body(t0, "李四", "430000000000000000"))
    assert stranger.answer() == (serial, DRIVER, FAILURE)
    serial = stranger.location(*fix(0, t0))  # answered after its batch: the refusal is in too
    assert stranger.answer() == (serial, LOCATION, FAILURE)
    stranger.close()
    terminal = connect(gateway)
    serial = terminal.send(DRIVER, driver_card_body(t0, "张三", "430000199001010011",
                                                    "株洲市交通运输局"))
    assert terminal.answer() == (serial, DRIVER, OK)
    with app.app_context():  # answered: stored
        (event,) = db.session.scalars(select(Event).where(Event.kind == "driver_card")).all()
        assert (event.ts, event.vehicle_id) == (t0, "bus-jt-0")
        assert event.details == {"device_id": "dev-jt-0", "inserted": True, "name": "张三",
                                 "certificate": "430000199001010011",
                                 "authority": "株洲市交通运输局", "valid_until": "20301231"}
        db.session.rollback()
    serial = terminal.send(DRIVER, driver_card_body(t0 + 3600, None))
    assert terminal.answer() == (serial, DRIVER, OK)
    terminal.close()
    with app.app_context():
        cards = db.session.execute(select(Event.ts, Event.details).where(
            Event.kind == "driver_card").order_by(Event.ts)).all()
    assert [(ts - t0, d["inserted"]) for ts, d in cards] == [(0, True), (3600, False)]
    assert [r for r, _, _ in rejects(app)] == ["unauthenticated", "unauthenticated"]


def test_a_bundle_giving_two_devices_one_phone_or_a_phone_that_is_not_digits_is_refused(
        app, imported):
    from backend.bundle import BundleError

    devices = [{"id": "dev-a", "token": "token-aaaaaaaa", "jt808_phone": "13900000001"},
               {"id": "dev-b", "token": "token-bbbbbbbb", "jt808_phone": "013900000001"},
               {"id": "dev-c", "token": "token-cccccccc", "jt808_phone": "139-0000"}]
    with app.app_context(), pytest.raises(BundleError) as caught:
        import_bundle({"devices": devices})
    errors = caught.value.errors
    assert "devices[0].jt808_phone" in errors and "devices[1].jt808_phone" in errors
    assert "1 to 20 digits" in " ".join(errors["devices[2].jt808_phone"])


@pytest.fixture
def held_gateway(app, terminals):
    """The gateway on the app's pipeline behind a valve: ``valve.clear()`` holds every batch
    (a slow database), ``fail[0] = n`` fails the next n batches (a database that is down)."""
    from backend.ingest.devices import PhoneDirectory
    from backend.ingest.service import pipeline
    from gps_ingest.jt808_gateway import GatewayConfig, Jt808Gateway

    valve, fail = threading.Event(), [0]
    valve.set()
    ingest = pipeline(app)
    with app.app_context():
        directory = PhoneDirectory(db.engine)

    def process(messages):
        valve.wait(30)
        if fail[0]:
            fail[0] -= 1
            raise ConnectionError("the database is down")
        with app.app_context():
            ingest.process(messages)

    gw = Jt808Gateway(process, directory.device_of,
                      GatewayConfig(secret=b"test-secret", max_inflight=16, batch_ms=20))
    gw.port = gw.start_in_thread()
    yield gw, valve, fail
    valve.set()
    gw.stop_thread()


def test_a_terminal_is_not_read_past_its_window_while_its_locations_wait(app, held_gateway):
    gw, valve, _ = held_gateway
    terminal = connect(gw)
    t0 = int(time.time()) - 900
    valve.clear()  # the database is slow: nothing commits
    sent = [terminal.location(*fix(i, t0)) for i in range(200)]
    time.sleep(0.5)
    assert gw._queue.qsize() <= 16  # read up to its window, the rest waits in the socket
    valve.set()
    answered = {terminal.answer()[0] for _ in sent}
    assert answered == set(sent)
    assert stored_ts(app, "dev-jt-0") == [fix(i, t0)[0] for i in range(200)]
    terminal.close()


def test_while_the_database_is_down_nothing_is_answered_and_the_resent_locations_are_stored(
        app, held_gateway):
    import socket

    gw, _, fail = held_gateway
    terminal = connect(gw)
    t0 = int(time.time()) - 900
    fail[0] = 1_000_000
    pending = {terminal.location(*fix(i, t0)): fix(i, t0) for i in range(10)}
    terminal.sock.settimeout(1.0)
    with pytest.raises(socket.timeout):
        terminal.answer()  # not committed: not answered
    fail[0] = 0
    terminal.sock.settimeout(15)
    # the terminal sends again what was not answered (new serials), as terminals do
    pending = {terminal.location(*f): f for f in pending.values()}
    while pending:
        serial, _, result = terminal.answer()
        assert result == OK
        pending.pop(serial)
    assert stored_ts(app, "dev-jt-0") == [fix(i, t0)[0] for i in range(10)]
    terminal.close()


def test_past_the_connection_limit_a_new_connection_is_closed_and_the_others_go_on(app, terminals):
    from backend.ingest.devices import PhoneDirectory
    from backend.ingest.service import pipeline
    from gps_ingest.jt808_gateway import GatewayConfig, Jt808Gateway

    with app.app_context():
        directory = PhoneDirectory(db.engine)
    gw = Jt808Gateway(lambda messages: pipeline(app).process(messages), directory.device_of,
                      GatewayConfig(secret=b"s", max_connections=2, max_bad_frames=5))
    gw.port = gw.start_in_thread()
    try:
        first, second = connect(gw, "dev-jt-0"), connect(gw, "dev-jt-1")
        third = Terminal(gw.port, PHONES["dev-jt-2"])
        with pytest.raises(ConnectionError):
            third.register()
        third.close()
        assert gw.stats["refused_connections"] == 1
        # one that sends nothing but broken frames is closed after max_bad_frames in a row
        first.send_raw(b"\x7e\x00\x7e" * 10)
        with pytest.raises(ConnectionError):
            while True:
                first.read()
        first.close()
        assert second.heartbeat() == OK  # its neighbour goes on
        second.close()
    finally:
        gw.stop_thread()
