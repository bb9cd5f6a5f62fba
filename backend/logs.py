"""Logging: one line per record, text or JSON (``XIAOCHE_LOG_FORMAT``), each with the request id.

Every HTTP request gets an id — the caller's ``X-Request-ID`` when it is a plausible one (a
proxy's), else a new one — echoed in the response's ``X-Request-ID`` and put on every log
record written while the request is handled, so an operator can follow one request (and a
parent's complaint) through the logs. Records outside a request carry ``-``.
"""

from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, Response, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
HEADER = "X-Request-ID"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = (getattr(g, "request_id", "-") if has_request_context()
                                 else "-")
        return True


def configure_logging(level: str, fmt: str) -> None:
    """Log to stderr in ``fmt`` (``text`` or ``json``) at ``level``: once per process, on a root
    logger nobody configured (as ``logging.basicConfig``; a host such as pytest keeps its own);
    a later app of the same process may switch the format."""
    if fmt not in ("text", "json"):
        raise ValueError(f"XIAOCHE_LOG_FORMAT must be text or json, not {fmt!r}")
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_xiaoche", False)]
    if not ours:
        if root.handlers:
            return  # someone else's logging: leave it as they set it
        handler = logging.StreamHandler()
        handler._xiaoche = True  # type: ignore[attr-defined]
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
        root.setLevel(level)
        ours = [handler]
    formatter: logging.Formatter = (
        JsonFormatter(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level",
                                                  "name": "logger"})
        if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    for handler in ours:
        handler.setFormatter(formatter)


def request_id(given: str | None) -> str:
    """The id of a request: the caller's ``X-Request-ID`` when plausible (a proxy's), else new.
    Flask's answers, the ``/live`` fast path and the stream server all take it from here."""
    return given if given and REQUEST_ID.match(given) else uuid.uuid4().hex


def init_request_ids(app: Flask) -> None:
    @app.before_request
    def _take_request_id() -> None:
        g.request_id = request_id(request.headers.get(HEADER))

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers[HEADER] = g.request_id
        return response
