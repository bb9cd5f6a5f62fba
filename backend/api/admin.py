"""Admin endpoints: import a district bundle."""

from __future__ import annotations

from flask import request
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select

from backend.api.common import BEARER, Blueprint, decode_cursor, encode_cursor
from backend.auth import require_role
from backend.bundle import BundleError, import_bundle
from backend.errors import ApiError
from backend.extensions import db
from backend.live_service import clear_caches
from backend.models import Reject
from backend.timefmt import EventTime, iso

blp = Blueprint("admin", __name__, description="District administration")


class ImportSummarySchema(Schema):
    created = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                          metadata={"description": "how many of each kind (`stops`, …)"})
    updated = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    unchanged = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    deleted = fields.Dict(
        keys=fields.String(), values=fields.Integer(), required=True,
        metadata={"description": "what the import owns and the bundle no longer lists: a "
                                 "listed route's runs and stops, calendar days, assignments, "
                                 "links"})
    deactivated = fields.Dict(
        keys=fields.String(), values=fields.Integer(), required=True,
        metadata={"description": "subsidy policies no longer the bundle's (kept, inactive)"})
    kept = fields.Dict(
        keys=fields.String(), values=fields.Integer(), required=True,
        metadata={"description": "left alone because an import does not own them: a listed "
                                 "route's runs made by the demo or for a substitute bus"})
    kept_sources = fields.Dict(
        keys=fields.String(), values=fields.Dict(keys=fields.String(), values=fields.Integer()),
        required=True, metadata={"description": "`kept` by source: {kind: {source: n}}"})


@blp.post("/import")
@blp.doc(
    security=BEARER,
    requestBody={"content": {"application/json": {"schema": {"type": "object"}}}},
)
@blp.response(200, ImportSummarySchema)
@blp.problems(400, 401, 403, 422)
@require_role("admin")
def import_district_bundle():
    document = request.get_json(silent=True)
    if document is None:
        raise ApiError(400, "the body must be a JSON district bundle (SPEC §3)")
    try:
        summary = import_bundle(document)
        clear_caches()  # this process sees the new district at once (others within a minute)
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


class RejectSchema(Schema):
    id = fields.Integer(required=True)
    received_at = fields.String(required=True)
    device_id = fields.String(allow_none=True, required=True)
    topic = fields.String(allow_none=True, required=True)
    reason = fields.String(required=True)
    detail = fields.String(required=True)
    index = fields.Integer(allow_none=True, required=True,
                           metadata={"description": "the item's index in a batch"})
    payload_head = fields.String(required=True, metadata={"description": "first 1 KB, as text"})


class RejectsPageSchema(Schema):
    items = fields.List(fields.Nested(RejectSchema), required=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                         metadata={"description": "reason → number of rejects"})
    next_cursor = fields.String(allow_none=True, required=True)


@blp.get("/rejects")
@blp.arguments(RejectsQuery, location="query")
@blp.doc(
    security=BEARER,
    description="Input that was not stored as a position, newest first, with its reason; "
    "`counts` gives the number per reason for the same filters.",
)
@blp.response(200, RejectsPageSchema)
@blp.problems(400, 401, 403)
@require_role("admin")
def list_rejects(query):
    filters = []
    if query["device_id"]:
        filters.append(Reject.device_id == query["device_id"])
    if query["reason"]:
        filters.append(Reject.reason == query["reason"])
    if query["since"] is not None:
        filters.append(Reject.received_at >= query["since"])
    cursor = decode_cursor(query["cursor"], before=int)
    page = select(Reject).where(*filters)
    if cursor is not None:
        page = page.where(Reject.id < cursor["before"])
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
