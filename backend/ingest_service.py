"""The ingest pipeline of this application (one per process), and HTTP's use of it."""

from __future__ import annotations

import time
from collections.abc import Mapping

from flask import Flask, current_app

from backend.errors import ApiError
from backend.extensions import db
from backend.metrics import count_results
from gps_ingest.filters import FilterConfig
from gps_ingest.pipeline import AfterScans, AfterStore, IngestPipeline, Message, MessageResult

# Reasons for which a whole HTTP request is refused (4xx) rather than partly accepted (202).
_STATUS_FOR_WHOLE_MESSAGE = {
    "payload_too_large": 413,
    "unknown_device": 401,
    "osmand_disabled": 403,
    "device_mismatch": 403,
}


def filter_config(app: Flask) -> FilterConfig:
    accuracy = float(app.config["MAX_ACCURACY_M"])
    return FilterConfig(
        max_future_s=float(app.config["MAX_FUTURE_S"]),
        max_age_s=float(app.config["MAX_PING_AGE_S"]),
        max_accuracy_m=accuracy if accuracy > 0 else None,
    )


def pipeline(app: Flask | None = None) -> IngestPipeline:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    existing = app.extensions.get("xiaoche.pipeline")
    if existing is None:
        with app.app_context():
            after_store, after_scans = ingest_steps(app)
            existing = IngestPipeline(
                db.engine, filter_config(app), after_store=after_store, after_scans=after_scans
            )
        app.extensions["xiaoche.pipeline"] = existing
    return existing


def ingest_steps(app: Flask) -> tuple[list[AfterStore], list[AfterScans]]:
    """What runs after storage, in the batch's transaction: tracking, and after it the
    notification rules (on the batch's events and ETAs, and on its rider scans); JT/T 808
    terminal alarms as events."""
    from backend.alarm_service import AlarmStep
    from backend.notify_service import notification_steps
    from backend.tracking_service import TrackingStep, tracking_steps

    after_store: list[AfterStore] = list(tracking_steps(app))
    after_scans: list[AfterScans] = []
    notify = None
    for step in after_store:
        if isinstance(step, TrackingStep):
            notify, scans = notification_steps(step.contexts)
            step.batch_steps.append(notify)
            after_scans.append(scans)
            app.extensions["xiaoche.audience"] = notify.audience
    after_store.append(AlarmStep(notify))  # its staff are told through the same audience
    return after_store, after_scans


def ingest_http(
    kind: str, payload: bytes, device_id: str | None, params: Mapping[str, str] | None = None
) -> MessageResult:
    """Run one HTTP request through the pipeline; committed when this returns."""
    message = Message(
        payload=payload, received_at=time.time(), kind=kind, device_id=device_id, params=params
    )
    result = pipeline().process([message])[0]
    count_results("http", [result])
    whole = [r for r in result.rejected if r.index is None]
    if whole and result.accepted == 0 and result.duplicates == 0:
        status = _STATUS_FOR_WHOLE_MESSAGE.get(whole[0].reason, 400)
        raise ApiError(status, f"{whole[0].reason}: {whole[0].detail}", title="Rejected")
    return result


def result_body(result: MessageResult) -> dict:
    return {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": [
            {"index": r.index, "reason": r.reason, "detail": r.detail} for r in result.rejected
        ],
    }
