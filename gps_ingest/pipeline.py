"""The ingest pipeline: the order of its steps is written here and nowhere else.

    route → authenticate → decode → convert CRS → filter → store (+ track) → commit

One call to :meth:`IngestPipeline.process` is one database transaction for a whole batch of
messages (MQTT) or for one request (HTTP).  The caller acknowledges the messages only after it
returns: once a device has its ack, the ping is in the database (SPEC §4, DESIGN decision 2).
A message that cannot be accepted is stored as a reject with its reason; one bad message never
costs the others of the batch.

The database and the devices are ports (``gps_ingest/ports.py``), handed in: the SQL adapters
and the one list of steps after storage are built in ``backend/ingest``. docs/ping-path.md
follows one ping through it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from gps_ingest import decoders
from gps_ingest.filters import FilterConfig, Fix, apply_filters
from gps_ingest.jt808.positions import decode_frame_hex
from gps_ingest.ports import (
    DeviceDirectory,
    DeviceInfo,
    IngestStore,
    StorageRefused,
    StoreTransaction,
)
from gps_ingest.records import (
    MISSING_FIELD,
    UNKNOWN_TERMINAL,
    Decoded,
    PingRecord,
    Reject,
    ScanRecord,
)
from routing.gcj02 import gcj02_to_wgs84
from routing.newest import newest_per_key

log = logging.getLogger(__name__)

PAYLOAD_HEAD_BYTES = 1024

# Whole-message reasons decided here (per-field reasons come from gps_ingest.records/decoders).
UNKNOWN_TOPIC = "unknown_topic"
UNKNOWN_DEVICE = "unknown_device"
DEVICE_MISMATCH = "device_mismatch"
OSMAND_DISABLED = "osmand_disabled"
NO_VEHICLE = "no_vehicle"
UNSTORABLE = "unstorable"  # the database refused what the decoders let through

# Message kinds
PINGS, SCANS, OWNTRACKS, OSMAND_QUERY, OSMAND_JSON, JT808 = (
    "pings", "scans", "owntracks", "osmand_query", "osmand_json", "jt808")


@dataclass
class Message:
    """One payload entering the pipeline, from MQTT (topic), HTTP (authenticated device) or the
    JT/T 808 gateway (kind ``jt808``: the hex of a frame's escaped content, the device the
    connection authenticated as — None when it did not, and ``params["refused"]`` / ``["detail"]``
    say why)."""

    payload: bytes
    received_at: float
    topic: str | None = None
    kind: str | None = None  # set by HTTP; MQTT derives it from the topic
    device_id: str | None = None  # set by HTTP after token authentication
    params: Mapping[str, str] | None = None  # OsmAnd query/form fields


@dataclass
class MessageResult:
    accepted: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: list[Reject] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StoredPing:
    """A ping newly stored in this batch, handed to the steps after storage (tracking)."""

    vehicle_id: str
    vehicle_kind: str | None
    ping: PingRecord


@dataclass(frozen=True, slots=True)
class StoredScan:
    """A rider scan newly stored in this batch (its vehicle is ``None`` for a device that has
    none), handed to the scan steps after the ping steps (rider events)."""

    vehicle_id: str | None
    scan: ScanRecord


# The steps after storage get the transaction's connection (StoreTransaction.connection) and what
# the batch newly stored; they write in the same transaction.
AfterStore = Callable[[Any, list[StoredPing]], None]
AfterScans = Callable[[Any, list[StoredScan]], None]


@dataclass
class _Work:
    message: Message
    result: MessageResult
    device: DeviceInfo | None = None
    decoded: Decoded | None = None


class IngestPipeline:
    def __init__(self, store: IngestStore, registry: DeviceDirectory,
                 filter_config: FilterConfig | None = None, clock: Callable[[], float] = time.time,
                 after_store: Sequence[AfterStore] = (), after_scans: Sequence[AfterScans] = (),
                 shared_stream: bool = False):
        self.store = store
        self.filter_config = filter_config or FilterConfig()
        self.registry = registry
        self.clock = clock
        self.after_store = list(after_store)
        self.after_scans = list(after_scans)
        self._last_fix: dict[str, Fix] = {}
        # Several workers on one shared subscription: a device's messages come to any of them, so
        # the last fix this one cached may be older than what another stored since. Each batch
        # then reads its devices' live positions (one small query) and takes a newer one.
        self.shared_stream = shared_stream
        self.counters: dict[str, int] = {}

    # -- the order of the steps -----------------------------------------------------------------

    def process(self, messages: Sequence[Message]) -> list[MessageResult]:
        """Run a batch in one transaction; committed when this returns.

        A message whose content the database refuses (a value that slipped past the decoders)
        must not hold the batch back forever, which is what an MQTT redelivery loop would do:
        the batch is retried message by message and the one that still fails is kept as an
        ``unstorable`` reject. A database that is down raises: nothing is acked, all is resent.
        """
        try:
            return self._process(messages)
        except StorageRefused as exc:
            if len(messages) > 1:
                log.warning("a batch of %d failed (%s); retrying message by message",
                            len(messages), exc.kind)
                return [r for m in messages for r in self.process([m])]
            log.error("message on %s refused by the database: %s", messages[0].topic, exc.detail)
            return [self._unstorable(messages[0], exc)]

    def _unstorable(self, message: Message, exc: StorageRefused) -> MessageResult:
        w = _Work(message, MessageResult())
        detail = f"the database refused it: {exc.detail}"
        w.result.rejected.append(Reject(reason=UNSTORABLE, index=None, detail=detail))
        with self.store.transaction() as tx:
            tx.insert_rejects(_reject_rows(w))
        self.counters[UNSTORABLE] = self.counters.get(UNSTORABLE, 0) + 1
        return w.result

    def _process(self, messages: Sequence[Message]) -> list[MessageResult]:
        work = [_Work(m, MessageResult()) for m in messages]
        for w in work:
            if self._route(w) and self._authenticate(w) and self._decode(w):
                self._convert_crs(w)
        with self.store.transaction() as tx:
            accepted = self._filter(tx, work)
            stored, scans = self._store(tx, work, accepted)
            for step in self.after_store:
                step(tx.connection, stored)
            if scans:
                for scan_step in self.after_scans:
                    scan_step(tx.connection, scans)
        self._remember_fixes(stored)
        return [w.result for w in work]

    # -- steps --------------------------------------------------------------------------------

    def _route(self, w: _Work) -> bool:
        m = w.message
        if m.kind is None:
            parsed = decoders.parse_topic(m.topic or "")
            if parsed is None:
                return self._reject_message(w, UNKNOWN_TOPIC, f"topic {m.topic!r} is not ours")
            m.kind, m.device_id = parsed
        return True

    def _authenticate(self, w: _Work) -> bool:
        m = w.message
        device_id = m.device_id or ""
        if m.kind == OSMAND_QUERY or m.kind == OSMAND_JSON:
            named, w.decoded = (decoders.decode_osmand_query(m.params or {})
                                if m.kind == OSMAND_QUERY else decoders.decode_osmand_json(m.payload))
            # OsmAnd clients (Traccar Client) send no token: the id in the request is the device,
            # which is why only devices registered with "osmand": true are accepted this way.
            if m.device_id is None:
                if not named:
                    return self._osmand_without_id(w)
                m.device_id = device_id = named
            elif named is not None and named != device_id:
                return self._reject_message(
                    w, DEVICE_MISMATCH, f"the request names device {named!r}, the token is {device_id!r}")
        elif m.kind == JT808 and not self._decode_jt808(w):
            return False
        w.device = self.registry.get(device_id)
        if w.device is None:
            return self._reject_message(w, UNKNOWN_DEVICE, f"no device {device_id!r} is registered")
        if m.kind in (OSMAND_QUERY, OSMAND_JSON) and not w.device.osmand:
            return self._reject_message(w, OSMAND_DISABLED,
                                        f"device {device_id!r} is not set up for OsmAnd")
        if w.device.vehicle_id is None and m.kind != SCANS:
            return self._reject_message(w, NO_VEHICLE,
                                        f"device {device_id!r} is not assigned to a vehicle")
        return True

    def _decode_jt808(self, w: _Work) -> bool:
        """A JT/T 808 frame names its terminal (the phone in its header), as OsmAnd does: it is
        decoded here. A frame that cannot be read is refused for what is wrong with it; a
        readable one from a connection that did not authenticate, for that."""
        m = w.message
        params = m.params or {}
        phone, w.decoded = decode_frame_hex(m.device_id or "", m.payload,
                                            params.get("accept_bad_check") == "1")
        whole = [r for r in w.decoded.rejects if r.index is None]
        if whole and not w.decoded.pings:
            return self._reject_message(w, whole[0].reason, whole[0].detail)
        if m.device_id is None:
            reason = params.get("refused", UNKNOWN_TERMINAL)
            detail = params.get("detail") or f"no device has jt808_phone {phone!r}"
            return self._reject_message(w, reason, detail)
        return True

    def _osmand_without_id(self, w: _Work) -> bool:
        """An OsmAnd request that names no device: what is wrong with it, as a 400 — not an
        unknown device ''."""
        whole = [r for r in w.decoded.rejects if r.index is None]  # type: ignore[union-attr]
        if whole and whole[0].reason != MISSING_FIELD:  # not JSON, not an object, empty body
            return self._reject_message(w, whole[0].reason, whole[0].detail)
        field = "device_id" if w.message.kind == OSMAND_JSON else "id (or deviceid)"
        return self._reject_message(w, MISSING_FIELD, f"{field} is required: the device's id")

    def _decode(self, w: _Work) -> bool:
        m = w.message
        device_id = w.device.device_id  # type: ignore[union-attr]
        if m.kind == PINGS:
            w.decoded = decoders.decode_native_pings(device_id, m.payload)
        elif m.kind == OWNTRACKS:
            w.decoded = decoders.decode_owntracks(device_id, m.payload)
        elif m.kind == SCANS:
            w.decoded = decoders.decode_scans(device_id, m.payload)
        # OsmAnd was decoded while authenticating (the device id is inside the payload)
        if w.decoded is not None and w.decoded.pings and m.kind in (OSMAND_QUERY, OSMAND_JSON):
            w.decoded.pings = [dataclasses.replace(p, device_id=device_id)
                               for p in w.decoded.pings]
        w.result.ignored += w.decoded.ignored if w.decoded else 0
        w.result.rejected.extend(w.decoded.rejects if w.decoded else [])
        return w.decoded is not None

    def _convert_crs(self, w: _Work) -> None:
        if w.device is None or w.device.crs != "gcj02" or w.decoded is None:
            return
        converted = []
        for p in w.decoded.pings:
            lat, lon = gcj02_to_wgs84(p.lat, p.lon)
            converted.append(dataclasses.replace(p, lat=lat, lon=lon))
        w.decoded.pings = converted
        scans = []  # a scan's position (optional) is stored in WGS-84 as a ping's is
        for s in w.decoded.scans:
            if s.lat is not None and s.lon is not None:
                lat, lon = gcj02_to_wgs84(s.lat, s.lon)
                s = dataclasses.replace(s, lat=lat, lon=lon)
            scans.append(s)
        w.decoded.scans = scans

    def _filter(self, tx: StoreTransaction, work: list[_Work]) -> list[tuple[_Work, PingRecord]]:
        candidates: list[tuple[_Work, PingRecord]] = [
            (w, p) for w in work if w.decoded is not None and w.device is not None
            for p in w.decoded.pings]
        if not candidates:
            return []
        pings = [p for _, p in candidates]
        devices = {p.device_id for p in pings}
        known = self._last_fix
        if self.shared_stream:
            for device_id, (ts, lat, lon) in tx.live_fixes(devices).items():
                cached = known.get(device_id)
                if cached is None or cached.ts < ts:
                    known[device_id] = Fix(ts, lat, lon)
        missing = [d for d in devices if d not in known]
        if missing:
            for device_id, (ts, lat, lon) in tx.latest_fixes(missing).items():
                known[device_id] = Fix(ts, lat, lon)
        last = {d: known[d] for d in devices if d in known}
        kept, rejects = apply_filters(pings, last, self.clock(), self.filter_config)
        if not rejects:  # the usual batch: every ping kept, in order
            return candidates
        for index, reject in rejects:
            candidates[index][0].result.rejected.append(reject)
        refused = {index for index, _ in rejects}
        return [c for index, c in enumerate(candidates) if index not in refused]

    def _store(self, tx: StoreTransaction, work: list[_Work],
               accepted: list[tuple[_Work, PingRecord]]) -> tuple[list[StoredPing], list[StoredScan]]:
        # one tuple per ping in ports.PING_COLUMNS order: no dict per ping (bench/ingest.py)
        rows = [(p.device_id, w.device.vehicle_id, p.ts, p.lat, p.lon,  # type: ignore[union-attr]
                 p.speed_kmh, p.heading_deg, p.accuracy_m, p.alt_m, p.battery_pct, p.seq,
                 w.message.received_at) for w, p in accepted]
        new_keys = tx.insert_pings(rows)
        stored: list[StoredPing] = []
        all_new = len(new_keys) == len(rows)  # the usual batch: no key to look up
        for w, p in accepted:
            if not all_new:
                key = (p.device_id, p.ts)
                if key not in new_keys:
                    w.result.duplicates += 1
                    continue
                new_keys.discard(key)  # a twin inside the batch is a duplicate
            w.result.accepted += 1
            stored.append(StoredPing(w.device.vehicle_id, w.device.vehicle_kind, p))  # type: ignore[union-attr,arg-type]
        scans = self._store_scans(tx, work)
        tx.insert_rejects([row for w in work for row in _reject_rows(w)])
        tx.upsert_live_positions(_newest_per_vehicle(stored, received_at=self.clock()))
        for w in work:
            for r in w.result.rejected:
                self.counters[r.reason] = self.counters.get(r.reason, 0) + 1
        return stored, scans

    def _store_scans(self, tx: StoreTransaction, work: list[_Work]) -> list[StoredScan]:
        stored: list[StoredScan] = []
        for w in work:
            if w.decoded is None or not w.decoded.scans:
                continue
            rows = [_scan_row(s, w.device, w.message.received_at) for s in w.decoded.scans]  # type: ignore[arg-type]
            new = tx.insert_scans(rows)
            w.result.accepted += len(new)
            w.result.duplicates += len(rows) - len(new)
            stored.extend(StoredScan(w.device.vehicle_id, s) for s in w.decoded.scans  # type: ignore[union-attr]
                          if (s.ts, s.card_id) in new)
        return stored

    def _remember_fixes(self, stored: list[StoredPing]) -> None:
        newest = newest_per_key((s.ping for s in stored), key=_DEVICE)  # then one Fix each
        for device_id, p in newest.items():
            known = self._last_fix.get(device_id)
            if known is None or p.ts > known.ts:
                self._last_fix[device_id] = Fix(p.ts, p.lat, p.lon)

    def _reject_message(self, w: _Work, reason: str, detail: str) -> bool:
        w.result.rejected.append(Reject(reason=reason, index=None, detail=detail))
        w.decoded = None
        return False


def _scan_row(s: ScanRecord, device: DeviceInfo, received_at: float) -> dict[str, Any]:
    return {"device_id": s.device_id, "vehicle_id": device.vehicle_id, "ts": s.ts,
            "card_id": s.card_id, "action": s.action, "lat": s.lat, "lon": s.lon,
            "received_at": received_at}


def _reject_rows(w: _Work) -> list[dict[str, Any]]:
    if not w.result.rejected:
        return []
    head = _text(w.message.payload[:PAYLOAD_HEAD_BYTES].decode("utf-8", errors="replace"))
    device_id = w.message.device_id
    return [{"received_at": w.message.received_at,
             "device_id": (device_id or None) and _text(device_id[:200]),
             "topic": _text((w.message.topic or f"http:{w.message.kind}")[:500]),
             "reason": r.reason, "detail": _text(r.detail[:2000]), "item_index": r.index,
             "ts": r.ts, "payload_head": head}
            for r in w.result.rejected]


def _text(value: str) -> str:
    """What a bad payload brings along is kept as text PostgreSQL can store: no NUL (U+FFFD)."""
    return value.replace("\x00", "\ufffd")


def _newest_per_vehicle(stored: list[StoredPing], received_at: float) -> list[dict[str, Any]]:
    newest = newest_per_key(stored, key=_VEHICLE, ts=_PING_TS)
    return [{"vehicle_id": v, "device_id": s.ping.device_id, "ts": s.ping.ts, "lat": s.ping.lat,
             "lon": s.ping.lon, "speed_kmh": s.ping.speed_kmh, "heading_deg": s.ping.heading_deg,
             "received_at": received_at}
            for v, s in newest.items()]


_DEVICE = attrgetter("device_id")
_VEHICLE = attrgetter("vehicle_id")
_PING_TS = attrgetter("ping.ts")
