"""Device offline / back online as a small pure state machine, driven by the scheduler's ticks.

Only a silence during a scheduled run counts (a bus parked overnight is not "offline"), only
after ``offline_silence_s``, and each reported silence gets exactly one ``device_online`` when
the device is heard again: one pair per silence, never a stream of flaps (Traccar #4832).
"""

from __future__ import annotations

from dataclasses import dataclass

from notifications.config import DEFAULT, NotifyConfig
from routing.model import Event


@dataclass(frozen=True, slots=True)
class OfflineWatch:
    """Per-vehicle state: ``silence_from`` is the ``last_seen`` of the silence reported offline
    (``None`` while online). Two plain values, easy to keep in a row."""

    vehicle_id: str
    silence_from: float | None = None

    @property
    def offline(self) -> bool:
        return self.silence_from is not None


def offline_watch(state: OfflineWatch, now: float, last_seen: float | None,
                  in_scheduled_run: bool, cfg: NotifyConfig = DEFAULT,
                  route_id: str | None = None,
                  trip_id: str | None = None) -> tuple[OfflineWatch, list[Event]]:
    """One tick: the new state and the events it causes (``device_offline``/``device_online``,
    which :func:`notifications.rules.messages_for` turns into staff messages).

    ``last_seen`` is when the service last *received* anything from the vehicle's device (wall
    clock, not the ping's own ``ts``: a backlog of old fixes arriving proves the device is back);
    ``None`` for a device never heard, which is not reported. ``in_scheduled_run`` is whether one
    of the vehicle's runs is scheduled now (``route_id``/``trip_id`` tag the event for scoping).

    >>> s = OfflineWatch("bus-07")
    >>> s, ev = offline_watch(s, now=1170.0, last_seen=1000.0, in_scheduled_run=True)
    >>> ev
    []
    >>> s, ev = offline_watch(s, now=1180.0, last_seen=1000.0, in_scheduled_run=True)
    >>> [e.kind for e in ev], s.offline
    (['device_offline'], True)
    >>> s, ev = offline_watch(s, now=1300.0, last_seen=1000.0, in_scheduled_run=True)
    >>> ev
    []
    >>> s, ev = offline_watch(s, now=1310.0, last_seen=1305.0, in_scheduled_run=False)
    >>> [(e.kind, e.ts, e.details["offline_s"]) for e in ev]
    [('device_online', 1305.0, 305.0)]
    """
    if state.silence_from is not None:
        if last_seen is None or last_seen <= state.silence_from:
            return state, []
        back = Event("device_online", last_seen, state.vehicle_id, route_id, trip_id, details={
            "last_seen": state.silence_from, "offline_s": round(last_seen - state.silence_from, 1)})
        return OfflineWatch(state.vehicle_id), [back]
    if last_seen is None or not in_scheduled_run:
        return state, []
    silent_s = now - last_seen
    if silent_s < cfg.offline_silence_s:
        return state, []
    gone = Event("device_offline", now, state.vehicle_id, route_id, trip_id, details={
        "last_seen": last_seen, "silent_s": round(silent_s, 1)})
    return OfflineWatch(state.vehicle_id, silence_from=last_seen), [gone]
