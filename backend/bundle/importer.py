"""Upsert a validated district bundle: import twice = import once, all or nothing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import delete, select

from backend.bundle.references import check_references
from backend.bundle.schema import SECTIONS
from backend.errors import flatten_errors
from backend.extensions import db
from backend.models import (
    CalendarDay,
    Cluster,
    ClusterMember,
    Device,
    DeviceModel,
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


VERBS = ("created", "updated", "unchanged", "deleted", "deactivated", "kept")

# Who an import comes from, and whose runs it may change or delete (``RouteRun.source``). The
# district's timetable is one thing whether it came as a bundle or as a GTFS feed converted to
# one; the demo owns only the runs it generated for its simulated buses; no import owns the runs
# made for a substitute bus. What an import does not own it leaves alone and counts as ``kept``.
OWNS: dict[str, frozenset[str]] = {
    "bundle": frozenset({"bundle", "gtfs"}),
    "gtfs": frozenset({"bundle", "gtfs"}),
    "demo": frozenset({"demo"}),
}


@dataclass
class ImportSummary:
    """How many things of each kind an import created, updated, left unchanged, deleted or
    deactivated. Kinds are the bundle's sections (``routes``, ``users``, …) and what they nest:
    ``runs`` (a route's timetable, one per run), ``route_stops``, ``calendar_days``,
    ``teacher_assignments``, ``vehicle_routes`` and ``user_scopes`` (one per link). A thing whose
    nested things changed is itself ``updated``: a route whose stop time moved is an updated route
    with an updated run. ``kept``: what the import would have deleted but does not own (a listed
    route's runs made by the demo or for a substitute bus), by source in ``kept_sources``."""

    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    deleted: Counter[str] = field(default_factory=Counter)
    deactivated: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    kept_sources: dict[str, Counter[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {verb: dict(sorted(getattr(self, verb).items())) for verb in VERBS}
        out["kept_sources"] = {
            kind: dict(sorted(by.items())) for kind, by in sorted(self.kept_sources.items())
        }
        return out

    def lines(self) -> list[str]:
        """The summary as the command line prints it: one line per verb that counted anything."""
        out = [
            f"{verb}: " + ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
            for verb in VERBS[:-1]
            if (counts := getattr(self, verb))
        ]
        if self.kept:
            out.append(
                "kept (not this import's to change or delete): "
                + ", ".join(
                    f"{kind} {n} ("
                    + ", ".join(f"{source} {m}" for source, m in sorted(self.kept_sources[kind].items()))
                    + ")"
                    for kind, n in sorted(self.kept.items())
                )
            )
        return out

    def _keep(self, kind: str, source: str) -> None:
        self.kept[kind] += 1
        self.kept_sources.setdefault(kind, Counter())[source] += 1

    def tally(self, kind: str, current: dict[Any, Any], wanted: dict[Any, Any]) -> bool:
        """Count ``wanted`` against ``current`` (key → value) as created, updated, unchanged
        and deleted ``kind``s; True when anything differs."""
        for key, value in wanted.items():
            if key not in current:
                self.created[kind] += 1
            elif current[key] != value:
                self.updated[kind] += 1
            else:
                self.unchanged[kind] += 1
        gone = current.keys() - wanted.keys()
        if gone:
            self.deleted[kind] += len(gone)
        return bool(gone) or any(current.get(k, _MISSING) != v for k, v in wanted.items())


_MISSING = object()


def validate_bundle(document: Any, source: str = "bundle") -> dict[str, Any]:
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
    for path, messages in check_references(bundle, document, positions, OWNS[source]).items():
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


def import_bundle(document: Any, source: str = "bundle") -> ImportSummary:
    """Validate everything, then write everything in one transaction (or nothing).

    ``source`` says who sends it (a key of ``OWNS``): the runs it creates carry it, and of a
    listed route's runs it changes or deletes only those it owns."""
    if source not in OWNS:
        raise ValueError(f"unknown import source {source!r}; one of {sorted(OWNS)}")
    bundle = validate_bundle(document, source)
    summary = ImportSummary()
    try:
        _Upserter(bundle, summary, source).run()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return summary


class _Upserter:
    def __init__(self, bundle: dict[str, Any], summary: ImportSummary, source: str):
        self.bundle = bundle
        self.summary = summary
        self.source = source
        self.owns = OWNS[source]
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
            self._vehicle(vehicle)
        for model in b["device_models"]:
            self._upsert(DeviceModel, "device_models", model["id"],
                         **_pick(model, "name", "jt808_accept_bad_check"))
        db.session.flush()
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
            self._subsidy_policy(b["subsidy_policy"])
        for cluster in b["clusters"]:
            self._cluster(cluster)

    # -- sections ---------------------------------------------------------------------------

    def _district(self) -> str:
        district = self.bundle["district"]
        if district is None:
            return db.session.scalars(select(District.id)).first() or ""
        obj, state = self._upsert_row(District, district["id"], **_pick(district, "name", "timezone"))
        calendar = district["calendar"]
        changed = False
        if calendar is not None:
            wanted = {d.isoformat(): ("holiday", None) for d in calendar["holidays"]}
            wanted.update(
                {
                    e["date"].isoformat(): ("school_day", e["as_weekday"])
                    for e in calendar["extra_school_days"]
                }
            )
            current = {c.date: (c.kind, c.as_weekday) for c in obj.calendar_days}
            changed = self.summary.tally("calendar_days", current, wanted)
            if changed:
                obj.calendar_days = []
                db.session.flush()
                obj.calendar_days = [
                    CalendarDay(date=d, kind=k, as_weekday=w)
                    for d, (k, w) in sorted(wanted.items())
                ]
                db.session.flush()
        self._count("district", state, changed)
        return district["id"]

    def _route(self, route: dict[str, Any], school_ids: set[str]) -> None:
        obj, state = self._upsert_row(
            Route,
            route["id"],
            district_id=self.district_id,
            **_pick(route, "name", "school_id", "path", "corridor_m"),
        )
        wanted_stops = {
            i: (
                None if s["stop_id"] in school_ids else s["stop_id"],
                s["stop_id"] if s["stop_id"] in school_ids else None,
            )
            for i, s in enumerate(route["stops"])
        }
        current_stops = {s.sequence: (s.stop_id, s.school_id) for s in obj.stops}
        stops_changed = self.summary.tally("route_stops", current_stops, wanted_stops)
        if stops_changed:
            obj.stops = []
            db.session.flush()
            obj.stops = [
                RouteStop(sequence=i, stop_id=stop_id, school_id=school_id)
                for i, (stop_id, school_id) in sorted(wanted_stops.items())
            ]
        runs_changed = self._runs(obj, _timetable(route))
        self._count("routes", state, stops_changed or runs_changed)

    def _runs(self, route: Route, wanted: dict[str, tuple]) -> bool:
        """Create, update and delete the route's runs this import owns, one by one; the others
        are left alone (validation made sure none of them is listed). True when any changed."""
        stored = {r.id: r for r in route.runs if r.source in self.owns}
        for other in route.runs:
            if other.source not in self.owns:
                self.summary._keep("runs", other.source)
        current = {run_id: (r.times_s, r.days, r.dates, r.vehicle_id)
                   for run_id, r in stored.items()}
        changed = self.summary.tally("runs", current, wanted)
        if not changed:
            return False
        for run_id in current.keys() - wanted.keys():
            route.runs.remove(stored[run_id])
        db.session.flush()  # a run moved to a route later in the bundle is gone before it comes
        # a run this route does not hold yet may be moving here from a route later in the bundle
        moving = {
            r.id: r
            for r in db.session.scalars(
                select(RouteRun).where(RouteRun.id.in_(wanted.keys() - stored.keys()))
            )
        }
        for run_id, (times_s, days, dates, vehicle_id) in wanted.items():
            # a run keeps the source it was made with: bundle and GTFS share the timetable
            row = stored.get(run_id) or moving.get(run_id) or RouteRun(id=run_id, source=self.source)
            if row not in route.runs:
                route.runs.append(row)
            _assign(row, {"times_s": times_s, "days": days, "dates": dates,
                          "vehicle_id": vehicle_id})
        return True

    def _vehicle(self, vehicle: dict[str, Any]) -> None:
        obj, state = self._upsert_row(
            Vehicle,
            vehicle["id"],
            district_id=self.district_id,
            **_pick(vehicle, "kind", "plate", "seats", "speed_limit_kmh"),
        )
        db.session.flush()
        route_ids = sorted(set(vehicle["route_ids"]))
        links_changed = self.summary.tally(
            "vehicle_routes", {r.id: True for r in obj.routes}, dict.fromkeys(route_ids, True)
        )
        if links_changed:
            obj.routes = [db.session.get(Route, r) for r in route_ids]
        self._count("vehicles", state, links_changed)

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
            **_pick(device, "vehicle_id", "model", "crs", "osmand", "jt808_phone",
                    "jt808_accept_bad_check"),
        )

    def _teacher(self, teacher: dict[str, Any]) -> None:
        obj, state = self._upsert_row(
            Teacher, teacher["id"],
            **_pick(teacher, "name", "home_school_id", "vehicle_id", "card_id"),
        )
        wanted = {a["school_id"]: sorted(set(a["weekdays"])) for a in teacher["assignments"]}
        current = {a.school_id: a.weekdays for a in obj.assignments}
        changed = self.summary.tally("teacher_assignments", current, wanted)
        if changed:
            obj.assignments = []
            db.session.flush()
            obj.assignments = [
                TeacherAssignment(school_id=s, weekdays=w) for s, w in sorted(wanted.items())
            ]
        self._count("teachers", state, changed)

    def _user(self, user: dict[str, Any]) -> None:
        existing = db.session.scalars(select(User).filter_by(username=user["username"])).first()
        password = user["password"]
        values: dict[str, Any] = {"role": user["role"], "teacher_id": user["teacher_id"]}
        if existing is None:
            existing = User(
                username=user["username"], password_hash=hash_password(password), **values
            )
            db.session.add(existing)
            state = "created"
        else:
            state = "updated" if _assign(existing, values) else "unchanged"
            if password is not None and not verify_password(existing.password_hash, password):
                existing.password_hash = hash_password(password)
                existing.token_version = (existing.token_version or 0) + 1  # log out old tokens
                state = "updated"
        current, wanted = _scope_ids(existing), _wanted_scopes(user)
        scopes_changed = self.summary.tally(
            "user_scopes", _scope_links(current), _scope_links(wanted)
        )
        if scopes_changed:
            students, vehicles, schools = wanted
            existing.students = [db.session.get(Student, i) for i in students]
            existing.vehicles = [db.session.get(Vehicle, i) for i in vehicles]
            existing.schools = [db.session.get(School, i) for i in schools]
        self._count("users", state, scopes_changed)

    def _subsidy_policy(self, policy: dict[str, Any]) -> None:
        """The bundle's policy is the district's active one; any other active one is
        deactivated (kept: its entries were priced with it)."""
        self._upsert(
            SubsidyPolicy,
            "subsidy_policy",
            policy["id"],
            district_id=self.district_id,
            active=True,
            **_pick(policy, "currency", "monthly_cap", "tiers", "levels", "road_factor"),
        )
        db.session.flush()
        others = db.session.scalars(
            select(SubsidyPolicy).where(
                SubsidyPolicy.district_id == self.district_id,
                SubsidyPolicy.id != policy["id"],
                SubsidyPolicy.active.is_(True),
            )
        ).all()
        for other in others:
            other.active = False
            self.summary.deactivated["subsidy_policy"] += 1

    def _cluster(self, cluster: dict[str, Any]) -> None:
        """A cluster's members are exactly those listed (a school leaves by being left out)."""
        state = self._upsert_row(Cluster, cluster["id"], district_id=self.district_id,
                               **_pick(cluster, "name", "core_school_id"))[1]
        db.session.flush()
        current = set(db.session.scalars(select(ClusterMember.school_id).where(
            ClusterMember.cluster_id == cluster["id"])))
        wanted = set(cluster["member_school_ids"])
        changed = current != wanted
        if changed:
            db.session.execute(delete(ClusterMember).where(
                ClusterMember.cluster_id == cluster["id"]))
            db.session.add_all(ClusterMember(cluster_id=cluster["id"], school_id=s)
                               for s in sorted(wanted))
        self._count("clusters", state, changed)

    # -- generic upsert ----------------------------------------------------------------------

    def _upsert(self, model, section: str, key: str, /, **values: Any):
        obj, state = self._upsert_row(model, key, **values)
        self._count(section, state, False)
        return obj

    def _upsert_row(self, model, key: str, /, **values: Any) -> tuple[Any, str]:
        """Create or update the row ``key``; returns it and ``created``/``updated``/``unchanged``
        (counted by the caller, which may have nested changes to add)."""
        obj = db.session.get(model, key)
        if obj is None:
            obj = model(id=key, **values)
            db.session.add(obj)
            return obj, "created"
        return obj, "updated" if _assign(obj, values) else "unchanged"

    def _count(self, kind: str, state: str, nested_changed: bool) -> None:
        if state == "unchanged" and nested_changed:
            state = "updated"
        getattr(self.summary, state)[kind] += 1


def _timetable(route: dict[str, Any]) -> dict[str, tuple]:
    """The route's runs as stored: id → (times_s, days, dates, vehicle_id)."""
    if route["runs"] is not None:
        return {
            r["id"]: (
                r["times"],
                r["days"],
                [d.isoformat() for d in r["dates"]] if r["dates"] is not None else None,
                r["vehicle_id"],
            )
            for r in route["runs"]
        }
    if route["stops"][0]["time"] is not None:
        return {route["id"]: ([s["time"] for s in route["stops"]], route["days"], None, None)}
    return {}


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


def _scope_links(scopes: tuple[list[str], list[str], list[str]]) -> dict[tuple[str, str], bool]:
    fields = ("student_ids", "vehicle_ids", "school_ids")
    return {(f, i): True for f, ids in zip(fields, scopes, strict=True) for i in ids}


def _wanted_scopes(user: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    return (
        sorted(set(user["student_ids"])),
        sorted(set(user["vehicle_ids"])),
        sorted(set(user["school_ids"])),
    )


__all__ = ["OWNS", "BundleError", "ImportSummary", "import_bundle", "validate_bundle"]
