"""Meals (营养加餐): ``POST /api/v1/meals/reports`` (logistics staff of the school) and
``GET /api/v1/audit/meals`` (staff), SPEC §5.

Scope (DESIGN decision 5): logistics staff report and audit their own schools, admin every
school; a school outside the caller's scope answers 404 as if it did not exist.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from backend.api.common import BEARER, Blueprint
from backend.auth import current_user, require_role
from backend.live_service import clock
from backend.meals_service import (
    audit_rows,
    calendar_of,
    not_in_future,
    school_or_404,
    submit_report,
    visible_school_ids,
)
from backend.scopes import STAFF

blp = Blueprint("meals", __name__, description="Nutrition meal reports (logistics staff)")
audit_blp = Blueprint("audit_meals", __name__, description="Daily meal audit (staff)")

COUNT = {"strict": True, "validate": validate.Range(0, 100_000)}
SCHOOL_ID = validate.Regexp(r"^[A-Za-z0-9._-]{1,64}$", error="not a school id")


class MealReportSchema(Schema):
    school_id = fields.String(required=True, validate=SCHOOL_ID)
    date = fields.Date(required=True, metadata={"description": "local date YYYY-MM-DD, not "
                                                               "in the future"})
    boarders_present = fields.Integer(
        load_default=None, allow_none=True, **COUNT,
        metadata={"description": "boarders present; null when attendance was not taken (meals "
                                 "served are then checked against enrolled x attendance factor)"})
    meals_served = fields.Integer(required=True, **COUNT)
    meals_received = fields.Integer(required=True, **COUNT)


class ReportVersionSchema(Schema):
    school_id = fields.String(required=True)
    date = fields.String(required=True)
    version = fields.Integer(required=True)
    boarders_present = fields.Integer(allow_none=True, required=True)
    meals_served = fields.Integer(required=True)
    meals_received = fields.Integer(required=True)
    reported_by = fields.String(required=True)
    reported_at = fields.String(required=True)
    replaces_version = fields.Integer(allow_none=True, metadata={
        "description": "the version this report replaced (null for the first)"})


@blp.post("/reports")
@blp.arguments(MealReportSchema)
@blp.doc(security=BEARER, description=(
    "A school's meal counts of a day. A second report for the same school and date replaces "
    "the first as what the audit counts; the first stays on record (`replaced` in "
    "`GET /audit/meals`)."))
@blp.response(201, ReportVersionSchema)
@blp.problems(400, 401, 403, 404, 409)
@require_role(*STAFF)
def post_meal_report(body):
    return submit_report(current_user(), body, clock()), 201


class AuditMealsQuery(Schema):
    date = fields.Date(required=True, metadata={"description": "local date YYYY-MM-DD"})
    school_id = fields.String(load_default=None, validate=SCHOOL_ID)


class MealAuditSchema(Schema):
    school_id = fields.String(required=True)
    date = fields.String(required=True)
    school_day = fields.Boolean(required=True, metadata={
        "description": "whether the district calendar expects a report and a delivery"})
    boarders_enrolled = fields.Integer(required=True)
    boarders_present = fields.Integer(allow_none=True, required=True)
    meals_served = fields.Integer(allow_none=True, required=True)
    meals_received = fields.Integer(allow_none=True, required=True)
    delivery_arrived_at = fields.String(allow_none=True, required=True)
    flags = fields.List(fields.String(validate=validate.OneOf([
        "no_report", "served_exceeds_present", "present_exceeds_enrolled",
        "served_exceeds_received", "no_delivery"])), required=True)
    reported_by = fields.String(allow_none=True, required=True)
    reported_at = fields.String(allow_none=True, required=True)
    replaced = fields.List(fields.Nested(ReportVersionSchema), required=True, metadata={
        "description": "earlier reports of the day this one replaced, oldest first"})


@audit_blp.get("/meals")
@audit_blp.arguments(AuditMealsQuery, location="query")
@audit_blp.doc(security=BEARER, description=(
    "Each school's meals of a local date against enrolment, attendance, the kitchen's "
    "deliveries and the meal truck's arrival, with the anomalies flagged."))
@audit_blp.response(200, MealAuditSchema(many=True))
@audit_blp.problems(401, 403, 404)
@require_role(*STAFF)
def audit_meals(query):
    user = current_user()
    visible = visible_school_ids(user)
    calendar = None
    if query["school_id"] is not None:
        school = school_or_404(user, query["school_id"])
        calendar, visible = calendar_of(school), {school.id}
    not_in_future(query["date"], calendar, clock())
    return audit_rows(visible, query["date"])
