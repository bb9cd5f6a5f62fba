"""Teachers' transport subsidies (SPEC §5 ``GET /subsidies``) and their review.

Scope (DESIGN decision 5): a teacher reads their own months; logistics staff the teachers whose
home or assigned school is theirs; admin everyone. Anything else answers 404. A trip that waits
for review (off the assignment timetable, resting on filtered fixes) is approved or rejected by
staff; each decision is a new ledger row, so the history of every amount stays readable.
"""

from __future__ import annotations

from flask import Response, request
from marshmallow import Schema, fields, validate

from backend.api.common import BEARER, Blueprint
from backend.auth import current_user, require_role
from backend.errors import ApiError
from backend.finance_export import LANGS, XLSX_MIMETYPE, to_csv, to_xlsx
from backend.live_service import clock
from backend.scopes import STAFF
from backend.subsidy_service import decide, export_sheet, statement, teacher_or_404

blp = Blueprint("subsidies", __name__, description="Teachers' transport subsidies")

MONTH = validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="a month YYYY-MM")
TEXT = {"type": "string"}
BINARY = {"type": "string", "format": "binary"}


class SubsidyQuery(Schema):
    teacher_id = fields.String(load_default=None, validate=validate.Length(1, 64), metadata={
        "description": "required for staff; a teacher reads their own month without it"})
    month = fields.String(required=True, validate=MONTH, metadata={"example": "2026-10"})
    lang = fields.String(load_default="zh", validate=validate.OneOf(LANGS), metadata={
        "description": "headers and labels of the CSV / XLSX export (zh: 中文, en: English); "
                       "the JSON does not change"})


class EntrySchema(Schema):
    entry_id = fields.Integer(required=True)
    trip_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(
        ["trip", "approval", "rejection", "reversal"]))
    status = fields.String(required=True, validate=validate.OneOf(
        ["approved", "pending", "rejected"]), metadata={"description": "the trip's status "
                                                                       "once this row was written"})
    date = fields.String(required=True)
    from_school_id = fields.String(required=True)
    to_school_id = fields.String(required=True)
    departed_at = fields.String(required=True)
    arrived_at = fields.String(required=True)
    distance_km = fields.Float(required=True)
    tier = fields.Integer(allow_none=True, required=True, metadata={
        "description": "1-based tier of the policy; null when no tier covers the distance"})
    amount = fields.Float(required=True, metadata={"description": "what this row adds to the "
                                                                  "month (a reversal is < 0)"})
    cap_applied = fields.Boolean(required=True)
    grid_km = fields.Float(allow_none=True, metadata={
        "description": "the grid distance between the trip's two schools (null: not in one "
                       "cluster)"})
    priced_km = fields.Float(allow_none=True, metadata={
        "description": "what the trip is paid on: min(distance_km, grid_km)"})
    level = fields.Integer(allow_none=True, metadata={"description": "三级九等 level of "
                                                                     "priced_km"})
    grade = fields.Integer(allow_none=True)
    corrects_month = fields.String(allow_none=True, metadata={
        "description": "booked into this month because the trip's own month was closed"})
    policy_id = fields.String(allow_none=True, required=True)
    review_reasons = fields.String(required=True)
    reason = fields.String(required=True)
    recorded_by = fields.String(required=True)
    recorded_at = fields.String(required=True)


class AllowanceLineSchema(Schema):
    entry_id = fields.Integer(allow_none=True, metadata={"description": "null while open"})
    kind = fields.String(validate=validate.OneOf(["allowance", "adjustment"]))
    for_month = fields.String(metadata={"description": "the month the days were worked"})
    school_id = fields.String()
    level = fields.Integer()
    grade = fields.Integer()
    per_month = fields.Float()
    days_present = fields.Integer()
    days_due = fields.Integer()
    amount = fields.Float()
    corrects_entry_id = fields.Integer(allow_none=True)


class StatementSchema(Schema):
    teacher_id = fields.String(required=True)
    teacher_name = fields.String(required=True)
    month = fields.String(required=True)
    currency = fields.String(required=True)
    entries = fields.List(fields.Nested(EntrySchema), required=True)
    total = fields.Float(required=True)
    cap_applied = fields.Boolean(required=True)
    pending = fields.Integer(required=True, metadata={"description": "trips awaiting review"})
    closed = fields.Boolean(metadata={"description": "the month is closed: its books are final"})
    allowance = fields.List(fields.Nested(AllowanceLineSchema), metadata={
        "description": "交流补贴: the monthly allowance, per school and band (plus adjustments "
                       "of earlier closed months)"})
    allowance_total = fields.Float()
    grand_total = fields.Float(metadata={"description": "total (交通补助) + allowance_total"})


@blp.get("")
@blp.arguments(SubsidyQuery, location="query")
@blp.doc(security=BEARER, description=(
    "A teacher's month: every ledger row of the month's trips (booked, approved, rejected, "
    "reversed), the total and whether the monthly cap cut it. `Accept: text/csv` gives the same "
    "rows as CSV with a UTF-8 BOM, `Accept: " + XLSX_MIMETYPE + "` as XLSX, for the finance "
    "office: Chinese headers (`lang=en`: English), school names and the car's plate next to the "
    "ids, times local to the district (`YYYY-MM-DD HH:MM`), 是/否, amounts in yuan with two "
    "decimals, a totals row."))
@blp.response(200, StatementSchema)
@blp.alt_response(200, schema=TEXT, content_type="text/csv", success=True)
@blp.alt_response(200, schema=BINARY, content_type=XLSX_MIMETYPE, success=True)
@blp.problems(401, 403, 404)
@require_role("teacher", *STAFF, "finance")
def get_subsidies(query):
    user = current_user()
    teacher_id = query["teacher_id"]
    if teacher_id is None:
        if user.role != "teacher":
            raise ApiError(422, "teacher_id is required", errors={"teacher_id": ["required"]})
        teacher_id = user.teacher_id or ""
    body = statement(teacher_or_404(user, teacher_id), query["month"])
    best = request.accept_mimetypes.best_match(["application/json", "text/csv", XLSX_MIMETYPE])
    if best in ("text/csv", XLSX_MIMETYPE):
        sheet = export_sheet([body], body["month"])
        name = f"subsidies-{body['teacher_id']}-{body['month']}"
        if best == XLSX_MIMETYPE:
            return Response(to_xlsx(sheet, query["lang"]), mimetype=XLSX_MIMETYPE, headers={
                "Content-Disposition": f'attachment; filename="{name}.xlsx"'})
        return Response(to_csv(sheet, query["lang"]), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{name}.csv"'})
    return body


class DecisionSchema(Schema):
    reason = fields.String(load_default="", validate=validate.Length(0, 1000))


class RejectionSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 1000))


class DecidedSchema(Schema):
    trip_id = fields.String(required=True)
    status = fields.String(required=True)
    entries = fields.List(fields.Nested(EntrySchema), required=True)


@blp.post("/<int:entry_id>/approve")
@blp.arguments(DecisionSchema)
@blp.doc(security=BEARER, description=(
    "Approve a pending trip: an `approval` row with the amount its tier grants within what is "
    "left of the monthly cap."))
@blp.response(200, DecidedSchema)
@blp.problems(400, 401, 403, 404, 409)
@require_role(*STAFF)
def approve(body, entry_id: int):
    return decide(current_user(), entry_id, True, body["reason"], clock())


@blp.post("/<int:entry_id>/reject")
@blp.arguments(RejectionSchema)
@blp.doc(security=BEARER, description=(
    "Reject a trip with a reason: a pending one gets a `rejection` row (nothing was paid), an "
    "approved one a `reversal` row of minus what it had been granted."))
@blp.response(200, DecidedSchema)
@blp.problems(400, 401, 403, 404, 409)
@require_role(*STAFF)
def reject(body, entry_id: int):
    return decide(current_user(), entry_id, False, body["reason"], clock())
