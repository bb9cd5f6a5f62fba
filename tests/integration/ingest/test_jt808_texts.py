"""Texts to the driver (JT/T 808 0x8300): queued by staff through the API, sent by the gateway
holding the terminal's connection (a real TCP terminal on loopback), the terminal's answer
recorded; a terminal offline keeps its text queued until it connects or the text expires."""

from __future__ import annotations

import socket
import time

import pytest

from backend.bundle import import_bundle
from backend.runtime import start_jt808
from gps_ingest.jt808.messages import LOCATION, OK, REG_OK, TEXT, UNSUPPORTED
from tests.conftest import login
from tests.jt808_terminal import Terminal, read_text, respond

PHONE = "13907310007"


@pytest.fixture
def bus07_terminal(app, imported):
    """bus-07's device speaks JT/T 808 (bus-12's does not)."""
    with app.app_context():
        import_bundle({"devices": [{"id": "dev-bus-07", "vehicle_id": "bus-07",
                                    "token": "demo-token-bus-07", "jt808_phone": PHONE}]})
    app.config["JT808_TEXT_POLL_S"] = 0.1


@pytest.fixture
def gateway(app, bus07_terminal):
    service = start_jt808(app, port=0, host="127.0.0.1")
    yield service
    service.stop()


def connect(port: int, version: int | None = None) -> Terminal:
    terminal = Terminal(port, PHONE, version)
    result, code = terminal.register()
    assert result == REG_OK
    assert terminal.authenticate(code) == OK
    return terminal


def wait_status(client, headers, text_id: int, status: str, timeout_s: float = 10) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        body = client.get(f"/api/v1/vehicles/bus-07/texts/{text_id}", headers=headers).get_json()
        if body["status"] == status or time.monotonic() > deadline:
            assert body["status"] == status, body
            return body
        time.sleep(0.05)


@pytest.mark.parametrize("version", [None, 1], ids=["2013", "2019"])
def test_a_text_from_the_office_reaches_the_connected_terminal_and_its_answer_is_recorded(
        app, client, gateway, version):
    terminal = connect(gateway.port, version)
    staff = login(client, "houqin.wang", "demo-logistics-1")
    response = client.post("/api/v1/vehicles/bus-07/texts", headers=staff,
                           json={"text": "请马上给学校办公室回电话", "emergency": True})
    assert response.status_code == 202, response.get_json()
    queued = response.get_json()
    assert (queued["status"], queued["device_id"], queued["created_by"]) == (
        "queued", "dev-bus-07", "houqin.wang")
    serial, emergency, text = read_text(terminal)  # within the gateway's poll interval
    assert (emergency, text) == (True, "请马上给学校办公室回电话")
    sent = wait_status(client, staff, queued["id"], "sent")
    assert sent["attempts"] == 1 and sent["answered_at"] is None
    respond(terminal, serial, TEXT, OK)
    done = wait_status(client, staff, queued["id"], "ok")
    assert done["result"] == 0 and done["answered_at"] is not None
    # the connection goes on: a location is still answered
    ts = int(time.time()) - 10
    location = terminal.location(ts, 27.452, 113.231)
    assert terminal.answer() == (location, LOCATION, OK)
    listed = client.get("/api/v1/vehicles/bus-07/texts", headers=staff).get_json()["items"]
    assert [t["id"] for t in listed] == [queued["id"]]
    terminal.close()


def test_a_terminal_that_cannot_show_texts_says_so_and_the_status_is_unsupported(
        app, client, gateway):
    terminal = connect(gateway.port)
    admin = login(client, "admin", "demo-admin-1")
    text_id = client.post("/api/v1/vehicles/bus-07/texts", headers=admin,
                          json={"text": "route message"}).get_json()["id"]
    serial, emergency, text = read_text(terminal)
    assert (emergency, text) == (False, "route message")
    respond(terminal, serial, TEXT, UNSUPPORTED)
    assert wait_status(client, admin, text_id, "unsupported")["result"] == UNSUPPORTED
    terminal.close()


def test_a_text_for_a_terminal_offline_stays_queued_and_goes_out_when_it_connects(
        app, client, gateway):
    staff = login(client, "houqin.wang", "demo-logistics-1")
    text_id = client.post("/api/v1/vehicles/bus-07/texts", headers=staff,
                          json={"text": "明天改走新路线", "expires_in_s": 600}).get_json()["id"]
    time.sleep(0.5)  # several polls with the terminal away
    assert wait_status(client, staff, text_id, "queued")["attempts"] == 0
    terminal = connect(gateway.port)
    serial, _, text = read_text(terminal)
    assert text == "明天改走新路线"
    respond(terminal, serial, TEXT, OK)
    wait_status(client, staff, text_id, "ok")
    terminal.close()


def test_a_connection_lost_before_the_answer_sends_the_text_again_on_reconnection(
        app, client, gateway):
    staff = login(client, "houqin.wang", "demo-logistics-1")
    terminal = connect(gateway.port)
    text_id = client.post("/api/v1/vehicles/bus-07/texts", headers=staff,
                          json={"text": "请回电"}).get_json()["id"]
    read_text(terminal)
    wait_status(client, staff, text_id, "sent")
    terminal.kill()  # gone before answering: it may never have shown the text
    wait_status(client, staff, text_id, "queued")
    terminal = connect(gateway.port)
    serial, _, text = read_text(terminal)
    assert text == "请回电"
    respond(terminal, serial, TEXT, OK)
    body = wait_status(client, staff, text_id, "ok")
    assert body["attempts"] == 2
    terminal.close()


def test_a_text_not_sent_before_its_expiry_is_expired_and_never_sent(app, client, gateway):
    from backend.extensions import db
    from backend.models import Jt808Text

    staff = login(client, "houqin.wang", "demo-logistics-1")
    text_id = client.post("/api/v1/vehicles/bus-07/texts", headers=staff,
                          json={"text": "过期的消息", "expires_in_s": 60}).get_json()["id"]
    with app.app_context():  # an hour went by with the terminal away
        row = db.session.get(Jt808Text, text_id)
        row.created_at -= 3600
        row.expires_at -= 3600
        db.session.commit()
    assert wait_status(client, staff, text_id, "expired")["sent_at"] is None
    terminal = connect(gateway.port)
    terminal.sock.settimeout(0.6)
    with pytest.raises(socket.timeout):
        terminal.read()  # nothing comes
    terminal.close()
    with app.app_context():
        assert db.session.get(Jt808Text, text_id).status == "expired"  # the gateway marked it


def test_texts_are_refused_with_reasons_and_outside_a_staff_members_scope(app, client,
                                                                         bus07_terminal):
    staff = login(client, "houqin.wang", "demo-logistics-1")
    other_school = login(client, "houqin.chen", "demo-logistics-2")
    parent = login(client, "zhang.lanlan", "demo-parent-1")
    post = client.post
    assert post("/api/v1/vehicles/bus-07/texts", headers=other_school,
                json={"text": "x"}).status_code == 404
    assert post("/api/v1/vehicles/bus-07/texts", headers=parent,
                json={"text": "x"}).status_code == 403
    assert post("/api/v1/vehicles/no-such-bus/texts", headers=staff,
                json={"text": "x"}).status_code == 404
    no_terminal = post("/api/v1/vehicles/bus-12/texts",
                       headers=login(client, "houqin.chen", "demo-logistics-2"),
                       json={"text": "x"})
    assert no_terminal.status_code == 409 and "jt808_phone" in no_terminal.get_json()["detail"]
    for body, field in [({}, "text"), ({"text": ""}, "text"), ({"text": "   "}, "text"),
                        ({"text": "车辆🚌"}, "text"), ({"text": "x" * 501}, "text"),
                        ({"text": "x", "expires_in_s": 5}, "expires_in_s")]:
        response = post("/api/v1/vehicles/bus-07/texts", headers=staff, json=body)
        assert response.status_code == 422, (body, response.get_json())
        assert field in response.get_json()["errors"], response.get_json()
    assert client.get("/api/v1/vehicles/bus-07/texts/999", headers=staff).status_code == 404
    assert client.get("/api/v1/vehicles/bus-07/texts", headers=other_school).status_code == 404


def test_a_text_never_answered_is_sent_again_later_three_times_at_most(app, client, gateway):
    from backend.extensions import db
    from backend.jt808_texts import MAX_ATTEMPTS, RESEND_AFTER_S
    from backend.models import Jt808Text

    staff = login(client, "houqin.wang", "demo-logistics-1")
    terminal = connect(gateway.port)
    text_id = client.post("/api/v1/vehicles/bus-07/texts", headers=staff,
                          json={"text": "请回电"}).get_json()["id"]
    serials = [read_text(terminal)[0]]  # the terminal shows it but never answers
    for attempt in range(2, MAX_ATTEMPTS + 1):
        with app.app_context():  # the answer did not come for longer than RESEND_AFTER_S
            row = db.session.get(Jt808Text, text_id)
            assert (row.status, row.attempts) == ("sent", attempt - 1)
            row.sent_at -= RESEND_AFTER_S + 1
            db.session.commit()
        serials.append(read_text(terminal)[0])
    assert len(set(serials)) == MAX_ATTEMPTS  # each send under a serial of its own
    with app.app_context():
        row = db.session.get(Jt808Text, text_id)
        row.sent_at -= RESEND_AFTER_S + 1
        db.session.commit()
    terminal.sock.settimeout(0.6)
    with pytest.raises(socket.timeout):
        read_text(terminal)  # no fourth time
    terminal.sock.settimeout(15)
    respond(terminal, serials[0], TEXT, OK)  # a late answer to the first send still counts
    body = wait_status(client, staff, text_id, "ok")
    assert body["attempts"] == MAX_ATTEMPTS
    terminal.close()


def test_an_answer_arriving_just_after_the_expiry_is_still_recorded(app, bus07_terminal):
    """A text sent a second before its expiry: a gateway's poll marks it unanswered at the
    expiry, and the terminal's answer a moment later must still say what the driver did."""
    from backend.extensions import db
    from backend.jt808_texts import TextOutbox, queue_text
    from backend.models import Jt808Text

    with app.app_context():
        row = queue_text("bus-07", "请回电", False, 60, "houqin.wang")
        outbox = TextOutbox(db.engine)
        sent_at = row.expires_at - 1
        assert outbox.claim([(row.id, 7)], sent_at) == [row.id]
        assert outbox.queued(row.expires_at + 0.5) == []  # marks it unanswered
        db.session.expire_all()
        assert db.session.get(Jt808Text, row.id).status == "unanswered"
        outbox.answered(row.id, OK, row.expires_at + 1)
        db.session.expire_all()
        done = db.session.get(Jt808Text, row.id)
        assert (done.status, done.result) == ("ok", 0)


def test_a_text_id_past_the_database_s_integers_is_not_found(app, client, bus07_terminal):
    staff = login(client, "houqin.wang", "demo-logistics-1")
    for text_id in (2**63, 10**30):
        response = client.get(f"/api/v1/vehicles/bus-07/texts/{text_id}", headers=staff)
        assert response.status_code == 404, response.get_json()
