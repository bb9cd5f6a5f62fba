"""A real webhook receiver on loopback, users and notifications, and `xiaoche dispatch` as a
real subprocess.

Usernames are unique per test (``uuid``), so runs sharing one MQTT broker never meet.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from backend.extensions import db
from backend.models import Notification, NotificationDelivery, User

# the session's broker (real Mosquitto with XIAOCHE_TEST_MQTT_URL, else an embedded one)
from tests.integration.ingest.conftest import mqtt_url  # noqa: F401
from tests.processes import XiaocheProcess

SECRET = "test-webhook-secret"
# 12:00 in Asia/Shanghai (the default district timezone): outside the default quiet hours
NOON = 1795320000.0
# 23:00 the evening before: inside them
LATE_EVENING = NOON - 13 * 3600


@dataclass
class Received:
    index: int  # 1-based, in arrival order
    headers: dict[str, str]
    body: bytes
    status: int | None = None  # what was answered; None: nothing (the connection was dropped)

    @property
    def delivery_id(self) -> int:
        return int(self.headers["X-Xiaoche-Delivery"])

    def json(self) -> dict:
        return json.loads(self.body)


# (request) -> status, extra headers; or None to answer nothing and drop the connection
Responder = Callable[[Received], tuple[int, dict[str, str]] | None]


@dataclass
class WebhookServer:
    """``http.server`` on 127.0.0.1 in a thread; records every request and what it answered."""

    responder: Responder = lambda request: (204, {})
    requests: list[Received] = field(default_factory=list)
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        server = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802  (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with server._lock:
                    request = Received(len(server.requests) + 1, dict(self.headers.items()),
                                       body)
                    server.requests.append(request)
                if server.delay_s:
                    time.sleep(server.delay_s)
                answer = server.responder(request)
                if answer is None:
                    self.close_connection = True
                    return
                status, headers = answer
                self.send_response(status)
                for name, value in {"Content-Length": "0", **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                request.status = status

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/xiaoche"

    def answered_2xx(self) -> Counter[int]:
        """Delivery ids (notification ids) answered with a 2xx, and how often each."""
        with self._lock:
            return Counter(r.delivery_id for r in self.requests
                           if r.status is not None and 200 <= r.status < 300)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    server = WebhookServer()
    yield server
    server.close()


@pytest.fixture
def webhook_app(app, webhook_server):
    """The test app with the webhook channel pointed at ``webhook_server``."""
    app.config.update(WEBHOOK_URL=webhook_server.url, WEBHOOK_SECRET=SECRET, MQTT_URL=None)
    yield app
    from backend.dispatch_service import close_channels

    close_channels(app)


def add_user(app, preferences: dict | None = None, role: str = "parent") -> tuple[int, str]:
    username = f"u-{uuid.uuid4().hex[:10]}"
    with app.app_context():
        user = User(username=username, password_hash="x", role=role, preferences=preferences)
        db.session.add(user)
        db.session.commit()
        user_id = user.id
        db.session.remove()
    return user_id, username


def add_notifications(app, user_id: int, created_at: float, count: int = 1,
                      kind: str = "bus_approaching") -> list[int]:
    with app.app_context():
        rows = [Notification(user_id=user_id, kind=kind, title=f"标题 {i}", body=f"正文 {i}",
                             created_at=created_at, route_id="r1", stop_id="s1", trip_id="t1",
                             dedupe_key=f"test:{uuid.uuid4().hex}")
                for i in range(count)]
        db.session.add_all(rows)
        db.session.commit()
        ids = [n.id for n in rows]
        db.session.remove()
    return ids


def deliveries(app, notification_id: int | None = None) -> list[dict]:
    with app.app_context():
        stmt = select(NotificationDelivery).order_by(NotificationDelivery.id)
        if notification_id is not None:
            stmt = stmt.where(NotificationDelivery.notification_id == notification_id)
        rows = [{c.name: getattr(d, c.name) for c in NotificationDelivery.__table__.columns}
                for d in db.session.scalars(stmt)]
        db.session.remove()
    return rows


def push_state(app, notification_id: int) -> str:
    with app.app_context():
        state = db.session.get(Notification, notification_id).push_state
        db.session.remove()
    return state


class DispatchProcess(XiaocheProcess):
    """``xiaoche dispatch`` in a subprocess on the test database (no MQTT channel)."""

    def __init__(self, database_url: str, instance_path: Path, **env: str):
        super().__init__(["dispatch", "--interval", "0.2"], "xiaoche: dispatcher running",
                         database_url, instance_path, XIAOCHE_LOG_LEVEL="INFO", **env)
        self.env.pop("XIAOCHE_MQTT_URL", None)


@pytest.fixture
def dispatch_processes(_migrated, tmp_path) -> Iterator[Callable[..., DispatchProcess]]:
    started: list[DispatchProcess] = []

    def make(**env: str) -> DispatchProcess:
        process = DispatchProcess(_migrated, tmp_path, **env)
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str,
               poll_s: float = 0.05) -> None:
    deadline = time.time() + timeout_s
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll_s)
