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
"""

from __future__ import annotations

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
from backend.ingest_service import filter_config
from backend.models import Device, District, Event, TrackerState, Vehicle
from gps_ingest.pipeline import PINGS, IngestPipeline, Message, MessageResult
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


@dataclass
class ReplayResult:
    trace: Path
    device_id: str
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

    @property
    def events_by_kind(self) -> Counter[str]:
        return Counter(e.kind for e in self.events)


def replay_trace(
    app: Flask, path: str | Path, device_id: str, skip_bad: bool = False, progress: bool = True
) -> ReplayResult:
    """Replay the trace at ``path`` as ``device_id``; committed batch by batch when it returns.

    Raises :class:`ReplayError` for a device that cannot replay (before anything is read) and
    :class:`~gps_ingest.traces.TraceError` for a bad line unless ``skip_bad`` (before anything
    is written).  ``progress`` shows a tqdm bar on stderr when it is a terminal.
    """
    path = Path(path)
    with app.app_context():
        result = _start(path, device_id)
        skipped: list[TraceError] | None = [] if skip_bad else None
        pings = sorted(read_trace(path, skipped), key=lambda p: p.ts)  # stable: file order on ties
        result.skipped = skipped or []
        result.pings_read = len(pings)
        if pings:
            result.first_ts, result.last_ts = pings[0].ts, pings[-1].ts
        before_id = db.session.scalar(select(func.max(Event.id))) or 0
        db.session.rollback()  # no transaction held open while the pipeline writes
        pipeline = _replay_pipeline(app)
        for results in _feed(pipeline, path, device_id, pings, progress):
            for r in results:
                result.stored += r.accepted
                result.duplicates += r.duplicates
                result.rejected.update(reject.reason for reject in r.rejected)
        result.events = _events_since(result.vehicle_id, before_id)
        db.session.rollback()
    return result


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
    last_ts = db.session.scalar(
        select(TrackerState.last_ts).where(TrackerState.vehicle_id == device.vehicle_id)
    )
    return ReplayResult(
        trace=path,
        device_id=device_id,
        vehicle_id=device.vehicle_id,
        timezone=timezone or DEFAULT_TIMEZONE,
        tracker_last_ts_before=last_ts,
    )


def _replay_pipeline(app: Flask) -> IngestPipeline:
    """The application's pipeline steps, with the age limit off (a trace is history)."""
    from backend.tracking_service import TrackingStep

    config = dataclasses.replace(filter_config(app), max_age_s=0.0)
    # A TrackingStep of its own rather than tracking_steps(app): that one also registers its
    # context cache on the app, which would orphan the cache of the app's live pipeline.
    return IngestPipeline(db.engine, config, after_store=[TrackingStep()])


def _feed(
    pipeline: IngestPipeline,
    path: Path,
    device_id: str,
    pings: Sequence[PingRecord],
    progress: bool,
) -> Iterator[list[MessageResult]]:
    from tqdm import tqdm

    per_batch = PINGS_PER_MESSAGE * MESSAGES_PER_BATCH
    topic = f"replay:{path.name}"
    # disable=None: a bar on a terminal, nothing in a pipe or a log file
    with tqdm(
        total=len(pings),
        unit="ping",
        desc=path.name,
        disable=None if progress else True,
        leave=False,
    ) as bar:
        for start in range(0, len(pings), per_batch):
            chunk = pings[start : start + per_batch]
            messages = [
                Message(
                    payload=_payload(chunk[i : i + PINGS_PER_MESSAGE]),
                    received_at=time.time(),
                    topic=topic,
                    kind=PINGS,
                    device_id=device_id,
                )
                for i in range(0, len(chunk), PINGS_PER_MESSAGE)
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


def _events_since(vehicle_id: str, before_id: int) -> list[ReplayedEvent]:
    rows = db.session.scalars(
        select(Event)
        .where(Event.vehicle_id == vehicle_id, Event.id > before_id)
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
        )
        for e in rows
    ]


# -- the report ----------------------------------------------------------------------------------


def report_lines(result: ReplayResult) -> list[str]:
    """What ``xiaoche replay`` prints: skipped lines, one line per event, a summary."""
    tz = ZoneInfo(result.timezone)
    lines: list[str] = []
    if result.skipped:
        lines.append(f"skipped {len(result.skipped)} bad line(s):")
        lines += [f"  {error}" for error in result.skipped[:SKIPPED_SHOWN]]
        if len(result.skipped) > SKIPPED_SHOWN:
            lines.append(f"  … and {len(result.skipped) - SKIPPED_SHOWN} more")
    lines += [format_event(e, tz) for e in result.events]
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
