"""The ingest pipeline of this application (one per process), and HTTP's use of it."""

from __future__ import annotations

import time
from collections.abc import Mapping

from flask import Flask, current_app

from backend.errors import ApiError
from backend.extensions import db
from backend.ingest.pipeline import IngestPipeline
from backend.ingest.steps import ingest_steps
from backend.metrics import count_results
from gps_ingest.filters import FilterConfig
from gps_ingest.pipeline import Message, MessageResult

__all__ = ["filter_config", "ingest_http", "ingest_steps", "pipeline", "result_body"]

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
                db.engine, filter_config(app), after_store=after_store, after_scans=after_scans,
                # members of a shared group get any device's messages: see its cached last fix
                shared_stream=bool(app.config.get("INGEST_SHARED_GROUP")),
            )
        app.extensions["xiaoche.pipeline"] = existing
    return existing


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
