"""The pages in a real browser: the test app (SQLite or PostgreSQL, as the suite runs) served on
a loopback port by a werkzeug server thread, and Debian's Chromium driven by Playwright.

Pings reach the app through the real ingest pipeline (decode, filters, store, tracking,
notifications) with the wall clock's timestamps, on a run imported for today exactly as
``xiaoche demo`` imports its runs, so the live views and the stream see a trip in progress now.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.e2e.world import Site

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # gitignored


@pytest.fixture
def artifacts() -> Path:
    """Where page tests keep their screenshots (tests/artifacts/, gitignored) for a human to
    look at after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@contextlib.contextmanager
def serving(app) -> Iterator[Site]:
    """``app`` on a loopback port, in a werkzeug server thread."""
    app.config["STREAM_HEARTBEAT_S"] = 1  # a stream whose page closed ends within a second
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-http", daemon=True)
    thread.start()
    try:
        yield Site(app, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        time.sleep(1.5)  # the streams of closed pages notice at their next heartbeat


@pytest.fixture
def site(app, imported) -> Iterator[Site]:
    with serving(app) as served:
        yield served


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Tab:
    """A page of its own browser context (own sessionStorage), and what its console said."""

    page: object
    errors: list[str] = field(default_factory=list)

    def login(self, base: str, username: str, password: str, lands_on: str) -> None:
        self.page.goto(base + "/")
        self.page.fill("#username", username)
        self.page.fill("#password", password)
        self.page.click("#login-submit")
        self.page.wait_for_url(base + lands_on)


@pytest.fixture
def tab(browser) -> Iterator[Callable[..., Tab]]:
    """``tab()`` opens a phone-sized page; console errors and page errors are collected."""
    contexts = []

    def open_tab(width: int = 390, height: int = 844) -> Tab:
        context = browser.new_context(viewport={"width": width, "height": height},
                                      locale="zh-CN", timezone_id="Asia/Shanghai")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        opened = Tab(page)
        page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: opened.errors.append(f"pageerror: {e}"))
        return opened

    try:
        yield open_tab
    finally:
        for context in contexts:
            context.close()
