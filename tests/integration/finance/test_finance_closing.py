"""Closing a month, after the review of issue 18: what a closed month was priced on is frozen at
the close, a close and a booking never interleave, and the monthly cap is the month worked's.

The month is issue 18's November (see test_allowance_month.py): 刘胜 due 8 days, 龙凤 75.00 +
山河 43.75 + 100.00 of allowance, 50.00 of transport, the 17th's trip pending (mock location),
the 12th without evidence.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from backend.extensions import db
from backend.models import ClusterMember, SubsidyPolicy
from tests.integration.finance import test_allowance_month as nov

november = nov.november  # the month as lived, up to the close (a fixture)
ADJUSTMENTS = ("for_month", "school_id", "level", "grade", "amount")


def close_november(client, finance) -> None:
    response = client.post("/api/v1/subsidies/months/2026-11/close", headers=finance, json={})
    assert response.status_code == 200, response.get_json()


def adjustments(client, finance, month: str = "2026-12") -> list[tuple]:
    body = nov.statement(client, finance, month)
    return [tuple(x[k] for k in ADJUSTMENTS) for x in body["allowance"]
            if x["kind"] == "adjustment"]


def test_a_closed_month_is_not_repriced_by_assignments_policy_or_clusters_changed_later(
        app, client, imported, november):
    finance = november["finance"]
    close_november(client, finance)
    closed = nov.statement(client, finance, "2026-11")
    # December: 刘胜 no longer goes to 龙凤 (before the fix: −75 / +43.75 / +100 of November)
    teacher = next(t for t in imported["teachers"] if t["id"] == "t-liu")
    response = client.post("/api/v1/admin/import", headers=november["admin"], json={
        "teachers": [{**teacher, "assignments": [{"school_id": "shanhe", "weekdays": [4]}]}]})
    assert response.status_code == 200, response.get_json()
    assert adjustments(client, finance) == []
    # the policy's amounts change, and 山河 leaves the cluster
    with app.app_context():
        policy = db.session.scalars(select(SubsidyPolicy).where(SubsidyPolicy.active)).one()
        policy.levels = [{"grades": [{**g, "per_month": g["per_month"] * 2} for g in lv["grades"]]}
                         for lv in policy.levels]
        db.session.commit()
    assert adjustments(client, finance) == []
    with app.app_context():
        db.session.execute(delete(ClusterMember).where(ClusterMember.school_id == "shanhe"))
        db.session.commit()
    assert adjustments(client, finance) == []
    assert nov.statement(client, finance, "2026-11") == closed
    # a day verified late is still November's, at the band November was priced on: 350 × 1/8
    response = client.post("/api/v1/subsidies/attendance", headers=november["wang"], json={
        "teacher_id": "t-liu", "school_id": "shanhe", "date": "2026-11-12"})
    assert response.status_code == 201, response.get_json()
    assert adjustments(client, finance) == [("2026-11", "shanhe", 2, 2, 43.75)]


def test_a_grid_override_dated_into_a_closed_month_is_refused(client, november):
    finance = november["finance"]
    close_november(client, finance)
    response = client.put("/api/v1/subsidies/grid/shanhe", headers=finance, json={
        "distance_km": 25.0, "reason": "补录", "effective_from": "2026-11-20"})
    assert response.status_code == 409, response.get_json()
    assert "2026-12-01" in response.get_json()["detail"]
    assert client.put("/api/v1/subsidies/grid/shanhe", headers=finance, json={
        "distance_km": 25.0, "reason": "补录", "effective_from": "2026-12-01"}).status_code == 200
    assert adjustments(client, finance) == []

