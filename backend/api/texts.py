"""Texts to a vehicle's driver through its JT/T 808 terminal (0x8300): "please call the office".

Queued here, sent by the gateway holding the terminal's connection (``backend.jt808_texts``),
answered by the terminal; the status is read back with ``GET``.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate
from sqlalchemy import select

from backend.api.common import BEARER, Blueprint
from backend.auth import current_user, require_role
from backend.errors import not_found
from backend.extensions import db
from backend.jt808_texts import DEFAULT_EXPIRES_IN_S, queue_text, text_body
from backend.models import Jt808Text
from backend.models.jt808 import TEXT_STATUSES
from backend.scopes import STAFF, can_see_vehicle

blp = Blueprint("texts", __name__, description="Texts to drivers (JT/T 808 terminals)")

MAX_LISTED = 100


class TextIn(Schema):
    text = fields.String(required=True, validate=validate.Length(1, 500), metadata={
        "description": "shown on the terminal's screen and read aloud (GBK, at most 1000 bytes)"})
    emergency = fields.Boolean(load_default=False)
    expires_in_s = fields.Integer(load_default=DEFAULT_EXPIRES_IN_S,
                                  validate=validate.Range(60, 7 * 86400), metadata={
        "description": "a text not sent by then (terminal offline) is given up: `expired`"})


class TextOut(Schema):
    id = fields.Integer(required=True)
    vehicle_id = fields.String(required=True)
    device_id = fields.String(required=True)
    text = fields.String(required=True)
    emergency = fields.Boolean(required=True)
    status = fields.String(required=True, validate=validate.OneOf(TEXT_STATUSES))
    created_at = fields.String(required=True)
    created_by = fields.String(required=True)
    expires_at = fields.String(required=True)
    attempts = fields.Integer(required=True, metadata={"description": "times sent"})
    sent_at = fields.String(allow_none=True, required=True)
    answered_at = fields.String(allow_none=True, required=True)
    result = fields.Integer(allow_none=True, required=True, metadata={
        "description": "the terminal's answer (0x0001): 0 ok, 1 failed, 2 message error, "
                       "3 unsupported"})


class TextList(Schema):
    items = fields.List(fields.Nested(TextOut), required=True)


def _vehicle(vehicle_id: str) -> None:
    if not can_see_vehicle(current_user(), vehicle_id):
        raise not_found("vehicle")


@blp.post("/<vehicle_id>/texts")
@blp.arguments(TextIn)
@blp.doc(security=BEARER, description=(
    "Queue a text to the vehicle's driver, shown and read aloud by its JT/T 808 terminal "
    "(0x8300). Sent when the terminal is connected to a gateway, else when it connects, "
    "until `expires_in_s`; `409` if the vehicle has no JT/T 808 terminal."))
@blp.response(202, TextOut)
@blp.problems(401, 403, 404, 409)
@require_role(*STAFF)
def post_text(body, vehicle_id: str):
    _vehicle(vehicle_id)
    row = queue_text(vehicle_id, body["text"], body["emergency"], body["expires_in_s"],
                     current_user().username)
    return text_body(row), 202


@blp.get("/<vehicle_id>/texts")
@blp.doc(security=BEARER, description=f"The vehicle's latest {MAX_LISTED} texts, newest first.")
@blp.response(200, TextList)
@blp.problems(401, 403, 404)
@require_role(*STAFF)
def list_texts(vehicle_id: str):
    _vehicle(vehicle_id)
    rows = db.session.scalars(select(Jt808Text).where(Jt808Text.vehicle_id == vehicle_id)
                              .order_by(Jt808Text.id.desc()).limit(MAX_LISTED)).all()
    return {"items": [text_body(r) for r in rows]}


@blp.get("/<vehicle_id>/texts/<int:text_id>")
@blp.doc(security=BEARER, description=(
    "One text and where it is: `queued` (terminal not connected), `sent`, `ok`, `failed`, "
    "`unsupported` (the terminal's answer) or `expired`."))
@blp.response(200, TextOut)
@blp.problems(401, 403, 404)
@require_role(*STAFF)
def get_text(vehicle_id: str, text_id: int):
    _vehicle(vehicle_id)
    # an id past the database's integers is no text (not an overflow's 500)
    row = db.session.get(Jt808Text, text_id) if 0 < text_id < 2**63 else None
    if row is None or row.vehicle_id != vehicle_id:
        raise not_found("text")
    return text_body(row)
