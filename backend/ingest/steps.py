"""The one list of what happens to a batch after storage, in its transaction, in this order:

    pings:  track (→ book subsidies, → notify) → terminal alarms (→ notify)
    scans:  rider events (→ notify)

Built here and nowhere else, and handed to the pipeline by its constructor: no step appends to
another's list. ``notify`` is one :class:`~backend.notify_service.NotifyStep` shared by the three
(one audience cache per process).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flask import Flask

from backend.alarm_service import AlarmStep
from backend.notify_service import notification_steps
from backend.subsidy_service import book_trips
from backend.tracking_service import BatchStep, ContextCache, EventStep, TrackingStep
from gps_ingest.pipeline import AfterScans, AfterStore


def event_steps() -> list[EventStep]:
    """What tracking hands the events it produced to, in the same transaction: the subsidy ledger
    books completed teacher trips."""
    return [book_trips]


def tracking_step(contexts: ContextCache | None = None,
                  batch_steps: Sequence[BatchStep] = ()) -> TrackingStep:
    """Tracking as the ingest runs it (subsidies booked from its events), with ``batch_steps``."""
    return TrackingStep(contexts=contexts, event_steps=event_steps(), batch_steps=batch_steps)


@dataclass(frozen=True)
class Steps:
    after_store: list[AfterStore]
    after_scans: list[AfterScans]
    contexts: ContextCache  # the routes' contexts tracking caches (the live view reads them too)


def ingest_steps(app: Flask | None = None) -> tuple[list[AfterStore], list[AfterScans]]:
    """The steps after storage of the application's pipeline; with ``app``, its context cache is
    the one the live view reads (``app.extensions["xiaoche.contexts"]``)."""
    steps = build_steps()
    if app is not None:
        app.extensions["xiaoche.contexts"] = steps.contexts
    return steps.after_store, steps.after_scans


def build_steps() -> Steps:
    contexts = ContextCache()
    notify, scans = notification_steps(contexts)
    track = tracking_step(contexts, batch_steps=[notify])
    return Steps(after_store=[track, AlarmStep(notify)], after_scans=[scans], contexts=contexts)
