"""A month replayed for the sample district gives exactly the expected meal flags and subsidy
ledger: every planted anomaly found, nothing else flagged; decisions and a reversal land on the
ledger as rows of their own; the nightly audit books nothing twice (the exports of the same
month: test_exports.py). (October 2026 — see tests/integration/finance/month.py for what was planted.)"""

from __future__ import annotations

import datetime as dt

from backend.audit_service import audit_date
from backend.extensions import db
from backend.models import SubsidyEntry
from tests.conftest import login
from tests.integration.finance import month as m

WANG = ("houqin.wang", "demo-logistics-1")  # 朱亭学校
ADMIN = ("admin", "demo-admin-1")
TEACHER = ("liu.sheng", "demo-teacher-1")


def expected_trips() -> list[tuple[str, str, str, str]]:
    """(date, from, to, status) of every trip 刘胜 drove, in order."""
    out = []
    for day in sorted([*m.TEACHING_DAYS, m.OFF_TIMETABLE_DAY]):
        morning = "approved" if day not in (m.OFF_TIMETABLE_DAY, m.BAD_FIX_DAY) else "pending"
        evening = "pending" if day == m.OFF_TIMETABLE_DAY else "approved"
        out += [(day.isoformat(), "zhuting", "longfeng", morning),
                (day.isoformat(), "longfeng", "zhuting", evening)]
    return out


def statement(client, who=ADMIN, **query):
    response = client.get("/api/v1/subsidies", headers=login(client, *who),
                          query_string={"teacher_id": "t-liu", "month": "2026-10", **query})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_every_planted_meal_anomaly_is_flagged_and_nothing_else(october, client):
    admin = login(client, *ADMIN)
    found = {}
    for day in m.MONTH:
        rows = client.get("/api/v1/audit/meals", headers=admin,
                          query_string={"date": day.isoformat()}).get_json()
        assert [r["school_id"] for r in rows] == ["longfeng", "zhuting"]
        for row in rows:
            assert row["school_day"] == (day in m.SCHOOL_DAYS), day
            if row["flags"]:
                found[(day, row["school_id"])] = row["flags"]
            if day in m.SCHOOL_DAYS and (day, row["school_id"]) != (
                    m.NO_TRUCK_AT_LONGFENG, "longfeng"):
                assert row["delivery_arrived_at"] is not None, (day, row["school_id"])
    assert found == m.PLANTED


def test_a_replaced_meal_report_stays_on_record_with_who_sent_it_and_when(october, client):
    rows = client.get("/api/v1/audit/meals", headers=login(client, *WANG),
                      query_string={"date": "2026-10-21", "school_id": "zhuting"}).get_json()
    [row] = rows
    assert (row["meals_served"], row["flags"], row["reported_by"]) == (400, [], "houqin.wang")
    [replaced] = row["replaced"]
    assert (replaced["version"], replaced["meals_served"]) == (1, 410)
    assert replaced["reported_by"] == "houqin.wang" and replaced["reported_at"]


def test_the_month_ledger_books_each_trip_once_priced_by_its_tier(october, client):
    body = statement(client)
    trips = [e for e in body["entries"] if e["kind"] == "trip"]
    assert [(e["date"], e["from_school_id"], e["to_school_id"], e["status"])
            for e in trips] == expected_trips()
    assert len(body["entries"]) == len(trips)  # no decision yet
    for e in trips:
        assert 5.0 <= e["distance_km"] < 15.0 and e["tier"] == 2 and e["policy_id"] == "2026"
        assert e["amount"] == (10.0 if e["status"] == "approved" else 0.0)
    reasons = {(e["date"], e["from_school_id"]): e["review_reasons"]
               for e in trips if e["status"] == "pending"}
    assert reasons == {("2026-10-14", "zhuting"): "off_timetable",
                       ("2026-10-14", "longfeng"): "off_timetable",
                       ("2026-10-22", "zhuting"): "filtered_fixes"}
    approved = sum(1 for t in expected_trips() if t[3] == "approved")
    assert (body["total"], body["pending"], body["cap_applied"]) == (10.0 * approved, 3, False)
    assert body["currency"] == "CNY" and body["teacher_name"] == "刘胜"


def test_decisions_and_a_reversal_are_rows_of_their_own_and_the_total_follows(october, client):
    trips = {(e["date"], e["from_school_id"]): e for e in statement(client)["entries"]}
    before = statement(client)["total"]
    wang = login(client, *WANG)

    def post(entry, action, **body):
        return client.post(f"/api/v1/subsidies/{entry['entry_id']}/{action}", headers=wang,
                           json=body)

    assert post(trips[("2026-10-14", "zhuting")], "approve").status_code == 200
    assert post(trips[("2026-10-14", "longfeng")], "reject", reason="没有走教安排").status_code == 200
    assert post(trips[("2026-10-22", "zhuting")], "approve").status_code == 200
    reversed_ = post(trips[("2026-10-22", "zhuting")], "reject", reason="定位漂移，核实未出车")
    assert reversed_.status_code == 200
    assert [(e["kind"], e["amount"], e["status"]) for e in reversed_.get_json()["entries"]] == [
        ("trip", 0.0, "pending"), ("approval", 10.0, "approved"), ("reversal", -10.0, "rejected")]
    assert post(trips[("2026-10-22", "zhuting")], "approve").status_code == 409
    assert post(trips[("2026-10-14", "longfeng")], "reject", reason="again").status_code == 409
    assert post(trips[("2026-10-14", "zhuting")], "reject").status_code == 422  # no reason

    after = statement(client)
    assert after["total"] == before + 10.0 and after["pending"] == 0
    rejection = [e for e in after["entries"] if e["kind"] == "rejection"]
    assert [(r["amount"], r["reason"], r["recorded_by"]) for r in rejection] == [
        (0.0, "没有走教安排", "houqin.wang")]
    # the teacher reads the same month, and may not decide
    assert statement(client, TEACHER, teacher_id=None) == after
    teacher = login(client, *TEACHER)
    assert client.post(f"/api/v1/subsidies/{trips[('2026-10-14', 'zhuting')]['entry_id']}"
                       "/reject", headers=teacher, json={"reason": "x"}).status_code == 403


def test_the_nightly_audit_books_nothing_twice_and_books_what_the_live_run_missed(october,
                                                                                  client):
    with october.app_context():
        count = db.session.query(SubsidyEntry).count()
        for day in m.TEACHING_DAYS:
            assert audit_date(day).teacher_trips_booked == 0
        assert db.session.query(SubsidyEntry).count() == count
    # a Monday drive whose pings were stored with tracking but without the ledger step
    from backend.tracking_service import TrackingStep

    monday = dt.date(2026, 10, 26)
    m.feed(october, "dev-car-liu", m.teacher_day(monday), TrackingStep(event_steps=[]))
    with october.app_context():
        assert audit_date(monday).teacher_trips_booked == 2
        assert audit_date(monday).teacher_trips_booked == 0
        new = db.session.query(SubsidyEntry).filter_by(service_date="2026-10-26").all()
    assert sorted((e.status, e.recorded_by) for e in new) == [("pending", "audit")] * 2
