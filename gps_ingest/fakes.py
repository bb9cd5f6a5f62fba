"""In-memory versions of the ingest's ports (``gps_ingest/ports.py``), for unit tests: the whole
pipeline — decode, authenticate, filter, dedupe, store, the steps after — without a database.

:class:`MemoryStore` keeps what a database would, with its rules: a ping's key is
(device_id, ts), a scan's (device_id, ts, card_id); a live position moves only forward in the
device's time; a transaction that raises leaves nothing behind. ``refuse`` makes it refuse rows
as a database refuses a value (``StorageRefused``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from gps_ingest.ports import (
    PING_COLUMNS,
    DeviceInfo,
    PingRow,
    StorageRefused,
    TerminalInfo,
    normal_phone,
)


@dataclass
class Tables:
    pings: dict[tuple[str, float], dict[str, Any]] = field(default_factory=dict)
    scans: dict[tuple[str, float, str], dict[str, Any]] = field(default_factory=dict)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    live: dict[str, dict[str, Any]] = field(default_factory=dict)  # vehicle_id → position


class MemoryTransaction:
    def __init__(self, tables: Tables, refuse: Callable[[dict[str, Any]], bool]) -> None:
        self.tables = tables
        self.connection = tables  # what the steps after storage get
        self._refuse = refuse

    def latest_fixes(self, device_ids: Iterable[str]) -> dict[str, tuple[float, float, float]]:
        wanted = set(device_ids)
        found: dict[str, tuple[float, float, float]] = {}
        for (device_id, ts), row in self.tables.pings.items():
            if device_id in wanted and (device_id not in found or ts > found[device_id][0]):
                found[device_id] = (ts, row["lat"], row["lon"])
        return found

    def live_fixes(self, device_ids: Iterable[str]) -> dict[str, tuple[float, float, float]]:
        wanted = set(device_ids)
        return {row["device_id"]: (row["ts"], row["lat"], row["lon"])
                for row in self.tables.live.values() if row["device_id"] in wanted}

    def insert_pings(self, rows: Sequence[PingRow]) -> set[tuple[str, float]]:
        new: set[tuple[str, float]] = set()
        for values in rows:
            row = dict(zip(PING_COLUMNS, values, strict=True))
            if self._refuse(row):
                raise StorageRefused(f"refused {row!r}", "DataError")
            key = (row["device_id"], row["ts"])
            if key not in self.tables.pings:
                self.tables.pings[key] = row
                new.add(key)
        return new

    def insert_scans(self, rows: Sequence[dict[str, Any]]) -> set[tuple[float, str]]:
        new: set[tuple[float, str]] = set()
        for row in rows:
            key = (row["device_id"], row["ts"], row["card_id"])
            if key not in self.tables.scans:
                self.tables.scans[key] = dict(row)
                new.add((row["ts"], row["card_id"]))
        return new

    def insert_rejects(self, rows: Sequence[dict[str, Any]]) -> None:
        self.tables.rejects.extend(dict(r) for r in rows)

    def upsert_live_positions(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            known = self.tables.live.get(row["vehicle_id"])
            if known is None or known["ts"] < row["ts"]:
                self.tables.live[row["vehicle_id"]] = dict(row)


class MemoryStore:
    """``IngestStore`` in memory: each transaction works on a copy, kept only on success."""

    def __init__(self, refuse: Callable[[dict[str, Any]], bool] = lambda row: False) -> None:
        self.tables = Tables()
        self.refuse = refuse
        self.commits = 0

    @contextmanager
    def transaction(self) -> Iterator[MemoryTransaction]:
        work = copy.deepcopy(self.tables)
        yield MemoryTransaction(work, self.refuse)
        self.tables = work  # reached only when the block did not raise: committed
        self.commits += 1


class MemoryDirectory:
    """``DeviceDirectory`` and ``TerminalDirectory`` over a dict of devices."""

    def __init__(self, devices: Iterable[DeviceInfo] = (),
                 phones: dict[str, TerminalInfo] | None = None) -> None:
        self.devices = {d.device_id: d for d in devices}
        self.phones = {normal_phone(p): t for p, t in (phones or {}).items()}

    def add(self, device: DeviceInfo) -> None:
        self.devices[device.device_id] = device

    def get(self, device_id: str) -> DeviceInfo | None:
        return self.devices.get(device_id)

    def device_of(self, phone: str) -> TerminalInfo | None:
        return self.phones.get(normal_phone(phone))
