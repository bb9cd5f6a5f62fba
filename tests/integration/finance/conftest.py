"""The replayed October 2026 of the sample district (see month.py), shared by the finance tests."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import login
from tests.drives import local_ts
from tests.integration.finance import month as m

STAFF_OF = {"zhuting": ("houqin.wang", "demo-logistics-1"),  # 朱亭学校
            "longfeng": ("houqin.chen", "demo-logistics-2")}  # 龙凤学校


@pytest.fixture
def october(app, client, imported):
    app.config["CLOCK"] = lambda: local_ts(dt.date(2026, 11, 2), "09:00:00")
    m.replay_devices(app, imported)
    tokens = {school: login(client, *who) for school, who in STAFF_OF.items()}
    for day in m.MONTH:
        for school in ("zhuting", "longfeng"):
            for present, served, received in m.reports_of(day, school):
                response = client.post("/api/v1/meals/reports", headers=tokens[school], json={
                    "school_id": school, "date": day.isoformat(), "boarders_present": present,
                    "meals_served": served, "meals_received": received})
                assert response.status_code == 201, response.get_json()
    return app
