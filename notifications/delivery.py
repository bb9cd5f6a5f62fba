"""Whether a message is pushed now: quiet hours and staleness. Pure; the dispatcher asks these
with its own clock and records every message in the in-app list whatever they answer."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from notifications.config import DEFAULT, NotifyConfig
from notifications.model import Message, Preferences
from routing.calendar import zone

#: Kinds that are pushed even in quiet hours: each says where a child is *now* or what a parent
#: must do *now* (walk to the stop), and loses its value by the end of the window. Village runs
#: start before 06:00 and boarders travel late on Sunday evenings, inside the default 22:00-06:00.
#: A broadcast and the staff's operational alerts wait: they stay in the in-app list, unpushed.
#: A terminal's alarm does not: a terminal raises one only on a bus that is driving (an
#: emergency button pressed on the 05:40 village run must ring at once).
PIERCES_QUIET_HOURS = frozenset({
    "bus_approaching", "bus_arrived_stop", "bus_arrived_school", "rider_boarded",
    "rider_alighted", "trip_delayed", "rider_wrong_bus", "terminal_alarm",
})


def in_quiet_hours(at: float, prefs: Preferences, timezone: str) -> bool:
    """Whether an epoch time falls in the user's quiet hours, read in the district's timezone.

    >>> p = Preferences()  # 22:00-06:00
    >>> in_quiet_hours(1795299000.0, p, "Asia/Shanghai")  # 06:10 local
    False
    >>> in_quiet_hours(1795297800.0, p, "Asia/Shanghai")  # 05:50 local
    True
    >>> in_quiet_hours(1795297800.0, Preferences(quiet_hours=None), "Asia/Shanghai")
    False
    """
    if prefs.quiet_hours is None:
        return False
    local = dt.datetime.fromtimestamp(at, zone(timezone)).time()
    return prefs.quiet_hours.contains(local)


def suppressed_by_quiet_hours(message_time: float, prefs: Preferences, timezone: str,
                              kind: str | None = None) -> bool:
    """Whether quiet hours hold back the push of a message of ``kind`` at ``message_time``
    (the moment it would ring the phone). Kinds in :data:`PIERCES_QUIET_HOURS` are never held.

    >>> p = Preferences()
    >>> suppressed_by_quiet_hours(1795297800.0, p, "Asia/Shanghai", "staff_message")
    True
    >>> suppressed_by_quiet_hours(1795297800.0, p, "Asia/Shanghai", "rider_boarded")
    False
    """
    if kind is not None and kind in PIERCES_QUIET_HOURS:
        return False
    return in_quiet_hours(message_time, prefs, timezone)


def is_stale(created_at: float, now: float, max_age_s: float = DEFAULT.stale_after_s) -> bool:
    """A message whose cause is older than ``max_age_s`` is recorded but not pushed.

    >>> is_stale(1000.0, 1900.0), is_stale(1000.0, 1900.5)
    (False, True)
    """
    return now - created_at > max_age_s


@dataclass(frozen=True, slots=True)
class Delivery:
    """What to do with one message now: push on ``channels`` (empty: record only), and why not."""

    channels: tuple[str, ...]
    held: str | None = None  # None | "stale" | "quiet_hours"


def plan_delivery(message: Message, now: float, prefs: Preferences, timezone: str,
                  cfg: NotifyConfig = DEFAULT) -> Delivery:
    """The push decision for a message taken from the outbox at ``now`` (wall clock).

    The message is always kept for ``/me/notifications``; ``channels`` are where it is pushed
    (``app`` = the ``/stream`` event, ``mqtt``, ``webhook``).

    >>> m = Message(1, "bus_approaching", "t", "b", created_at=1795297800.0, dedupe_key="k")
    >>> plan_delivery(m, 1795297810.0, Preferences(), "Asia/Shanghai")
    Delivery(channels=('app', 'mqtt', 'webhook'), held=None)
    >>> plan_delivery(m, 1795297800.0 + 901, Preferences(), "Asia/Shanghai").held
    'stale'
    """
    if is_stale(message.created_at, now, cfg.stale_after_s):
        return Delivery((), "stale")
    if suppressed_by_quiet_hours(now, prefs, timezone, message.kind):
        return Delivery((), "quiet_hours")
    return Delivery(tuple(c for c in message.channels if c in prefs.channels))
