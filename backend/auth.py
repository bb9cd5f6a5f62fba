"""Who is calling: bearer tokens for users and devices, and the one role check every view uses."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, g, request
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


def current_user() -> User:
    """The authenticated user of this request (cached on ``g``), or a 401."""
    if "user" not in g:
        try:
            username, version = read_user_token(
                current_app.config["SECRET_KEY"],
                bearer_token(),
                int(current_app.config["TOKEN_TTL_S"]),
            )
        except TokenError as exc:
            raise unauthorized(exc.detail) from exc
        user = db.session.scalars(select(User).filter_by(username=username)).first()
        if user is None or user.token_version != version:
            raise unauthorized("the token is no longer valid; log in again")
        g.user = user
    return g.user


def require_role(*roles: str) -> Callable:
    """Let a view through for an authenticated user whose role is one of ``roles`` (any if none)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if roles and user.role not in roles:
                raise ApiError(403, f"this needs the role {' or '.join(roles)}")
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
