"""Signed HTTP POST of each notification to the district's own endpoint (``XIAOCHE_WEBHOOK_URL``).

The request: ``POST`` with a JSON body — the ``/me/notifications`` item plus ``username`` (whom
it is for) — and three headers:

- ``X-Xiaoche-Timestamp``: unix seconds when it was signed;
- ``X-Xiaoche-Signature``: ``sha256=`` + hex HMAC-SHA256 of ``f"{timestamp}."`` + the raw body,
  keyed with ``XIAOCHE_WEBHOOK_SECRET`` (signing the timestamp too makes a replayed old request
  detectable: :func:`verify` refuses it after ``tolerance_s``);
- ``X-Xiaoche-Delivery``: the notification id, the same on every retry: the receiver's
  idempotency key (delivery is at least once).

The answer: 2xx = delivered; 408, 429, 5xx, timeouts and connection errors = try again later;
any other status, redirects included, = will not work by retrying (dead letter).
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from notifications.channels.base import ChannelConfigError, DeliveryError

TIMESTAMP_HEADER = "X-Xiaoche-Timestamp"
SIGNATURE_HEADER = "X-Xiaoche-Signature"
DELIVERY_HEADER = "X-Xiaoche-Delivery"
RETRYABLE_4XX = frozenset({408, 429})
USER_AGENT = "xiaoche-webhook/1"


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Xiaoche-Signature`` value for ``body`` sent at ``timestamp``.

    >>> sign("s3cret", 1700000000, b'{"id":1}')
    'sha256=ee0658aa4e37018df69c24227df01e0f680eb3b87c7f1f9bd936e283cfe01d9b'
    """
    mac = hmac.new(_key(secret), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def verify(secret: str | bytes, headers: Mapping[str, str], body: bytes, now: float,
           tolerance_s: float = 300) -> bool:
    """Whether a received webhook request is ours, unaltered and recent.

    ``headers``: the request's headers (any mapping; names compared case-insensitively);
    ``body``: the raw bytes as received, before any JSON parsing; ``now``: the receiver's clock
    (unix seconds). A timestamp more than ``tolerance_s`` away from ``now`` (a replay of an old
    request, or a wrong clock) is refused; the signature is compared in constant time.
    """
    stamp = _header(headers, TIMESTAMP_HEADER)
    given = _header(headers, SIGNATURE_HEADER)
    if stamp is None or given is None:
        return False
    try:
        timestamp = int(stamp.strip())
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected.encode("ascii"), given.strip().encode("utf-8", "replace"))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the error it is here: a webhook URL must be the endpoint itself
    (urllib would otherwise turn a redirected POST into a GET without the body)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` (seconds, or an HTTP date) as seconds from ``now``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now)


class WebhookChannel:
    """POSTs each item to one URL, signed with one secret (see the module docstring)."""

    name = "webhook"

    def __init__(self, url: str, secret: str | bytes, timeout_s: float = 10.0,
                 clock=time.time):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ChannelConfigError(f"XIAOCHE_WEBHOOK_URL must be an http(s) URL, not {url!r}")
        if not secret:
            raise ChannelConfigError(
                "XIAOCHE_WEBHOOK_SECRET is required when XIAOCHE_WEBHOOK_URL is set: the "
                "receiver checks each request's signature with it (e.g. python -c "
                "'import secrets; print(secrets.token_urlsafe(32))')")
        self.url = url
        self._secret = _key(secret)
        self.timeout_s = timeout_s
        self._clock = clock
        self._opener = urllib.request.build_opener(_NoRedirect)

    def body(self, item: Mapping[str, Any], username: str) -> bytes:
        return json.dumps({**item, "username": username}, ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")

    def send(self, item: dict[str, Any], username: str) -> None:
        body = self.body(item, username)
        now = self._clock()
        timestamp = int(now)
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            DELIVERY_HEADER: str(item["id"]),
        })
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            with exc:
                status = exc.code
                retry_after = _retry_after(exc.headers.get("Retry-After"), now)
            retryable = status >= 500 or status in RETRYABLE_4XX
            raise DeliveryError(f"webhook answered HTTP {status}", retryable=retryable,
                                retry_after_s=retry_after if retryable else None) from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            # refused, reset, DNS, TLS, timeouts (socket.timeout is TimeoutError, an OSError)
            reason = getattr(exc, "reason", exc)
            kind = "timed out" if isinstance(reason, (TimeoutError, socket.timeout)) else "failed"
            raise DeliveryError(f"webhook request {kind}: {reason!r}", retryable=True) from exc
        if not 200 <= status < 300:  # 1xx/3xx that urllib returned instead of raising
            raise DeliveryError(f"webhook answered HTTP {status}", retryable=False)

    def close(self) -> None:
        pass
