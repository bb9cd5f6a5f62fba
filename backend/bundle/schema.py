"""Marshmallow schemas of the district bundle: the shape of every field, checked before any write.

Cross-references between objects (a route's stop, a student's route) are checked afterwards in
``references.py`` because they need the database too (a bundle may carry a single change).
"""

from __future__ import annotations

import math
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates,
    validates_schema,
)

from gps_ingest.records import ID_RE
from routing.allowance import check_levels  # one rule for ids: the ingest checks it too

ID_MESSAGE = "must be 1-64 characters of A-Z a-z 0-9 . _ -"
TIME_RE = re.compile(r"^(\d{1,2}):([0-5]\d)(?::([0-5]\d))?$")
WEEKDAYS = validate.Range(min=1, max=7)


def Id(**kwargs) -> fields.String:  # noqa: N802  (a field factory reads like a field class)
    return fields.String(validate=validate.Regexp(ID_RE, error=ID_MESSAGE), **kwargs)


def parse_schedule_time(value: str) -> int:
    """``HH:MM`` or ``HH:MM:SS`` (hours up to 47, GTFS style) → seconds after local midnight."""
    match = TIME_RE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a time HH:MM or HH:MM:SS")
    hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3] or 0)
    if hours > 47:
        raise ValueError(f"{value!r}: hours past 47 are not a school timetable")
    return hours * 3600 + minutes * 60 + seconds


class ScheduleTime(fields.String):
    def _deserialize(self, value, attr, data, **kwargs) -> int:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parse_schedule_time(text)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class Latitude(fields.Float):
    def __init__(self, **kwargs):
        super().__init__(validate=validate.Range(-90, 90), allow_nan=False, **kwargs)


class Longitude(fields.Float):
    def __init__(self, **kwargs):
        super().__init__(validate=validate.Range(-180, 180), allow_nan=False, **kwargs)


class Strict(Schema):
    class Meta:
        unknown = RAISE  # a misspelt key is a mistake to report, not to ignore


class ExtraSchoolDaySchema(Strict):
    date = fields.Date(required=True)
    as_weekday = fields.Integer(required=True, validate=WEEKDAYS)

    @validates_schema
    def _is_a_weekend(self, data, **kwargs):
        if data["date"].isoweekday() < 6:
            raise ValidationError(
                "an extra school day is a Saturday or Sunday worked as a weekday", "date"
            )


class CalendarSchema(Strict):
    holidays = fields.List(fields.Date(), load_default=list)
    extra_school_days = fields.List(fields.Nested(ExtraSchoolDaySchema), load_default=list)


class DistrictSchema(Strict):
    id = Id(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    timezone = fields.String(load_default="Asia/Shanghai")
    calendar = fields.Nested(CalendarSchema, load_default=None)

    @validates("timezone")
    def _known_timezone(self, value, **kwargs):
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError(f"unknown time zone {value!r}") from exc


class SchoolSchema(Strict):
    id = Id(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    lat = Latitude(required=True)
    lon = Longitude(required=True)
    radius_m = fields.Float(load_default=150.0, validate=validate.Range(10, 5000))
    boarders_enrolled = fields.Integer(load_default=0, validate=validate.Range(min=0))


class StopSchema(Strict):
    id = Id(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    lat = Latitude(required=True)
    lon = Longitude(required=True)
    radius_m = fields.Float(load_default=60.0, validate=validate.Range(5, 2000))


class LineStringSchema(Strict):
    type = fields.String(required=True, validate=validate.Equal("LineString"))
    coordinates = fields.List(
        fields.List(fields.Float(allow_nan=False)), required=True, validate=validate.Length(min=2)
    )

    @validates("coordinates")
    def _lon_lat_pairs(self, value, **kwargs):
        for i, pair in enumerate(value):
            if len(pair) not in (2, 3):
                raise ValidationError(f"coordinates[{i}] must be [lon, lat]")
            lon, lat = pair[0], pair[1]
            if not (-180 <= lon <= 180 and -90 <= lat <= 90) or math.isnan(lon + lat):
                raise ValidationError(f"coordinates[{i}] = {pair} is not [lon, lat] in range")


class RouteStopSchema(Strict):
    stop_id = Id(required=True)
    time = ScheduleTime(load_default=None)


class RunSchema(Strict):
    id = Id(required=True)
    times = fields.List(ScheduleTime(), required=True, validate=validate.Length(min=1))
    days = fields.List(fields.Integer(validate=WEEKDAYS), load_default=None)
    dates = fields.List(fields.Date(), load_default=None)
    #: the vehicle planned to drive it (its block of runs); the tracker gives it this run first
    vehicle_id = Id(load_default=None, allow_none=True)

    @validates_schema
    def _days_or_dates(self, data, **kwargs):
        if (data.get("days") is None) == (data.get("dates") is None):
            raise ValidationError("give either days or dates", "days")
        _non_decreasing(data["times"], "times")


class RouteSchema(Strict):
    id = Id(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    school_id = Id(load_default=None, allow_none=True)
    path = fields.Nested(LineStringSchema, required=True)
    corridor_m = fields.Float(load_default=80.0, validate=validate.Range(10, 2000))
    stops = fields.List(
        fields.Nested(RouteStopSchema), required=True, validate=validate.Length(min=2)
    )
    days = fields.List(fields.Integer(validate=WEEKDAYS), load_default=None)
    runs = fields.List(fields.Nested(RunSchema), load_default=None)

    @validates_schema
    def _one_timetable(self, data, **kwargs):
        stop_times = [s["time"] for s in data["stops"]]
        timed = [t is not None for t in stop_times]
        runs = data.get("runs")
        if runs is not None:
            if any(timed) or data.get("days") is not None:
                raise ValidationError(
                    "give either stops[].time with days, or runs, not both", "runs"
                )
            problems = {}
            for i, run in enumerate(runs):
                if len(run["times"]) != len(data["stops"]):
                    problems[i] = {
                        "times": [f"has {len(run['times'])} times for {len(data['stops'])} stops"]
                    }
            if problems:
                raise ValidationError(problems, "runs")
        elif any(timed):
            if not all(timed):
                missing = [i for i, t in enumerate(timed) if not t]
                raise ValidationError(f"every stop needs a time (missing at {missing})", "stops")
            if data.get("days") is None:
                raise ValidationError("a timetable in stops[].time needs days", "days")
            _non_decreasing(stop_times, "stops")


def _non_decreasing(times: list[int], field: str) -> None:
    for i in range(1, len(times)):
        if times[i] < times[i - 1]:
            raise ValidationError(f"times go backwards at position {i}", field)


class VehicleSchema(Strict):
    id = Id(required=True)
    kind = fields.String(
        required=True, validate=validate.OneOf(["school_bus", "teacher_car", "meal_truck"])
    )
    plate = fields.String(load_default=None, validate=validate.Length(max=32))
    seats = fields.Integer(load_default=None, validate=validate.Range(min=1, max=100))
    route_ids = fields.List(Id(), load_default=list)
    speed_limit_kmh = fields.Float(load_default=None, validate=validate.Range(min=5, max=200))


class DeviceModelSchema(Strict):
    id = Id(required=True)
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 200))
    jt808_accept_bad_check = fields.Boolean(load_default=False)


class DeviceSchema(Strict):
    id = Id(required=True)
    vehicle_id = Id(load_default=None, allow_none=True)
    model = Id(load_default=None, allow_none=True)
    token = fields.String(load_default=None, validate=validate.Length(min=8, max=256))
    crs = fields.String(load_default="wgs84", validate=validate.OneOf(["wgs84", "gcj02"]))
    osmand = fields.Boolean(load_default=False)
    jt808_phone = fields.String(
        load_default=None, allow_none=True,
        validate=validate.Regexp(r"^[0-9]{1,20}$",
                                 error="a JT/T 808 terminal phone number: 1 to 20 digits"))
    jt808_accept_bad_check = fields.Boolean(load_default=False)


class StudentSchema(Strict):
    id = Id(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 100))
    school_id = Id(required=True)
    boarder = fields.Boolean(load_default=False)
    route_id = Id(load_default=None, allow_none=True)
    stop_id = Id(load_default=None, allow_none=True)
    card_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 64))


class AssignmentSchema(Strict):
    school_id = Id(required=True)
    weekdays = fields.List(
        fields.Integer(validate=WEEKDAYS), required=True, validate=validate.Length(min=1)
    )


class TeacherSchema(Strict):
    id = Id(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 100))
    home_school_id = Id(required=True)
    vehicle_id = Id(load_default=None, allow_none=True)
    assignments = fields.List(fields.Nested(AssignmentSchema), load_default=list)
    card_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 64))


class UserSchema(Strict):
    username = fields.String(required=True, validate=validate.Regexp(ID_RE, error=ID_MESSAGE))
    password = fields.String(load_default=None, validate=validate.Length(min=8, max=256))
    role = fields.String(
        required=True,
        validate=validate.OneOf(["parent", "driver", "teacher", "logistics", "finance",
                                 "admin"]),
    )
    student_ids = fields.List(Id(), load_default=list)
    vehicle_ids = fields.List(Id(), load_default=list)
    school_ids = fields.List(Id(), load_default=list)
    teacher_id = Id(load_default=None, allow_none=True)

    @validates_schema
    def _scope_fits_role(self, data, **kwargs):
        role = data["role"]
        if role == "teacher" and not data.get("teacher_id"):
            raise ValidationError("a teacher user names its teacher_id", "teacher_id")
        allowed = {"parent": "student_ids", "driver": "vehicle_ids", "logistics": "school_ids"}
        for field in ("student_ids", "vehicle_ids", "school_ids"):
            if data.get(field) and allowed.get(role) != field:
                raise ValidationError(f"a {role} user has no {field}", field)


class TierSchema(Strict):
    min_km = fields.Float(required=True, validate=validate.Range(min=0))
    max_km = fields.Float(load_default=None, allow_none=True)
    per_trip = fields.Float(required=True, validate=validate.Range(min=0))


class GradeSchema(Strict):
    min_km = fields.Float(required=True, validate=validate.Range(min=0))
    max_km = fields.Float(load_default=None, allow_none=True)
    per_month = fields.Float(required=True, validate=validate.Range(min=0))
    per_trip = fields.Float(load_default=0.0, validate=validate.Range(min=0))


class LevelSchema(Strict):
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 50))
    grades = fields.List(fields.Nested(GradeSchema), required=True)


class SubsidyPolicySchema(Strict):
    id = Id(required=True)
    currency = fields.String(load_default="CNY", validate=validate.Regexp(r"^[A-Z]{3}$"))
    monthly_cap = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0))
    tiers = fields.List(fields.Nested(TierSchema), load_default=list)
    # 三级九等 by distance from the cluster's core school (routing/allowance.py)
    levels = fields.List(fields.Nested(LevelSchema), load_default=None, allow_none=True)
    road_factor = fields.Float(load_default=None, allow_none=True,
                               validate=validate.Range(min=1.0, max=3.0))

    @validates_schema
    def _contiguous_tiers(self, data, **kwargs):
        tiers = data["tiers"]
        if not tiers:
            if not data.get("levels"):
                raise ValidationError("a policy has tiers, levels or both", "tiers")
            return
        if tiers[0]["min_km"] != 0:
            raise ValidationError("the first tier starts at 0 km", "tiers")
        for i, tier in enumerate(tiers):
            last = i == len(tiers) - 1
            if tier["max_km"] is None and not last:
                raise ValidationError(f"only the last tier may be open-ended (tier {i})", "tiers")
            if tier["max_km"] is not None and tier["max_km"] <= tier["min_km"]:
                raise ValidationError(f"tier {i}: max_km must exceed min_km", "tiers")
            if not last and tiers[i + 1]["min_km"] != tier["max_km"]:
                raise ValidationError(f"tier {i + 1} must start where tier {i} ends", "tiers")

    @validates_schema
    def _three_levels_of_three_grades(self, data, **kwargs):
        if data.get("levels") is not None:
            problems = check_levels(data["levels"])
            if problems:
                raise ValidationError(problems, "levels")


class ClusterSchema(Strict):
    """A 教联体 / 学区: a core school and the member schools graded by their distance from it."""

    id = Id(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    core_school_id = Id(required=True)
    member_school_ids = fields.List(Id(), required=True, validate=validate.Length(min=1))

    @validates_schema
    def _core_is_no_member(self, data, **kwargs):
        if data["core_school_id"] in data["member_school_ids"]:
            raise ValidationError("the core school is not one of its own members",
                                  "member_school_ids")
        if len(set(data["member_school_ids"])) != len(data["member_school_ids"]):
            raise ValidationError("a member school is listed twice", "member_school_ids")


# The bundle's sections in import order: (schema, is a list).
SECTIONS: dict[str, tuple[Schema, bool]] = {
    "district": (DistrictSchema(), False),
    "schools": (SchoolSchema(), True),
    "stops": (StopSchema(), True),
    "routes": (RouteSchema(), True),
    "vehicles": (VehicleSchema(), True),
    "device_models": (DeviceModelSchema(), True),
    "devices": (DeviceSchema(), True),
    "students": (StudentSchema(), True),
    "teachers": (TeacherSchema(), True),
    "users": (UserSchema(), True),
    "subsidy_policy": (SubsidyPolicySchema(), False),
    "clusters": (ClusterSchema(), True),
}
