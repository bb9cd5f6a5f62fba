"""Who is calling: bearer tokens for users and devices, and the one role check every view uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from time import monotonic, time
from typing import Any

from flask import current_app, g, request
from itsdangerous.encoding import base64_decode
from sqlalchemy import select

from backend.errors import ApiError
from backend.extensions import db
from backend.models import Device, User
from backend.security import (
    TokenError,
    device_token_bucket,
    issue_user_token,
    read_user_token,
    verify_device_token,
    verify_password,
)

STAFF_ROLES = ("logistics", "admin")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="xiaoche"'}


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail, headers=_CHALLENGE)


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("send Authorization: Bearer <token>")
    return token.strip()


def login(username: str, password: str) -> dict[str, Any]:
    user = db.session.scalars(select(User).filter_by(username=username)).first()
    if user is None or not verify_password(user.password_hash, password):
        raise unauthorized("wrong username or password")
    ttl = int(current_app.config["TOKEN_TTL_S"])
    token = issue_user_token(current_app.config["SECRET_KEY"], user.username, user.token_version)
    return {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "role": user.role}


def _token_identity(token: str | None = None) -> tuple[str, int]:
    """(username, token_version) of ``token`` (default: the request's bearer token), its
    signature and age checked, or a 401."""
    try:
        return read_user_token(
            current_app.config["SECRET_KEY"],
            bearer_token() if token is None else token,
            int(current_app.config["TOKEN_TTL_S"]),
        )
    except TokenError as exc:
        raise unauthorized(exc.detail) from exc


def _user_of(username: str, version: int) -> User:
    user = db.session.scalars(select(User).filter_by(username=username)).first()
    if user is None or user.token_version != version:
        raise unauthorized("the token is no longer valid; log in again")
    return user


def current_user() -> User:
    """The authenticated user of this request (cached on ``g``), or a 401."""
    if "user" not in g:
        g.user = _user_of(*_token_identity())
    return g.user


def _check_role(role: str, roles: tuple[str, ...]) -> None:
    if roles and role not in roles:
        raise ApiError(403, f"this needs the role {' or '.join(roles)}")


# How long a worker process trusts what it read of a token's user for the hottest read
# (``GET /routes/{id}/live``, polled by every parent's app): that the user exists with the
# token's ``token_version`` (not logged out everywhere by an import), their role and the routes
# they may read. Without it each request costs three SQL statements before any work. 2 s: a
# revoked token, a changed role or a child moved to another route is refused by every worker
# within 2 s, at once in the process that imported the change (``live_service.clear_caches``).
# Keyed on the token itself (which carries the username and the token_version, signed): an
# entry is only ever reached with the very token that was verified and read for it. A hit
# skips the signature check but not the expiry: the token's signing time is kept and its age
# checked against TOKEN_TTL_S on every request, as itsdangerous does. One cache per app (per
# worker process; tests get a new app each).
CALLER_TTL_S = 2.0
_CALLERS = "xiaoche.callers"


@dataclass(frozen=True)
class Caller:
    """What :func:`cached_caller` remembers of a token's user."""

    user_id: int
    username: str
    role: str
    route_ids: frozenset[str] | None  # ``scopes.visible_route_ids``; None: every route


def cached_caller(*roles: str) -> Caller:
    """The caller as :func:`require_role` (``roles``) and ``scopes.visible_route_ids`` see them,
    read from the database at most every :data:`CALLER_TTL_S` seconds per token; 401 and 403
    as :func:`require_role` answers them."""
    token = bearer_token()
    callers: dict[str, tuple[float, int, Caller]] = current_app.extensions.setdefault(
        _CALLERS, {})
    hit = callers.get(token)
    if hit is None or monotonic() - hit[0] >= CALLER_TTL_S or not _unexpired(hit[1]):
        hit = read_caller(token)
        if len(callers) >= 10_000:
            callers.clear()
        callers[token] = hit
    _check_role(hit[2].role, roles)
    return hit[2]


def read_caller(token: str) -> tuple[float, int, Caller]:
    """The cache entry of ``token`` read from the database: (read at, signed at, caller). The
    token's signature, age and ``token_version`` are checked (a 401 :class:`ApiError`)."""
    from backend.scopes import visible_route_ids

    now = monotonic()
    user = _user_of(*_token_identity(token))
    visible = visible_route_ids(user)
    return (now, _signed_at(token), Caller(user.id, user.username, user.role,
                                           None if visible is None else frozenset(visible)))


def _signed_at(token: str) -> int:
    """When a token that itsdangerous verified was signed (``payload.timestamp.signature``)."""
    return int.from_bytes(base64_decode(token.rsplit(".", 2)[1]), "big")


def _unexpired(signed_at: int) -> bool:
    """itsdangerous's own test of ``max_age`` (whole seconds, no age below 0)."""
    return 0 <= int(time()) - signed_at <= int(current_app.config["TOKEN_TTL_S"])


def forget_callers() -> None:
    """Drop this process's :func:`cached_caller` entries (after an import)."""
    current_app.extensions.pop(_CALLERS, None)


def require_role(*roles: str) -> Callable:
    """Let a view through for an authenticated user whose role is one of ``roles`` (any if none)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _check_role(current_user().role, roles)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def current_device(device_id: str | None = None) -> Device:
    """The device whose token is the bearer token (and whose id is ``device_id`` when given)."""
    token = bearer_token()
    if device_id is not None:
        device = db.session.get(Device, device_id)
        if device is None or not verify_device_token(device.token_hash, token):
            raise unauthorized("unknown device or wrong token")
        return device
    # No id in the request: the token alone must identify the device (tokens are unique secrets).
    for device in db.session.scalars(
        select(Device).filter_by(token_bucket=device_token_bucket(token))
    ):
        if verify_device_token(device.token_hash, token):
            return device
    raise unauthorized("no device has this token")
