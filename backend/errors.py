"""One place that turns every error into ``application/problem+json`` (RFC 9457, SPEC conventions).

Services raise :class:`ApiError` (or werkzeug HTTP exceptions); request-parsing failures from
flask-smorest/webargs arrive as 422 with field messages; anything unexpected becomes a 500 with no
internals leaked.  Views never build error responses themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Response, json
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ProblemSchema(Schema):
    """Every error body (RFC 9457), as :func:`problem` builds it; documents the error responses."""

    type = fields.String(required=True, metadata={"example": "about:blank"})
    title = fields.String(required=True, metadata={"example": "Unprocessable Entity"})
    status = fields.Integer(required=True, metadata={"example": 422})
    detail = fields.String(required=True, metadata={"example": "crs: Must be one of: wgs84, gcj02."})
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "validation failures only: JSON path → messages"},
    )


class ApiError(Exception):
    """An error with an HTTP status that a service raises on purpose."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        errors: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.errors = dict(errors) if errors else None
        self.headers = dict(headers or {})


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, f"{what} not found")


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Flatten marshmallow's nested error dict into JSON paths: ``routes[2].stops[0].stop_id``."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            elif key == "_schema":
                path = prefix or "$"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            for sub_path, msgs in flatten_errors(value, path).items():
                flat.setdefault(sub_path, []).extend(msgs)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[prefix or "$"] = list(messages)
    elif isinstance(messages, list):
        for item in messages:
            for sub_path, msgs in flatten_errors(item, prefix).items():
                flat.setdefault(sub_path, []).extend(msgs)
    else:
        flat[prefix or "$"] = [str(messages)]
    return flat


def problem(
    status: int,
    title: str,
    detail: str,
    errors: Mapping[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = dict(errors)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle_api_error(error: ApiError) -> Response:
    title = error.title or _reason_phrase(error.status)
    return problem(error.status, title, error.detail, error.errors, error.headers)


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    if isinstance(error, InternalServerError) and error.original_exception is not None:
        log.error("unhandled error", exc_info=error.original_exception)
        return problem(500, "Internal Server Error", "an unexpected error occurred; it was logged")
    data = getattr(error, "data", None) or {}
    errors = None
    detail = error.description or error.name
    if "messages" in data:  # webargs/flask-smorest validation failure
        errors = flatten_errors(data["messages"])
        # webargs nests by location ("json", "query"); paths read better without it
        errors = {_strip_location(k): v for k, v in errors.items()}
        detail = "; ".join(f"{path}: {' '.join(msgs)}" for path, msgs in errors.items())
        status = 422 if status == 422 else status
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    return problem(status, error.name, detail, errors, headers)


def handle_unexpected(error: Exception) -> Response:
    log.error("unhandled error", exc_info=error)
    return problem(500, "Internal Server Error", "an unexpected error occurred; it was logged")


def _strip_location(path: str) -> str:
    for location in ("json.", "query.", "form.", "headers.", "files.", "querystring."):
        if path.startswith(location):
            return path[len(location) :]
    return path


def _reason_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def register(app) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
