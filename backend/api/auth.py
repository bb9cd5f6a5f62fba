"""POST /api/v1/auth/token: username + password → bearer token, with failed logins throttled."""

from __future__ import annotations

from flask import current_app, request
from flask_limiter.util import get_remote_address
from marshmallow import Schema, fields

from backend import auth
from backend.api.common import Blueprint
from backend.errors import PROBLEM_JSON, ProblemSchema
from backend.extensions import limiter

blp = Blueprint("auth", __name__, description="Log in")


class LoginSchema(Schema):
    username = fields.String(required=True)
    password = fields.String(required=True)


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True)
    role = fields.String(required=True)


def _login_username() -> str:
    """The username a login attempt is for (read before the body is validated)."""
    body = request.get_json(silent=True)
    username = body.get("username") if isinstance(body, dict) else None
    # capped: a key per attempt must not let a client fill the limiter's storage with junk
    return f"user:{str(username)[:64] if username is not None else ''}"


def _client_address() -> str:
    return f"ip:{get_remote_address()}"


def _failed(response) -> bool:
    # Only wrong passwords count: staff behind one school NAT logging in at 7:00 are not
    # throttled, and a malformed body (422) costs no password hash.
    return response.status_code == 401


@blp.post("/token")
@blp.arguments(LoginSchema)
@blp.doc(
    description=(
        "Failed logins are throttled per username (`XIAOCHE_LOGIN_LIMIT_PER_USER`, default 10 a "
        "minute) and per client address (`XIAOCHE_LOGIN_LIMIT_PER_IP`, default 30 a minute): past "
        "either, even the right password answers `429` with `Retry-After` until the window frees."
    )
)
@blp.response(200, TokenSchema)
@blp.alt_response(401, schema=ProblemSchema, content_type=PROBLEM_JSON,
                  description="wrong username or password")
@blp.alt_response(429, schema=ProblemSchema, content_type=PROBLEM_JSON,
                  description="too many failed logins; see Retry-After")
@blp.problems(400)
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_USER"],
    key_func=_login_username,
    deduct_when=_failed,
    error_message="too many failed logins for this username; try again later",
)
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_IP"],
    key_func=_client_address,
    deduct_when=_failed,
    error_message="too many failed logins from this address; try again later",
)
def token(credentials):
    return auth.login(credentials["username"], credentials["password"])
