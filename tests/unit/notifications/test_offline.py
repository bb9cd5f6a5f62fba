"""Timelines of the offline watch: only during a run, after the silence, one pair per silence."""

from __future__ import annotations

from notifications.config import DEFAULT, NotifyConfig
from notifications.offline import OfflineWatch, offline_watch
from notifications.rules import messages_for

from .world import CTX, EVERYONE, LOGISTICS, at


def drive(timeline, tick_s=10.0, cfg=DEFAULT):
    """``timeline``: (start, end, online) spans; the device pings every 10 s while online; the
    scheduler ticks every ``tick_s``. Returns the events."""
    state, out, last_seen = OfflineWatch("bus-07"), [], None
    start, end = timeline[0][0], timeline[-1][1]
    t = start
    while t <= end:
        span = next(s for s in timeline if s[0] <= t <= s[1])
        if span[2]:
            last_seen = t
        state, events = offline_watch(state, t, last_seen, in_scheduled_run=span[3], cfg=cfg)
        out += events
        t += tick_s
    return out


def kinds(events):
    return [e.kind for e in events]


T = at("06:40")


def test_a_silence_during_a_run_is_reported_after_three_minutes_then_back_online_once():
    events = drive([(T, T + 100, True, True), (T + 110, T + 700, False, True),
                    (T + 710, T + 900, True, True)])
    assert kinds(events) == ["device_offline", "device_online"]
    off, on = events
    assert off.ts == T + 100 + 180 and off.details == {"last_seen": T + 100, "silent_s": 180.0}
    assert on.ts == T + 710 and on.details["offline_s"] == 610.0


def test_a_silence_outside_any_scheduled_run_is_not_reported():
    assert drive([(T, T + 100, True, False), (T + 110, T + 2000, False, False),
                  (T + 2010, T + 2100, True, False)]) == []


def test_a_silence_that_began_before_the_run_is_reported_once_the_run_is_scheduled():
    events = drive([(T, T + 100, True, False), (T + 110, T + 1000, False, False),
                    (T + 1010, T + 1500, False, True)])
    assert kinds(events) == ["device_offline"] and events[0].ts == T + 1010


def test_back_online_is_told_even_after_the_run_ended():
    events = drive([(T, T + 100, True, True), (T + 110, T + 600, False, True),
                    (T + 610, T + 900, False, False), (T + 910, T + 950, True, False)])
    assert kinds(events) == ["device_offline", "device_online"]


def test_a_flapping_device_gives_one_pair_per_long_silence_and_none_for_short_ones():
    spans, t = [], T
    for silent in (200, 120, 200, 170, 250):
        spans.append((t, t + 10, True, True))  # back for 10 s
        spans.append((t + 20, t + 10 + silent, False, True))
        t += 20 + silent
    spans.append((t, t + 30, True, True))
    events = drive(spans)
    assert kinds(events) == ["device_offline", "device_online"] * 3  # the 200, 200, 250 s ones


def test_the_threshold_is_configurable():
    spans = [(T, T + 10, True, True), (T + 20, T + 120, False, True), (T + 130, T + 150, True, True)]
    assert drive(spans) == []
    assert kinds(drive(spans, cfg=NotifyConfig(offline_silence_s=60))) == ["device_offline",
                                                                         "device_online"]


def test_offline_and_online_messages_reach_staff_in_scope_with_paired_keys():
    events = drive([(T, T + 100, True, True), (T + 110, T + 700, False, True),
                    (T + 710, T + 900, True, True)])
    out = [m for e in events for m in messages_for(e, EVERYONE, CTX)]
    mine = [m for m in out if m.user_id == LOGISTICS.user_id]
    assert [m.kind for m in mine] == ["device_offline", "device_online"]
    assert mine[0].body == "湘B·D1234的定位设备已3分钟无信号（最后上报06:41），当前有运营班次。"
    assert mine[1].body == "湘B·D1234的定位设备于06:51恢复上报，此前离线约10分钟。"
    assert mine[0].dedupe_key.split(":")[-1] == mine[1].dedupe_key.split(":")[-1]
    assert {m.user_id for m in out} == {10, 12}


def test_a_device_never_heard_is_not_reported():
    state, events = offline_watch(OfflineWatch("bus-07"), T, None, True)
    assert events == [] and not state.offline
