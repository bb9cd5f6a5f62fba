"""The device directory of the ingest (``gps_ingest.ports.DeviceDirectory``, ``TerminalDirectory``)
over the database: which devices exist and what they speak for, cached in the ingest process.

The registry is reloaded every ``refresh_s`` seconds, and a device it does not know is looked up
at once (at most every ``miss_reload_s`` per id), so a device imported a moment ago is accepted
without a restart and without its first pings being refused as ``unknown_device``.
"""

from __future__ import annotations

import re
import threading
import time

from sqlalchemy import select
from sqlalchemy.engine import Engine

from backend.models import Device, DeviceModel, Vehicle
from gps_ingest.ports import DeviceInfo, TerminalInfo, normal_phone
from gps_ingest.records import ID_RE

__all__ = ["DeviceInfo", "DeviceRegistry", "PhoneDirectory", "TerminalInfo", "normal_phone"]

MAX_REMEMBERED_MISSES = 10_000

_ID = re.compile(ID_RE)


class DeviceRegistry:
    def __init__(self, engine: Engine, refresh_s: float = 30.0, miss_reload_s: float = 2.0):
        self._engine = engine
        self._refresh_s = refresh_s
        self._miss_reload_s = miss_reload_s
        self._devices: dict[str, DeviceInfo] = {}
        self._misses: dict[str, float] = {}  # unknown id → when it was last looked up
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, device_id: str) -> DeviceInfo | None:
        now = time.monotonic()
        if now - self._loaded_at > self._refresh_s:
            self.reload()
        info = self._devices.get(device_id)
        if info is None and _ID.match(device_id):  # no lookup for what cannot be an id
            # imported since the last reload? One primary-key lookup, at most every
            # miss_reload_s per unknown id, so a stranger hammering us costs little
            last_miss = self._misses.get(device_id)
            if last_miss is None or now - last_miss > self._miss_reload_s:
                info = self._load(device_id)
                with self._lock:
                    if info is None:
                        if len(self._misses) > MAX_REMEMBERED_MISSES:
                            self._misses.clear()
                        self._misses[device_id] = now
                    else:
                        self._devices = {**self._devices, device_id: info}
                        self._misses.pop(device_id, None)
        return info

    def _load(self, device_id: str) -> DeviceInfo | None:
        with self._engine.connect() as conn:
            row = conn.execute(self._query().where(Device.id == device_id)).first()
        return _info(row) if row else None

    @staticmethod
    def _query():
        return select(Device.id, Device.vehicle_id, Vehicle.kind, Device.crs, Device.osmand) \
            .outerjoin(Vehicle, Vehicle.id == Device.vehicle_id)

    def reload(self) -> None:
        with self._lock, self._engine.connect() as conn:
            self._devices = {r[0]: _info(r) for r in conn.execute(self._query())}
            self._misses = {}
            self._loaded_at = time.monotonic()


def _info(row) -> DeviceInfo:
    return DeviceInfo(row[0], row[1], row[2], row[3] or "wgs84", bool(row[4]))


class PhoneDirectory:
    """JT/T 808 terminals: the device of a phone number (``devices.jt808_phone``), compared
    without leading zeros (a 2013 header pads to 12 digits, a 2019 header to 20).

    Reloaded every ``refresh_s``, and at once (at most every ``miss_reload_s``) for a phone it
    does not know, so a terminal imported a moment ago can register.
    """

    def __init__(self, engine: Engine, refresh_s: float = 30.0, miss_reload_s: float = 2.0):
        self._engine = engine
        self._refresh_s = refresh_s
        self._miss_reload_s = miss_reload_s
        self._devices: dict[str, TerminalInfo] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def device_of(self, phone: str) -> TerminalInfo | None:
        now = time.monotonic()
        if now - self._loaded_at > self._refresh_s:
            self.reload()
        key = normal_phone(phone)
        device = self._devices.get(key)
        if device is None and now - self._loaded_at > self._miss_reload_s:
            self.reload()
            device = self._devices.get(key)
        return device

    def reload(self) -> None:
        with self._lock, self._engine.connect() as conn:
            # the device's own flag, or its model's: firmware that gets the check byte wrong
            rows = conn.execute(select(Device.jt808_phone, Device.id, Device.jt808_accept_bad_check,
                                       DeviceModel.jt808_accept_bad_check)
                                .outerjoin(DeviceModel, DeviceModel.id == Device.model)
                                .where(Device.jt808_phone.is_not(None)).order_by(Device.id))
            devices: dict[str, TerminalInfo] = {}
            for phone, device_id, accept, model_accepts in rows:  # the bundle forbids twins
                devices.setdefault(normal_phone(str(phone)),
                                   TerminalInfo(device_id, bool(accept or model_accepts)))
            self._devices = devices
            self._loaded_at = time.monotonic()
