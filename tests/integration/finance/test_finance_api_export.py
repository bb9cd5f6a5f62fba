"""The finance office downloads a whole month from the API: the workbook holds every teacher's
transport rows and allowance lines, and the download is recorded as the month's export, so
``GET /subsidies/changes`` compares against it (before: only ``xiaoche report subsidies``
was recorded). The month is issue 18's November (see test_allowance_month.py)."""

from __future__ import annotations

import io

from openpyxl import load_workbook

from backend.finance_export import XLSX_MIMETYPE
from tests.integration.finance import test_allowance_month as nov

november = nov.november  # the month as lived, up to the close (a fixture)


def changes(client, headers, month: str = "2026-11") -> dict:
    response = client.get("/api/v1/subsidies/changes", headers=headers,
                          query_string={"month": month})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_whole_month_downloaded_from_the_api_is_the_export_changes_compare_against(
        client, november):
    finance = november["finance"]
    assert changes(client, finance)["last_export"] is None
    response = client.post("/api/v1/subsidies/months/2026-11/export", headers=finance, json={})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == XLSX_MIMETYPE
    assert 'filename="subsidies-2026-11.xlsx"' in response.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(response.data))
    transport, allowance = (list(ws.iter_rows(values_only=True)) for ws in book.worksheets)
    assert transport[-1][0] == "合计" and 50.0 in transport[-1]
    assert [(r[6], r[7], r[8], r[12]) for r in allowance[1:-1]] == [
        ("龙凤学校", 1, 3, 75.0), ("山河学校", 2, 2, 43.75), ("山河学校", 2, 3, 100.0)]
    assert allowance[-1][0] == "合计" and allowance[-1][12] == 218.75

    since = changes(client, finance)
    assert since["last_export"]["exported_by"] == "caiwu.li"
    assert (since["added"], since["removed"], since["changed"], since["total_change"]) == \
        ([], [], [], 0.0)
    # the school confirms the 12th afterwards: 山河 at 350 moves from 1/8 to 2/8
    response = client.post("/api/v1/subsidies/attendance", headers=november["wang"], json={
        "teacher_id": "t-liu", "school_id": "shanhe", "date": "2026-11-12"})
    assert response.status_code == 201, response.get_json()
    since = changes(client, finance)
    assert [(x["school_id"], x["level"], x["grade"], x["amount_before"], x["amount"])
            for x in since["changed"]] == [("shanhe", 2, 2, 43.75, 87.5)]
    assert since["total_change"] == 43.75


def test_a_per_teacher_download_is_not_the_months_export(client, november):
    finance = november["finance"]
    response = client.get("/api/v1/subsidies", headers={**finance, "Accept": "text/csv"},
                          query_string={"teacher_id": "t-liu", "month": "2026-11"})
    assert response.status_code == 200
    assert changes(client, finance)["last_export"] is None


def test_the_month_export_checks_its_input(client, november):
    finance = november["finance"]
    assert client.post("/api/v1/subsidies/months/2026-13/export", headers=finance,
                       json={}).status_code == 422
    assert client.post("/api/v1/subsidies/months/2026-11/export", headers=finance,
                       json={"lang": "fr"}).status_code == 422
    response = client.post("/api/v1/subsidies/months/2026-11/export", headers=finance,
                           json={"lang": "en"})
    assert response.status_code == 200
    assert load_workbook(io.BytesIO(response.data)).worksheets[1].cell(1, 2).value == "Teacher"
