"""Which devices exist and what they speak for, cached in the ingest process.

The registry is reloaded every ``refresh_s`` seconds and at once (rate-limited) when a message
names a device it does not know, so a device imported a moment ago is accepted without a restart.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Engine

from backend.models import Device, Vehicle


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    device_id: str
    vehicle_id: str | None
    vehicle_kind: str | None
    crs: str
    osmand: bool


class DeviceRegistry:
    def __init__(self, engine: Engine, refresh_s: float = 30.0, miss_reload_s: float = 2.0):
        self._engine = engine
        self._refresh_s = refresh_s
        self._miss_reload_s = miss_reload_s
        self._devices: dict[str, DeviceInfo] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, device_id: str) -> DeviceInfo | None:
        now = time.monotonic()
        if now - self._loaded_at > self._refresh_s:
            self.reload()
        info = self._devices.get(device_id)
        if info is None and now - self._loaded_at > self._miss_reload_s:
            self.reload()
            info = self._devices.get(device_id)
        return info

    def reload(self) -> None:
        query = select(Device.id, Device.vehicle_id, Vehicle.kind, Device.crs, Device.osmand) \
            .outerjoin(Vehicle, Vehicle.id == Device.vehicle_id)
        with self._lock, self._engine.connect() as conn:
            rows = conn.execute(query).all()
            self._devices = {r[0]: DeviceInfo(r[0], r[1], r[2], r[3] or "wgs84", bool(r[4]))
                             for r in rows}
            self._loaded_at = time.monotonic()
