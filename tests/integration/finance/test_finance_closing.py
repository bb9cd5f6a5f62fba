"""Closing a month, after the review of issue 18: what a closed month was priced on is frozen at
the close, a close and a booking never interleave, and the monthly cap is the month worked's.

The month is issue 18's November (see test_allowance_month.py): 刘胜 due 8 days, 龙凤 75.00 +
山河 43.75 + 100.00 of allowance, 50.00 of transport, the 17th's trip pending (mock location),
the 12th without evidence.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import delete, event, select, text, update

from backend.extensions import db
from backend.finance.books import close_month
from backend.models import ClusterMember, SubsidyPolicy, User
from backend.subsidy_service import book_trip
from tests.drives import local_ts
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


def close_waits_on_a_lock(engine) -> bool:
    """PostgreSQL: a backend of this database waits on a lock in the close's statement (a
    transaction of its own each time: pg_stat_activity is a snapshot per transaction)."""
    with engine.connect() as probe:
        return bool(probe.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND query LIKE '%FOR NO KEY UPDATE%'")))


def test_a_close_waits_for_a_booking_that_read_the_months_before_it(app, client, november):
    """A booking transaction has read the months (November open) and booked the 12th's trip
    into November, not yet committed; finance closes November meanwhile. The close must wait
    (PostgreSQL: for the district row the booking shares; SQLite: for the write lock the
    booking holds) and then see the trip: November's books hold it, its frozen allowance counts
    the 12th, and nothing is left to correct in December."""
    issued: list[str] = []
    closer: list[int] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        if closer and threading.get_ident() == closer[0]:
            issued.append(statement)

    def lock_sent() -> bool:
        return any("FOR NO KEY UPDATE" in s or s.startswith("BEGIN IMMEDIATE") for s in issued)

    errors: list[BaseException] = []

    def close() -> None:
        closer.append(threading.get_ident())
        try:
            with app.app_context():
                user = db.session.scalars(select(User).filter_by(username="caiwu.li")).one()
                close_month(user, "2026-11", None, local_ts(nov.day(2, 12), "09:00:00"))
        except BaseException as exc:  # noqa: BLE001  (reported by the test below)
            errors.append(exc)

    with app.app_context():
        engine = db.engine
        event.listen(engine, "before_cursor_execute", record)
        booking = engine.connect()
        thread = threading.Thread(target=close)
        try:
            tx = booking.begin()
            d = nov.details(nov.day(12), "shanhe", 11.5)
            assert book_trip(booking, d, "audit", d["arrived_at"])
            thread.start()
            # until the close asks for the lock (or, without one, is done or stuck on a write)
            deadline = time.monotonic() + 10
            while not lock_sent() and thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            waited = lock_sent() and thread.is_alive()
            if waited and engine.dialect.name == "postgresql":  # on the booking's row lock
                while thread.is_alive() and not close_waits_on_a_lock(engine):
                    time.sleep(0.01)
                waited = thread.is_alive()
            tx.commit()
        finally:
            booking.close()
            if thread.ident is not None:
                thread.join(60)
            event.remove(engine, "before_cursor_execute", record)
    assert not thread.is_alive() and errors == []
    finance = november["finance"]
    closed = nov.statement(client, finance, "2026-11")
    assert closed["closed"]
    assert [(e["date"], e["amount"]) for e in closed["entries"]
            if e["date"] == "2026-11-12"] == [("2026-11-12", 10.0)]
    assert nov.lines(closed)[1] == ("allowance", "2026-11", "shanhe", 2, 2, 2, 2, 87.5)
    assert adjustments(client, finance) == []
    assert nov.statement(client, finance, "2026-12")["entries"] == []
    assert waited, "the close did not wait for the booking"


def test_a_late_trip_is_capped_against_the_month_it_was_worked_in(app, client, november):
    """November's transport reached the cap (50 of 50); December's is 0. The 12th's trip, found
    by the nightly audit after November closed, and the approval of the 17th's are November's:
    0.00 with the cap applied, though booked into December. December's own trip pays."""
    with app.app_context():
        db.session.execute(update(SubsidyPolicy).values(monthly_cap=50.0))
        db.session.commit()
    finance = november["finance"]
    close_november(client, finance)
    nov.book(app, nov.day(12), "shanhe", 11.5)
    mock = next(e for e in nov.statement(client, finance, "2026-11")["entries"]
                if e["date"] == "2026-11-17")
    response = client.post(f"/api/v1/subsidies/{mock['entry_id']}/approve",
                           headers=november["wang"], json={"reason": "行程属实"})
    assert response.status_code == 200, response.get_json()
    nov.book(app, nov.day(1, 12), "longfeng", 6.2)
    december = nov.statement(client, finance, "2026-12")
    assert [(e["date"], e["kind"], e["amount"], e["cap_applied"], e["corrects_month"])
            for e in december["entries"]] == [
        ("2026-11-12", "trip", 0.0, True, "2026-11"),
        ("2026-11-17", "approval", 0.0, True, "2026-11"),
        ("2026-12-01", "trip", 10.0, False, None)]
    assert december["total"] == 10.0


def test_the_cap_of_the_month_worked_is_not_taken_by_the_month_booked_into(app, client,
                                                                          november):
    """December's own trips have used December's cap; a late November trip still has
    November's room (50 booked of 60)."""
    with app.app_context():
        db.session.execute(update(SubsidyPolicy).values(monthly_cap=60.0))
        db.session.commit()
    finance = november["finance"]
    close_november(client, finance)
    for n in (1, 8, 15, 22, 29, 3):  # 60 of December's 60
        nov.book(app, nov.day(n, 12), "longfeng" if n != 3 else "shanhe", 6.2)
    nov.book(app, nov.day(12), "shanhe", 11.5)
    december = nov.statement(client, finance, "2026-12")
    late = [(e["amount"], e["cap_applied"]) for e in december["entries"]
            if e["date"] == "2026-11-12"]
    assert late == [(10.0, False)]
    assert december["total"] == 70.0



def test_an_override_made_while_the_month_is_being_closed_waits_and_is_refused(
        app, client, november):
    """Finance closes November (its transaction holds the books and has written the closing,
    not yet committed) while someone sets 山河's distance from 2026-11-20: the override must
    wait for the close and then be refused (409), never priced into half of November's
    frozen basis."""
    from backend.finance.closing import lock_books
    from backend.models import District, MonthClosing

    finance = november["finance"]
    answers: list = []

    def put() -> None:
        answers.append(client.put("/api/v1/subsidies/grid/shanhe", headers=finance, json={
            "distance_km": 25.0, "reason": "补录", "effective_from": "2026-11-20"}))

    with app.app_context():
        engine = db.engine
        district_id = db.session.scalar(select(District.id))
        closing = engine.connect()
        thread = threading.Thread(target=put)
        try:
            tx = closing.begin()
            lock_books(closing, district_id, close=True)
            closing.execute(MonthClosing.__table__.insert().values(
                district_id=district_id, month="2026-11", closed_by="caiwu.li",
                closed_at=time.time()))
            thread.start()
            thread.join(1.0)  # the override asks meanwhile
            still_waiting = thread.is_alive()
            tx.commit()
        finally:
            closing.close()
            thread.join(60)
    assert not thread.is_alive()
    (response,) = answers
    assert response.status_code == 409, response.get_json()
    assert still_waiting, "the override did not wait for the close"
