"""Hard days for the tracker, with ground truth: a generator of difficult days on real GTFS shapes
(:mod:`.generator`), the real HSL line 510 day (:mod:`.hsl`), and the measures the tracker is
judged by (:mod:`.metrics`, used by ``bench/tracking_real.py`` and the unit tests).

Issue 13, "Tracking that holds on real buses".
"""

from tests.realdays.day import Day, TruthTrip

__all__ = ["Day", "TruthTrip"]
