"""Event rules: arrivals, delays, rider scans, staff alerts and their scope."""

from __future__ import annotations

from notifications.model import first_per_key
from notifications.rules import messages_for, staff_message
from notifications.scans import ActiveTrip, scan_events, stop_at
from routing.model import Event

from .world import (
    ADMIN,
    CTX,
    DAD_EN,
    DRIVER_07,
    EVERYONE,
    LI_MING,
    LOGISTICS,
    MUM_ZH,
    OTHER,
    OTHER_LOGISTICS,
    OTHER_PARENT,
    ROUTE,
    SCHEDULE,
    STOPS,
    TRIP,
    ZHAO_LEI,
    at,
    replay_snapshots,
)


def ev(kind, ts, stop_id=None, vehicle_id="bus-07", route_id=ROUTE.id, trip_id=TRIP, **details):
    return Event(kind, ts, vehicle_id, route_id, trip_id, "zt-am-1", stop_id, details)


def users(messages, kind=None):
    return sorted(m.user_id for m in messages if kind is None or m.kind == kind)


def test_arrival_at_a_parents_stop_tells_that_parent_only():
    out = messages_for(ev("stop_arrived", at("07:01"), "shiwan", late_s=60.0), EVERYONE, CTX)
    assert users(out) == [MUM_ZH.user_id]
    (m,) = out
    assert (m.kind, m.title, m.body) == ("bus_arrived_stop", "校车已到站",
                                         "湘B·D1234校车已于07:01到达石湾。")
    assert (m.stop_id, m.trip_id, m.created_at) == ("shiwan", TRIP, at("07:01"))


def test_arrival_at_school_tells_every_parent_of_the_route_once():
    arrived = ev("stop_arrived", at("07:21"), "zhuting", late_s=60.0)
    completed = ev("trip_completed", at("07:21"), reason="last_stop")
    out = messages_for(arrived, EVERYONE, CTX) + messages_for(completed, EVERYONE, CTX)
    kept, _ = first_per_key(out)
    assert users(kept, "bus_arrived_school") == [MUM_ZH.user_id, DAD_EN.user_id]
    assert len(kept) == 2
    by_user = {m.user_id: m for m in kept}
    assert by_user[1].body == "李明乘坐的湘B·D1234校车已于07:21安全到达朱亭学校。"
    assert by_user[2].body == "Bus 湘B·D1234 with 王芳 arrived at 朱亭学校 at 07:21."


def test_a_trip_that_timed_out_does_not_claim_arrival_at_school():
    assert messages_for(ev("trip_completed", at("08:30"), reason="timeout"), EVERYONE, CTX) == []


def test_a_delayed_trip_is_announced_once_per_parent():
    snaps = replay_snapshots(delay_s=12 * 60)
    events = [ev("trip_started", at("06:57"), delay_s=720.0),
              ev("stop_arrived", SCHEDULE["longfeng-cun"] + 720, "longfeng-cun", late_s=720.0)]
    out = [m for s in snaps for m in messages_for(s, EVERYONE, CTX)]
    out += [m for e in events for m in messages_for(e, EVERYONE, CTX)]
    delayed = [m for m in out if m.kind == "trip_delayed"]
    kept, _ = first_per_key(delayed)
    assert users(kept) == [MUM_ZH.user_id, DAD_EN.user_id]
    mum = next(m for m in kept if m.user_id == MUM_ZH.user_id)
    assert mum.body == "朱亭早班1号线（湘B·D1234）晚点约12分钟，预计07:12到达石湾。"


def test_a_delay_under_ten_minutes_says_nothing():
    snaps = replay_snapshots(delay_s=9 * 60)
    out = [m for s in snaps for m in messages_for(s, EVERYONE, CTX)]
    out += messages_for(ev("trip_started", at("06:59"), delay_s=540.0), EVERYONE, CTX)
    assert not [m for m in out if m.kind == "trip_delayed"]


def test_a_boarding_scan_tells_the_childs_parent_with_stop_and_plate():
    place = stop_at(STOPS[1].lat, STOPS[1].lon, ROUTE)
    events = scan_events(at("07:01"), LI_MING.card_id, "board", "bus-07", LI_MING,
                         ActiveTrip(ROUTE.id, TRIP, "zt-am-1"), [ROUTE.id], place)
    assert [e.kind for e in events] == ["rider_boarded"]
    out = [m for e in events for m in messages_for(e, EVERYONE, CTX)]
    (m,) = out
    assert m.user_id == MUM_ZH.user_id
    assert (m.title, m.body) == ("孩子已上车", "李明已于07:01在石湾刷卡登上湘B·D1234校车。")
    off = scan_events(at("07:22"), LI_MING.card_id, "alight", "bus-07", LI_MING,
                      ActiveTrip(ROUTE.id, TRIP, "zt-am-1"), [ROUTE.id])
    (m2,) = messages_for(off[0], EVERYONE, CTX)
    assert m2.body == "李明已于07:22刷卡离开湘B·D1234校车。" and m2.dedupe_key != m.dedupe_key


def test_a_card_on_the_wrong_bus_tells_the_parent_and_the_staff_of_both_routes():
    events = scan_events(at("06:40"), ZHAO_LEI.card_id, "board", "bus-07", ZHAO_LEI,
                         ActiveTrip(ROUTE.id, TRIP, "zt-am-1"), [ROUTE.id])
    assert [e.kind for e in events] == ["rider_boarded", "rider_wrong_bus"]
    out = [m for e in events for m in messages_for(e, EVERYONE, CTX)]
    assert users(out, "rider_boarded") == [OTHER_PARENT.user_id]
    assert users(out, "rider_wrong_bus") == [LOGISTICS.user_id, OTHER_LOGISTICS.user_id,
                                             ADMIN.user_id, DRIVER_07.user_id]
    wrong = next(m for m in out if m.kind == "rider_wrong_bus")
    assert wrong.body == "赵磊于06:40在湘B·D1234校车上刷卡，应乘坐朱亭早班2号线。"


def test_staff_alerts_go_only_to_staff_in_scope():
    for event, kind in [
        (ev("route_deviation_started", at("07:05"), max_offset_m=212.4), "route_deviation"),
        (ev("overspeed", at("07:06"), max_speed_kmh=71.3, limit_kmh=60, duration_s=42.0),
         "overspeed"),
        (ev("stop_missed", at("07:12"), "tangjia", scheduled_at=SCHEDULE["tangjia"]),
         "stop_missed"),
    ]:
        out = messages_for(event, EVERYONE, CTX)
        assert users(out) == [LOGISTICS.user_id, ADMIN.user_id], kind
        assert {m.kind for m in out} == {kind}
    (m,) = [m for m in messages_for(ev("overspeed", at("07:06"), max_speed_kmh=71.3,
                                       limit_kmh=60, duration_s=42.0), [LOGISTICS], CTX)]
    assert m.body == "湘B·D1234于07:06起超速行驶42秒，最高71公里/小时（限速60）。"
    (missed,) = messages_for(ev("stop_missed", at("07:12"), "tangjia",
                                scheduled_at=SCHEDULE["tangjia"]), [LOGISTICS], CTX)
    assert missed.body == "湘B·D1234（朱亭早班1号线）未停靠唐家坪（计划07:10）。"


def test_overspeed_of_a_vehicle_off_trip_reaches_staff_who_see_the_vehicle():
    e = ev("overspeed", at("12:00"), route_id=None, trip_id=None, max_speed_kmh=80.0,
           limit_kmh=60, duration_s=30.0)
    assert users(messages_for(e, EVERYONE, CTX)) == [LOGISTICS.user_id, ADMIN.user_id]


def test_the_end_of_a_deviation_and_unknown_kinds_say_nothing():
    assert messages_for(ev("route_deviation_ended", at("07:08")), EVERYONE, CTX) == []
    assert messages_for(ev("meal_delivery_arrived", at("10:00")), EVERYONE, CTX) == []


def test_the_same_cause_gives_the_same_keys_in_a_replay():
    events = [ev("stop_arrived", at("07:01"), "shiwan", late_s=60.0),
              ev("overspeed", at("07:06"), max_speed_kmh=71.3, limit_kmh=60, duration_s=42.0),
              ev("stop_missed", at("07:12"), "tangjia", scheduled_at=SCHEDULE["tangjia"])]
    first = [m for e in events for m in messages_for(e, EVERYONE, CTX)]
    second = [m for e in events for m in messages_for(e, EVERYONE, CTX)]
    assert first == second
    assert len({m.dedupe_key for m in first}) == len(first)
    assert first[0].dedupe_key == f"bus_arrived_stop:1:{TRIP}:shiwan"


def test_a_staff_broadcast_reaches_the_parents_of_the_route_as_typed():
    out = staff_message(4, ROUTE.id, "道路封闭", "明早龙凤村路段封闭，校车改道。", at("21:00"),
                        EVERYONE)
    assert users(out) == [MUM_ZH.user_id, DAD_EN.user_id]
    assert {(m.title, m.body) for m in out} == {("道路封闭", "明早龙凤村路段封闭，校车改道。")}
    assert out[0].dedupe_key == "staff_message:4:1"


def test_other_routes_stops_are_named_too():
    (m,) = messages_for(Event("stop_arrived", at("06:55"), "bus-09", OTHER.id, "t2", "r",
                              "hetang"), EVERYONE, CTX)
    assert m.user_id == OTHER_PARENT.user_id and "荷塘" in m.body and "湘B·D5678" in m.body
