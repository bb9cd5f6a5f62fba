"""Admin endpoints: import a district bundle."""

from __future__ import annotations

from flask import request
from flask_smorest import Blueprint

from backend.auth import require_role
from backend.bundle import BundleError, import_bundle
from backend.errors import ApiError

blp = Blueprint("admin", __name__, description="District administration")


@blp.post("/import")
@blp.doc(
    security=[{"bearer": []}],
    requestBody={"content": {"application/json": {"schema": {"type": "object"}}}},
)
@blp.response(200)
@require_role("admin")
def import_district_bundle():
    document = request.get_json(silent=True)
    if document is None:
        raise ApiError(400, "the body must be a JSON district bundle (SPEC §3)")
    try:
        summary = import_bundle(document)
    except BundleError as exc:
        raise ApiError(
            422, "; ".join(exc.lines()), title="Invalid bundle", errors=exc.errors
        ) from exc
    return summary.as_dict()
