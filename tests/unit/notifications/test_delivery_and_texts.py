"""Quiet hours, staleness, and the texts' fallbacks."""

from __future__ import annotations

import doctest
import importlib

import pytest

from notifications.delivery import (
    PIERCES_QUIET_HOURS,
    is_stale,
    plan_delivery,
    suppressed_by_quiet_hours,
)
from notifications.model import (
    NOTIFICATION_KINDS,
    PARENT_KINDS,
    Message,
    Preferences,
    QuietHours,
)
from notifications.templates import TEMPLATES, render

from .world import at

TZ = "Asia/Shanghai"


def msg(kind, created_at, channels=("app", "mqtt", "webhook")):
    return Message(1, kind, "t", "b", created_at, "k", channels=channels)


def test_a_child_boarding_at_0550_is_pushed_despite_quiet_hours_until_0600():
    assert not suppressed_by_quiet_hours(at("05:50"), Preferences(), TZ, "rider_boarded")
    assert plan_delivery(msg("rider_boarded", at("05:50")), at("05:50"), Preferences(), TZ).held \
        is None


def test_a_broadcast_at_2230_waits_in_the_list_and_is_pushed_at_0610():
    prefs = Preferences()
    assert suppressed_by_quiet_hours(at("22:30"), prefs, TZ, "staff_message")
    assert plan_delivery(msg("staff_message", at("22:30")), at("22:30"), prefs, TZ).held \
        == "quiet_hours"
    assert not suppressed_by_quiet_hours(at("06:10"), prefs, TZ, "staff_message")


def test_quiet_hours_windows_wrap_midnight_and_can_be_off():
    day = QuietHours.from_json({"from": "12:00", "to": "14:00"})
    prefs = Preferences(quiet_hours=day)
    assert suppressed_by_quiet_hours(at("12:30"), prefs, TZ, "overspeed")
    assert not suppressed_by_quiet_hours(at("23:30"), prefs, TZ, "overspeed")
    assert not suppressed_by_quiet_hours(at("23:30"), Preferences(quiet_hours=None), TZ)
    assert suppressed_by_quiet_hours(at("00:30"), Preferences(), TZ, "device_offline")


def test_every_piercing_kind_is_a_notification_kind():
    assert PIERCES_QUIET_HOURS <= NOTIFICATION_KINDS
    assert "staff_message" not in PIERCES_QUIET_HOURS


def test_a_message_older_than_fifteen_minutes_is_recorded_but_not_pushed():
    assert not is_stale(at("07:00"), at("07:15"))
    assert is_stale(at("07:00"), at("07:15") + 1)
    d = plan_delivery(msg("bus_approaching", at("07:00")), at("07:20"), Preferences(), TZ)
    assert d.channels == () and d.held == "stale"


def test_pushes_go_only_to_the_channels_the_user_chose():
    d = plan_delivery(msg("bus_approaching", at("07:00"), ("app",)), at("07:00"),
                      Preferences(channels=("app",)), TZ)
    assert d.channels == ("app",)


def test_preferences_round_trip_their_json_with_spec_defaults():
    assert Preferences().to_json() == {
        "notify_before_min": 5.0, "notify_within_m": None,
        "quiet_hours": {"from": "22:00", "to": "06:00"},
        "channels": ["app", "mqtt", "webhook"], "language": "zh-CN"}
    p = Preferences(notify_within_m=300.0, quiet_hours=None, language="en")
    assert Preferences.from_json(p.to_json()) == p


def test_every_template_kind_is_a_notification_kind_with_chinese_and_english():
    for (kind, _variant), by_language in TEMPLATES.items():
        assert kind in NOTIFICATION_KINDS
        assert {"zh-CN", "en"} <= set(by_language)
    assert {k for k, _ in TEMPLATES} == NOTIFICATION_KINDS


def test_an_unknown_language_falls_back_to_chinese_and_missing_fields_never_crash():
    fields = {"plate": "湘B·D1234", "stop_name": "石湾", "time": "07:01"}
    assert render("bus_arrived_stop", "fr", fields=fields) == render("bus_arrived_stop", "zh-CN",
                                                                      fields=fields)
    for kind in PARENT_KINDS - {"staff_message"}:  # a broadcast is shown as typed
        title, _ = render(kind, "en")
        assert title
    assert render("rider_boarded", "en", "no_such", {"child_name": "A", "time": None})[1] \
        == "A boarded bus  at  at ."


@pytest.mark.parametrize("module", ["notifications.model", "notifications.dedupe",
                                    "notifications.templates", "notifications.rules",
                                    "notifications.delivery", "notifications.offline",
                                    "notifications.scans"])
def test_the_docstring_examples_hold(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0
