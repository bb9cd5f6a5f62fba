"""The stream server's own handshake (opened in the hub's batch) answers as the Flask view does;
every doubt goes to the view."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from backend.extensions import db
from backend.models import User
from backend.streams.asgi import XiaocheAsgi
from tests.conftest import login
from tests.integration.api.test_stream import PARENT


def call(asgi: XiaocheAsgi, query: bytes = b"", headers: list[tuple[bytes, bytes]] = ()
         ) -> list[dict]:
    """One GET /api/v1/stream through the ASGI app; the client leaves after the first body."""
    async def go() -> list[dict]:
        sent: list[dict] = []
        left = asyncio.Event()
        asked = False

        async def receive() -> dict:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)
            if message["type"] == "http.response.body":
                left.set()

        scope = {"type": "http", "method": "GET", "path": "/api/v1/stream", "root_path": "",
                 "query_string": query, "headers": list(headers), "http_version": "1.1",
                 "scheme": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5)}
        await asyncio.wait_for(asgi(scope, receive, send), 30)
        return sent

    # a loop of its own in a thread of its own: an earlier test (Playwright's sync API) may have
    # left an event loop running in this thread, where asyncio.run() refuses to start
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(go())).result()


def test_a_stream_opened_by_the_server_answers_with_the_views_status_headers_and_opening(
        app, client, imported):
    token = login(client, *PARENT)["Authorization"].removeprefix("Bearer ")
    same_id = (b"x-request-id", b"test-request-0001")  # a new one would differ
    view = client.get("/api/v1/stream", query_string={"access_token": token}, buffered=False,
                      headers={"X-Request-ID": same_id[1].decode()})
    try:
        view_headers = {k.lower(): v for k, v in view.headers.items() if k != "Content-Length"}
        view_first = next(iter(view.response))
    finally:
        view.close()
    asgi = XiaocheAsgi(app, rest_threads=2)
    for headers, query in (([(b"authorization", f"Bearer {token}".encode()), same_id], b""),
                           ([same_id], f"access_token={token}&crs=gcj02".encode())):
        start, first, *_ = call(asgi, query, headers)
        assert start["status"] == 200
        assert {k.decode(): v.decode() for k, v in start["headers"]} == view_headers
        assert first["body"] == view_first  # "retry: 3000\nid: …\n\n"


def test_streams_the_server_cannot_vouch_for_are_answered_by_the_view(app, client, imported):
    token = login(client, *PARENT)["Authorization"].removeprefix("Bearer ")
    asgi = XiaocheAsgi(app, rest_threads=2)
    bearer = [(b"authorization", f"Bearer {token}".encode())]
    assert call(asgi, b"crs=mars", bearer)[0]["status"] == 422
    assert call(asgi, b"", [(b"authorization", b"Bearer forged")])[0]["status"] == 401
    with app.app_context():
        db.session.scalars(select(User).filter_by(username=PARENT[0])).one().token_version += 1
        db.session.commit()
    start, body = call(asgi, b"", bearer)[:2]  # signed and fresh, but logged out: the view says why
    assert start["status"] == 401
    assert (b"content-type", b"application/problem+json") in start["headers"]
    assert b"log in again" in body["body"]
