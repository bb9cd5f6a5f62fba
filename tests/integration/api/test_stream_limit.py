"""Past XIAOCHE_STREAM_MAX open streams a new one is refused with 503 and Retry-After, at once,
while logins and REST keep answering (issue #14: the 129th stream used to hang silently and
take logins down with it)."""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import login
from tests.integration.api.served import Gunicorn, SseClient
from tests.integration.api.test_stream import PARENT


def open_raw(port: int, token: str) -> tuple[int, Any, bytes, http.client.HTTPConnection]:
    """A stream request: its status, headers and (for a refusal) body; the connection stays open."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/api/v1/stream", headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    body = response.read() if response.status != 200 else b""
    return response.status, response.headers, body, connection  # headers: any case


@pytest.mark.slow
def test_streams_past_the_limit_get_503_with_retry_after_while_a_login_succeeds(
        imported, _migrated, tmp_path):
    (tmp_path / "api").mkdir()
    api = Gunicorn(_migrated, tmp_path / "api", workers=1, XIAOCHE_STREAM_MAX="4")
    streams: list[SseClient] = []
    try:
        token = api.token(PARENT)
        for _ in range(4):
            stream = SseClient(api.port, token)
            stream.wait_for(lambda e: e.id is not None)
            streams.append(stream)

        def login_once() -> tuple[int, float]:
            began = time.monotonic()
            status, _ = api.request("POST", "/api/v1/auth/token",
                                    {"username": PARENT[0], "password": PARENT[1]})
            return status, time.monotonic() - began

        with ThreadPoolExecutor(9) as pool:
            refused = [pool.submit(open_raw, api.port, token) for _ in range(8)]
            logged_in = pool.submit(login_once)
            answers = [f.result(timeout=30) for f in refused]
            login_status, login_s = logged_in.result(timeout=30)
        for _, _, _, connection in answers:
            connection.close()

        assert [status for status, *_ in answers] == [503] * 8
        for _, headers, body, _ in answers:
            assert int(headers["Retry-After"]) > 0
            assert headers["Content-Type"] == "application/problem+json"
            problem = json.loads(body)
            assert problem["status"] == 503 and problem["title"] == "Service Unavailable"
            assert "/live" in problem["detail"]
        assert login_status == 200
        print(f"\nlogin beside 8 refused streams: {login_s * 1000:.0f} ms")
        # the open streams are untouched, and a stream fits again once one closes
        assert all(s.thread.is_alive() for s in streams)
        streams.pop().close()
        deadline = time.monotonic() + 20
        while (status := open_raw(api.port, token))[0] != 200:
            status[3].close()
            assert time.monotonic() < deadline, "the closed stream's place was never freed"
            time.sleep(0.2)
        status[3].close()
    finally:
        for stream in streams:
            stream.close()
        api.stop()


def test_the_flask_view_refuses_a_stream_past_the_limit_with_a_problem_and_retry_after(
        app, client, imported):
    app.config["STREAM_MAX"] = 1
    headers = login(client, *PARENT)
    first = client.get("/api/v1/stream", headers=headers, buffered=False)
    try:
        assert first.status_code == 200
        next(iter(first.response))  # open: it counts
        refused = client.get("/api/v1/stream", headers=headers)
        assert refused.status_code == 503
        assert refused.content_type == "application/problem+json"
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.get_json()["status"] == 503
    finally:
        first.close()
    assert client.get("/api/v1/stream", headers=headers, buffered=False).status_code == 200
