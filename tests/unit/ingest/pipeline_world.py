"""A pipeline on the in-memory ports (gps_ingest/fakes.py): no database, no backend."""

from __future__ import annotations

import orjson

from gps_ingest.fakes import MemoryDirectory, MemoryStore
from gps_ingest.filters import FilterConfig
from gps_ingest.pipeline import IngestPipeline, Message
from gps_ingest.ports import DeviceInfo

NOW = 1_700_000_000.0
LAT, LON = 27.62, 113.08  # 渌口, Hunan
M_PER_DEG_LAT = 111_195.0

BUS = DeviceInfo("bus-07", "veh-07", "bus", "wgs84", False)
CAR = DeviceInfo("car-li", "veh-li", "car", "gcj02", True)
READER = DeviceInfo("reader-1", None, None, "wgs84", False)  # a card reader on no vehicle


def world(*, after_store=(), after_scans=(), refuse=lambda row: False, store=None,
          devices=(BUS, CAR, READER)) -> tuple[IngestPipeline, MemoryStore]:
    store = store or MemoryStore(refuse)
    pipeline = IngestPipeline(store, MemoryDirectory(devices), FilterConfig(),
                              clock=lambda: NOW, after_store=after_store, after_scans=after_scans)
    return pipeline, store


def fix(k: int, north_m_per_s: float = 5.0, ts0: float = NOW - 3600) -> dict:
    """The k-th fix of a bus driving north at ``north_m_per_s``, one every 10 s."""
    return {"ts": ts0 + 10 * k, "lat": LAT + 10 * k * north_m_per_s / M_PER_DEG_LAT, "lon": LON}


def pings(device: str, items, received_at: float = NOW) -> Message:
    return Message(payload=orjson.dumps(list(items)), received_at=received_at,
                   topic=f"xiaoche/v1/devices/{device}/pings")


def scans(device: str, items) -> Message:
    return Message(payload=orjson.dumps(list(items)), received_at=NOW,
                   topic=f"xiaoche/v1/devices/{device}/scans")


def reasons(results) -> list[str]:
    return [r.reason for result in results for r in result.rejected]
