"""A terminal's alarm, from a real TCP terminal on loopback through the gateway, reaches the
logistics staff who see the bus as a notification committed with the location (and no one
else); the same alarm held over several locations tells them once."""

from __future__ import annotations

import time

from backend.bundle import import_bundle
from backend.runtime import start_jt808
from gps_ingest.jt808.messages import ALARM_EMERGENCY, ALARM_POWER_CUT, LOCATION, OK, REG_OK
from tests.conftest import login
from tests.jt808_terminal import Terminal

PHONE = "13907310007"


def test_an_emergency_button_and_a_power_cut_tell_the_staff_of_the_bus_once_each(
        app, client, imported):
    with app.app_context():
        import_bundle({"devices": [{"id": "dev-bus-07", "vehicle_id": "bus-07",
                                    "token": "demo-token-bus-07", "jt808_phone": PHONE}]})
    gateway = start_jt808(app, port=0, host="127.0.0.1")
    try:
        terminal = Terminal(gateway.port, PHONE)
        result, code = terminal.register()
        assert result == REG_OK and terminal.authenticate(code) == OK
        t0 = int(time.time()) - 120
        words = [0, ALARM_EMERGENCY, ALARM_EMERGENCY, ALARM_EMERGENCY | ALARM_POWER_CUT, 0]
        for i, word in enumerate(words):
            serial = terminal.location(t0 + i, 27.452, 113.231 + i * 1e-4, alarm=word)
            # answered after commit: the notification is committed with the location
            assert terminal.answer() == (serial, LOCATION, OK)
        terminal.close()
    finally:
        gateway.stop()

    def alarms(username: str, password: str) -> list[tuple[str, str]]:
        items = client.get("/api/v1/me/notifications",
                           headers=login(client, username, password)).get_json()["items"]
        return sorted((i["title"], i["body"]) for i in items if i["kind"] == "terminal_alarm")

    told = alarms("houqin.wang", "demo-logistics-1")
    assert [title for title, _ in told] == ["紧急报警", "终端主电源断开"]
    assert all(body.startswith("湘B·D1234的") for _, body in told)
    assert [t for t, _ in alarms("admin", "demo-admin-1")] == ["紧急报警", "终端主电源断开"]
    assert alarms("houqin.chen", "demo-logistics-2") == []  # 龙凤学校 does not see bus-07
    assert alarms("zhang.lanlan", "demo-parent-1") == []  # parents are not told
