"""The subsidy ledger's tier boundaries and monthly cap, and meal reports refused for bad input
(nothing written), and the cut-off reminder of a missing report."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.extensions import db
from backend.meals_service import remind_missing_reports
from backend.models import MealReport, Notification, SubsidyEntry
from backend.scheduler import MEAL_REMINDER_JOB_ID, make_scheduler
from backend.subsidy_service import book_trips
from routing.model import Event
from tests.conftest import login
from tests.drives import local_ts

WANG = ("houqin.wang", "demo-logistics-1")


def trip(day: dt.date, km: float, hour: int = 8, on_timetable: bool = True) -> Event:
    departed = local_ts(day, f"{hour:02d}:00:00")
    return Event(kind="teacher_trip_completed", ts=departed + 900, vehicle_id="car-liu",
                 route_id=None, trip_id=None, run_id=None, stop_id="longfeng", details={
                     "teacher_id": "t-liu", "from_school_id": "zhuting",
                     "to_school_id": "longfeng", "departed_at": departed,
                     "arrived_at": departed + 900, "duration_s": 900.0, "path_km": km,
                     "straight_km": 5.5, "matches_assignment": on_timetable, "ping_count": 30,
                     "service_date": day.isoformat()})


@pytest.fixture
def no_cluster(app, imported):
    """The old per-trip tiers alone: 朱亭 and 龙凤 in no cluster, so a trip between them is paid
    on what was driven (in a cluster the grid distance caps it: test_allowance_month.py)."""
    from backend.models import Cluster, ClusterMember

    with app.app_context():
        db.session.execute(ClusterMember.__table__.delete())
        db.session.execute(Cluster.__table__.delete())
        db.session.commit()


def book(app, events):
    with app.app_context(), db.engine.begin() as conn:
        return book_trips(conn, events)


def entries(app):
    with app.app_context():
        return [(e.distance_km, e.tier, e.amount, e.cap_applied) for e in db.session.query(
            SubsidyEntry).order_by(SubsidyEntry.departed_at)]


def test_tier_boundaries_belong_to_the_higher_tier(app, imported, no_cluster):
    day = dt.date(2026, 10, 13)
    book(app, [trip(day, km, hour) for hour, km in
               [(7, 4.999), (8, 5.0), (9, 14.999), (10, 15.0), (11, 0.0)]])
    assert entries(app) == [(4.999, 1, 0.0, False), (5.0, 2, 10.0, False),
                            (14.999, 2, 10.0, False), (15.0, 3, 20.0, False),
                            (0.0, 1, 0.0, False)]


def test_the_monthly_cap_cuts_the_trip_that_crosses_it_and_grants_nothing_after(app, imported,
                                                                               no_cluster):
    days = [dt.date(2026, 10, d) for d in (8, 13, 15, 20, 22, 27, 29, 30)]
    events = [trip(day, 22.0, hour) for day in days for hour in (7, 9, 11, 13)]  # 32 x 20
    assert len(book(app, events)) == 32
    amounts = [e[2] for e in entries(app)]
    assert amounts == [20.0] * 30 + [0.0, 0.0] and sum(amounts) == 600.0
    assert [e[3] for e in entries(app)][29:] == [False, True, True]
    assert book(app, events) == []  # booked once, however often they come
    # the next month starts from zero
    book(app, [trip(dt.date(2026, 11, 3), 22.0)])
    assert entries(app)[-1][2:] == (20.0, False)


def test_a_capped_month_shows_cap_applied(app, client, imported, no_cluster):
    app.config["CLOCK"] = lambda: local_ts(dt.date(2026, 11, 2), "09:00:00")
    book(app, [trip(dt.date(2026, 10, d), 22.0, h) for d in (8, 13, 15, 20, 22, 27, 29, 30)
               for h in (7, 9, 11, 13)])
    body = client.get("/api/v1/subsidies", headers=login(client, *WANG),
                      query_string={"teacher_id": "t-liu", "month": "2026-10"}).get_json()
    assert (body["total"], body["cap_applied"], len(body["entries"])) == (600.0, True, 32)


@pytest.mark.parametrize("change, status, field", [
    ({"school_id": "nowhere"}, 404, "school_id"),
    ({"school_id": "longfeng"}, 404, "school_id"),  # not houqin.wang's school
    ({"date": "2026-11-03"}, 422, "date"),  # tomorrow in Shanghai
    ({"meals_served": -1}, 422, "meals_served"),
    ({"meals_served": 3.5}, 422, "meals_served"),
    ({"meals_received": "12"}, 422, "meals_received"),
    ({"boarders_present": True}, 422, "boarders_present"),
    ({"date": "2026-02-30"}, 422, "date"),
])
def test_a_bad_meal_report_is_a_problem_and_writes_nothing(app, client, imported, change, status,
                                                           field):
    app.config["CLOCK"] = lambda: local_ts(dt.date(2026, 11, 2), "23:00:00")
    body = {"school_id": "zhuting", "date": "2026-11-02", "boarders_present": 400,
            "meals_served": 400, "meals_received": 400, **change}
    response = client.post("/api/v1/meals/reports", headers=login(client, *WANG), json=body)
    assert response.status_code == status and response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"], response.get_json()
    with app.app_context():
        assert db.session.query(MealReport).count() == 0


def test_the_meal_audit_of_a_future_date_or_another_school_is_refused(app, client, imported):
    app.config["CLOCK"] = lambda: local_ts(dt.date(2026, 11, 2), "09:00:00")
    wang = login(client, *WANG)
    future = client.get("/api/v1/audit/meals", headers=wang, query_string={"date": "2026-11-03"})
    assert future.status_code == 422 and "future" in future.get_json()["detail"]
    other = client.get("/api/v1/audit/meals", headers=wang,
                       query_string={"date": "2026-11-02", "school_id": "longfeng"})
    assert other.status_code == 404
    own = client.get("/api/v1/audit/meals", headers=wang, query_string={"date": "2026-11-02"})
    assert [r["school_id"] for r in own.get_json()] == ["zhuting"]


def test_at_the_cut_off_the_staff_of_a_school_without_a_report_are_told_once(app, client,
                                                                            imported):
    monday = dt.date(2026, 11, 2)
    app.config["CLOCK"] = lambda: local_ts(monday, "09:00:00")
    response = client.post("/api/v1/meals/reports", headers=login(client, *WANG), json={
        "school_id": "zhuting", "date": monday.isoformat(), "boarders_present": 400,
        "meals_served": 400, "meals_received": 400})
    assert response.status_code == 201
    assert remind_missing_reports(app, local_ts(monday, "10:00:00")) == 1
    assert remind_missing_reports(app, local_ts(monday, "10:05:00")) == 0  # deduplicated
    assert remind_missing_reports(app, local_ts(dt.date(2026, 10, 1), "10:00:00")) == 0  # holiday
    with app.app_context():
        sent = [(n.kind, n.stop_id) for n in db.session.query(Notification)]
    assert sent == [("meal_report_missing", "longfeng")]
    chen = login(client, "houqin.chen", "demo-logistics-2")
    items = client.get("/api/v1/me/notifications", headers=chen).get_json()["items"]
    assert [i["kind"] for i in items] == ["meal_report_missing"]


def test_the_reminder_job_runs_at_the_configured_cut_off(app, imported):
    app.config["MEAL_REPORT_CUTOFF"] = "09:45"
    job = make_scheduler(app).get_job(MEAL_REMINDER_JOB_ID)
    assert str(job.trigger.fields[5]) == "9" and str(job.trigger.fields[6]) == "45"
    app.config["MEAL_REPORT_CUTOFF"] = "9h45"
    with pytest.raises(ValueError, match="XIAOCHE_MEAL_REPORT_CUTOFF"):
        make_scheduler(app)
