"""The alarm bits of a JT/T 808 location that matter to school-transport staff, and when one
begins.

The alarm word (JT/T 808-2013 table 24) has 32 bits; a school bus's staff act on four: the
driver's emergency button (bit 0), the terminal's own overspeed (bit 1), fatigue driving
(bit 2) and the main power cut (bit 8: the terminal was unplugged or the battery cut, the
usual way to stop a bus from being tracked). A bit stays set in every location while the
condition lasts (the emergency bit until the platform or the driver clears it), so an alarm
is an *edge*: the bit set where the previous location of the terminal had it clear.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable

from gps_ingest.jt808.messages import (
    ALARM_EMERGENCY,
    ALARM_FATIGUE,
    ALARM_OVERSPEED,
    ALARM_POWER_CUT,
)

#: name → bit, in the order events are made for one location
STAFF_ALARMS: dict[str, int] = {
    "emergency": ALARM_EMERGENCY,
    "overspeed": ALARM_OVERSPEED,
    "fatigue": ALARM_FATIGUE,
    "power_cut": ALARM_POWER_CUT,
}
STAFF_MASK = ALARM_EMERGENCY | ALARM_OVERSPEED | ALARM_FATIGUE | ALARM_POWER_CUT


def rising(previous: int, current: int) -> list[str]:
    """The staff alarms set in ``current`` and clear in ``previous``."""
    new = current & ~previous & STAFF_MASK
    return [name for name, bit in STAFF_ALARMS.items() if new & bit]


def alarm_edges(previous: int, words: Iterable[tuple[float, int]]) -> tuple[list[tuple[float, str]], int]:
    """The alarms that begin in a terminal's locations ``(ts, alarm word)`` (in time order),
    after a previous word ``previous``: ``([(ts, name)], the last word)``."""
    out: list[tuple[float, str]] = []
    for ts, word in words:
        out.extend((ts, name) for name in rising(previous, word))
        previous = word
    return out, previous
