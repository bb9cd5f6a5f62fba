"""The ETA accuracy report (issue #13): the nightly audit replays each trip's predictions against
its audited arrivals; GET /api/v1/audit/eta and `xiaoche report eta --month` serve MAE per route
at 1, 3 and 5 stops ahead next to the timetable + current-delay baseline."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import pytest

from backend.audit_service import audit_date, eta_report
from backend.extensions import db
from backend.models import TripAudit
from tests.conftest import login
from tests.integration.audit.conftest import MONDAY


def run_report(database_url: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOCHE_")}
    env.update(XIAOCHE_DATABASE_URL=database_url, XIAOCHE_SECRET_KEY="test",
               XIAOCHE_INSTANCE_PATH=str(tmp_path / "cli-instance"))
    return subprocess.run([sys.executable, "-m", "backend.cli", "report", "eta", *args],
                          env=env, capture_output=True, text=True, timeout=120)

URL = "/api/v1/audit/eta"


@pytest.fixture
def audited(app, monday_drive):
    with app.app_context():
        audit_date(MONDAY)


def test_the_audit_scores_every_trips_predictions_against_its_audited_arrivals(app, audited):
    with app.app_context():
        result = db.session.get(TripAudit, "20261123-zt-am-1-bus-07").result
    eta = result["eta"]
    assert set(eta) == {"1", "3", "5"}
    # four stops: from the first stop, three are ahead (1 and 3 ahead scored, 5 never)
    assert eta["1"]["n"] > 0 and eta["3"]["n"] > 0 and eta["5"]["n"] == 0
    for cell in eta.values():
        assert cell["abs_error_s"] >= 0 and cell["baseline_abs_error_s"] >= 0


def test_admin_gets_mae_per_route_next_to_the_baseline(client, audited):
    admin = login(client, "admin", "demo-admin-1")
    response = client.get(URL, headers=admin, query_string={"date": "2026-11-23"})
    assert response.status_code == 200
    [route] = response.get_json()
    assert route["route_id"] == "zt-am-1" and route["trips"] == 1
    assert [c["stops"] for c in route["stops_ahead"]] == [1, 3, 5]
    one = route["stops_ahead"][0]
    assert one["predictions"] > 0 and one["mae_s"] >= 0 and one["baseline_mae_s"] >= 0
    assert route["stops_ahead"][2] == {"stops": 5, "predictions": 0, "mae_s": None,
                                       "baseline_mae_s": None}
    empty = client.get(URL, headers=admin, query_string={"date": "2026-11-24"})
    assert empty.get_json() == []


def test_logistics_see_their_routes_only_and_another_route_is_a_404(client, audited):
    other = login(client, "houqin.chen", "demo-logistics-2")
    assert client.get(URL, headers=other, query_string={"date": "2026-11-23"}).get_json() == []
    response = client.get(URL, headers=other,
                          query_string={"date": "2026-11-23", "route_id": "zt-am-1"})
    assert response.status_code == 404
    parent = login(client, "zhang.lanlan", "demo-parent-1")
    assert client.get(URL, headers=parent,
                      query_string={"date": "2026-11-23"}).status_code in (403, 404)


def test_the_month_report_writes_a_csv_line_per_route(app, audited, tmp_path):
    with app.app_context():
        rows = eta_report(month="2026-11")
    assert [r["route_id"] for r in rows] == ["zt-am-1"]
    out = tmp_path / "eta.csv"
    done = run_report(app.config["SQLALCHEMY_DATABASE_URI"], tmp_path, "--month", "2026-11",
                      "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "zt-am-1: 1 trips; MAE 1 ahead" in done.stdout
    [line] = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert line["route_id"] == "zt-am-1" and line["month"] == "2026-11"
    assert float(line["mae_s_1"]) >= 0 and float(line["baseline_mae_s_1"]) >= 0
    assert line["mae_s_5"] == ""
