"""POST /api/v1/auth/token: username + password → bearer token."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from backend import auth

blp = Blueprint("auth", __name__, description="Log in")


class LoginSchema(Schema):
    username = fields.String(required=True)
    password = fields.String(required=True)


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True)
    role = fields.String(required=True)


@blp.post("/token")
@blp.arguments(LoginSchema)
@blp.response(200, TokenSchema)
@blp.alt_response(401, description="wrong username or password")
def token(credentials):
    return auth.login(credentials["username"], credentials["password"])
