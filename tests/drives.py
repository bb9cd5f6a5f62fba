"""An on-schedule drive of bus-07 on the sample district's route zt-am-1, with its ground truth.

The bus waits at 龙凤村 from 06:40, leaves at 06:50, drives at 25 km/h along the route's own
path, waits at each stop until its scheduled time and stays two minutes at 朱亭学校; sampled
every 10 s. Shared by the replay, ingest-tracking and audit tests so they all drive one bus.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from backend.demo.geometry import path_lengths, point_along  # shared with `xiaoche demo`

SHANGHAI = ZoneInfo("Asia/Shanghai")
ZT_AM_1_STOPS = ["longfeng-cun", "shitang-cun", "dongan-cun", "zhuting"]
EVERY_S = 10.0


def local_ts(date: dt.date, hhmmss: str) -> float:
    h, m, s = (int(v) for v in hhmmss.split(":"))
    return dt.datetime(date.year, date.month, date.day, h, m, s, tzinfo=SHANGHAI).timestamp()


def route_path(bundle: dict, route_id: str = "zt-am-1") -> list[tuple[float, float]]:
    route = next(r for r in bundle["routes"] if r["id"] == route_id)
    return [(lat, lon) for lon, lat in route["path"]["coordinates"]]


STOP_VERTICES = [0, 2, 4, 6]  # the sample's zt-am-1 stops lie on these vertices of its path
DRIVE_KMH = 25.0


def drive_knots(bundle: dict, date: dt.date) -> tuple[list[tuple[float, float]], list[float]]:
    """``(time, metres along the path)`` knots of an on-schedule drive, and the path's vertices'
    distances along it.

    The bus waits at 龙凤村 from 06:40, leaves at 06:50, drives at 25 km/h, waits at each stop
    until its scheduled time and leaves then, and stays at 朱亭学校 for two minutes.
    """
    path = route_path(bundle)
    places = {p["id"]: (p["lat"], p["lon"]) for p in bundle["stops"] + bundle["schools"]}
    assert [places[s] for s in ZT_AM_1_STOPS] == [path[v] for v in STOP_VERTICES]
    cum = path_lengths(path)
    knots = [(local_ts(date, "06:40:00"), 0.0), (local_ts(date, "06:50:00"), 0.0)]
    for vertex, due in zip(STOP_VERTICES[1:], ["06:58:00", "07:06:00", "07:20:00"], strict=True):
        arrives = knots[-1][0] + (cum[vertex] - knots[-1][1]) / (DRIVE_KMH / 3.6)
        assert arrives < local_ts(date, due)  # 25 km/h is enough to keep the timetable
        knots.append((arrives, cum[vertex]))
        knots.append(
            (max(local_ts(date, due), arrives) if vertex != 6 else arrives + 120.0, cum[vertex])
        )
    return knots, cum


def on_schedule_drive(bundle: dict, date: dt.date) -> list[tuple[float, float, float, float]]:
    """``(ts, lat, lon, speed_kmh)`` every 10 s of bus-07 driving zt-am-1 on time on ``date``."""
    path = route_path(bundle)
    knots, cum = drive_knots(bundle, date)
    rows = []
    t = knots[0][0]
    while t <= knots[-1][0]:
        k = max(i for i in range(len(knots) - 1) if knots[i][0] <= t)
        (t0, a0), (t1, a1) = knots[k], knots[k + 1]
        along = a0 + (a1 - a0) * (t - t0) / (t1 - t0)
        lat, lon = point_along(path, cum, along)
        rows.append((t, round(lat, 7), round(lon, 7), DRIVE_KMH if a1 > a0 else 0.0))
        t += EVERY_S
    return rows


def truth_arrivals(bundle: dict, date: dt.date) -> list[float]:
    """When the bus enters each stop's circle (the first is entered before the trace starts)."""
    knots, cum = drive_knots(bundle, date)
    radius = {p["id"]: p["radius_m"] for p in bundle["stops"] + bundle["schools"]}
    out = [knots[0][0]]
    for stop, vertex in zip(ZT_AM_1_STOPS[1:], STOP_VERTICES[1:], strict=True):
        edge = cum[vertex] - radius[stop]  # each stop's incoming segment is longer than r
        k = next(
            i
            for i in range(len(knots) - 1)
            if knots[i][1] <= edge <= knots[i + 1][1] and knots[i + 1][1] > knots[i][1]
        )
        (t0, a0), (t1, a1) = knots[k], knots[k + 1]
        out.append(t0 + (t1 - t0) * (edge - a0) / (a1 - a0))
    return out

