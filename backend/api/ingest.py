"""Device ingest over HTTP (SPEC §4): native pings and scans with a device token, and OsmAnd."""

from __future__ import annotations

from flask import request
from flask_smorest import Blueprint

from backend.auth import current_device
from backend.ingest_service import ingest_http, result_body

blp = Blueprint("ingest", __name__, description="Device ingest over HTTP")

_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]
            }
        }
    }
}


@blp.post("/pings")
@blp.doc(
    security=[{"bearer": []}],
    requestBody=_BODY,
    description="One ping object or an array of up to 1000 (a backlog). Answered only "
    "after the accepted pings are committed.",
)
@blp.response(202)
def post_pings():
    device = current_device()
    return result_body(ingest_http("pings", request.get_data(), device.id)), 202


@blp.post("/scans")
@blp.doc(security=[{"bearer": []}], requestBody=_BODY)
@blp.response(202)
def post_scans():
    device = current_device()
    return result_body(ingest_http("scans", request.get_data(), device.id)), 202


@blp.route("/osmand", methods=["GET", "POST"])
@blp.doc(
    description="The OsmAnd protocol of the Traccar Client app: query/form fields or its "
    'JSON body. Only for devices registered with "osmand": true.'
)
@blp.response(200)
def osmand():
    if request.is_json:
        result = ingest_http("osmand_json", request.get_data(), None)
    else:
        params = {**request.args.to_dict(), **request.form.to_dict()}
        result = ingest_http(
            "osmand_query", request.query_string or request.get_data(), None, params
        )
    return result_body(result)
