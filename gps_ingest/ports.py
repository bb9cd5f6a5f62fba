"""What the ingest needs from outside, declared here and provided by others.

``gps_ingest`` imports ``routing`` and nothing else of ours (an import-linter contract in
pyproject.toml keeps it so). The database it stores into and the devices it knows are ports:

- :class:`IngestStore` — one transaction per batch (:class:`StoreTransaction`): the newest stored
  fix of devices (the jump filter's reference), pings, scans, rejects and live positions written,
  and what was new said back; the SQL adapter is ``backend/ingest/store.py``;
- :class:`DeviceDirectory` — which device an id is and what it speaks for (``backend/ingest/
  devices.py``); :class:`TerminalDirectory` — the JT/T 808 terminal of a phone number.

``gps_ingest/fakes.py`` holds in-memory versions of both, so the whole pipeline runs in unit tests
without a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

# The values of one ping row, in this order (a tuple per ping: no dict per ping, bench/ingest.py).
PING_COLUMNS = ("device_id", "vehicle_id", "ts", "lat", "lon", "speed_kmh", "heading_deg",
                "accuracy_m", "alt_m", "battery_pct", "seq", "received_at")
PingRow = tuple


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    device_id: str
    vehicle_id: str | None
    vehicle_kind: str | None
    crs: str
    osmand: bool


@dataclass(frozen=True, slots=True)
class TerminalInfo:
    device_id: str
    accept_bad_check: bool = False


class StorageRefused(Exception):
    """The store refused what the decoders let through (a value out of a column's range, a
    constraint): the pipeline retries the batch message by message and keeps the one still
    refused as an ``unstorable`` reject. Anything else a store raises (the database is down)
    leaves the batch unacknowledged, to be redelivered."""

    def __init__(self, detail: str, kind: str = "refused") -> None:
        super().__init__(detail)
        self.detail = detail  # what the store said
        self.kind = kind  # the store's name for it (the driver's exception class)


class StoreTransaction(Protocol):
    """One batch's open transaction: committed when the ``with`` block ends without an error,
    rolled back (nothing of it stored) when it raises."""

    @property
    def connection(self) -> Any:
        """What the steps after storage are handed to write in the same transaction (the SQL
        adapter's SQLAlchemy ``Connection``); the pipeline never looks into it."""
        ...

    def latest_fixes(self, device_ids: Iterable[str]) -> dict[str, tuple[float, float, float]]:
        """(ts, lat, lon) of each device's newest stored ping; devices with none are absent."""
        ...

    def live_fixes(self, device_ids: Iterable[str]) -> dict[str, tuple[float, float, float]]:
        """(ts, lat, lon) of the live positions these devices hold (a vehicle's newest stored
        ping, whichever worker stored it); a device not holding its vehicle's is absent."""
        ...

    def insert_pings(self, rows: Sequence[PingRow]) -> set[tuple[str, float]]:
        """Store ping rows (:data:`PING_COLUMNS` order), skipping a (device_id, ts) already
        stored; of two rows of the same key in ``rows`` one is stored. Returns the keys new."""
        ...

    def insert_scans(self, rows: Sequence[dict[str, Any]]) -> set[tuple[float, str]]:
        """Store one device's scans; returns the ``(ts, card_id)`` of those new."""
        ...

    def insert_rejects(self, rows: Sequence[dict[str, Any]]) -> None: ...

    def upsert_live_positions(self, rows: Iterable[dict[str, Any]]) -> None:
        """Move each vehicle's live position, only forward in the device's own time."""
        ...


class IngestStore(Protocol):
    def transaction(self) -> AbstractContextManager[StoreTransaction]: ...


class DeviceDirectory(Protocol):
    def get(self, device_id: str) -> DeviceInfo | None:
        """The device of this id, or None when no such device is registered."""
        ...


class TerminalDirectory(Protocol):
    def device_of(self, phone: str) -> TerminalInfo | None:
        """The JT/T 808 terminal registered with this phone (compared without leading zeros)."""
        ...


def normal_phone(phone: str) -> str:
    """A terminal's phone as directories compare it: a 2013 header pads to 12 digits, a 2019
    header to 20."""
    return phone.lstrip("0")
