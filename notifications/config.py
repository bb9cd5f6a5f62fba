"""Every tunable of the notification rules, declared once with its default and why it has that
value. Per-user choices (minutes before the stop, quiet hours, …) are ``Preferences``, not here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """Tunables of :mod:`notifications.rules`, :mod:`notifications.offline` and
    :mod:`notifications.delivery`; plain values, no environment lookups."""

    # A trip this far behind its schedule is "delayed": less is ordinary village-road noise,
    # and parents waiting at a roadside stop in the cold want to know past 10 minutes (the issue).
    delay_threshold_s: float = 600.0
    # A device silent this long during a scheduled run is offline: three missed 30-60 s pings
    # rather than one dead zone (same value as ``backend.api.vehicles.ONLINE_WITHIN_S``).
    offline_silence_s: float = 180.0
    # A message older than this when it would be pushed is recorded but not pushed: "5 minutes
    # away" 15 minutes late is wrong, and a backlog replay must not ring phones.
    stale_after_s: float = 900.0


DEFAULT = NotifyConfig()
