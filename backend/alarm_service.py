"""JT/T 808 terminal alarms (emergency button, overspeed, fatigue, power cut) as events.

An ingest step (after storage, in the batch's transaction, as tracking is): a location whose
alarm word sets one of the staff's alarms that the terminal's previous location had clear makes
an event ``terminal_alarm`` with ``details.alarm`` ∈ ``emergency``, ``overspeed``, ``fatigue``,
``power_cut`` (``gps_ingest.jt808.alarms``), which ``GET /events`` serves to staff, and the
staff who see the vehicle are told (``notifications.rules.terminal_alarm``), in the same
transaction, as the tracker's events are.

The previous word of each terminal is kept in this process (the pipeline processes get each
device's messages always in the same one); after a restart the first location with a bit set
makes its event again, once. A blind-area backlog (older than the newest location seen) is
looked at on its own: its alarms were never reported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Connection, insert

from backend.models import Event
from gps_ingest.jt808.alarms import alarm_edges
from gps_ingest.pipeline import StoredPing
from routing import model as rm

TERMINAL_ALARM = "terminal_alarm"


#: writes the notifications of events in the batch's transaction (``NotifyStep``)
Notify = Callable[[Connection, Sequence[rm.Event], dict], object]


class AlarmStep:
    def __init__(self, notify: Notify | None = None) -> None:
        self.notify = notify
        self._last: dict[str, tuple[float, int]] = {}  # device → (ts, word) of its newest fix

    def __call__(self, conn: Connection, stored: list[StoredPing]) -> None:
        by_device: dict[str, list[StoredPing]] = {}
        for s in stored:
            if s.ping.alarm is not None:
                by_device.setdefault(s.ping.device_id, []).append(s)
        if not by_device:
            return
        rows = []
        events: list[rm.Event] = []  # the same, for the notification rules
        now = time.time()
        for device_id, pings in by_device.items():
            pings.sort(key=lambda s: s.ping.ts)
            last_ts, last_word = self._last.get(device_id, (-math.inf, 0))
            newer = [s for s in pings if s.ping.ts > last_ts]
            backlog = [s for s in pings if s.ping.ts <= last_ts]
            for group, previous in ((backlog, 0), (newer, last_word)):
                at = {s.ping.ts: s for s in group}
                edges, _ = alarm_edges(previous, [(s.ping.ts, s.ping.alarm or 0) for s in group])
                for ts, name in edges:
                    s = at[ts]
                    details = {"alarm": name, "device_id": device_id, "lat": s.ping.lat,
                               "lon": s.ping.lon, "alarm_word": s.ping.alarm,
                               "speed_kmh": s.ping.speed_kmh}
                    rows.append({"kind": TERMINAL_ALARM, "ts": ts, "vehicle_id": s.vehicle_id,
                                 "details": details, "created_at": now})
                    if s.vehicle_id is not None:
                        events.append(rm.Event(TERMINAL_ALARM, ts, s.vehicle_id,
                                               details=details))
            if newer:
                self._last[device_id] = (newer[-1].ping.ts, newer[-1].ping.alarm or 0)
        if rows:
            conn.execute(insert(Event), rows)
            if self.notify is not None and events:
                self.notify(conn, events, {})
