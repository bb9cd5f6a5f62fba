"""Pieces every read endpoint shares: the crs parameter, coordinate output, cursors."""

from __future__ import annotations

import base64
import json

from marshmallow import Schema, fields, validate

from backend.errors import ApiError


class CrsQuery(Schema):
    crs = fields.String(load_default="wgs84", validate=validate.OneOf(["wgs84", "gcj02"]))


def out_point(lat: float, lon: float, crs: str) -> tuple[float, float]:
    """(lat, lon) in the requested CRS; stored coordinates are WGS-84."""
    if crs == "gcj02":
        from routing.gcj02 import wgs84_to_gcj02

        return wgs84_to_gcj02(lat, lon)
    return lat, lon


def encode_cursor(values: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "the cursor is not one this API gave out") from exc
    if not isinstance(value, dict):
        raise ApiError(400, "the cursor is not one this API gave out")
    return value
