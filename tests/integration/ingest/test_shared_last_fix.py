"""Two ingest workers of one shared subscription, one database: a worker judges a device's ping
against the fix another worker stored since, not against the older one it cached itself."""

from __future__ import annotations

import time

import orjson
from sqlalchemy import select

from backend.extensions import db
from backend.ingest.pipeline import IngestPipeline
from backend.models import Ping
from gps_ingest.filters import FilterConfig
from gps_ingest.pipeline import Message

TOPIC = "xiaoche/v1/devices/dev-bus-07/pings"
M_PER_DEG_LAT = 111_195.0
LAT, LON = 27.45, 113.23


def send(pipeline: IngestPipeline, ts: float, north_m: float) -> list[str]:
    payload = orjson.dumps([{"ts": ts, "lat": LAT + north_m / M_PER_DEG_LAT, "lon": LON}])
    [result] = pipeline.process([Message(payload=payload, received_at=time.time(), topic=TOPIC)])
    return [r.reason for r in result.rejected]


def test_a_jump_is_judged_against_the_fix_the_other_worker_stored(app, imported):
    t0 = time.time() - 600
    with app.app_context():
        a, b = (IngestPipeline(db.engine, FilterConfig(), shared_stream=True) for _ in range(2))
        assert send(a, t0, 0.0) == []  # a caches this fix
        for k in range(1, 6):  # the bus drives on, its messages going to b
            assert send(b, t0 + 10 * k, 50.0 * k) == []
        # 3 km south 10 s after b's last fix: reachable from a's cached fix 60 s before, not from
        # the bus's real last fix
        assert send(a, t0 + 60, -3000.0) == ["implausible_jump"]
        assert send(a, t0 + 70, 300.0) == []
        stored = db.session.scalars(select(Ping.ts).where(Ping.device_id == "dev-bus-07")
                                    .order_by(Ping.ts)).all()
        assert stored == [t0 + 10 * k for k in (0, 1, 2, 3, 4, 5, 7)]
        db.session.rollback()
