"""The webhook signature: what ``WebhookChannel`` sends is what ``verify`` (and the README's
stand-alone recipe) accepts, and nothing else."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.channels.base import ChannelConfigError
from notifications.channels.webhook import WebhookChannel, sign, verify

SECRET = "s3cret-for-tests"
TS = 1_795_320_000
BODY = '{"id":42,"kind":"bus_approaching","title":"校车即将到站","username":"zhang.lanlan"}'.encode()


def headers(body: bytes = BODY, ts: int = TS, secret: str | bytes = SECRET) -> dict[str, str]:
    return {"X-Xiaoche-Timestamp": str(ts), "X-Xiaoche-Signature": sign(secret, ts, body),
            "X-Xiaoche-Delivery": "42"}


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_as_the_readme_says():
    expected = "sha256=" + hmac.new(SECRET.encode(), f"{TS}.".encode() + BODY,
                                    hashlib.sha256).hexdigest()
    assert sign(SECRET, TS, BODY) == expected
    assert sign(SECRET.encode(), TS, BODY) == expected


def test_a_fresh_untouched_request_verifies():
    assert verify(SECRET, headers(), BODY, now=TS)
    assert verify(SECRET, headers(), BODY, now=TS + 300)  # the edge of the window
    assert verify(SECRET.encode(), headers(), BODY, now=TS + 1)


def test_header_names_are_case_insensitive():
    lowered = {k.lower(): v for k, v in headers().items()}
    assert verify(SECRET, lowered, BODY, now=TS)


@pytest.mark.parametrize("body", [
    BODY.replace(b"42", b"43"),
    BODY + b" ",
    BODY[:-1],
    b"",
])
def test_a_tampered_body_is_refused(body):
    assert not verify(SECRET, headers(), body, now=TS)


def test_an_old_request_is_refused_even_with_a_valid_signature():
    assert not verify(SECRET, headers(), BODY, now=TS + 301)  # a replay
    assert not verify(SECRET, headers(), BODY, now=TS + 86400)
    assert not verify(SECRET, headers(), BODY, now=TS + 61, tolerance_s=60)


def test_a_request_from_the_future_is_refused():
    assert not verify(SECRET, headers(), BODY, now=TS - 301)


def test_a_new_timestamp_on_an_old_signature_is_refused():
    forged = {**headers(), "X-Xiaoche-Timestamp": str(TS + 3600)}
    assert not verify(SECRET, forged, BODY, now=TS + 3600)


@pytest.mark.parametrize("change", [
    {"X-Xiaoche-Signature": None},
    {"X-Xiaoche-Timestamp": None},
    {"X-Xiaoche-Timestamp": "soon"},
    {"X-Xiaoche-Timestamp": "1795320000.5"},
    {"X-Xiaoche-Signature": "sha1=" + "0" * 40},
    {"X-Xiaoche-Signature": "sha256=" + "0" * 64},
    {"X-Xiaoche-Signature": "sha256=Ä"},
])
def test_missing_or_malformed_headers_are_refused(change):
    h = {k: v for k, v in {**headers(), **change}.items() if v is not None}
    assert not verify(SECRET, h, BODY, now=TS)


def test_another_secret_is_refused():
    assert not verify("not-the-secret", headers(), BODY, now=TS)


@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=512),
       ts=st.integers(0, 2**33), flip=st.integers(0, 10**6))
def test_any_signed_body_verifies_and_any_changed_byte_does_not(secret, body, ts, flip):
    h = headers(body, ts, secret)
    assert verify(secret, h, body, now=ts)
    if body:
        i = flip % len(body)
        changed = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]
        assert not verify(secret, h, changed, now=ts)


def test_the_channel_will_not_run_without_a_secret_or_with_a_non_http_url():
    with pytest.raises(ChannelConfigError, match="XIAOCHE_WEBHOOK_SECRET is required"):
        WebhookChannel("https://example.org/hook", "")
    with pytest.raises(ChannelConfigError, match="http"):
        WebhookChannel("ftp://example.org/hook", SECRET)


def test_the_channel_signs_the_exact_bytes_it_sends():
    channel = WebhookChannel("https://example.org/hook", SECRET)
    body = channel.body({"id": 42, "title": "校车"}, "zhang.lanlan")
    assert body == '{"id":42,"title":"校车","username":"zhang.lanlan"}'.encode()
