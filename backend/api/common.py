"""Pieces every endpoint shares: the blueprint, the crs parameter, coordinate output, cursors."""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable
from http import HTTPStatus

import flask_smorest
from flask import request
from marshmallow import Schema, fields, validate

from backend.errors import ApiError

BEARER = [{"bearer": []}]


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, plus the list of error statuses a view can answer."""

    def problems(self, *statuses: int) -> Callable:
        """Document the ``application/problem+json`` answers of a view besides its success:
        ``@blp.problems(401, 403, 404)``.  (``@blp.arguments`` documents its 422 itself.)"""

        def decorator(view: Callable) -> Callable:
            for status in statuses:
                view = self.alt_response(status, response=HTTPStatus(status).name)(view)
            return view

        return decorator


# a JSON \u0000 escape, not an escaped backslash followed by "u0000"
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)


def refuse_nul_characters() -> None:
    """Refuse a NUL character in the path, the query or a JSON body up front, with a 400 that
    says so: PostgreSQL text cannot hold one, and the query it reaches would fail with a 500."""
    where = None
    if "\x00" in request.path:
        where = "the path"
    elif any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
        where = "the query"
    elif request.is_json and _JSON_NUL.search(request.get_data(cache=True)):
        where = "the body"
    if where is not None:
        raise ApiError(400, f"{where} contains a NUL character (U+0000)")


class CrsQuery(Schema):
    crs = fields.String(load_default="wgs84", validate=validate.OneOf(["wgs84", "gcj02"]))


def encode_cursor(values: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, **kinds: type[int] | type[float]) -> dict | None:
    """The values of a cursor :func:`encode_cursor` gave out, each converted to its kind
    (``decode_cursor(c, ts=float, id=int)``); None without a cursor.  Anything else — not
    base64 JSON, a key missing, a value that is not a finite number a database column holds —
    is a 400: a cursor is only ever passed back, never written by hand."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        decoded = {name: kind(value[name]) for name, kind in kinds.items()}
    except (ValueError, TypeError, KeyError, OverflowError, UnicodeDecodeError) as exc:
        raise ApiError(400, "the cursor is not one this API gave out") from exc
    if not all(math.isfinite(v) and abs(v) < 2**63 for v in decoded.values()):
        raise ApiError(400, "the cursor is not one this API gave out")
    return decoded
