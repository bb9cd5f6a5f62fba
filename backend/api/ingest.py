"""Device ingest over HTTP (SPEC §4): native pings and scans with a device token, and OsmAnd."""

from __future__ import annotations

from flask import request
from marshmallow import Schema, fields

from backend.api.common import BEARER, Blueprint
from backend.auth import current_device
from backend.ingest.service import ingest_http, result_body

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


class RejectedItemSchema(Schema):
    index = fields.Integer(allow_none=True, required=True,
                           metadata={"description": "the item's index in the array"})
    reason = fields.String(required=True)
    detail = fields.String(required=True)


class IngestResultSchema(Schema):
    accepted = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)
    rejected = fields.List(fields.Nested(RejectedItemSchema), required=True)


# A request refused as a whole: not JSON / not a ping (400), no such device or wrong token (401),
# a device not registered for the protocol or the topic (403), more than 1000 items (413).
WHOLE_REQUEST_REFUSED = (400, 401, 403, 413)


@blp.post("/pings")
@blp.doc(
    security=BEARER,
    requestBody=_BODY,
    description="One ping object or an array of up to 1000 (a backlog). Answered only "
    "after the accepted pings are committed.",
)
@blp.response(202, IngestResultSchema)
@blp.problems(*WHOLE_REQUEST_REFUSED)
def post_pings():
    device = current_device()
    return result_body(ingest_http("pings", request.get_data(), device.id)), 202


@blp.post("/scans")
@blp.doc(security=BEARER, requestBody=_BODY)
@blp.response(202, IngestResultSchema)
@blp.problems(*WHOLE_REQUEST_REFUSED)
def post_scans():
    device = current_device()
    return result_body(ingest_http("scans", request.get_data(), device.id)), 202


@blp.route("/osmand", methods=["GET", "POST"])
@blp.doc(
    description="The OsmAnd protocol of the Traccar Client app: query/form fields or its "
    'JSON body. Only for devices registered with "osmand": true.'
)
@blp.response(200, IngestResultSchema)
@blp.problems(*WHOLE_REQUEST_REFUSED)
def osmand():
    if request.is_json:
        result = ingest_http("osmand_json", request.get_data(), None)
    else:
        params = {**request.args.to_dict(), **request.form.to_dict()}
        result = ingest_http(
            "osmand_query", request.query_string or request.get_data(), None, params
        )
    return result_body(result)
