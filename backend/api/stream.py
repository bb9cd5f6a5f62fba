"""GET /api/v1/stream: Server-Sent Events of the positions, ETAs and notifications a caller may see."""

from __future__ import annotations

from flask import Response, current_app, request, stream_with_context
from marshmallow import fields

from backend.access_log import record_access
from backend.api.common import BEARER, Blueprint, CrsQuery
from backend.auth import current_user
from backend.errors import ApiError
from backend.streams.live import live_stream
from backend.streams.runner import hub_of

blp = Blueprint("stream", __name__, description="Live events over Server-Sent Events")

EXAMPLE = (
    "retry: 3000\nid: 1762641000.25:41\n\n"
    'id: 1762641003.5:41\nevent: position\ndata: {"vehicle_id":"bus-07","route_id":"zt-am-1",'
    '"trip_id":"20261109-zt-am-1-bus-07","lat":27.4012,"lon":113.1534,'
    '"ts":"2026-11-08T22:55:00Z","speed_kmh":25.0,"heading_deg":null}\n\n'
    'id: 1762641003.5:41\nevent: eta\ndata: {"route_id":"zt-am-1",'
    '"trip_id":"20261109-zt-am-1-bus-07","vehicle_id":"bus-07","as_of":"2026-11-08T22:55:00Z",'
    '"stops":[{"stop_id":"longfeng-cun","eta":null},{"stop_id":"dongan-cun",'
    '"eta":"2026-11-08T23:04:10Z"}]}\n\n'
    'id: 1762641003.5:42\nevent: notification\ndata: {"id":42,"kind":"staff_message",'
    '"title":"校车晚点","body":"…","created_at":"2026-11-08T22:55:02Z","route_id":"zt-am-1",'
    '"stop_id":null,"trip_id":null}\n\n'
    ": keep-alive\n\n"
)


class StreamQuery(CrsQuery):
    access_token = fields.String(load_default=None, metadata={"description": (
        "the bearer token, for clients that cannot set headers (a browser's EventSource); "
        "accepted on this endpoint only — prefer the Authorization header, URLs get logged")})


@blp.get("")
@blp.arguments(StreamQuery, location="query")
@blp.doc(security=BEARER, description=(
    "`text/event-stream` of what the caller may see: `position` and `eta` of the vehicles in "
    "scope (a parent: their children's bus only while it is on a trip in progress of their "
    "route), and the caller's own `notification`s (items as in `/me/notifications`). Starts "
    "with `retry: 3000` and the resume point as `id:`; every event carries the resume point "
    "after it, so a client reconnecting with `Last-Event-ID` gets the newest position of each "
    "vehicle and every notification since then (an id that is not one of ours: from now). "
    "A `: keep-alive` comment is sent after `XIAOCHE_STREAM_HEARTBEAT_S` of silence; the "
    "server ends the stream after `XIAOCHE_STREAM_MAX_S` and the client resumes. Past "
    "`XIAOCHE_STREAM_MAX` open streams in the serving process a new one is answered `503` "
    "with `Retry-After`: poll `/routes/{id}/live` meanwhile."))
@blp.response(200, content_type="text/event-stream", example=EXAMPLE,
              description="an endless stream of events (until XIAOCHE_STREAM_MAX_S)")
@blp.problems(401, 503)
def get_stream(query):
    from backend.streams.asgi import DETACH

    hub = hub_of(current_app)
    detach = request.environ.get(DETACH)  # the asyncio server checked the limit already
    if detach is None and hub.full():
        raise ApiError(503, f"this server holds as many live streams as it may "
                            f"({hub.open_count}); try again in {hub.config.retry_after_s} s, and "
                            "poll GET /api/v1/routes/{id}/live meanwhile",
                       headers={"Retry-After": str(hub.config.retry_after_s)})
    user = _authenticate(query["access_token"])  # 401 problem+json before any byte is streamed
    resume = request.headers.get("Last-Event-ID")
    if detach is not None:
        # served by backend.streams.asgi: open the stream here, it goes on without a thread
        detach.subscriber, first = hub.open(user.id, user.token_version, resume,
                                            query["crs"], detach.sink)
        return Response("".join(m.encode() for m in first), mimetype="text/event-stream",
                        headers=SSE_HEADERS)
    record_access(current_app, user.id, "stream")  # (backend.streams.asgi records its own)
    messages = live_stream(user.id, user.token_version, resume=resume, crs=query["crs"],
                           hub=hub)
    chunks = (m.encode() for m in messages)
    return Response(stream_with_context(chunks), mimetype="text/event-stream",
                    headers=SSE_HEADERS)


SSE_HEADERS = {"Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}  # nginx: do not buffer the stream


def _authenticate(access_token: str | None):
    """The caller, from the Authorization header or, on this endpoint only, ``?access_token=``
    (a browser's EventSource cannot set headers)."""
    if access_token and "Authorization" not in request.headers:
        # one token check for the whole API: hand the query token to it as the header it reads
        request.environ["HTTP_AUTHORIZATION"] = f"Bearer {access_token}"
    return current_user()
