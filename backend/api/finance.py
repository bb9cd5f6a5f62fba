"""Finance of exchange teachers (issue 18): the clusters' distance grid and its overrides,
staff confirmations of attendance, month-end closing, and what changed since the last export.

Finance (and admin) change the grid and close months; logistics staff confirm attendance of
the teachers in their scope; everything a person decides is recorded with who and when.
"""

from __future__ import annotations

import datetime as dt

from flask import Response
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select

from backend.api.common import BEARER, Blueprint
from backend.api.subsidies import BINARY, MONTH
from backend.auth import current_user, require_role
from backend.errors import ApiError
from backend.extensions import db
from backend.finance.allowances import confirm_attendance
from backend.finance.books import (
    changes_since_export,
    close_month,
    month_status,
    record_export,
)
from backend.finance.export import allowance_sheet
from backend.finance.grid import grid, set_override
from backend.finance_export import LANGS, XLSX_MIMETYPE, to_xlsx
from backend.live_service import clock
from backend.models.district import District
from backend.scopes import FINANCE, STAFF
from backend.subsidy_service import export_sheet, month_statements, teacher_or_404
from routing.calendar import local_date
from routing.model import Calendar

blp = Blueprint("finance", __name__, description="Exchange teachers' allowance grid and "
                                                 "month-end closing")


class LocalDate(fields.String):
    def _deserialize(self, value, attr, data, **kwargs) -> dt.date:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return dt.date.fromisoformat(text)
        except ValueError as exc:
            raise ValidationError("a local date YYYY-MM-DD") from exc


class GridQuery(Schema):
    date = LocalDate(load_default=None, metadata={
        "description": "the grid in force on this local date (default: today)"})


class BandSchema(Schema):
    level = fields.Integer(required=True)
    grade = fields.Integer(required=True)
    min_km = fields.Float(required=True)
    max_km = fields.Float(allow_none=True, required=True)
    per_month = fields.Float(required=True)
    per_trip = fields.Float(required=True)


class OverrideSchema(Schema):
    distance_km = fields.Float(required=True)
    effective_from = fields.String(required=True)
    reason = fields.String(required=True)
    set_by = fields.String(required=True)
    set_at = fields.Float(required=True)


class GridRowSchema(Schema):
    cluster_id = fields.String(required=True)
    cluster_name = fields.String(required=True)
    core_school_id = fields.String(required=True)
    school_id = fields.String(required=True)
    distance_km = fields.Float(required=True)
    source = fields.String(required=True, validate=validate.OneOf(
        ["override", "driven", "straight_line"]))
    samples = fields.Integer(required=True, metadata={
        "description": "verified trips the median rests on"})
    level = fields.Integer(allow_none=True, required=True)
    grade = fields.Integer(allow_none=True, required=True)
    per_month = fields.Float(required=True)
    per_trip = fields.Float(required=True)
    override = fields.Nested(OverrideSchema, allow_none=True, required=True)
    band = fields.Nested(BandSchema, allow_none=True, required=True)


def _today() -> dt.date:
    timezone = db.session.scalar(select(District.timezone).order_by(District.id))
    return local_date(clock(), Calendar(timezone=timezone or "Asia/Shanghai"))


@blp.get("/grid")
@blp.arguments(GridQuery, location="query")
@blp.doc(security=BEARER, description=(
    "Every member school's distance from its cluster's core school and its 三级九等 band: "
    "finance's override in force, else the median verified driven distance of recent trips, "
    "else the straight line × the policy's road factor. Logistics staff see the clusters of "
    "their schools' districts; finance and admin every district's."))
@blp.response(200, GridRowSchema(many=True))
@blp.problems(401, 403)
@require_role(*FINANCE, "logistics")
def get_grid(query):
    user = current_user()
    # logistics staff see the grid of their schools' districts; the finance office every one
    districts = None if user.role in FINANCE else {s.district_id for s in user.schools}
    return grid(query["date"] or _today(), districts)


class GridOverrideBody(Schema):
    distance_km = fields.Float(required=True, allow_nan=False,
                               validate=validate.Range(min=0, max=500))
    reason = fields.String(required=True, validate=validate.Length(1, 1000))
    effective_from = LocalDate(required=True, metadata={"example": "2026-10-16"})


@blp.put("/grid/<school_id>")
@blp.arguments(GridOverrideBody)
@blp.doc(security=BEARER, description=(
    "Finance sets a member school's distance from the core school from a local date on, with "
    "a reason (kept with who set it and when). Allowance days from that date are priced at "
    "the new band. A date in a closed month is refused (409): a closed month stays priced on "
    "the bands frozen at its close."))
@blp.response(200, GridRowSchema)
@blp.problems(401, 403, 404, 409)
@require_role(*FINANCE)
def put_grid(body, school_id: str):
    return set_override(current_user(), school_id, body["distance_km"], body["reason"],
                        body["effective_from"], clock())


class AttendanceBody(Schema):
    teacher_id = fields.String(required=True, validate=validate.Length(1, 64))
    school_id = fields.String(required=True, validate=validate.Length(1, 64))
    date = LocalDate(required=True)
    note = fields.String(load_default="", validate=validate.Length(0, 1000))


class AttendanceSchema(Schema):
    teacher_id = fields.String(required=True)
    school_id = fields.String(required=True)
    date = fields.String(required=True)
    note = fields.String(required=True)
    confirmed_by = fields.String(required=True)


@blp.post("/attendance")
@blp.arguments(AttendanceBody)
@blp.doc(security=BEARER, description=(
    "A staff member confirms an exchange teacher was at an assigned school on a day that no "
    "trip shows: the day then counts for the monthly allowance."))
@blp.response(201, AttendanceSchema)
@blp.problems(401, 403, 404, 409)
@require_role(*STAFF)
def post_attendance(body):
    user = current_user()
    teacher_or_404(user, body["teacher_id"])
    return confirm_attendance(user, body["teacher_id"], body["school_id"], body["date"],
                              body["note"], clock())


class MonthBody(Schema):
    district_id = fields.String(load_default=None, validate=validate.Length(1, 64), metadata={
        "description": "needed only when the database holds several districts"})


class MonthStatusSchema(Schema):
    district_id = fields.String(required=True)
    month = fields.String(required=True)
    closed = fields.Boolean(required=True)
    closed_by = fields.String(allow_none=True, required=True)
    closed_at = fields.Float(allow_none=True, required=True)
    allowance_lines_frozen = fields.Integer()


@blp.get("/months/<month>")
@blp.arguments(MonthBody, location="query")
@blp.doc(security=BEARER, description="Whether a month is closed, by whom and when.")
@blp.response(200, MonthStatusSchema)
@blp.problems(401, 403, 422)
@require_role(*FINANCE)
def get_month(query, month: str):
    return month_status(_checked(month), query["district_id"])


@blp.post("/months/<month>/close")
@blp.arguments(MonthBody)
@blp.doc(security=BEARER, description=(
    "Close a month that is over: its transport rows and allowance lines never change again; "
    "anything learnt later about it is booked into the next open month, naming what it "
    "corrects. 409 when already closed or not over."))
@blp.response(200, MonthStatusSchema)
@blp.problems(401, 403, 409, 422)
@require_role(*FINANCE)
def post_close(body, month: str):
    return close_month(current_user(), _checked(month), body["district_id"], clock())


class ExportBody(Schema):
    lang = fields.String(load_default="zh", validate=validate.OneOf(LANGS), metadata={
        "description": "headers and labels (zh: 中文, en: English)"})


@blp.post("/months/<month>/export")
@blp.arguments(ExportBody)
@blp.doc(security=BEARER, description=(
    "The finance office downloads a whole month: an XLSX workbook with every teacher's "
    "transport rows (交通补助) and allowance lines (交流补贴), as `xiaoche report subsidies` "
    "writes them. Recorded as the month's export: `GET /subsidies/changes` then lists what "
    "changed since this download."))
@blp.alt_response(200, schema=BINARY, content_type=XLSX_MIMETYPE, success=True)
@blp.problems(401, 403, 422)
@require_role(*FINANCE)
def post_export(body, month: str):
    month = _checked(month)
    statements = month_statements(month)
    content = to_xlsx(export_sheet(statements, month), body["lang"],
                      more=[allowance_sheet(statements, month)])
    record_export(month, current_user().username, clock(), statements)
    return Response(content, mimetype=XLSX_MIMETYPE, headers={
        "Content-Disposition": f'attachment; filename="subsidies-{month}.xlsx"'})


class ChangesQuery(Schema):
    month = fields.String(required=True, validate=MONTH)


class ChangesSchema(Schema):
    month = fields.String(required=True)
    last_export = fields.Dict(allow_none=True, required=True)
    added = fields.List(fields.Dict(), required=True)
    removed = fields.List(fields.Dict(), required=True)
    changed = fields.List(fields.Dict(), required=True)
    total_change = fields.Float(required=True)


@blp.get("/changes")
@blp.arguments(ChangesQuery, location="query")
@blp.doc(security=BEARER, description=(
    "What the month's books (transport rows and allowance lines) say now that its last "
    "export (`xiaoche report subsidies`, or `POST /subsidies/months/{month}/export`) did not: "
    "lines added, removed, changed in amount."))
@blp.response(200, ChangesSchema)
@blp.problems(401, 403)
@require_role(*FINANCE)
def get_changes(query):
    return changes_since_export(query["month"])


def _checked(month: str) -> str:
    try:
        MONTH(month)
    except ValidationError as exc:
        raise ApiError(422, f"{month!r} is not a month YYYY-MM",
                       errors={"month": ["a month YYYY-MM"]}) from exc
    return month
