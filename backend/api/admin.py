"""Admin endpoints: import a district bundle."""

from __future__ import annotations

from flask import request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select

from backend.api.common import decode_cursor, encode_cursor
from backend.auth import require_role
from backend.bundle import BundleError, import_bundle
from backend.errors import ApiError
from backend.extensions import db
from backend.models import Reject
from backend.timefmt import EventTime, iso

blp = Blueprint("admin", __name__, description="District administration")


@blp.post("/import")
@blp.doc(
    security=[{"bearer": []}],
    requestBody={"content": {"application/json": {"schema": {"type": "object"}}}},
)
@blp.response(200)
@require_role("admin")
def import_district_bundle():
    document = request.get_json(silent=True)
    if document is None:
        raise ApiError(400, "the body must be a JSON district bundle (SPEC §3)")
    try:
        summary = import_bundle(document)
    except BundleError as exc:
        raise ApiError(
            422, "; ".join(exc.lines()), title="Invalid bundle", errors=exc.errors
        ) from exc
    return summary.as_dict()


class RejectsQuery(Schema):
    device_id = fields.String(load_default=None)
    reason = fields.String(load_default=None)
    since = EventTime(load_default=None)
    cursor = fields.String(load_default=None)
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))


@blp.get("/rejects")
@blp.arguments(RejectsQuery, location="query")
@blp.doc(
    security=[{"bearer": []}],
    description="Input that was not stored as a position, newest first, with its reason; "
    "`counts` gives the number per reason for the same filters.",
)
@blp.response(200)
@require_role("admin")
def list_rejects(query):
    filters = []
    if query["device_id"]:
        filters.append(Reject.device_id == query["device_id"])
    if query["reason"]:
        filters.append(Reject.reason == query["reason"])
    if query["since"] is not None:
        filters.append(Reject.received_at >= query["since"])
    cursor = decode_cursor(query["cursor"])
    page = select(Reject).where(*filters)
    if cursor is not None:
        page = page.where(Reject.id < int(cursor.get("before", 0)))
    rows = db.session.scalars(page.order_by(Reject.id.desc()).limit(query["limit"] + 1)).all()
    more = len(rows) > query["limit"]
    rows = rows[: query["limit"]]
    counts = dict(
        db.session.execute(
            select(Reject.reason, func.count()).where(*filters).group_by(Reject.reason)
        ).all()
    )
    return {
        "items": [
            {
                "id": r.id,
                "received_at": iso(r.received_at),
                "device_id": r.device_id,
                "topic": r.topic,
                "reason": r.reason,
                "detail": r.detail,
                "index": r.item_index,
                "payload_head": r.payload_head,
            }
            for r in rows
        ],
        "counts": counts,
        "next_cursor": encode_cursor({"before": rows[-1].id}) if more else None,
    }
