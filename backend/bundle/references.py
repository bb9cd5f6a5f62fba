"""Cross-reference checks of a bundle against itself and what the database already holds.

Every problem is reported with its JSON path, e.g. ``routes[2].stops[0].stop_id: unknown stop "x"``;
nothing stops at the first one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from backend.extensions import db
from backend.models import (
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
    Teacher,
    User,
    Vehicle,
)
from backend.models.fleet import VEHICLE_KINDS

Errors = dict[str, list[str]]
Positions = dict[str, list[int]]


def numbered(bundle: dict[str, Any], positions: Positions, section: str):
    """``(index in the document, loaded item)`` of a section: the items that failed their schema
    are not in ``bundle`` but keep their place, so a path names the item the sender wrote."""
    return zip(positions[section], bundle[section], strict=True)


class Known:
    """Ids that exist after the import: those in the bundle plus those already stored."""

    def __init__(self, bundle: dict[str, Any], document: dict[str, Any]):
        def ids(model, section: str) -> set[str]:
            stored = set(db.session.scalars(select(model.id)))
            # ids declared by the raw document count even where that object is malformed: its
            # own error is reported already, and "unknown" on top would mislead
            raw = document.get(section)
            declared = (
                {item.get("id") for item in raw if isinstance(item, dict)}
                if isinstance(raw, list)
                else set()
            )
            return stored | {i for i in declared if isinstance(i, str)}

        self.schools = ids(School, "schools")
        self.stops = ids(Stop, "stops")
        self.routes = ids(Route, "routes")
        self.vehicles = ids(Vehicle, "vehicles")
        self.students = ids(Student, "students")
        self.teachers = ids(Teacher, "teachers")
        self.device_models = ids(DeviceModel, "device_models")
        self.devices_stored = set(db.session.scalars(select(Device.id)))
        self.users_stored = set(db.session.scalars(select(User.username)))
        self.vehicle_kind = dict(db.session.execute(select(Vehicle.id, Vehicle.kind)).all())
        self.vehicle_kind.update({v["id"]: v["kind"] for v in bundle["vehicles"]})
        for raw in document.get("vehicles") or []:
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                self.vehicle_kind.setdefault(raw["id"], raw.get("kind"))
        self.route_places: dict[str, list[str]] = {}
        for route_stop in db.session.scalars(select(RouteStop).order_by(RouteStop.sequence)):
            self.route_places.setdefault(route_stop.route_id, []).append(route_stop.place_id)
        for route in bundle["routes"]:
            self.route_places[route["id"]] = [s["stop_id"] for s in route["stops"]]


def check_references(
    bundle: dict[str, Any], document: dict[str, Any], positions: Positions, owns: frozenset[str]
) -> Errors:
    errors: Errors = {}

    def add(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    known = Known(bundle, document)
    _check_district(bundle, add)
    for section in ("schools", "stops", "routes", "vehicles", "devices", "students", "teachers"):
        _check_unique(numbered(bundle, positions, section), "id", section, add)
    _check_unique(numbered(bundle, positions, "users"), "username", "users", add)

    for i, stop in numbered(bundle, positions, "stops"):
        if stop["id"] in known.schools:
            add(
                f"stops[{i}].id",
                f'"{stop["id"]}" is already a school id; a route stop naming it would be ambiguous',
            )

    _check_runs(bundle, positions, owns, add)
    for i, route in numbered(bundle, positions, "routes"):
        _ref(known.schools, route["school_id"], f"routes[{i}].school_id", "school", add)
        for j, stop in enumerate(route["stops"]):
            if stop["stop_id"] not in known.stops | known.schools:
                add(f"routes[{i}].stops[{j}].stop_id", f'unknown stop "{stop["stop_id"]}"')
        for j, run in enumerate(route["runs"] or ()):
            _ref(known.vehicles, run["vehicle_id"], f"routes[{i}].runs[{j}].vehicle_id",
                 "vehicle", add)

    for i, vehicle in numbered(bundle, positions, "vehicles"):
        for j, route_id in enumerate(vehicle["route_ids"]):
            _ref(known.routes, route_id, f"vehicles[{i}].route_ids[{j}]", "route", add)

    phones = Counter(d["jt808_phone"].lstrip("0") for _, d in numbered(bundle, positions, "devices")
                     if d["jt808_phone"])
    for i, device in numbered(bundle, positions, "devices"):
        phone = device["jt808_phone"]
        if phone and phones[phone.lstrip("0")] > 1:
            add(f"devices[{i}].jt808_phone", f'"{phone}" is the phone of {phones[phone.lstrip("0")]} '
                "devices (leading zeros aside): the gateway could not tell them apart")
        _ref(known.vehicles, device["vehicle_id"], f"devices[{i}].vehicle_id", "vehicle", add)
        _ref(known.device_models, device["model"], f"devices[{i}].model", "device model", add)
        if device["token"] is None and device["id"] not in known.devices_stored:
            add(f"devices[{i}].token", "a new device needs a token")

    _check_students(bundle, positions, known, add)

    _check_clusters(bundle, positions, known, add)
    for i, teacher in numbered(bundle, positions, "teachers"):
        _ref(
            known.schools, teacher["home_school_id"], f"teachers[{i}].home_school_id", "school", add
        )
        vehicle_id = teacher["vehicle_id"]
        kind = known.vehicle_kind.get(vehicle_id)
        if (
            _ref(known.vehicles, vehicle_id, f"teachers[{i}].vehicle_id", "vehicle", add)
            and kind in VEHICLE_KINDS
            and kind != "teacher_car"
        ):
            add(f"teachers[{i}].vehicle_id", f'vehicle "{vehicle_id}" is not a teacher_car')
        for j, assignment in enumerate(teacher["assignments"]):
            _ref(
                known.schools,
                assignment["school_id"],
                f"teachers[{i}].assignments[{j}].school_id",
                "school",
                add,
            )

    for i, user in numbered(bundle, positions, "users"):
        if user["password"] is None and user["username"] not in known.users_stored:
            add(f"users[{i}].password", "a new user needs a password")
        for field, ids, what in (
            ("student_ids", known.students, "student"),
            ("vehicle_ids", known.vehicles, "vehicle"),
            ("school_ids", known.schools, "school"),
        ):
            for j, ref in enumerate(user[field]):
                _ref(ids, ref, f"users[{i}].{field}[{j}]", what, add)
        _ref(known.teachers, user["teacher_id"], f"users[{i}].teacher_id", "teacher", add)
    return errors


def _check_clusters(bundle: dict[str, Any], positions: Positions, known: Known, add) -> None:
    """Every school a cluster names exists; a school is in one cluster at most."""
    listed = {c["id"] for c in bundle["clusters"]}
    owner = {school: cluster for school, cluster in db.session.execute(
        select(ClusterMember.school_id, ClusterMember.cluster_id)).all() if cluster not in listed}
    owner.update({core: cluster for cluster, core in db.session.execute(
        select(Cluster.id, Cluster.core_school_id)).all() if cluster not in listed})
    for i, cluster in numbered(bundle, positions, "clusters"):
        schools = [("core_school_id", cluster["core_school_id"])] + [
            (f"member_school_ids[{j}]", s) for j, s in enumerate(cluster["member_school_ids"])]
        for field, school in schools:
            path = f"clusters[{i}].{field}"
            if _ref(known.schools, school, path, "school", add):
                other = owner.setdefault(school, cluster["id"])
                if other != cluster["id"]:
                    add(path, f'school "{school}" is already in cluster "{other}"')


def _ref(known: set[str], ref: str | None, path: str, what: str, add) -> bool:
    """Record an unknown reference; return True when ``ref`` is set and known."""
    if ref is None:
        return False
    if ref not in known:
        add(path, f'unknown {what} "{ref}"')
        return False
    return True


def _check_unique(
    items: Iterable[tuple[int, dict[str, Any]]], key: str, section: str, add
) -> None:
    items = list(items)
    counts = Counter(item[key] for _, item in items)
    for i, item in items:
        if counts[item[key]] > 1:
            add(f"{section}[{i}].{key}", f'"{item[key]}" appears {counts[item[key]]} times')


def _check_district(bundle: dict[str, Any], add) -> None:
    if bundle["district"] is not None:
        return
    stored = db.session.scalars(select(District.id)).all()
    has_content = any(bundle[k] for k in ("schools", "stops", "routes", "vehicles", "teachers"))
    if not stored and has_content:
        add("district", "the first import must name the district")
    elif len(stored) > 1 and has_content:
        add("district", f"several districts are stored ({', '.join(stored)}); name one")


SOURCE_NAMES = {
    "bundle": "a bundle",
    "gtfs": "a GTFS import",
    "demo": "the demo's simulated buses",
    "substitute": "a substitute bus",
}


def _check_runs(
    bundle: dict[str, Any], positions: Positions, owns: frozenset[str], add
) -> None:
    """Run ids are unique across routes; a listed run may not be one the import does not own
    (the demo's, a substitute's), and the runs the import keeps on a listed route because it
    does not own them must still fit the route's stops."""
    stored = db.session.execute(
        select(RouteRun.id, RouteRun.route_id, RouteRun.source, RouteRun.times_s)
    ).all()
    in_bundle = {route["id"] for route in bundle["routes"]}
    # a run stays on its route unless the import owns it and lists its route (then the route's
    # runs in the bundle are all it keeps of its own)
    owner = {r.id: r.route_id for r in stored if r.route_id not in in_bundle or r.source not in owns}
    source = {r.id: r.source for r in stored}
    kept: dict[str, list[Any]] = {}
    for r in stored:
        if r.route_id in in_bundle and r.source not in owns:
            kept.setdefault(r.route_id, []).append(r)
    for i, route in numbered(bundle, positions, "routes"):
        run_ids = [r["id"] for r in route["runs"]] if route["runs"] is not None else [route["id"]]
        for j, run_id in enumerate(run_ids):
            path = f"routes[{i}].runs[{j}].id" if route["runs"] is not None else f"routes[{i}].id"
            made_by = source.get(run_id)
            if made_by is not None and made_by not in owns:
                add(
                    path,
                    f'run id "{run_id}" belongs to {SOURCE_NAMES.get(made_by, made_by)} '
                    f'(source "{made_by}"), not to this import: give this run another id',
                )
            elif run_id in owner and owner[run_id] != route["id"]:
                add(path, f'run id "{run_id}" already belongs to route "{owner[run_id]}"')
            owner[run_id] = route["id"]
        for run in kept.get(route["id"], ()):
            if len(run.times_s) != len(route["stops"]):
                add(
                    f"routes[{i}].stops",
                    f"{len(route['stops'])} stops, but the route's run \"{run.id}\", made by "
                    f"{SOURCE_NAMES.get(run.source, run.source)} and not this import's to change "
                    f"or delete, has {len(run.times_s)} times: the route's stops cannot change "
                    "while that run is in its timetable",
                )


def _check_students(bundle: dict[str, Any], positions: Positions, known: Known, add) -> None:
    stored_cards = dict(
        db.session.execute(
            select(Student.card_id, Student.id).where(Student.card_id.is_not(None))
        ).all()
    )
    bundle_ids = {s["id"] for s in bundle["students"]}
    card_owner = {card: sid for card, sid in stored_cards.items() if sid not in bundle_ids}
    for i, student in numbered(bundle, positions, "students"):
        _ref(known.schools, student["school_id"], f"students[{i}].school_id", "school", add)
        route_ok = _ref(known.routes, student["route_id"], f"students[{i}].route_id", "route", add)
        stop_id = student["stop_id"]
        if stop_id is not None:
            if student["route_id"] is None:
                add(f"students[{i}].stop_id", "a stop needs the student's route_id")
            elif (
                route_ok
                and student["route_id"] in known.route_places
                and stop_id not in known.route_places[student["route_id"]]
            ):
                add(
                    f"students[{i}].stop_id",
                    f'stop "{stop_id}" is not on route "{student["route_id"]}"',
                )
        card = student["card_id"]
        if card is not None:
            if card in card_owner and card_owner[card] != student["id"]:
                add(
                    f"students[{i}].card_id",
                    f'card "{card}" already belongs to student "{card_owner[card]}"',
                )
            card_owner[card] = student["id"]
    _check_teacher_cards(bundle, positions, card_owner, add)


def _check_teacher_cards(bundle: dict[str, Any], positions: Positions,
                         student_cards: dict[str, str], add) -> None:
    """A teacher's card is no student's and no other teacher's: a scan names one person."""
    listed = {t["id"] for t in bundle["teachers"]}
    owner = {card: f'teacher "{tid}"' for card, tid in db.session.execute(
        select(Teacher.card_id, Teacher.id).where(Teacher.card_id.is_not(None))).all()
        if tid not in listed}
    owner.update({card: f'student "{sid}"' for card, sid in student_cards.items()})
    for i, teacher in numbered(bundle, positions, "teachers"):
        card = teacher.get("card_id")
        if card is None:
            continue
        if card in owner and owner[card] != f'teacher "{teacher["id"]}"':
            add(f"teachers[{i}].card_id", f'card "{card}" already belongs to {owner[card]}')
        owner[card] = f'teacher "{teacher["id"]}"'

