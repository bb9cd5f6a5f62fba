"""Password and device-token hashing, and signed user tokens.

Users' passwords use werkzeug's salted scrypt.  Device tokens use PBKDF2-SHA512 in Mosquitto's
own ``$7$iterations$salt$hash`` format, so the one stored hash both authenticates HTTP ingest here
and goes unchanged into the broker's password file (``xiaoche broker-config``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from functools import lru_cache

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.security import check_password_hash, generate_password_hash

# Mosquitto's default is 101; more iterations cost little because verified tokens are cached.
DEVICE_TOKEN_ITERATIONS = 20_000
_SALT_BYTES = 12  # what mosquitto_passwd uses


# werkzeug's default (scrypt). Tests lower it: they hash hundreds of demo passwords.
PASSWORD_METHOD = "scrypt"


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


def verify_password(password_hash: str, password: str) -> bool:
    return check_password_hash(password_hash, password)


def hash_device_token(token: str, *, iterations: int = DEVICE_TOKEN_ITERATIONS) -> str:
    salt = os.urandom(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", token.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def device_token_bucket(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:4]


@lru_cache(maxsize=4096)
def verify_device_token(token_hash: str, token: str) -> bool:
    """True if ``token`` matches; cached so a device posting every 5 s costs one PBKDF2 run."""
    try:
        _, kind, iterations, salt64, digest64 = token_hash.split("$")
        if kind != "7":
            return False
        salt, digest = base64.b64decode(salt64), base64.b64decode(digest64)
        candidate = hashlib.pbkdf2_hmac("sha512", token.encode(), salt, int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate, digest)


class TokenError(Exception):
    """A bearer token that is malformed, tampered with or expired."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="xiaoche.user-token.v1")


def issue_user_token(secret_key: str, username: str, token_version: int) -> str:
    return _serializer(secret_key).dumps({"u": username, "v": token_version})


def read_user_token(secret_key: str, token: str, max_age_s: int) -> tuple[str, int]:
    """Return (username, token_version) or raise TokenError saying why."""
    try:
        data = _serializer(secret_key).loads(token, max_age=max_age_s)
    except SignatureExpired as exc:
        raise TokenError("the token has expired; request a new one") from exc
    except BadSignature as exc:
        raise TokenError("the token is invalid") from exc
    if not isinstance(data, dict) or "u" not in data:
        raise TokenError("the token is invalid")
    return str(data["u"]), int(data.get("v", 0))
