"""Device offline / back online, on the scheduler's clock.

Every tick (``XIAOCHE_OFFLINE_CHECK_S``), each vehicle that has ever been heard is checked with
:func:`notifications.offline.offline_watch`: silent for ``XIAOCHE_OFFLINE_AFTER_S`` while one of
its runs is scheduled → one ``device_offline`` event and its staff messages; heard again → one
``device_online``. A bus parked overnight, or a teacher's car between trips, is never "offline":
only a silence during a scheduled run counts (Traccar #4832's online/offline spam is the
counter-example). The watch state is a row per vehicle, so a restarted scheduler neither
repeats an offline nor forgets to say "back online".
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from backend.extensions import db
from backend.models import LivePosition, VehicleWatch
from backend.notify_service import Audience, NotifyStep
from backend.tracking_service import EVENTS, ContextCache, event_row
from notifications.config import DEFAULT, NotifyConfig
from notifications.offline import OfflineWatch, offline_watch
from routing import model as rm
from routing.calendar import is_service_day, local_date, service_day_start

log = logging.getLogger(__name__)

WATCH = VehicleWatch.__table__
#: A run counts as "scheduled" from its first stop's time to this long after its last one
#: (a bus 10 minutes late is still expected to report).
AFTER_LAST_STOP_S = 15 * 60


@dataclass
class WatchResult:
    checked: int = 0
    offline: int = 0
    online: int = 0
    messages: int = 0


def scheduled_route(ctx: rm.VehicleContext, now: float) -> str | None:
    """The route of a run of this vehicle scheduled at ``now`` (None: none is)."""
    today = local_date(now, ctx.calendar)
    for route in ctx.routes:
        for run in route.runs:
            times = [t for t in run.times_s if t is not None]
            if not times:
                continue
            for back in (0, 1):  # a run of yesterday's service day may reach past midnight
                day = today.fromordinal(today.toordinal() - back)
                if not is_service_day(run, ctx.calendar, day):
                    continue
                start = service_day_start(day, ctx.calendar)
                if start + min(times) <= now <= start + max(times) + AFTER_LAST_STOP_S:
                    return route.id
    return None


def watch_devices(app: Flask, now: float | None = None,
                  contexts: ContextCache | None = None,
                  audience: Audience | None = None) -> WatchResult:
    """One tick of the watch over every vehicle heard at least once; committed."""
    now = time.time() if now is None else now
    cfg = dataclasses.replace(DEFAULT, offline_silence_s=float(app.config.get(
        "OFFLINE_AFTER_S", DEFAULT.offline_silence_s)))
    contexts = contexts or ContextCache(ttl_s=0.0)
    result = WatchResult()
    with app.app_context(), db.engine.begin() as conn:
        heard = dict(conn.execute(select(LivePosition.vehicle_id, LivePosition.received_at)).all())
        watches = dict(conn.execute(select(WATCH.c.vehicle_id, WATCH.c.silence_from)).all())
        events: list[rm.Event] = []
        rows = []
        for vehicle_id in sorted(heard):
            ctx = contexts.get(conn, vehicle_id)
            if ctx is None:
                continue
            route_id = scheduled_route(ctx, now)
            state = OfflineWatch(vehicle_id, watches.get(vehicle_id))
            new_state, new_events = offline_watch(state, now, heard[vehicle_id],
                                                  route_id is not None, cfg, route_id=route_id)
            result.checked += 1
            events.extend(new_events)
            if new_state != state or vehicle_id not in watches:
                rows.append({"vehicle_id": vehicle_id, "silence_from": new_state.silence_from,
                             "checked_at": now})
        _save(conn, rows)
        if events:
            conn.execute(EVENTS.insert(), [event_row(e, now) for e in events])
            result.messages = _notify(conn, events, cfg, audience)
        result.offline = sum(e.kind == "device_offline" for e in events)
        result.online = sum(e.kind == "device_online" for e in events)
    for e in events:
        log.info("%s: %s (route %s)", e.kind, e.vehicle_id, e.route_id)
    return result


def _save(conn: Connection, rows: list[dict]) -> None:
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(WATCH)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["vehicle_id"],
        set_={"silence_from": stmt.excluded.silence_from, "checked_at": stmt.excluded.checked_at}),
        rows)


def _notify(conn: Connection, events: list[rm.Event], cfg: NotifyConfig,
            audience: Audience | None) -> int:
    return NotifyStep(audience or Audience(ttl_s=0.0), cfg)(conn, events, {})
