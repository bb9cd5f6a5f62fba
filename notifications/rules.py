"""From tracker events and ETA snapshots to messages: one small pure function per rule.

Everything is a function of its inputs and of event time (``Event.ts``, ``EtaSnapshot.as_of``),
never of the wall clock, so replaying a day yields the same messages, with the same
``dedupe_key``; the outbox keeps the first of each key. Whether and where a message is pushed
(quiet hours, staleness) is :mod:`notifications.delivery`'s business, not the rules'.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from notifications.config import DEFAULT, NotifyConfig
from notifications.dedupe import dedupe_key
from notifications.model import (
    STAFF_ROLES,
    Child,
    EtaSnapshot,
    Message,
    NotifyContext,
    Preferences,
    Subscriber,
)
from notifications.templates import render
from routing.calendar import zone
from routing.model import Event

EventRule = Callable[[Event, Sequence[Subscriber], NotifyContext, NotifyConfig], list[Message]]


def messages_for(item: Event | EtaSnapshot, subscribers: Iterable[Subscriber],
                 ctx: NotifyContext, cfg: NotifyConfig = DEFAULT,
                 previous: EtaSnapshot | None = None) -> list[Message]:
    """Every message one event or one ETA snapshot causes, for the given subscribers.

    ``previous`` is the trip's preceding snapshot, when known: a stop already within the
    threshold then is not announced again (its message was made then; the dedupe key would
    drop it anyway, this only saves the outbox the work).

    >>> from routing.model import Event
    >>> ctx = NotifyContext(plates={"bus-07": "湘B·D1234"}, stop_names={"lf": "龙凤村"})
    >>> parent = Subscriber(1, "parent", children=(Child("s-001", "李明", "zt-am-1", "lf"),))
    >>> [m.body for m in messages_for(Event("stop_arrived", 1795301400.0, "bus-07", "zt-am-1",
    ...                                      "trip-1", "r", "lf"), [parent], ctx)]
    ['湘B·D1234校车已于06:50到达龙凤村。']
    """
    subs = list(subscribers)
    if isinstance(item, EtaSnapshot):
        return bus_approaching(item, subs, ctx, previous) + trip_delayed_from_eta(item, subs, ctx,
                                                                                   cfg)
    return [m for rule in EVENT_RULES.get(item.kind, ()) for m in rule(item, subs, ctx, cfg)]


# --- parents: ETA snapshots ----------------------------------------------------------------


def approach_trigger(snapshot: EtaSnapshot, stop_id: str,
                     prefs: Preferences) -> tuple[str, int] | None:
    """Whether a stop is "close" for these preferences: ``("", minutes)`` when its ETA is within
    ``notify_before_min``, else ``("distance", metres)`` when a distance is known and within
    ``notify_within_m``, else ``None`` (also for a stop already visited or missed).

    >>> snap = EtaSnapshot("r", "t", "v", as_of=1000.0, etas={"a": 1290.0, "b": 2000.0},
    ...                    distances_m={"b": 380.0})
    >>> approach_trigger(snap, "a", Preferences())
    ('', 5)
    >>> approach_trigger(snap, "b", Preferences()) is None
    True
    >>> approach_trigger(snap, "b", Preferences(notify_within_m=500))
    ('distance', 380)
    """
    eta = snapshot.etas.get(stop_id)
    if eta is None:
        return None
    left_s = eta - snapshot.as_of
    if left_s <= prefs.notify_before_min * 60.0:
        return "", max(1, math.ceil(left_s / 60.0 - 0.5))
    distance = snapshot.distances_m.get(stop_id)
    if prefs.notify_within_m is not None and distance is not None \
            and distance <= prefs.notify_within_m:
        return "distance", int(round(distance / 10.0) * 10)
    return None


def bus_approaching(snapshot: EtaSnapshot, subscribers: Sequence[Subscriber],
                    ctx: NotifyContext, previous: EtaSnapshot | None = None) -> list[Message]:
    """"The bus is N minutes (or M metres) from your stop", once per (parent, trip, stop): the
    key is the same for every snapshot of the trip, so only the first one under the threshold
    survives the outbox.

    >>> parent = Subscriber(1, "parent", children=(Child("s-1", "李明", "r", "a"),))
    >>> snap = EtaSnapshot("r", "t", "v", as_of=1000.0, etas={"a": 1240.0})
    >>> [(m.kind, m.dedupe_key) for m in bus_approaching(snap, [parent], NotifyContext())]
    [('bus_approaching', 'bus_approaching:1:t:a')]
    """
    out: list[Message] = []
    same_trip = previous is not None and previous.trip_id == snapshot.trip_id
    for sub in _parents(subscribers):
        for stop_id in _stops_of(sub.children_on(snapshot.route_id)):
            trigger = approach_trigger(snapshot, stop_id, sub.preferences)
            if trigger is None:
                continue
            if same_trip and previous is not None and \
                    approach_trigger(previous, stop_id, sub.preferences) is not None:
                continue
            variant, amount = trigger
            fields = {"plate": ctx.plate(snapshot.vehicle_id), "stop_name": ctx.stop_name(stop_id),
                      "minutes": amount, "distance_m": amount}
            out.append(_message(sub, "bus_approaching", variant, fields, snapshot.as_of,
                                snapshot.route_id, stop_id, snapshot.trip_id, snapshot.vehicle_id,
                                key_stop=stop_id))
    return out


def trip_delayed_from_eta(snapshot: EtaSnapshot, subscribers: Sequence[Subscriber],
                          ctx: NotifyContext, cfg: NotifyConfig = DEFAULT) -> list[Message]:
    """"The bus runs N minutes late" when the trip's delay exceeds the threshold, once per
    (parent, trip), naming the parent's stop and its new ETA while that stop is still ahead."""
    if snapshot.delay_s is None or snapshot.delay_s <= cfg.delay_threshold_s:
        return []
    out: list[Message] = []
    for sub in _parents(subscribers):
        children = sub.children_on(snapshot.route_id)
        ahead = [(s, snapshot.etas.get(s)) for s in _stops_of(children)]
        ahead = [(s, eta) for s, eta in ahead if eta is not None]
        fields: dict[str, object] = _delay_fields(snapshot.route_id, snapshot.vehicle_id,
                                                  snapshot.delay_s, ctx)
        stop_id = None
        if ahead:
            stop_id, eta = ahead[0]
            fields |= {"stop_name": ctx.stop_name(stop_id), "eta_time": _hhmm(eta, ctx)}
        if children:
            out.append(_message(sub, "trip_delayed", "" if ahead else "no_stop", fields,
                                snapshot.as_of, snapshot.route_id, stop_id, snapshot.trip_id,
                                snapshot.vehicle_id))
    return out


# --- parents: events -----------------------------------------------------------------------


def bus_arrived_stop(event: Event, subscribers: Sequence[Subscriber], ctx: NotifyContext,
                     cfg: NotifyConfig = DEFAULT) -> list[Message]:
    """``stop_arrived`` at a parent's own stop → "the bus is at your stop"; parents of other
    stops of the route hear nothing."""
    out: list[Message] = []
    for sub in _parents(subscribers):
        if any(c.stop_id == event.stop_id for c in sub.children_on(event.route_id)):
            fields = {"plate": ctx.plate(event.vehicle_id), "stop_name": ctx.stop_name(event.stop_id),
                      "time": _hhmm(event.ts, ctx)}
            out.append(_event_message(sub, "bus_arrived_stop", "", fields, event,
                                      event.stop_id, key_stop=event.stop_id))
    return out


def bus_arrived_school(event: Event, subscribers: Sequence[Subscriber], ctx: NotifyContext,
                       cfg: NotifyConfig = DEFAULT) -> list[Message]:
    """Arrival at the school that ends the route (``stop_arrived`` at its last stop, or
    ``trip_completed`` with reason ``last_stop``) → every parent of a rider. Both events give
    the same key, so a parent hears it once. Routes that do not end at a school, and trips that
    ended otherwise (timeout, abandoned), say nothing."""
    route = ctx.routes.get(event.route_id or "")
    if route is None or not route.stops or not route.stops[-1].is_school:
        return []
    school = route.stops[-1]
    if event.kind == "stop_arrived" and event.stop_id != school.id:
        return []
    if event.kind == "trip_completed" and event.details.get("reason") != "last_stop":
        return []
    out: list[Message] = []
    for sub in _parents(subscribers):
        children = sub.children_on(route.id)
        if children:
            fields = {"plate": ctx.plate(event.vehicle_id), "stop_name": school.name,
                      "time": _hhmm(event.ts, ctx), "child_name": _names(children, sub.language)}
            out.append(_event_message(sub, "bus_arrived_school", "", fields, event,
                                      stop_id=school.id, key_stop=school.id))
    return out


def trip_delayed_from_event(event: Event, subscribers: Sequence[Subscriber],
                            ctx: NotifyContext, cfg: NotifyConfig = DEFAULT) -> list[Message]:
    """A late start (``trip_started.details.delay_s``) or a late arrival at a stop
    (``stop_arrived.details.late_s``) past the threshold → "delayed", same key as the ETA rule,
    so once per (parent, trip) whichever notices first."""
    delay = event.details.get("delay_s" if event.kind == "trip_started" else "late_s")
    if not isinstance(delay, int | float) or delay <= cfg.delay_threshold_s:
        return []
    fields = _delay_fields(event.route_id, event.vehicle_id, float(delay), ctx)
    return [_event_message(sub, "trip_delayed", "no_stop", fields, event, stop_id=None)
            for sub in _parents(subscribers) if sub.children_on(event.route_id)]


def rider_scanned(event: Event, subscribers: Sequence[Subscriber], ctx: NotifyContext,
                  cfg: NotifyConfig = DEFAULT) -> list[Message]:
    """``rider_boarded`` / ``rider_alighted`` (from :mod:`notifications.scans`) → the parents of
    that child, whatever bus it was (a child on the wrong bus has still boarded)."""
    student_id = event.details.get("student_id")
    if student_id is None:
        return []
    out: list[Message] = []
    for sub in _parents(subscribers):
        child = next((c for c in sub.children if c.student_id == student_id), None)
        if child is None:
            continue
        fields = {"plate": ctx.plate(event.vehicle_id), "stop_name": ctx.stop_name(event.stop_id),
                  "time": _hhmm(event.ts, ctx), "child_name": child.name}
        out.append(_event_message(sub, event.kind, "" if event.stop_id else "no_stop", fields,
                                  event, event.stop_id, subject=_per_trip_subject(event, str(student_id))))
    return out


def staff_message(message_id: int | str, route_id: str, title: str, body: str,
                  created_at: float, subscribers: Iterable[Subscriber]) -> list[Message]:
    """A logistics broadcast (``POST /routes/{id}/messages``) → every parent of a rider, as
    typed (not templated). The key is ``backend.messages_service``'s: ``staff_message:{id}:{user}``.

    >>> [m.dedupe_key for m in staff_message(3, "r", "停运", "明天停运", 0.0,
    ...                                      [Subscriber(9, "parent", children=(Child("s", "A", "r", "a"),))])]
    ['staff_message:3:9']
    """
    return [Message(user_id=sub.user_id, kind="staff_message", title=title, body=body,
                    created_at=created_at, dedupe_key=f"staff_message:{message_id}:{sub.user_id}",
                    route_id=route_id, language=sub.language, channels=sub.preferences.channels)
            for sub in _parents(subscribers) if sub.children_on(route_id)]


# --- staff ---------------------------------------------------------------------------------


def route_deviation(event: Event, subscribers: Sequence[Subscriber], ctx: NotifyContext,
                    cfg: NotifyConfig = DEFAULT) -> list[Message]:
    """``route_deviation_started`` → staff in scope, once per episode (its end is audit data)."""
    fields = _staff_fields(event, ctx) | {"offset_m": _int(event.details.get("max_offset_m"))}
    return [_event_message(sub, "route_deviation", "", fields, event, None,
                                   subject=_at(event.ts))
            for sub in _staff(subscribers, event)]


def overspeed(event: Event, subscribers: Sequence[Subscriber], ctx: NotifyContext,
              cfg: NotifyConfig = DEFAULT) -> list[Message]:
    """``overspeed`` (one closed episode, stamped with its start) → staff in scope."""
    d = event.details
    fields = _staff_fields(event, ctx) | {"speed_kmh": _int(d.get("max_speed_kmh")),
                                          "limit_kmh": _int(d.get("limit_kmh")),
                                          "duration_s": _int(d.get("duration_s"))}
    return [_event_message(sub, "overspeed", "", fields, event, None,
                                   subject=_at(event.ts))
            for sub in _staff(subscribers, event)]


def stop_missed(event: Event, subscribers: Sequence[Subscriber], ctx: NotifyContext,
                cfg: NotifyConfig = DEFAULT) -> list[Message]:
    """``stop_missed`` → staff in scope, once per (trip, stop)."""
    scheduled = event.details.get("scheduled_at")
    fields = _staff_fields(event, ctx) | {
        "stop_name": ctx.stop_name(event.stop_id),
        "scheduled_time": _hhmm(scheduled, ctx) if isinstance(scheduled, int | float) else ""}
    return [_event_message(sub, "stop_missed", "", fields, event, event.stop_id,
                           key_stop=event.stop_id)
            for sub in _staff(subscribers, event)]


def rider_wrong_bus(event: Event, subscribers: Sequence[Subscriber], ctx: NotifyContext,
                    cfg: NotifyConfig = DEFAULT) -> list[Message]:
    """``rider_wrong_bus`` → staff who see the bus or the child's own route, and the bus's
    driver (who can act at once); once per (trip, child)."""
    expected = event.details.get("expected_route_id")
    student_id = str(event.details.get("student_id", ""))
    fields = _staff_fields(event, ctx) | {
        "child_name": event.details.get("student_name") or student_id,
        "expected_route_name": ctx.route_name(expected) if expected else "",
        "time": _hhmm(event.ts, ctx)}
    out: list[Message] = []
    for sub in subscribers:
        is_staff = sub.role in STAFF_ROLES and (
            sub.sees(event.vehicle_id, event.route_id) or sub.sees(None, expected))
        is_driver = sub.role == "driver" and event.vehicle_id in sub.vehicle_ids
        if is_staff or is_driver:
            out.append(_event_message(sub, "rider_wrong_bus", "", fields, event, event.stop_id,
                                      subject=_per_trip_subject(event, student_id)))
    return out


def device_status(event: Event, subscribers: Sequence[Subscriber], ctx: NotifyContext,
                  cfg: NotifyConfig = DEFAULT) -> list[Message]:
    """``device_offline`` / ``device_online`` (from :func:`notifications.offline.offline_watch`)
    → staff in scope; both carry the silence's ``last_seen``, so an offline and its online share
    a subject and a replayed watch gives the same keys."""
    d = event.details
    last_seen = d.get("last_seen")
    fields = _staff_fields(event, ctx) | {
        "silent_min": _int(_div(d.get("silent_s"), 60.0)),
        "offline_min": _int(_div(d.get("offline_s"), 60.0)),
        "last_seen_time": _hhmm(last_seen, ctx) if isinstance(last_seen, int | float) else ""}
    subject = f"{event.vehicle_id}@{_at(last_seen) if isinstance(last_seen, int | float) else '-'}"
    return [_event_message(sub, event.kind, "", fields, event, None, subject=subject)
            for sub in _staff(subscribers, event)]


def terminal_alarm(event: Event, subscribers: Sequence[Subscriber], ctx: NotifyContext,
                   cfg: NotifyConfig = DEFAULT) -> list[Message]:
    """A JT/T 808 terminal's alarm beginning (``terminal_alarm``: the driver's emergency
    button, the terminal's overspeed, fatigue driving, main power cut) → staff who see the
    vehicle, once per (vehicle, alarm, time); the text names the alarm (its variant)."""
    alarm = str(event.details.get("alarm", ""))
    fields = _staff_fields(event, ctx) | {"speed_kmh": _int(event.details.get("speed_kmh"))}
    return [_event_message(sub, "terminal_alarm", alarm, fields, event, None,
                           subject=f"{event.vehicle_id}:{alarm}@{_at(event.ts)}")
            for sub in _staff(subscribers, event)]


EVENT_RULES: Mapping[str, tuple[EventRule, ...]] = {
    "stop_arrived": (bus_arrived_stop, bus_arrived_school, trip_delayed_from_event),
    "trip_started": (trip_delayed_from_event,),
    "trip_completed": (bus_arrived_school,),
    "rider_boarded": (rider_scanned,),
    "rider_alighted": (rider_scanned,),
    "rider_wrong_bus": (rider_wrong_bus,),
    "route_deviation_started": (route_deviation,),
    "overspeed": (overspeed,),
    "stop_missed": (stop_missed,),
    "device_offline": (device_status,),
    "device_online": (device_status,),
    "terminal_alarm": (terminal_alarm,),
}


# --- helpers -------------------------------------------------------------------------------


def _parents(subscribers: Iterable[Subscriber]) -> list[Subscriber]:
    return [s for s in subscribers if s.role == "parent"]


def _staff(subscribers: Iterable[Subscriber], event: Event) -> list[Subscriber]:
    return [s for s in subscribers
            if s.role in STAFF_ROLES and s.sees(event.vehicle_id, event.route_id)]


def _stops_of(children: Iterable[Child]) -> list[str]:
    """The children's stops, each once, in a stable order."""
    return list(dict.fromkeys(c.stop_id for c in children if c.stop_id is not None))


def _names(children: Sequence[Child], language: str) -> str:
    return (", " if language == "en" else "、").join(c.name for c in children)


def _hhmm(ts: float, ctx: NotifyContext) -> str:
    """Local wall-clock time of an epoch, as 平安校车 texts show it (``07:02``)."""
    return dt.datetime.fromtimestamp(ts, zone(ctx.timezone)).strftime("%H:%M")


def _at(ts: Any) -> str:
    return str(int(ts)) if isinstance(ts, int | float) else "-"


def _int(value: Any) -> int | str:
    return int(round(value)) if isinstance(value, int | float) else ""


def _div(value: Any, by: float) -> float | None:
    return value / by if isinstance(value, int | float) else None


def _per_trip_subject(event: Event, subject: str) -> str:
    """Once per trip; a scan outside any trip is its own cause (keyed by its time)."""
    return subject if event.trip_id is not None else f"{subject}@{_at(event.ts)}"


def _delay_fields(route_id: str | None, vehicle_id: str, delay_s: float,
                  ctx: NotifyContext) -> dict[str, object]:
    return {"plate": ctx.plate(vehicle_id), "route_name": ctx.route_name(route_id),
            "delay_min": int(round(delay_s / 60.0))}


def _staff_fields(event: Event, ctx: NotifyContext) -> dict[str, object]:
    return {"plate": ctx.plate(event.vehicle_id), "route_name": ctx.route_name(event.route_id),
            "time": _hhmm(event.ts, ctx)}


def _event_message(sub: Subscriber, kind: str, variant: str, fields: Mapping[str, object],
                   event: Event, stop_id: str | None, key_stop: str | None = None,
                   subject: str | None = None) -> Message:
    return _message(sub, kind, variant, fields, event.ts, event.route_id, stop_id,
                    event.trip_id, event.vehicle_id, key_stop=key_stop, subject=subject)


def _message(sub: Subscriber, kind: str, variant: str, fields: Mapping[str, object],
             created_at: float, route_id: str | None, stop_id: str | None, trip_id: str | None,
             vehicle_id: str | None, key_stop: str | None = None,
             subject: str | None = None) -> Message:
    title, body = render(kind, sub.language, variant, fields)
    return Message(user_id=sub.user_id, kind=kind, title=title, body=body, created_at=created_at,
                   dedupe_key=dedupe_key(kind, sub.user_id, trip_id, key_stop, subject),
                   route_id=route_id, stop_id=stop_id, trip_id=trip_id, vehicle_id=vehicle_id,
                   language=sub.language, channels=sub.preferences.channels)

