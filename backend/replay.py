"""``xiaoche replay``: a recorded trace fed through the ingest pipeline, in event time (SPEC §2).

The trace (GPX, CSV, OwnTracks ``.rec`` / JSON lines, read by :func:`gps_ingest.traces.read_trace`)
is read whole first, so a bad line stops the replay before anything is written.  Its pings are
then sorted by their own ``ts`` and sent as native ``pings`` messages of the named device through
an :class:`~gps_ingest.pipeline.IngestPipeline` with the application's own steps (decode, CRS,
filters, store, tracking), so a replay stores and concludes exactly what live ingest would.

Two differences from live ingest, both because a trace is history:

- no age limit (``max_age_s=0``): the ``too_old`` filter would otherwise drop a trace older
  than ``XIAOCHE_MAX_PING_AGE_S``.  The future check stays: a "recorded" ping ahead of the
  server clock is a device clock error, and stored it would hold the vehicle's live state.
- rejects are kept with the topic ``replay:<file name>`` so ``/admin/rejects`` tells them apart.

The jump and duplicate filters still apply, and pings are unique per device and ``ts``: replaying
the same trace twice stores nothing the second time (every ping is reported as a duplicate).

A whole fleet's day (SPEC v1.1): a CSV trace with a ``device_id`` column replays every device of
the file without ``--device``, all of them together in event-time order, so what one bus
teaches the ETAs of the next is what it taught live (each batch's contexts are rebuilt with
today's observations up to its latest ping).  ``etas=True`` also records every ETA prediction,
one per ping and stop ahead (:class:`EtaLine`, ``xiaoche replay --etas``).
"""

from __future__ import annotations

import csv
import dataclasses
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from flask import Flask
from sqlalchemy import func, select

from backend.extensions import db
from backend.ingest.pipeline import IngestPipeline
from backend.ingest.service import filter_config
from backend.models import Device, District, Event, Vehicle
from backend.timefmt import iso
from backend.tracker_states import last_ping_ts
from gps_ingest.pipeline import PINGS, Message, MessageResult
from gps_ingest.records import PingRecord
from gps_ingest.traces import TraceError, read_trace

#: Pings per message: well under the protocol's 1000 per array, like a device's backlog upload.
PINGS_PER_MESSAGE = 200
#: Messages per :meth:`IngestPipeline.process` call, i.e. per transaction (1000 pings): large
#: enough to be quick, small enough that a long trace does not hold one huge transaction.
MESSAGES_PER_BATCH = 5
#: Bad lines listed by name after ``--skip-bad`` (the rest are only counted).
SKIPPED_SHOWN = 5
DEFAULT_TIMEZONE = "Asia/Shanghai"

_PING_FIELDS = (
    "ts",
    "lat",
    "lon",
    "speed_kmh",
    "heading_deg",
    "accuracy_m",
    "alt_m",
    "battery_pct",
    "seq",
)


class ReplayError(Exception):
    """The replay cannot start (unknown device, device without a vehicle); nothing was written."""


@dataclass(frozen=True)
class ReplayedEvent:
    """An event the replay produced, as stored in the ``events`` table."""

    id: int
    kind: str
    ts: float
    route_id: str | None
    trip_id: str | None
    run_id: str | None
    stop_id: str | None
    details: dict[str, Any]
    vehicle_id: str | None = None


@dataclass
class ReplayResult:
    trace: Path
    device_id: str  # the devices, comma-separated, for a fleet trace
    vehicle_id: str
    timezone: str
    pings_read: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    skipped: list[TraceError] = field(default_factory=list)
    events: list[ReplayedEvent] = field(default_factory=list)
    first_ts: float | None = None
    last_ts: float | None = None
    #: what the vehicle's tracker had processed before the replay (None: never tracked)
    tracker_last_ts_before: float | None = None
    #: every ETA prediction (``etas=True``), in event time
    etas: list[dict[str, Any]] = field(default_factory=list)
    #: device id -> vehicle id, for a fleet trace
    vehicles: dict[str, str] = field(default_factory=dict)

    @property
    def events_by_kind(self) -> Counter[str]:
        return Counter(e.kind for e in self.events)


def replay_trace(
    app: Flask,
    path: str | Path,
    device_id: str | None,
    skip_bad: bool = False,
    progress: bool = True,
    etas: bool = False,
) -> ReplayResult:
    """Replay the trace at ``path`` as ``device_id``; committed batch by batch when it returns.

    ``device_id`` ``None`` replays a fleet CSV (a ``device_id`` column) as its own devices.
    Raises :class:`ReplayError` for a device that cannot replay (before anything is read) and
    :class:`~gps_ingest.traces.TraceError` for a bad line unless ``skip_bad`` (before anything
    is written).  ``progress`` shows a tqdm bar on stderr when it is a terminal; ``etas``
    records every ETA prediction in ``result.etas``.
    """
    path = Path(path)
    with app.app_context():
        skipped: list[TraceError] | None = [] if skip_bad else None
        fleet = device_id is None
        if device_id is not None:
            result = _start(path, device_id)  # before the trace is read
            records = [(device_id, p) for p in read_trace(path, skipped)]
        else:
            if not is_fleet_csv(path):
                raise ReplayError(
                    f"{path.name} has no device_id column: name the device that recorded it "
                    f"(--device ID); nothing was written")
            records = read_fleet_csv(path, skipped)
            result = _start_fleet(path, sorted({d for d, _ in records}))
        # stable: file order on ties
        records.sort(key=lambda r: r[1].ts)
        result.skipped = skipped or []
        result.pings_read = len(records)
        if records:
            result.first_ts, result.last_ts = records[0][1].ts, records[-1][1].ts
        before_id = db.session.scalar(select(func.max(Event.id))) or 0
        db.session.rollback()  # no transaction held open while the pipeline writes
        recorder = EtaRecorder() if etas else None
        pipeline = _replay_pipeline(app, recorder, fresh_contexts=fleet or etas)
        for results in _feed(pipeline, path, records, progress):
            for r in results:
                result.stored += r.accepted
                result.duplicates += r.duplicates
                result.rejected.update(reject.reason for reject in r.rejected)
        vehicles = list(result.vehicles.values()) or [result.vehicle_id]
        result.events = _events_since(vehicles, before_id)
        if recorder is not None:
            result.etas = recorder.lines
        db.session.rollback()
    return result


def is_fleet_csv(path: Path) -> bool:
    """Whether ``path`` is a CSV trace whose header names a ``device_id`` column."""
    if path.suffix.lower() != ".csv":
        return False
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.reader(handle):
            cells = [c.strip().lower() for c in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            return "device_id" in cells
    return False


def read_fleet_csv(path: Path, skipped: list[TraceError] | None = None
                   ) -> list[tuple[str, PingRecord]]:
    """``(device_id, ping)`` of every line of a fleet CSV (``device_id,ts,lat,lon[,…]``), each
    line read and validated as :func:`~gps_ingest.traces.read_trace` reads a single device's."""
    from gps_ingest.traces import _csv_row, _header, csv_lines  # the single-device reader's

    out: list[tuple[str, PingRecord]] = []
    columns: tuple[str, ...] | None = None
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for number, cells in csv_lines(handle):
            if columns is None:
                try:
                    columns = _header(cells)
                except ValueError as exc:
                    raise TraceError(str(path), number, str(exc)) from None
                assert columns is not None  # is_fleet_csv saw a header
                where = columns.index("device_id")
                continue
            try:
                device = cells[where] if where < len(cells) else ""
                if not device:
                    raise ValueError("device_id is empty")
                out.append((device, _csv_row(columns, cells)))
            except ValueError as exc:
                error = TraceError(str(path), number, str(exc))
                if skipped is None:
                    raise error from None
                skipped.append(error)
    return out


def _start(path: Path, device_id: str) -> ReplayResult:
    device = db.session.get(Device, device_id)
    if device is None:
        raise ReplayError(
            f"no device {device_id!r} is registered (import it with its vehicle "
            f"first); nothing was written"
        )
    if device.vehicle_id is None:
        raise ReplayError(f"device {device_id!r} is not assigned to a vehicle; nothing was written")
    district_id = db.session.scalar(
        select(Vehicle.district_id).where(Vehicle.id == device.vehicle_id)
    )
    timezone = db.session.scalar(select(District.timezone).where(District.id == district_id))
    last_ts = last_ping_ts(db.session.connection(), device.vehicle_id)
    return ReplayResult(
        trace=path,
        device_id=device_id,
        vehicle_id=device.vehicle_id,
        timezone=timezone or DEFAULT_TIMEZONE,
        tracker_last_ts_before=last_ts,
    )


def _start_fleet(path: Path, device_ids: list[str]) -> ReplayResult:
    """The result of a fleet trace: every device registered with a vehicle, or nothing runs."""
    devices = {d.id: d for d in db.session.scalars(select(Device).where(Device.id.in_(device_ids)))}
    unknown = [d for d in device_ids if d not in devices]
    if unknown:
        raise ReplayError(f"no device {', '.join(map(repr, unknown))} is registered (import them "
                          f"with their vehicles first); nothing was written")
    loose = [d for d in device_ids if devices[d].vehicle_id is None]
    if loose:
        raise ReplayError(f"device {', '.join(map(repr, loose))} is not assigned to a vehicle; "
                          f"nothing was written")
    vehicles = {d: devices[d].vehicle_id for d in device_ids}
    district_id = db.session.scalar(
        select(Vehicle.district_id).where(Vehicle.id == vehicles[device_ids[0]])
    ) if device_ids else None
    timezone = db.session.scalar(select(District.timezone).where(District.id == district_id))
    return ReplayResult(trace=path, device_id=",".join(device_ids),
                        vehicle_id=",".join(sorted(set(vehicles.values()))),
                        timezone=timezone or DEFAULT_TIMEZONE, vehicles=vehicles)


class EtaRecorder:
    """A tracking batch step keeping every ETA prediction of every ping (all routes), as the
    JSON lines of ``xiaoche replay --etas``: ``as_of``, ``trip_id``, ``run_id``,
    ``vehicle_id``, ``stop_id``, ``eta``, ``uncertainty_s`` (times ISO-8601 UTC)."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def eta_routes(self, conn) -> None:
        return None  # every route

    def __call__(self, conn, events, tracked, etas=None) -> None:
        batch = []
        for per_ping in (etas or {}).values():
            for e in per_ping:
                for stop_id, eta, unc in zip(e.stop_ids, e.etas, e.uncertainties, strict=True):
                    if eta is None:
                        continue
                    batch.append((e.as_of, {
                        "as_of": iso(e.as_of), "trip_id": e.trip_id, "run_id": e.run_id,
                        "vehicle_id": e.vehicle_id, "stop_id": stop_id,
                        "eta": iso(round(eta, 1)), "uncertainty_s": unc}))
        batch.sort(key=lambda item: item[0])  # stable: a ping's stops in route order
        self.lines.extend(line for _, line in batch)


def _replay_pipeline(app: Flask, recorder: EtaRecorder | None = None,
                     fresh_contexts: bool = False) -> IngestPipeline:
    """The application's pipeline steps, with the age limit off (a trace is history).

    ``fresh_contexts``: every batch rebuilds its vehicles' contexts, with today's stretch
    observations up to its latest ping (live, contexts last a minute of wall-clock time; a
    replayed minute is hours of event time)."""
    from backend.ingest.steps import tracking_step
    from backend.tracking_service import ContextCache

    config = dataclasses.replace(filter_config(app), max_age_s=0.0)
    # A TrackingStep of its own rather than ingest_steps(app): that one also registers its
    # context cache on the app, which would orphan the cache of the app's live pipeline.
    step = tracking_step(contexts=ContextCache(ttl_s=0.0) if fresh_contexts else None,
                         batch_steps=[recorder] if recorder is not None else ())
    return IngestPipeline(db.engine, config, after_store=[step])


def _feed(
    pipeline: IngestPipeline,
    path: Path,
    records: Sequence[tuple[str, PingRecord]],
    progress: bool,
) -> Iterator[list[MessageResult]]:
    """The records in event-time order, ``PINGS_PER_MESSAGE * MESSAGES_PER_BATCH`` per
    transaction, each device's pings of a batch as its own messages."""
    from tqdm import tqdm

    per_batch = PINGS_PER_MESSAGE * MESSAGES_PER_BATCH
    topic = f"replay:{path.name}"
    # disable=None: a bar on a terminal, nothing in a pipe or a log file
    with tqdm(
        total=len(records),
        unit="ping",
        desc=path.name,
        disable=None if progress else True,
        leave=False,
    ) as bar:
        for start in range(0, len(records), per_batch):
            chunk = records[start : start + per_batch]
            by_device: dict[str, list[PingRecord]] = {}
            for device_id, ping in chunk:
                by_device.setdefault(device_id, []).append(ping)
            messages = [
                Message(
                    payload=_payload(pings[i : i + PINGS_PER_MESSAGE]),
                    received_at=time.time(),
                    topic=topic,
                    kind=PINGS,
                    device_id=device_id,
                )
                for device_id, pings in by_device.items()
                for i in range(0, len(pings), PINGS_PER_MESSAGE)
            ]
            yield pipeline.process(messages)
            bar.update(len(chunk))


def _payload(pings: Sequence[PingRecord]) -> bytes:
    """A native ``pings`` array (SPEC §4) of these records, omitting absent fields."""
    return orjson.dumps(
        [
            {name: getattr(p, name) for name in _PING_FIELDS if getattr(p, name) is not None}
            for p in pings
        ]
    )


def _events_since(vehicle_ids: list[str], before_id: int) -> list[ReplayedEvent]:
    rows = db.session.scalars(
        select(Event)
        .where(Event.vehicle_id.in_(vehicle_ids), Event.id > before_id)
        .order_by(Event.ts, Event.id)
    ).all()
    return [
        ReplayedEvent(
            id=e.id,
            kind=e.kind,
            ts=e.ts,
            route_id=e.route_id,
            trip_id=e.trip_id,
            run_id=e.run_id,
            stop_id=e.stop_id,
            details=dict(e.details or {}),
            vehicle_id=e.vehicle_id,
        )
        for e in rows
    ]


# -- the report ----------------------------------------------------------------------------------


def eta_lines(result: ReplayResult) -> list[str]:
    """``xiaoche replay --etas``: every prediction as a JSON line, in event time."""
    return [orjson.dumps(line).decode() for line in result.etas]


def report_lines(result: ReplayResult) -> list[str]:
    """What ``xiaoche replay`` prints: skipped lines, one line per event, a summary."""
    tz = ZoneInfo(result.timezone)
    lines: list[str] = []
    if result.skipped:
        lines.append(f"skipped {len(result.skipped)} bad line(s):")
        lines += [f"  {error}" for error in result.skipped[:SKIPPED_SHOWN]]
        if len(result.skipped) > SKIPPED_SHOWN:
            lines.append(f"  … and {len(result.skipped) - SKIPPED_SHOWN} more")
    fleet = bool(result.vehicles)
    lines += [format_event(e, tz) + (f"  vehicle={e.vehicle_id}" if fleet else "")
              for e in result.events]
    lines.append(summary_line(result))
    stale = result.tracker_last_ts_before
    if (
        result.stored
        and not result.events
        and stale is not None
        and result.first_ts is not None
        and result.first_ts <= stale
    ):
        lines.append(
            f"note: the tracker of {result.vehicle_id} had already processed pings up to "
            f"{_local(stale, tz)}; older pings are stored but do not move its trips "
            f"(`xiaoche audit --date` recomputes a day from the stored pings)"
        )
    return lines


def format_event(event: ReplayedEvent, tz: ZoneInfo) -> str:
    """``2026-11-09 06:52:30 CST  stop_arrived  zt-am-1  shitang-cun  scheduled_at=06:58:00 …``

    Times in ``details`` (keys ending in ``_at``) are shown as local clock times too.
    """
    details = " ".join(f"{key}={_compact(key, value, tz)}" for key, value in event.details.items())
    return (
        f"{_local(event.ts, tz)}  {event.kind:<24} {event.route_id or '-':<12} "
        f"{event.stop_id or '-':<14} {details}"
    ).rstrip()


def summary_line(result: ReplayResult) -> str:
    rejected = sum(result.rejected.values())
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(result.rejected.items()))
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(result.events_by_kind.items()))
    return (
        f"{result.device_id} ({result.vehicle_id}): pings read {result.pings_read}, "
        f"stored {result.stored}, duplicates {result.duplicates}, rejected {rejected}"
        f"{f' ({reasons})' if reasons else ''}; "
        f"events {len(result.events)}{f' ({kinds})' if kinds else ''}"
    )


def _local(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz=tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def _compact(key: str, value: Any, tz: ZoneInfo) -> str:
    if key.endswith("_at") and isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=tz).strftime("%H:%M:%S")  # epoch → local clock
    if isinstance(value, float):
        return f"{value:.1f}".removesuffix(".0")
    if isinstance(value, list | tuple) and len(value) > 4:
        return f"[{len(value)} values]"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
