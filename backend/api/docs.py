"""The interactive API docs' own files: Swagger UI from the ``swagger-ui-bundle`` package on
PyPI, served at ``/api/v1/docs/assets/`` for flask-smorest's page at ``/api/v1/docs`` (its
``OPENAPI_SWAGGER_UI_URL``). Nothing comes from a CDN, so the docs render on a school's
intranet without internet."""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory

bp = Blueprint("docs_assets", __name__)


@bp.get("/api/v1/docs/assets/<path:filename>")
def swagger_ui_asset(filename: str) -> Response:
    from swagger_ui_bundle import swagger_ui_path

    response = send_from_directory(str(swagger_ui_path), filename, max_age=86400)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
