"""Upsert a validated district bundle: import twice = import once, all or nothing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select

from backend.bundle.references import check_references
from backend.bundle.schema import SECTIONS
from backend.errors import flatten_errors
from backend.extensions import db
from backend.models import (
    CalendarDay,
    Device,
    District,
    Route,
    RouteRun,
    RouteStop,
    School,
    Stop,
    Student,
    SubsidyPolicy,
    Teacher,
    TeacherAssignment,
    User,
    Vehicle,
)
from backend.security import (
    device_token_bucket,
    hash_device_token,
    hash_password,
    verify_device_token,
    verify_password,
)


class BundleError(Exception):
    """The bundle has problems; ``errors`` maps each JSON path to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__(f"{sum(len(m) for m in errors.values())} problem(s) in the bundle")

    def lines(self) -> list[str]:
        return [f"{path}: {message}" for path, msgs in self.errors.items() for message in msgs]


@dataclass
class ImportSummary:
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {
            "created": dict(self.created),
            "updated": dict(self.updated),
            "unchanged": dict(self.unchanged),
        }


def validate_bundle(document: Any) -> dict[str, Any]:
    """Return the loaded bundle or raise BundleError with every problem found.

    Each object is loaded on its own, so one malformed stop does not hide the reference errors
    of the rest; references are checked against every id the document declares.
    """
    if not isinstance(document, dict):
        raise BundleError({"$": ["the bundle must be a JSON object"]})
    errors: dict[str, list[str]] = {}
    bundle: dict[str, Any] = {}
    # where each loaded item stands in the document: a malformed item is left out of ``bundle``
    # but keeps its place in the numbering, so every path names the item as the sender wrote it
    positions: dict[str, list[int]] = {}
    for key in sorted(set(document) - set(SECTIONS)):
        errors[key] = ["unknown section"]
    for section, (schema, many) in SECTIONS.items():
        raw = document.get(section)
        bundle[section], positions[section] = [] if many else None, []
        if raw is None:
            continue
        if not many:
            bundle[section] = _load_one(schema, raw, section, errors)
            continue
        if not isinstance(raw, list):
            errors[section] = ["must be a list"]
            continue
        for i, item in enumerate(raw):
            loaded = _load_one(schema, item, f"{section}[{i}]", errors)
            if loaded is not None:
                bundle[section].append(loaded)
                positions[section].append(i)
    for path, messages in check_references(bundle, document, positions).items():
        errors.setdefault(path, []).extend(messages)
    if errors:
        raise BundleError(errors)
    return bundle


def _load_one(schema: Any, raw: Any, path: str, errors: dict[str, list[str]]) -> Any:
    try:
        return schema.load(raw)
    except ValidationError as exc:
        for sub_path, messages in flatten_errors(exc.messages, path).items():
            errors.setdefault(sub_path, []).extend(messages)
        return None


def import_bundle(document: Any) -> ImportSummary:
    """Validate everything, then write everything in one transaction (or nothing)."""
    bundle = validate_bundle(document)
    summary = ImportSummary()
    try:
        _Upserter(bundle, summary).run()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return summary


class _Upserter:
    def __init__(self, bundle: dict[str, Any], summary: ImportSummary):
        self.bundle = bundle
        self.summary = summary
        self.district_id = self._district()

    def run(self) -> None:
        b = self.bundle
        for school in b["schools"]:
            self._upsert(
                School,
                "schools",
                school["id"],
                district_id=self.district_id,
                **_pick(school, "name", "lat", "lon", "radius_m", "boarders_enrolled"),
            )
        for stop in b["stops"]:
            self._upsert(
                Stop,
                "stops",
                stop["id"],
                district_id=self.district_id,
                **_pick(stop, "name", "lat", "lon", "radius_m"),
            )
        db.session.flush()
        school_ids = set(db.session.scalars(select(School.id)))
        for route in b["routes"]:
            self._route(route, school_ids)
        for vehicle in b["vehicles"]:
            obj = self._upsert(
                Vehicle,
                "vehicles",
                vehicle["id"],
                district_id=self.district_id,
                **_pick(vehicle, "kind", "plate", "seats", "speed_limit_kmh"),
            )
            db.session.flush()
            route_ids = sorted(set(vehicle["route_ids"]))
            if [r.id for r in obj.routes] != route_ids:
                obj.routes = [db.session.get(Route, r) for r in route_ids]
        for device in b["devices"]:
            self._device(device)
        for student in b["students"]:
            self._upsert(
                Student,
                "students",
                student["id"],
                **_pick(student, "name", "school_id", "boarder", "route_id", "stop_id", "card_id"),
            )
        for teacher in b["teachers"]:
            self._teacher(teacher)
        db.session.flush()
        for user in b["users"]:
            self._user(user)
        if b["subsidy_policy"] is not None:
            policy = b["subsidy_policy"]
            self._upsert(
                SubsidyPolicy,
                "subsidy_policy",
                policy["id"],
                district_id=self.district_id,
                **_pick(policy, "currency", "monthly_cap", "tiers"),
            )
            db.session.flush()
            db.session.execute(
                SubsidyPolicy.__table__.update()
                .where(SubsidyPolicy.district_id == self.district_id)
                .values(active=SubsidyPolicy.id == policy["id"])
            )

    # -- sections ---------------------------------------------------------------------------

    def _district(self) -> str:
        district = self.bundle["district"]
        if district is None:
            return db.session.scalars(select(District.id)).first() or ""
        obj = self._upsert(
            District, "district", district["id"], **_pick(district, "name", "timezone")
        )
        calendar = district["calendar"]
        if calendar is not None:
            wanted = {d.isoformat(): ("holiday", None) for d in calendar["holidays"]}
            wanted.update(
                {
                    e["date"].isoformat(): ("school_day", e["as_weekday"])
                    for e in calendar["extra_school_days"]
                }
            )
            current = {c.date: (c.kind, c.as_weekday) for c in obj.calendar_days}
            if current != wanted:
                obj.calendar_days = [
                    CalendarDay(date=d, kind=k, as_weekday=w)
                    for d, (k, w) in sorted(wanted.items())
                ]
                db.session.flush()
        return district["id"]

    def _route(self, route: dict[str, Any], school_ids: set[str]) -> None:
        obj = self._upsert(
            Route,
            "routes",
            route["id"],
            district_id=self.district_id,
            **_pick(route, "name", "school_id", "path", "corridor_m"),
        )
        wanted_stops = [
            (
                i,
                None if s["stop_id"] in school_ids else s["stop_id"],
                s["stop_id"] if s["stop_id"] in school_ids else None,
            )
            for i, s in enumerate(route["stops"])
        ]
        current_stops = [(s.sequence, s.stop_id, s.school_id) for s in obj.stops]
        if current_stops != wanted_stops:
            obj.stops = []
            db.session.flush()
            obj.stops = [
                RouteStop(sequence=i, stop_id=stop_id, school_id=school_id)
                for i, stop_id, school_id in wanted_stops
            ]
        if route["runs"] is not None:
            runs = [
                (
                    r["id"],
                    r["times"],
                    r["days"],
                    [d.isoformat() for d in r["dates"]] if r["dates"] is not None else None,
                )
                for r in route["runs"]
            ]
        elif route["stops"][0]["time"] is not None:
            runs = [(route["id"], [s["time"] for s in route["stops"]], route["days"], None)]
        else:
            runs = []
        current_runs = [(r.id, r.times_s, r.days, r.dates) for r in obj.runs]
        if sorted(current_runs) != sorted(runs):
            obj.runs = []
            db.session.flush()
            obj.runs = [RouteRun(id=i, times_s=t, days=d, dates=ds) for i, t, d, ds in runs]

    def _device(self, device: dict[str, Any]) -> None:
        existing = db.session.get(Device, device["id"])
        token = device["token"]
        if token is not None and (
            existing is None or not verify_device_token(existing.token_hash, token)
        ):
            token_hash = hash_device_token(token)
        else:
            token_hash = existing.token_hash  # type: ignore[union-attr]
        bucket = device_token_bucket(token) if token is not None else existing.token_bucket  # type: ignore[union-attr]
        self._upsert(
            Device,
            "devices",
            device["id"],
            token_hash=token_hash,
            token_bucket=bucket,
            **_pick(device, "vehicle_id", "crs", "osmand"),
        )

    def _teacher(self, teacher: dict[str, Any]) -> None:
        obj = self._upsert(
            Teacher,
            "teachers",
            teacher["id"],
            **_pick(teacher, "name", "home_school_id", "vehicle_id"),
        )
        wanted = sorted(
            (a["school_id"], sorted(set(a["weekdays"]))) for a in teacher["assignments"]
        )
        current = [(a.school_id, a.weekdays) for a in obj.assignments]
        if current != wanted:
            obj.assignments = []
            db.session.flush()
            obj.assignments = [TeacherAssignment(school_id=s, weekdays=w) for s, w in wanted]

    def _user(self, user: dict[str, Any]) -> None:
        existing = db.session.scalars(select(User).filter_by(username=user["username"])).first()
        password = user["password"]
        values: dict[str, Any] = {"role": user["role"], "teacher_id": user["teacher_id"]}
        if existing is None:
            existing = User(
                username=user["username"], password_hash=hash_password(password), **values
            )
            db.session.add(existing)
            self.summary.created["users"] += 1
        else:
            changed = _assign(existing, values)
            if password is not None and not verify_password(existing.password_hash, password):
                existing.password_hash = hash_password(password)
                existing.token_version = (existing.token_version or 0) + 1  # log out old tokens
                changed = True
            scopes_before = _scope_ids(existing)
            changed = changed or scopes_before != _wanted_scopes(user)
            (self.summary.updated if changed else self.summary.unchanged)["users"] += 1
        if _scope_ids(existing) != _wanted_scopes(user):
            students, vehicles, schools = _wanted_scopes(user)
            existing.students = [db.session.get(Student, i) for i in students]
            existing.vehicles = [db.session.get(Vehicle, i) for i in vehicles]
            existing.schools = [db.session.get(School, i) for i in schools]

    # -- generic upsert ----------------------------------------------------------------------

    def _upsert(self, model, section: str, key: str, **values: Any):
        obj = db.session.get(model, key)
        if obj is None:
            obj = model(id=key, **values)
            db.session.add(obj)
            self.summary.created[section] += 1
        elif _assign(obj, values):
            self.summary.updated[section] += 1
        else:
            self.summary.unchanged[section] += 1
        return obj


def _pick(item: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: item[k] for k in keys}


def _assign(obj: Any, values: dict[str, Any]) -> bool:
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def _scope_ids(user: User) -> tuple[list[str], list[str], list[str]]:
    return (
        [s.id for s in user.students],
        [v.id for v in user.vehicles],
        [s.id for s in user.schools],
    )


def _wanted_scopes(user: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    return (
        sorted(set(user["student_ids"])),
        sorted(set(user["vehicle_ids"])),
        sorted(set(user["school_ids"])),
    )


__all__ = ["BundleError", "ImportSummary", "import_bundle", "validate_bundle"]
