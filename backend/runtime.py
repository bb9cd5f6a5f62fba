"""Running the roles: the all-in-one ``serve`` process and its HTTP server."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.serving import make_server

log = logging.getLogger(__name__)


def run_all_in_one(app: Flask, host: str, port: int) -> None:
    server = make_server(host, port, app, threaded=True)
    log.info("HTTP API on http://%s:%d/api/v1 (docs at /api/v1/docs)", host, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
