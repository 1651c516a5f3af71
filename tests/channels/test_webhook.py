"""Webhook channel against a real loopback HTTP receiver: body, Standard Webhooks
headers and signature, and how each kind of answer is classified."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from receivers import Reply, WebhookReceiver, closed_port

from channels.samples import sample_alert
from worker.alerts import render_alert
from worker.channels.webhook import (
    WebhookChannel,
    parse_retry_after,
    redact_url,
    sign,
    verify_signature,
)
from worker.errors import DeliveryError
from worker.models import Envelope

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks example key
NOW = 1_736_000_000


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def send(channel: WebhookChannel, envelope: Envelope) -> None:
    async def go() -> None:
        try:
            await channel.send(envelope)
        finally:
            await channel.aclose()

    asyncio.run(go())


def send_error(channel: WebhookChannel, envelope: Envelope) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        send(channel, envelope)
    return info.value


def test_posts_the_payload_with_signed_standard_webhook_headers(
    receiver: WebhookReceiver,
) -> None:
    env = render_alert(sample_alert())
    channel = WebhookChannel(
        "hook",
        receiver.url("/in?src=feedwatch"),
        secret=SECRET,
        headers={"Authorization": "Bearer abc", "X-Team": "asia"},
        clock=lambda: NOW + 0.9,
    )
    send(channel, env)
    [req] = receiver.wait_for(1)
    assert req.method == "POST"
    assert req.path == "/in?src=feedwatch"
    assert req.json() == env.data
    h = req.headers
    assert h["content-type"] == "application/json"
    assert h["webhook-id"] == env.id
    assert h["webhook-timestamp"] == str(NOW)
    assert h["user-agent"].startswith("feedwatch/")
    assert h["authorization"] == "Bearer abc" and h["x-team"] == "asia"
    # The signature verifies with our helper ...
    assert verify_signature(
        SECRET, h["webhook-id"], h["webhook-timestamp"], req.body, h["webhook-signature"],
        now=NOW + 10,
    )  # fmt: skip
    # ... and with an independent computation of the spec.
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{env.id}.{NOW}.".encode() + req.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert h["webhook-signature"] == f"v1,{expected}"


def test_raw_secret_is_used_as_utf8_bytes(receiver: WebhookReceiver) -> None:
    env = render_alert(sample_alert())
    send(
        WebhookChannel(
            "hook", receiver.url(), secret="plain sécret", clock=lambda: NOW
        ),
        env,
    )
    [req] = receiver.wait_for(1)
    signed = f"{env.id}.{NOW}.".encode() + req.body
    digest = hmac.new("plain sécret".encode(), signed, hashlib.sha256).digest()
    assert req.headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()


def test_unsigned_without_secret(receiver: WebhookReceiver) -> None:
    send(WebhookChannel("hook", receiver.url()), render_alert(sample_alert()))
    [req] = receiver.wait_for(1)
    assert "webhook-signature" not in req.headers
    assert "webhook-id" in req.headers and "webhook-timestamp" in req.headers


def test_same_id_on_every_attempt(receiver: WebhookReceiver) -> None:
    env = render_alert(sample_alert())
    receiver.enqueue(Reply(503))
    channel = WebhookChannel("hook", receiver.url(), secret=SECRET)

    async def twice() -> None:
        with pytest.raises(DeliveryError):
            await channel.send(env)
        await channel.send(env)
        await channel.aclose()

    asyncio.run(twice())
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == env.id
    assert first.body == second.body


def test_server_error_is_retryable(receiver: WebhookReceiver) -> None:
    receiver.enqueue(Reply(500, body=b"database\x1b[2J down"))
    err = send_error(
        WebhookChannel("hook", receiver.url()), render_alert(sample_alert())
    )
    assert err.retryable and err.retry_after is None
    assert "HTTP 500" in str(err) and "database [2J down" in str(err)
    assert receiver.url() in str(err)


def test_client_error_is_permanent(receiver: WebhookReceiver) -> None:
    receiver.enqueue(Reply(400, body=b'{"error": "bad payload"}'))
    err = send_error(
        WebhookChannel("hook", receiver.url()), render_alert(sample_alert())
    )
    assert not err.retryable
    assert "HTTP 400" in str(err) and "bad payload" in str(err)


@pytest.mark.parametrize("status", [408, 425, 429, 502, 503, 504])
def test_later_statuses_are_retryable(receiver: WebhookReceiver, status: int) -> None:
    receiver.enqueue(Reply(status))
    err = send_error(
        WebhookChannel("hook", receiver.url()), render_alert(sample_alert())
    )
    assert err.retryable


@pytest.mark.parametrize("status", [401, 403, 404, 410, 413, 422])
def test_other_client_statuses_are_permanent(
    receiver: WebhookReceiver, status: int
) -> None:
    receiver.enqueue(Reply(status))
    err = send_error(
        WebhookChannel("hook", receiver.url()), render_alert(sample_alert())
    )
    assert not err.retryable


def test_429_retry_after_seconds(receiver: WebhookReceiver) -> None:
    receiver.enqueue(Reply(429, {"Retry-After": "120"}))
    err = send_error(
        WebhookChannel("hook", receiver.url()), render_alert(sample_alert())
    )
    assert err.retryable and err.retry_after == 120.0


def test_503_retry_after_http_date(receiver: WebhookReceiver) -> None:
    later = datetime.now(UTC) + timedelta(minutes=10)
    receiver.enqueue(Reply(503, {"Retry-After": format_datetime(later, usegmt=True)}))
    err = send_error(
        WebhookChannel("hook", receiver.url()), render_alert(sample_alert())
    )
    assert err.retryable and err.retry_after is not None
    assert 590 <= err.retry_after <= 600


def test_redirect_is_not_followed(receiver: WebhookReceiver) -> None:
    receiver.enqueue(Reply(308, {"Location": "http://127.0.0.1:1/elsewhere"}))
    err = send_error(
        WebhookChannel("hook", receiver.url()), render_alert(sample_alert())
    )
    assert not err.retryable
    assert "redirects are not followed" in str(err)
    assert len(receiver.requests) == 1


def test_timeout_is_retryable(receiver: WebhookReceiver) -> None:
    receiver.enqueue(Reply(200, delay=5.0))  # cut short when the receiver stops
    channel = WebhookChannel("hook", receiver.url(), timeout=0.3)
    err = send_error(channel, render_alert(sample_alert()))
    assert err.retryable
    assert "timed out after 0.3s" in str(err)


def test_connection_refused_is_retryable() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    err = send_error(
        WebhookChannel("hook", url, timeout=2), render_alert(sample_alert())
    )
    assert err.retryable
    assert "ConnectError" in str(err)


def test_unsupported_scheme_is_permanent() -> None:
    err = send_error(
        WebhookChannel("hook", "ftp://127.0.0.1/x"), render_alert(sample_alert())
    )
    assert not err.retryable


# ------------------------------------------------------------- pure helpers


def test_verify_signature_rejects_tampering_and_stale_timestamps() -> None:
    body = b'{"a":1}'
    good = sign(SECRET, "al_1", NOW, body)
    assert verify_signature(SECRET, "al_1", NOW, body, good, now=NOW)
    assert verify_signature(SECRET, "al_1", str(NOW), body.decode(), good, now=NOW)
    assert not verify_signature(SECRET, "al_1", NOW, b'{"a":2}', good, now=NOW)
    assert not verify_signature(SECRET, "al_2", NOW, body, good, now=NOW)
    assert not verify_signature(SECRET, "al_1", NOW + 1, body, good, now=NOW)
    assert not verify_signature("whsec_b3RoZXI=", "al_1", NOW, body, good, now=NOW)
    assert not verify_signature(SECRET, "al_1", "soon", body, good, now=NOW)
    # Replays: five minutes by default, or none when the caller checks time itself.
    assert not verify_signature(SECRET, "al_1", NOW, body, good, now=NOW + 301)
    assert verify_signature(
        SECRET, "al_1", NOW, body, good, now=NOW + 301, tolerance=None
    )
    # Several signatures (key rotation): any match is enough.
    assert verify_signature(SECRET, "al_1", NOW, body, f"v1,Zm9v {good}", now=NOW)
    assert not verify_signature(SECRET, "al_1", NOW, body, "v1,Zm9v v2,x", now=NOW)


@settings(max_examples=50)
@given(
    st.text(min_size=1).filter(lambda s: not s.startswith("whsec_"))
    | st.binary().map(lambda b: "whsec_" + base64.b64encode(b).decode()),
    st.text(min_size=1, max_size=40),
    st.binary(),
)
def test_sign_verify_round_trip(secret: str, msg_id: str, body: bytes) -> None:
    sig = sign(secret, msg_id, NOW, body)
    assert verify_signature(secret, msg_id, NOW, body, sig, tolerance=None)
    assert not verify_signature(secret, msg_id, NOW, body + b"x", sig, tolerance=None)


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Wed, 01 Jan 2025 00:01:00 GMT", now) == 60.0
    assert parse_retry_after("Tue, 31 Dec 2024 00:00:00 GMT", now) == 0.0  # past
    assert parse_retry_after("-5") is None
    assert parse_retry_after("soon") is None


def test_redact_url_hides_secrets() -> None:
    assert redact_url("https://user:pw@hooks.example/a/b?token=x") == (
        "https://***@hooks.example/a/b?…"
    )
    redacted = redact_url(
        "https://discord.example/api/webhooks/123/AbCdEfGhIjKlMnOpQrStUv"
    )
    assert "AbCdEfGhIjKlMnOpQrStUv" not in redacted
    assert redacted.startswith("https://discord.example/api/webhooks/123/AbCd")
    assert redact_url("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook"


def test_repr_masks_the_secret() -> None:
    channel = WebhookChannel("hook", "https://a:b@h.example/x", secret=SECRET)
    assert "MfKQ" not in repr(channel) and ":b@" not in repr(channel)
