"""A device model whose firmware computes the JT/T 808 check byte wrong, declared once in the
bundle (``device_models[].jt808_accept_bad_check``), lets every terminal of that model in —
with real TCP terminals on loopback — while other terminals' bad frames are still refused."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from backend.bundle import BundleError, import_bundle
from backend.extensions import db
from backend.models import Ping, Reject
from backend.runtime import start_jt808
from gps_ingest.jt808.frame import encode_frame, escape, unescape
from gps_ingest.jt808.messages import LOCATION, MESSAGE_ERROR, OK, REG_OK
from tests.jt808_terminal import Terminal, location_body

BUNDLE = {
    "device_models": [{"id": "XC-G360", "name": "某厂 G360 行驶记录仪",
                       "jt808_accept_bad_check": True},
                      {"id": "XC-G500"}],
    "vehicles": [{"id": f"bus-m-{i}", "kind": "school_bus"} for i in range(3)],
    "devices": [{"id": "dev-g360-a", "vehicle_id": "bus-m-0", "token": "token-g360-a",
                 "model": "XC-G360", "jt808_phone": "13900000101"},
                {"id": "dev-g360-b", "vehicle_id": "bus-m-1", "token": "token-g360-b",
                 "model": "XC-G360", "jt808_phone": "13900000102"},
                {"id": "dev-g500", "vehicle_id": "bus-m-2", "token": "token-g500",
                 "model": "XC-G500", "jt808_phone": "13900000103"}],
}


def bad_check_location(terminal: Terminal, ts: float) -> int:
    terminal.serial += 1
    frame = encode_frame(LOCATION, terminal.phone, terminal.serial,
                         location_body(ts, 27.452, 113.231))
    wire = bytearray(unescape(frame[1:-1])[0])
    wire[-1] ^= 0x5A
    terminal.send_raw(b"\x7e" + escape(bytes(wire)) + b"\x7e")
    return terminal.serial


def test_every_terminal_of_a_model_with_a_wrong_check_byte_is_taken_and_others_are_not(
        app, imported):
    with app.app_context():
        summary = import_bundle(BUNDLE)
        assert summary.created["device_models"] == 2
        assert import_bundle(BUNDLE).unchanged["device_models"] == 2  # idempotent
    gateway = start_jt808(app, port=0, host="127.0.0.1")
    try:
        t0 = int(time.time()) - 60
        answers = {}
        for device in BUNDLE["devices"]:
            terminal = Terminal(gateway.port, device["jt808_phone"])
            result, code = terminal.register()
            assert result == REG_OK and terminal.authenticate(code) == OK
            serial = bad_check_location(terminal, t0)
            answered, message_id, result = terminal.answer()
            assert (answered, message_id) == (serial, LOCATION)
            answers[device["id"]] = result
            terminal.close()
    finally:
        gateway.stop()
    assert answers == {"dev-g360-a": OK, "dev-g360-b": OK, "dev-g500": MESSAGE_ERROR}
    with app.app_context():
        stored = db.session.scalars(select(Ping.device_id).order_by(Ping.device_id)).all()
        refused = db.session.execute(select(Reject.device_id, Reject.reason)).all()
    assert stored == ["dev-g360-a", "dev-g360-b"]
    assert [tuple(r) for r in refused] == [("dev-g500", "bad_checksum")]


def test_a_device_naming_an_unknown_model_is_refused_with_its_path(app, imported):
    with app.app_context(), pytest.raises(BundleError) as caught:
        import_bundle({"devices": [{"id": "dev-x", "token": "token-xxxxxxxx",
                                    "model": "NO-SUCH"}],
                       "device_models": [{"id": "bad id!"}]})
    errors = caught.value.errors
    assert errors["devices[0].model"] == ['unknown device model "NO-SUCH"']
    assert "device_models[0].id" in errors
