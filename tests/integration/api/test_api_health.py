"""`xiaoche healthcheck api` asks a real HTTP server for /healthz: 200 is healthy; a database
that is down (503) or nothing listening is not, with the reason on one line."""

from __future__ import annotations

import socket
import threading

import pytest
from werkzeug.serving import make_server

from backend.cli.ops import healthcheck_command
from backend.health import check_api
from tests.conftest import make_test_app


@pytest.fixture
def serving():
    servers = []

    def serve(app) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/healthz"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_serving_api_is_healthy(app, serving):
    url = serving(app)
    assert check_api(url) == (True, f"ok: {url} answered 200")
    result = app.test_cli_runner().invoke(healthcheck_command, ["api", "--url", url])
    assert (result.exit_code, result.output) == (0, f"api: ok: {url} answered 200\n")


def test_an_api_without_its_database_is_not(serving, tmp_path):
    down = make_test_app("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2",
                         tmp_path)
    url = serving(down)
    assert check_api(url) == (False, f"{url} answered 503: down {{'database': "
                                     "'OperationalError'}")


def test_nothing_listening_is_not(app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/healthz"
    ok, reason = check_api(url, timeout_s=2)
    assert not ok and reason.startswith(f"nothing answers at {url}: ")
    result = app.test_cli_runner().invoke(healthcheck_command, ["api", "--url", url])
    assert result.exit_code == 1
