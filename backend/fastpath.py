"""A WSGI fast path in front of Flask for the hottest read: ``GET /api/v1/routes/{id}/live``.

Every parent's app polls that one URL. Once a token's caller is in the per-process cache
(``auth.cached_caller``) and the route's answer is rendered (``live_service.route_live_json``),
what is left of a request in Flask is the framework around the view: the request object and its
context, URL matching, the session interface, Flask-Limiter's hooks, webargs parsing ``crs``.
:class:`LiveFastPath` answers the request before all that, with the very bytes the view would
send, and only when it is sure the view would answer ``200`` with them:

- exactly ``GET`` of ``/api/v1/routes/<id>/live`` (an id of URL-safe characters), with no query
  or exactly ``crs=wgs84`` / ``crs=gcj02``, and no request body;
- ``Authorization: Bearer <token>`` whose token has a fresh entry in the caller cache (read from
  the database at most ``auth.CALLER_TTL_S`` ago, by the Flask path), unexpired by the token's own
  age (checked on every request, as the view does), of a role that may read ``/live`` and whose
  scope holds the route;
- the route exists (the answer is not ``None``) and nothing raised.

Anything else — ``HEAD``, ``OPTIONS``, no or a bad or an expired token, a cache miss, another
query parameter, a bad ``crs``, a route outside the scope or unknown, an error — goes to Flask
unchanged, which answers it as it always has (``401``/``403``/``404``/``422`` as
problem+json, the caller read from the database and cached for the next request). So the fast
path changes how fast, never what: the answer is the one ``routes.get_route_live`` gives, headers
included (``Content-Type: application/json`` and ``Content-Length``; Flask adds no other header to
it). ``tests/integration/api/test_live_fastpath.py`` compares both paths request by request.

A cached caller is re-read *ahead* of its expiry: the first request that finds its entry past
half of ``auth.CALLER_TTL_S`` reads the user again (what ``cached_caller`` does on a miss: the
token's signature and age, the user and its ``token_version``, the role, the visible routes) and
replaces the entry, while the requests arriving meanwhile are still served from the old one (less
than ``CALLER_TTL_S`` old, as always). Without it, every request of a busy token arriving in the
moment its entry expires finds it expired, and each reads the user itself through Flask: 3 SQL
statements times the requests in flight, and more connections than the pool keeps, every 2 s. A
token the re-read refuses loses its entry and goes to Flask, which refuses it the same way.

An app context is pushed for the answer only (``route_live_json`` reads the clock, the caches
and the database through it); no request context. Installed by ``backend.wsgi`` (what gunicorn
and ``xiaoche api`` run) unless ``XIAOCHE_LIVE_FASTPATH=0``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from backend import auth
from backend.errors import ApiError
from backend.logs import request_id

log = logging.getLogger(__name__)

_PATH = re.compile(r"/api/v1/routes/([A-Za-z0-9._~-]{1,200})/live")
_CRS = {"": "wgs84", "crs=wgs84": "wgs84", "crs=gcj02": "gcj02"}
_BEARER = "Bearer "
# an entry older than this share of auth.CALLER_TTL_S is re-read by one request (the others are
# served from it meanwhile)
REFRESH_AHEAD = 0.5

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class LiveFastPath:
    """WSGI middleware: ``/live`` answered from the caches, everything else by ``flask_app``."""

    def __init__(self, app: Flask, flask_app: WsgiApp) -> None:
        from backend.access_log import record_access
        from backend.live_service import LIVE_ROLES, route_live_json
        from backend.presenters import render_route_live

        self.app = app
        self.flask_app = flask_app
        self.roles = frozenset(LIVE_ROLES)
        self.render = render_route_live
        self.route_live_json = route_live_json
        self.record = record_access  # who read which route (backend.access_log), no I/O here
        self._refreshing: set[str] = set()  # tokens whose caller one request is re-reading
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        body = self.answer(environ)
        if body is None:
            return self.flask_app(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body))),
                                  ("X-Request-ID", request_id(environ.get("HTTP_X_REQUEST_ID")))])
        return [body]

    def answer(self, environ: dict[str, Any]) -> bytes | None:
        """The body of the ``200`` Flask would send, or ``None``: let Flask answer."""
        if environ.get("REQUEST_METHOD") != "GET":
            return None
        crs = _CRS.get(environ.get("QUERY_STRING", ""))
        if crs is None:
            return None
        match = _PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None:
            return None
        if (environ.get("CONTENT_LENGTH") not in (None, "", "0")
                or "HTTP_TRANSFER_ENCODING" in environ):
            return None  # a body: Flask reads it (refuse_nul_characters)
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.startswith(_BEARER):
            return None
        token = header[len(_BEARER):]
        if not token or token != token.strip():
            return None
        route_id = match.group(1)
        app = self.app
        callers = app.extensions.get(auth._CALLERS)
        hit = callers.get(token) if callers is not None else None
        if hit is None:
            return None
        ttl_s = auth.CALLER_TTL_S
        age = auth.monotonic() - hit[0]
        if age >= ttl_s:
            return None  # expired: Flask reads the caller again (cached_caller)
        refresh = age >= ttl_s * REFRESH_AHEAD and self._claim(token)
        try:
            with app.app_context():
                if refresh:
                    hit = self._reread(callers, token)
                    if hit is None:
                        return None
                # what cached_caller checks on a hit: the entry's age (above), the token's own
                # age, the role; and then the view: the scope
                _, signed_at, caller = hit
                if not auth._unexpired(signed_at):
                    return None
                if caller.role not in self.roles:
                    return None
                if caller.route_ids is not None and route_id not in caller.route_ids:
                    return None
                body = self.route_live_json(route_id, crs, self.render)
                if body is not None:
                    self.record(app, caller.user_id, "route_live", route_id)
                return body
        except Exception:  # noqa: BLE001 — Flask answers (and logs) it as it would anyway
            log.debug("live fast path: falling through to Flask", exc_info=True)
            return None
        finally:
            if refresh:
                with self._lock:
                    self._refreshing.discard(token)

    def _claim(self, token: str) -> bool:
        """Whether this request re-reads the token's caller (no other one is doing it)."""
        with self._lock:
            if token in self._refreshing:
                return False
            self._refreshing.add(token)
            return True

    def _reread(self, callers: dict, token: str) -> tuple[float, int, auth.Caller] | None:
        """The token's caller read again as ``auth.cached_caller`` reads it on a miss, stored
        in its entry; ``None`` (and the entry dropped) when the token is no longer good."""
        try:
            hit = auth.read_caller(token)
        except ApiError:
            callers.pop(token, None)  # Flask reads it and refuses it, saying why
            return None
        callers[token] = hit
        return hit


def install_live_fastpath(app: Flask) -> Flask:
    """Put :class:`LiveFastPath` in front of the app's WSGI callable unless ``LIVE_FASTPATH`` is
    0 (or a ``SERVER_NAME`` makes Flask match on the host, which the fast path does not)."""
    if int(app.config.get("LIVE_FASTPATH", 1)) and not app.config.get("SERVER_NAME"):
        app.wsgi_app = LiveFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
    return app
