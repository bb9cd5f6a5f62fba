"""A small district for notification tests: one morning route of four stops ending at a school,
one other route, parents and staff, and a replayed trip's ETA snapshots."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from notifications.model import Child, EtaSnapshot, NotifyContext, Preferences, Subscriber
from routing.model import Place, Route

TZ = ZoneInfo("Asia/Shanghai")


def at(hhmm: str, day: dt.date = dt.date(2026, 11, 23)) -> float:
    """Epoch of a local time on a Monday."""
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm), TZ).timestamp()


STOPS = (Place("longfeng-cun", "龙凤村", 27.452, 113.231, 60.0),
         Place("shiwan", "石湾", 27.445, 113.222, 60.0),
         Place("tangjia", "唐家坪", 27.438, 113.213, 60.0),
         Place("zhuting", "朱亭学校", 27.4301, 113.2052, 150.0, is_school=True))
ROUTE = Route("zt-am-1", "朱亭早班1号线", "zhuting", ((113.231, 27.452), (113.2052, 27.4301)),
              80.0, STOPS, ())
OTHER = Route("zt-am-2", "朱亭早班2号线", "zhuting", ((113.3, 27.5), (113.2052, 27.4301)), 80.0,
              (Place("hetang", "荷塘", 27.5, 113.3, 60.0), STOPS[-1]), ())
CTX = NotifyContext(plates={"bus-07": "湘B·D1234", "bus-09": "湘B·D5678"},
                    routes={ROUTE.id: ROUTE, OTHER.id: OTHER})
TRIP = "zt-am-1:2026-11-23:zt-am-1"
# Scheduled 06:50, 07:00, 07:10, 07:20 at the four stops.
SCHEDULE = {"longfeng-cun": at("06:50"), "shiwan": at("07:00"), "tangjia": at("07:10"),
            "zhuting": at("07:20")}

LI_MING = Child("s-001", "李明", ROUTE.id, "shiwan", "04A1B2C3")
WANG_FANG = Child("s-002", "王芳", ROUTE.id, "tangjia", "04A1B2C4")
ZHAO_LEI = Child("s-003", "赵磊", OTHER.id, "hetang", "04A1B2C5")

MUM_ZH = Subscriber(1, "parent", children=(LI_MING,))
DAD_EN = Subscriber(2, "parent", Preferences(language="en"), children=(WANG_FANG,))
OTHER_PARENT = Subscriber(3, "parent", children=(ZHAO_LEI,))
LOGISTICS = Subscriber(10, "logistics", route_ids=frozenset({ROUTE.id}),
                       vehicle_ids=frozenset({"bus-07"}))
OTHER_LOGISTICS = Subscriber(11, "logistics", route_ids=frozenset({OTHER.id}),
                             vehicle_ids=frozenset({"bus-09"}))
ADMIN = Subscriber(12, "admin", all_in_scope=True)
DRIVER_07 = Subscriber(20, "driver", vehicle_ids=frozenset({"bus-07"}))
EVERYONE = (MUM_ZH, DAD_EN, OTHER_PARENT, LOGISTICS, OTHER_LOGISTICS, ADMIN, DRIVER_07)


def replay_snapshots(delay_s: float = 0.0, every_s: float = 20.0) -> list[EtaSnapshot]:
    """A trip driven on schedule (+ ``delay_s``) from 06:45, one prediction per ping: each stop's
    ETA is its scheduled time plus the delay, ``None`` once the bus has passed it."""
    out = []
    t = at("06:45")
    while t <= SCHEDULE["zhuting"] + delay_s:
        etas = {s: (when + delay_s if when + delay_s > t else None)
                for s, when in SCHEDULE.items()}
        out.append(EtaSnapshot(ROUTE.id, TRIP, "bus-07", as_of=t, etas=etas, delay_s=delay_s))
        t += every_s
    return out
