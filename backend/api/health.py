"""GET /healthz: is the database up, and (where this process ingests) the broker connection."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from backend.extensions import db

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz():
    down: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure here means "database down", with its reason
        down["database"] = type(exc).__name__
    finally:
        db.session.rollback()
    ingest = current_app.extensions.get("xiaoche.ingest")
    if ingest is not None and not ingest.connected:
        down["broker"] = "not connected"
    if down:
        return jsonify({"status": "unavailable", "down": down}), 503
    return jsonify({"status": "ok"})
