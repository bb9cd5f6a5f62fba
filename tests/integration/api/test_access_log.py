"""The access log (issue 17): who read which route's live positions and when — the /live view
and its fast path, streams opened (the Flask view and the stream server's own handshake), the
staff's vehicle list — gathered in memory, written in batches, exported for a privacy review by
``GET /audit/access`` (admin only) and ``xiaoche report access``."""

from __future__ import annotations

import csv
import datetime as dt
import io
from functools import partial
from zoneinfo import ZoneInfo

from flask import Flask
from openpyxl import load_workbook
from sqlalchemy import func, select
from werkzeug.test import Client

from backend.access_log import access_log_of
from backend.cli.reports import report_access_command
from backend.extensions import db
from backend.fastpath import LiveFastPath
from backend.models import AccessEntry
from backend.streams.asgi import XiaocheAsgi
from tests.conftest import login
from tests.integration.api.test_stream_asgi import call

PARENT = ("zhang.lanlan", "demo-parent-1")  # 李明 rides zt-am-1
LOGISTICS = ("houqin.wang", "demo-logistics-1")
ADMIN = ("admin", "demo-admin-1")
LIVE = "/api/v1/routes/{}/live"


def window() -> dict[str, str]:
    """Local dates around now: the test passes at any hour, on either side of midnight."""
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    return {"from": (today - dt.timedelta(days=1)).isoformat(),
            "to": (today + dt.timedelta(days=1)).isoformat()}


def logged(client, **query) -> list[dict]:
    answer = client.get("/api/v1/audit/access", query_string={**window(), **query},
                        headers=login(client, *ADMIN))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def rows_written(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AccessEntry))


def test_live_reads_by_the_view_and_the_fast_path_are_one_row_per_user_and_route(
        app, client, imported):
    parent = login(client, *PARENT)
    fast = Client(LiveFastPath(app, partial(Flask.wsgi_app, app)))
    for reader in (client, fast, fast, client):  # the first caches the caller for the fast path
        assert reader.get(LIVE.format("zt-am-1"), headers=parent).status_code == 200
    assert client.get(LIVE.format("lf-am-1"), headers=parent).status_code == 404  # not a read
    assert rows_written(app) == 0  # nothing written per request

    assert access_log_of(app).flush() == 1
    assert rows_written(app) == 1
    (row,) = logged(client)
    assert (row["username"], row["role"], row["kind"], row["route_id"], row["reads"]) == (
        "zhang.lanlan", "parent", "route_live", "zt-am-1", 4)
    assert row["first_at"] <= row["last_at"]
    assert row["first_at"].endswith("Z")


def test_the_staff_vehicle_list_and_streams_opened_either_way_are_logged(app, client, imported):
    staff = login(client, *LOGISTICS)
    assert client.get("/api/v1/vehicles/live", headers=staff).status_code == 200
    token = login(client, *PARENT)["Authorization"].removeprefix("Bearer ")
    view = client.get("/api/v1/stream", query_string={"access_token": token}, buffered=False)
    try:
        assert view.status_code == 200
    finally:
        view.close()
    start = call(XiaocheAsgi(app, rest_threads=2), b"",
                 [(b"authorization", f"Bearer {token}".encode())])[0]
    assert start["status"] == 200

    rows = {(r["username"], r["kind"]): r for r in logged(client)}  # the view flushes first
    assert rows[("houqin.wang", "vehicles_live")]["reads"] == 1
    assert rows[("houqin.wang", "vehicles_live")]["route_id"] is None  # the caller's scope
    assert rows[("zhang.lanlan", "stream")]["reads"] == 2
    assert logged(client, user="houqin.wang") == [rows[("houqin.wang", "vehicles_live")]]


def test_reads_of_stored_tracks_are_logged_with_the_trips_route(app, client, imported):
    from tests.integration.api.test_authorization_matrix import OTHER, OWN, trips_on_record

    trips_on_record(app)
    parent, staff = login(client, *PARENT), login(client, *LOGISTICS)
    assert client.get(f"/api/v1/trips/{OWN['trip']}/track", headers=parent).status_code == 200
    assert client.get(f"/api/v1/trips/{OTHER['trip']}/track", headers=parent).status_code == 404
    assert client.get("/api/v1/vehicles/bus-07/track", headers=staff).status_code == 200
    rows = {(r["username"], r["kind"]): r for r in logged(client)}
    assert (rows[("zhang.lanlan", "trip_track")]["route_id"],
            rows[("zhang.lanlan", "trip_track")]["reads"]) == ("zt-am-1", 1)  # not the refusal
    assert rows[("houqin.wang", "vehicle_track")]["reads"] == 1


def test_only_an_admin_exports_it_and_a_bad_window_is_a_422(app, client, imported):
    staff = login(client, *LOGISTICS)
    assert client.get("/api/v1/audit/access", query_string=window(),
                      headers=staff).status_code == 403
    admin = login(client, *ADMIN)
    for query in ({"from": "2026-11-09", "to": "2026-11-08"},
                  {"from": "2025-01-01", "to": "2026-11-08"},
                  {"from": "2026-11-09"}, {"from": "2026-13-01", "to": "2026-13-02"}):
        answer = client.get("/api/v1/audit/access", query_string=query, headers=admin)
        assert answer.status_code == 422, query
        assert answer.content_type == "application/problem+json"


def test_xiaoche_report_access_writes_a_csv_and_an_xlsx_for_the_review(
        app, client, imported, tmp_path):
    parent = login(client, *PARENT)
    assert client.get(LIVE.format("zt-am-1"), headers=parent).status_code == 200
    assert client.get(LIVE.format("zt-am-1"), headers=parent).status_code == 200
    access_log_of(app).flush()
    days = window()
    runner = app.test_cli_runner()
    out = tmp_path / "access.csv"
    result = runner.invoke(report_access_command, ["--from", days["from"], "--to", days["to"],
                                                   "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 access rows, 2 reads" in result.output
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # Excel reads it as UTF-8
    head, row, total = list(csv.reader(io.StringIO(data[3:].decode("utf-8"))))
    assert head == ["用户", "角色", "读取内容", "线路", "首次读取", "最后读取", "次数"]
    assert row[:4] + row[-1:] == ["zhang.lanlan", "家长", "线路实时位置", "zt-am-1", "2"]
    assert total[0] == "合计" and total[-1] == "2"

    book = tmp_path / "access.xlsx"
    result = runner.invoke(report_access_command, [
        "--from", days["from"], "--to", days["to"], "--user", "nobody", "--lang", "en",
        "--out", str(book)])
    assert result.exit_code == 0, result.output
    sheet = load_workbook(book).active
    assert [c.value for c in sheet[1]] == ["User", "Role", "What was read", "Route",
                                           "First read", "Last read", "Reads"]
    assert sheet.max_row == 2  # the header and the totals: nobody read anything

    bad = runner.invoke(report_access_command, ["--from", days["to"], "--to", days["from"]])
    assert bad.exit_code == 2 and "--to is before --from" in bad.output
    bad = runner.invoke(report_access_command, ["--from", "yesterday", "--to", days["to"]])
    assert bad.exit_code == 2 and "not a date" in bad.output
