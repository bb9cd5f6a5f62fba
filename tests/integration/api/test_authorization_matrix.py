"""Who may read what: every endpoint × every role × (own scope, other scope), from one table.

A parent must never read another family's route, stop or child; staff see their schools; an
object outside the caller's scope answers 404, a role that may not use the endpoint at all 403,
no token 401. ``test_every_api_endpoint_is_in_the_matrix`` fails when an endpoint is added
without a row here.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from backend.extensions import db
from backend.models import Event, RouteSubstitution
from tests.conftest import login

USERS = {
    "parent": ("zhang.lanlan", "demo-parent-1"),  # 李明 on zt-am-1 (朱亭学校)
    "driver": ("driver.zhao", "demo-driver-1"),  # bus-07
    "teacher": ("liu.sheng", "demo-teacher-1"),
    "logistics": ("houqin.wang", "demo-logistics-1"),  # 朱亭学校
    "finance": ("caiwu.li", "demo-finance-1"),  # the district's finance office: every teacher
    "admin": ("admin", "demo-admin-1"),
}
ROLES = ("anonymous", *USERS)

# what "own" and "other" mean for each kind of object, seen from the users above
OWN = {"route": "zt-am-1", "vehicle": "bus-07", "trip": "20261109-zt-am-1-bus-07",
       "school": "zhuting", "teacher": "t-liu", "entry": "9001", "member": "longfeng"}
OTHER = {"route": "lf-am-1", "vehicle": "bus-12", "trip": "20261109-lf-am-1-bus-12",
         "school": "longfeng", "teacher": "t-other", "entry": "9002", "member": "no-such-school"}


@dataclass(frozen=True)
class Case:
    method: str
    rule: str  # as in Flask's url_map
    path: str  # with {route}, {vehicle}, {trip}
    expect: dict[str, tuple[int, int | None]]  # role → (own, other); other None: no such object
    body: dict | None = None
    query: dict = field(default_factory=dict)
    setup: Callable | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.rule}"


def everyone(code: int) -> dict[str, tuple[int, None]]:
    return {**{role: (code, None) for role in USERS}, "anonymous": (401, None)}


def only(allowed: dict[str, tuple[int, int | None]]) -> dict[str, tuple[int, int | None]]:
    """``allowed`` roles as given, every other role 403, no token 401."""
    return {"anonymous": (401, 401), **{r: (403, 403) for r in USERS}, **allowed}


def substitute_today(app, ref: dict[str, str]) -> None:
    route_id = ref["route"]
    from backend.live_service import district_calendar
    from backend.models import Route
    from routing.calendar import local_date

    with app.app_context():
        route = db.session.get(Route, route_id)
        today = local_date(time.time(), district_calendar(db.session.connection(),
                                                          route.district_id))
        db.session.merge(RouteSubstitution(route_id=route_id, service_date=today.isoformat(),
                                           vehicle_id="bus-spare", set_by="test",
                                           set_at=time.time()))
        db.session.commit()


def jt808_terminal(app, ref: dict[str, str]) -> None:
    """The vehicle's device is a JT/T 808 terminal, with one text queued to it (id ``entry``)."""
    from backend.models import Device, Jt808Text

    with app.app_context():
        device = db.session.scalars(select(Device).filter_by(vehicle_id=ref["vehicle"])).first()
        device.jt808_phone = f"1380000{ref['entry']}"
        now = time.time()
        db.session.merge(Jt808Text(id=int(ref["entry"]), vehicle_id=ref["vehicle"],
                                   device_id=device.id, text="请回电话", emergency=False,
                                   status="queued", created_at=now, created_by="test",
                                   expires_at=now + 3600, attempts=0))
        db.session.commit()


def subsidy_ledger(app, ref: dict[str, str]) -> None:
    """A teacher outside 朱亭's scope (t-other, home school 龙凤, no assignment at 朱亭), and one
    pending trip of each teacher (entries 9001, 9002), pending again before every request."""
    from backend.models import SubsidyEntry, Teacher

    with app.app_context():
        db.session.merge(Teacher(id="t-other", name="王老师", home_school_id="longfeng"))
        db.session.flush()
        db.session.execute(SubsidyEntry.__table__.delete().where(
            SubsidyEntry.trip_id == f"trip-{ref['teacher']}"))
        db.session.add(SubsidyEntry(
            id=int(ref["entry"]), trip_id=f"trip-{ref['teacher']}", kind="trip", status="pending",
            teacher_id=ref["teacher"], month="2026-11", service_date="2026-11-10",
            from_school_id="zhuting", to_school_id="longfeng", departed_at=1.0, arrived_at=2.0,
            distance_km=8.0, tier=2, per_trip=10.0, amount=0.0, policy_id="2026",
            review_reasons="off_timetable", recorded_by="tracker", recorded_at=3.0))
        db.session.commit()


def assigned_elsewhere(app, ref: dict[str, str]) -> None:
    """t-other (outside 朱亭's scope) is assigned to 龙凤 too, so only scope tells them apart."""
    from backend.models import TeacherAssignment

    subsidy_ledger(app, ref)
    with app.app_context():
        db.session.merge(TeacherAssignment(teacher_id="t-other", school_id="longfeng",
                                           weekdays=[2]))
        db.session.commit()


def reopen_october(app, ref: dict[str, str]) -> None:
    """October open again before each request (closing it is what is tried)."""
    from backend.models import AllowanceEntry, MonthClosing

    with app.app_context():
        db.session.execute(MonthClosing.__table__.delete())
        db.session.execute(AllowanceEntry.__table__.delete())
        db.session.commit()


STAFF_OWN_AND_ALL = {"logistics": (200, 404), "admin": (200, 200)}
FINANCE_ALL = {"finance": (200, 200), "admin": (200, 200)}

MATRIX = [
    Case("GET", "/api/v1/me", "/api/v1/me", everyone(200)),
    Case("GET", "/api/v1/me/notifications", "/api/v1/me/notifications", everyone(200)),
    Case("GET", "/api/v1/me/preferences", "/api/v1/me/preferences", everyone(200)),
    Case("PUT", "/api/v1/me/preferences", "/api/v1/me/preferences", everyone(200),
         body={"notify_before_min": 8, "language": "en"}),
    Case("GET", "/api/v1/stream", "/api/v1/stream", everyone(200)),  # scope filters its events
    Case("GET", "/api/v1/routes/<route_id>/live", "/api/v1/routes/{route}/live",
         only({"parent": (200, 404), **STAFF_OWN_AND_ALL})),
    Case("POST", "/api/v1/routes/<route_id>/messages", "/api/v1/routes/{route}/messages",
         only({"logistics": (201, 404), "admin": (201, 201)}),
         body={"title": "校车晚点", "body": "晚到10分钟"}),
    Case("GET", "/api/v1/routes/<route_id>/vehicle", "/api/v1/routes/{route}/vehicle",
         only(STAFF_OWN_AND_ALL)),
    Case("PUT", "/api/v1/routes/<route_id>/vehicle", "/api/v1/routes/{route}/vehicle",
         only(STAFF_OWN_AND_ALL), body={"vehicle_id": "bus-spare"}),
    Case("DELETE", "/api/v1/routes/<route_id>/vehicle", "/api/v1/routes/{route}/vehicle",
         only({"logistics": (204, 404), "admin": (204, 204)}), setup=substitute_today),
    Case("GET", "/api/v1/trips/<trip_id>/track", "/api/v1/trips/{trip}/track",
         only({"parent": (200, 404), "driver": (200, 404), **STAFF_OWN_AND_ALL})),
    Case("GET", "/api/v1/vehicles/live", "/api/v1/vehicles/live",
         only({"logistics": (200, None), "admin": (200, None)})),
    Case("GET", "/api/v1/vehicles/<vehicle_id>/track", "/api/v1/vehicles/{vehicle}/track",
         only(STAFF_OWN_AND_ALL)),
    Case("GET", "/api/v1/events", "/api/v1/events", only(
        {"logistics": (200, None), "admin": (200, None)})),
    Case("GET", "/api/v1/audit/trips", "/api/v1/audit/trips",
         only(STAFF_OWN_AND_ALL), query={"date": "2026-11-09", "route_id": "{route}"}),
    Case("GET", "/api/v1/audit/eta", "/api/v1/audit/eta",
         only(STAFF_OWN_AND_ALL), query={"date": "2026-11-09", "route_id": "{route}"}),
    Case("GET", "/api/v1/audit/access", "/api/v1/audit/access",  # who read which route
         only({"admin": (200, None)}), query={"from": "2026-11-09", "to": "2026-11-09"}),
    Case("GET", "/api/v1/gtfs-rt/vehicle-positions.pb", "/api/v1/gtfs-rt/vehicle-positions.pb",
         only({"logistics": (200, None), "admin": (200, None)})),
    Case("GET", "/api/v1/gtfs-rt/trip-updates.pb", "/api/v1/gtfs-rt/trip-updates.pb",
         only({"logistics": (200, None), "admin": (200, None)})),
    Case("GET", "/api/v1/admin/rejects", "/api/v1/admin/rejects",
         only({"admin": (200, None)})),
    Case("POST", "/api/v1/meals/reports", "/api/v1/meals/reports",
         only({"logistics": (201, 404), "admin": (201, 201)}),
         body={"school_id": "{school}", "date": "2026-11-09", "boarders_present": 150,
               "meals_served": 150, "meals_received": 150}),
    Case("GET", "/api/v1/audit/meals", "/api/v1/audit/meals",
         only(STAFF_OWN_AND_ALL), query={"date": "2026-11-09", "school_id": "{school}"}),
    Case("GET", "/api/v1/subsidies", "/api/v1/subsidies",
         only({"teacher": (200, 404), **STAFF_OWN_AND_ALL, **FINANCE_ALL}),
         query={"teacher_id": "{teacher}", "month": "2026-11"}, setup=subsidy_ledger),
    Case("POST", "/api/v1/subsidies/<int:entry_id>/approve", "/api/v1/subsidies/{entry}/approve",
         only(STAFF_OWN_AND_ALL), body={}, setup=subsidy_ledger),
    Case("POST", "/api/v1/subsidies/<int:entry_id>/reject", "/api/v1/subsidies/{entry}/reject",
         only(STAFF_OWN_AND_ALL), body={"reason": "没有走教安排"}, setup=subsidy_ledger),
    Case("GET", "/api/v1/subsidies/grid", "/api/v1/subsidies/grid",
         only({"logistics": (200, None), **FINANCE_ALL})),
    Case("PUT", "/api/v1/subsidies/grid/<school_id>", "/api/v1/subsidies/grid/{member}",
         only({"finance": (200, 404), "admin": (200, 404)}),
         body={"distance_km": 6.5, "reason": "实测", "effective_from": "2026-11-01"}),
    Case("POST", "/api/v1/subsidies/attendance", "/api/v1/subsidies/attendance",
         only({"logistics": (201, 404), "admin": (201, 201)}), setup=assigned_elsewhere,
         body={"teacher_id": "{teacher}", "school_id": "longfeng", "date": "2026-11-10"}),
    Case("GET", "/api/v1/subsidies/months/<month>", "/api/v1/subsidies/months/2026-10",
         only({"finance": (200, None), "admin": (200, None)})),
    Case("POST", "/api/v1/subsidies/months/<month>/close",
         "/api/v1/subsidies/months/2026-10/close",
         only({"finance": (200, None), "admin": (200, None)}), body={}, setup=reopen_october),
    Case("POST", "/api/v1/subsidies/months/<month>/export",
         "/api/v1/subsidies/months/2026-11/export",
         only({"finance": (200, None), "admin": (200, None)}), body={}),
    Case("GET", "/api/v1/subsidies/changes", "/api/v1/subsidies/changes",
         only({"finance": (200, None), "admin": (200, None)}), query={"month": "2026-11"}),
    Case("POST", "/api/v1/vehicles/<vehicle_id>/texts", "/api/v1/vehicles/{vehicle}/texts",
         only({"logistics": (202, 404), "admin": (202, 202)}), body={"text": "请回电话给学校"},
         setup=jt808_terminal),
    Case("GET", "/api/v1/vehicles/<vehicle_id>/texts", "/api/v1/vehicles/{vehicle}/texts",
         only({"logistics": (200, 404), "admin": (200, 200)}), setup=jt808_terminal),
    Case("GET", "/api/v1/vehicles/<vehicle_id>/texts/<int:text_id>",
         "/api/v1/vehicles/{vehicle}/texts/{entry}",
         only({"logistics": (200, 404), "admin": (200, 200)}), setup=jt808_terminal),
    Case("POST", "/api/v1/plans", "/api/v1/plans", only({"admin": (200, None)}),
         body={"time_limit_s": 2}),
    Case("POST", "/api/v1/admin/import", "/api/v1/admin/import",
         only({"admin": (200, None)}), body={"stops": []}),
]

# Endpoints that are not for people: devices authenticate with their own tokens (tested in
# tests/integration/ingest), and logging in is what gives a token.
NOT_FOR_USERS = {
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/ingest/pings"),
    ("POST", "/api/v1/ingest/scans"),
    ("GET", "/api/v1/ingest/osmand"),
    ("POST", "/api/v1/ingest/osmand"),
}


def api_endpoints(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule.startswith(("/api/v1/docs",
                                                                          "/api/v1/openapi")):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((method, rule.rule))
    return found


def test_every_api_endpoint_is_in_the_matrix(app):
    listed = {(c.method, c.rule) for c in MATRIX} | NOT_FOR_USERS
    assert api_endpoints(app) - listed == set(), "add the new endpoint to MATRIX"
    assert listed - api_endpoints(app) == set(), "MATRIX names an endpoint that does not exist"


def trips_on_record(app) -> None:
    """One trip of each route on 2026-11-09, as the tracker records them."""
    started = dt.datetime(2026, 11, 8, 22, 50, tzinfo=dt.UTC).timestamp()
    with app.app_context():
        for ref in (OWN, OTHER):
            route_id, vehicle_id = ref["route"], ref["vehicle"]
            for kind, ts in (("trip_started", started), ("trip_completed", started + 1800)):
                db.session.add(Event(kind=kind, ts=ts, vehicle_id=vehicle_id, route_id=route_id,
                                     trip_id=ref["trip"], run_id=route_id, details={},
                                     created_at=time.time()))
        db.session.commit()


def fill(template, ref: dict[str, str]):
    if isinstance(template, str):
        return template.format(**ref)
    if isinstance(template, dict):
        return {k: fill(v, ref) for k, v in template.items()}
    return template


@pytest.mark.parametrize("case", MATRIX, ids=str)
def test_each_role_gets_the_expected_status_in_and_out_of_its_scope(client, app, imported, case):
    trips_on_record(app)
    tokens = {role: login(client, *who) for role, who in USERS.items()}
    wrong = []
    for role in ROLES:
        for scope, ref in (("own", OWN), ("other", OTHER)):
            expected = case.expect[role][0 if scope == "own" else 1]
            if expected is None:
                continue
            if case.setup is not None:
                case.setup(app, ref)
            response = client.open(fill(case.path, ref), method=case.method,
                                   headers=tokens.get(role, {}), json=fill(case.body, ref),
                                   query_string=fill(case.query, ref))
            response.close()  # a stream is not read here: its generator ends with the response
            if response.status_code != expected:
                wrong.append(f"{role}/{scope}: {response.status_code} != {expected} "
                             f"{response.get_data(as_text=True)[:200]}")
            elif response.status_code >= 400:
                assert response.mimetype == "application/problem+json", (role, scope)
    assert wrong == []


def test_the_grid_shows_logistics_only_their_own_districts_clusters(client, app, imported):
    """GET /subsidies/grid: a logistics user of another district sees none of 渌口's member
    schools; 渌口's own logistics and the finance office see them."""
    from backend.models import District, School, User
    from backend.security import hash_password

    with app.app_context():
        db.session.add(District(id="other-county", name="另一个县", timezone="Asia/Shanghai"))
        db.session.flush()
        school = School(id="other-school", district_id="other-county", name="外县学校",
                        lat=28.0, lon=113.0)
        db.session.add(school)
        db.session.add(User(username="houqin.waixian", role="logistics",
                            password_hash=hash_password("demo-logistics-x"), schools=[school]))
        db.session.commit()
    rows = {}
    for who in (("houqin.waixian", "demo-logistics-x"), USERS["logistics"], USERS["finance"]):
        response = client.get("/api/v1/subsidies/grid", headers=login(client, *who),
                              query_string={"date": "2026-11-09"})
        assert response.status_code == 200, response.get_json()
        rows[who[0]] = [row["school_id"] for row in response.get_json()]
    assert rows == {"houqin.waixian": [], "houqin.wang": ["longfeng"], "caiwu.li": ["longfeng"]}
