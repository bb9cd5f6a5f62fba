"""What the browser tests drive: the served test app, today's run of a sample route, and the
pings of a bus on it fed through the real ingest pipeline (as ``xiaoche demo`` drives its fleet)."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

import orjson


@dataclass
class Site:
    app: object
    url: str

    def run(self, leg) -> None:
        """Put the leg's run in today's timetable (the demo's bundle import)."""
        from backend.demo.runs import import_demo_runs

        with self.app.app_context():
            import_demo_runs([leg], time.time())

    def feed(self, device_id: str, leg, times: list[float]) -> list[dict]:
        """Store the leg's positions at ``times`` through the ingest pipeline; the pings sent."""
        from backend.demo.plan import fix_at
        from backend.ingest.service import pipeline
        from gps_ingest.pipeline import Message

        pings = []
        for ts in times:
            fix = fix_at(leg, ts)
            pings.append({"ts": round(ts, 3), "lat": round(fix.lat, 6), "lon": round(fix.lon, 6),
                          "speed_kmh": round(fix.speed_kmh, 1), "heading_deg": round(fix.heading_deg)})
        ingest = pipeline(self.app)
        for k in range(0, len(pings), 20):
            result = ingest.process([Message(payload=orjson.dumps(pings[k:k + 20]),
                                             received_at=time.time(), kind="pings",
                                             device_id=device_id)])[0]
            assert not result.rejected, result.rejected
        return pings


def bus_run(route_id: str, depart_in_s: float, speeding_kmh: float | None = None,
            vehicle_id: str = "bus-07"):
    """A run of the sample route leaving its first stop ``depart_in_s`` from now (negative: it
    left that long ago), the way ``xiaoche demo`` drives it."""
    from backend.demo import SAMPLE_BUNDLE
    from backend.demo.fleet import route_shape
    from backend.demo.plan import run_leg

    bundle = json.loads(SAMPLE_BUNDLE.read_text(encoding="utf-8"))
    shape = route_shape(bundle, route_id, with_riders=False)
    return run_leg(vehicle_id, shape, time.time() + depart_in_s, 60.0, 30.0, random.Random(5),
                   speeding_kmh=speeding_kmh)


def every(start: float, end: float, step: float = 5.0) -> list[float]:
    out, t = [], start
    while t <= end:
        out.append(t)
        t += step
    return out
