"""A JT/T 808 terminal's alarm (emergency button, overspeed, fatigue, power cut) tells the staff
who see the vehicle, in their language, once per alarm, even in quiet hours."""

from __future__ import annotations

import dataclasses

from notifications.delivery import plan_delivery
from notifications.model import Preferences
from notifications.rules import messages_for
from routing.model import Event

from .world import ADMIN, CTX, EVERYONE, LOGISTICS, OTHER_LOGISTICS, at


def alarm(name: str, ts: float, vehicle_id: str = "bus-07", **details) -> Event:
    return Event("terminal_alarm", ts, vehicle_id,
                 details={"alarm": name, "device_id": "dev-bus-07", "lat": 27.45, "lon": 113.23,
                          "alarm_word": 1, **details})


def test_an_emergency_button_tells_the_staff_who_see_the_bus_in_chinese_first():
    out = messages_for(alarm("emergency", at("07:03")), EVERYONE, CTX)
    assert sorted(m.user_id for m in out) == [LOGISTICS.user_id, ADMIN.user_id]
    assert OTHER_LOGISTICS.user_id not in {m.user_id for m in out}
    m = out[0]
    assert (m.kind, m.title, m.body) == (
        "terminal_alarm", "紧急报警", "湘B·D1234的驾驶员于07:03按下紧急报警按钮，请立即联系驾驶员。")
    assert m.vehicle_id == "bus-07" and m.created_at == at("07:03")


def test_each_staff_alarm_has_its_own_text_and_english_is_available():
    english = dataclasses.replace(ADMIN, preferences=Preferences(language="en"))
    bodies = {}
    for name in ("emergency", "overspeed", "fatigue", "power_cut"):
        (zh,) = messages_for(alarm(name, at("07:03"), speed_kmh=72.4), [LOGISTICS], CTX)
        (en,) = messages_for(alarm(name, at("07:03"), speed_kmh=72.4), [english], CTX)
        bodies[name] = (zh.title, zh.body, en.title)
    assert bodies["overspeed"][1] == "湘B·D1234的车载终端于07:03报告超速，车速72公里/小时。"
    assert bodies["power_cut"][:2] == ("终端主电源断开",
                                       "湘B·D1234的车载终端于07:03报告主电源断开，定位可能中断。")
    assert bodies["fatigue"][0] == "疲劳驾驶报警"
    assert [b[2] for b in bodies.values()] == ["Emergency alarm", "Terminal overspeed alarm",
                                              "Fatigue alarm", "Terminal power cut"]
    assert len({b[1] for b in bodies.values()}) == 4


def test_the_same_alarm_gives_the_same_key_and_another_alarm_or_time_another():
    keys = [m.dedupe_key for e in (alarm("emergency", at("07:03")), alarm("emergency", at("07:03")),
                                    alarm("power_cut", at("07:03")), alarm("emergency", at("07:09")))
            for m in messages_for(e, [LOGISTICS], CTX)]
    assert keys[0] == keys[1] and len(set(keys)) == 3


def test_an_alarm_at_0540_rings_through_quiet_hours():
    (m,) = messages_for(alarm("emergency", at("05:40")), [LOGISTICS], CTX)
    plan = plan_delivery(m, at("05:40") + 2, Preferences(), "Asia/Shanghai")
    assert plan.held is None and plan.channels
