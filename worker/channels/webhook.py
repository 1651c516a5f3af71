"""Webhook channel: ``Envelope`` -> an HTTP POST of ``envelope.data`` as JSON, signed
the Standard Webhooks way (https://www.standardwebhooks.com/).

Headers: ``webhook-id`` (the envelope id, stable across retries, so receivers can
drop repeats), ``webhook-timestamp`` (unix seconds of this attempt) and, when a
secret is configured, ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
``"{id}.{timestamp}.{body}"``. The HMAC key is the base64-decoded part after a
``whsec_`` prefix, or else the secret's raw UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

import httpx

from worker import __version__
from worker.channels.base import NO_POLICY, ChannelPolicy
from worker.config import WebhookChannelSettings
from worker.errors import ConfigError, DeliveryError
from worker.fetch import parse_retry_after
from worker.models import Envelope

__all__ = [
    "RETRYABLE_STATUSES",
    "WebhookChannel",
    "parse_retry_after",
    "redact_url",
    "sign",
    "signing_key",
    "verify_signature",
]

RETRYABLE_STATUSES = frozenset({408, 425, 429})
"""4xx answers that mean "later" (every 5xx does too)."""
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
DEFAULT_TOLERANCE = 300.0
_ERROR_BODY_BYTES = 2048
_RESERVED = {"content-type", "webhook-id", "webhook-timestamp", "webhook-signature"}
_TOKENISH = re.compile(r"^[A-Za-z0-9_\-.~]{16,}$")


def signing_key(secret: str) -> bytes:
    """The HMAC key: base64-decoded after ``whsec_``, else the raw UTF-8 secret."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as e:
            raise ConfigError(
                None,
                "secret",
                "a secret starting with whsec_ must be followed by base64",
            ) from e
    return secret.encode("utf-8")


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes | str) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) for one message."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify_signature(
    secret: str,
    msg_id: str,
    timestamp: int | str,
    body: bytes | str,
    signature_header: str,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether ``signature_header`` (space-separated ``v1,<sig>`` entries) signs the
    message; constant-time. With ``tolerance`` (seconds, default 5 minutes) a
    timestamp that far from ``now`` fails too, against replays."""
    try:
        ts = int(str(timestamp))
    except ValueError:
        return False
    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(current - ts) > tolerance:
            return False
    expected = sign(secret, msg_id, str(timestamp), body).encode("ascii")
    ok = False
    for entry in signature_header.split():
        # Compare every candidate so the time spent does not tell which one matched.
        ok |= hmac.compare_digest(entry.encode("utf-8", "replace"), expected)
    return ok


def redact_url(url: str) -> str:
    """The URL for logs and errors: no password, no query values, and token-like
    path segments (Slack/Discord-style secrets in the path) shortened."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    segments = [
        seg[:4] + "…" if _TOKENISH.match(seg) else seg for seg in parts.path.split("/")
    ]
    query = "…" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, "/".join(segments), query, ""))


def _snippet(data: bytes) -> str:
    text = data[:200].decode("utf-8", "replace")
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


class WebhookChannel:
    """POSTs alert payloads to a URL with Standard Webhooks headers."""

    supports_html = False
    policy: ChannelPolicy = NO_POLICY

    def __init__(
        self,
        name: str,
        url: str,
        *,
        secret: str | None = None,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        user_agent: str | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.url = url
        self.timeout = timeout
        self._clock = clock
        self._secret = secret
        if secret is not None:
            try:
                signing_key(secret)
            except ConfigError as e:
                raise ConfigError(None, f"channels.{name}.secret", e.expected) from e
        self._headers: dict[str, str] = {
            "user-agent": user_agent or f"feedwatch/{__version__} (webhook)"
        }
        for key, value in (headers or {}).items():
            if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", key):
                raise ConfigError(
                    None, f"channels.{name}.headers", f"{key!r} is not a header name"
                )
            if any(c in value for c in "\r\n\0"):
                raise ConfigError(
                    None,
                    f"channels.{name}.headers.{key}",
                    "a header value cannot contain CR, LF or NUL",
                )
            if key.lower() in _RESERVED:
                raise ConfigError(
                    None,
                    f"channels.{name}.headers.{key}",
                    "this header is set by feedwatch and cannot be configured",
                )
            self._headers[key.lower()] = value
        self._client = client
        self._own_client = client is None

    @classmethod
    def from_settings(cls, settings: WebhookChannelSettings) -> WebhookChannel:
        """Build the channel from its config section."""
        return cls(
            settings.name,
            settings.url,
            secret=settings.secret.get_secret_value() if settings.secret else None,
            timeout=settings.timeout,
            headers=settings.headers,
        )

    def __repr__(self) -> str:
        signed = "signed" if self._secret else "unsigned"
        return f"WebhookChannel(name={self.name!r}, url={redact_url(self.url)!r}, {signed})"

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout), follow_redirects=False
            )
        return self._client

    def request_headers(
        self, msg_id: str, timestamp: int, body: bytes
    ) -> dict[str, str]:
        """Every header of one delivery attempt, signature included when configured."""
        headers = dict(self._headers)
        headers["content-type"] = "application/json"
        headers["webhook-id"] = msg_id
        headers["webhook-timestamp"] = str(timestamp)
        if self._secret is not None:
            headers["webhook-signature"] = sign(self._secret, msg_id, timestamp, body)
        return headers

    async def send(self, envelope: Envelope) -> None:
        """POST ``envelope.data``; 2xx is delivered, 408/425/429/5xx and network
        failures are retryable (``Retry-After`` honoured), other answers permanent."""
        body = json.dumps(envelope.data, ensure_ascii=False, separators=(",", ":"))
        raw = body.encode("utf-8")
        headers = self.request_headers(envelope.id, int(self._clock()), raw)
        where = redact_url(self.url)

        def error(
            message: str, *, retryable: bool, retry_after: float | None = None
        ) -> DeliveryError:
            return DeliveryError(
                self.name,
                envelope.id,
                f"POST {where}: {message}",
                retryable=retryable,
                retry_after=retry_after,
            )

        try:
            async with self._get_client().stream(
                "POST", self.url, content=raw, headers=headers
            ) as response:
                status = response.status_code
                if 200 <= status < 300:
                    return
                chunk = b""
                async for part in response.aiter_bytes():
                    chunk += part
                    if len(chunk) >= _ERROR_BODY_BYTES:
                        break
        except httpx.TimeoutException as e:
            raise error(
                f"timed out after {self.timeout:g}s ({type(e).__name__})",
                retryable=True,
            ) from e
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as e:
            raise error(f"cannot send: {e}", retryable=False) from e
        except httpx.HTTPError as e:
            raise error(f"{type(e).__name__}: {e or 'failed'}", retryable=True) from e
        except httpx.InvalidURL as e:
            raise error(f"invalid URL: {e}", retryable=False) from e

        reason = f"HTTP {status} {response.reason_phrase}".rstrip()
        detail = _snippet(chunk)
        message = f"{reason}: {detail}" if detail else reason
        if status >= 500 or status in RETRYABLE_STATUSES:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise error(message, retryable=True, retry_after=retry_after)
        if 300 <= status < 400:
            location = redact_url(response.headers.get("location", ""))
            message += (
                f" (redirects are not followed; configure the final URL {location})"
            )
        raise error(message, retryable=False)

    async def aclose(self) -> None:
        """Close the HTTP client if this channel created it."""
        if self._client is not None and self._own_client:
            await self._client.aclose()
        self._client = None
