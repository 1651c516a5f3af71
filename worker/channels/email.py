"""Email channel: ``Envelope`` -> a multipart/alternative message (text + HTML) sent
by SMTP with aiosmtplib; envelopes of one story thread together.

``Message-ID`` is ``<{envelope.id}@feedwatch>``; with a ``thread_id``,
``References`` is ``<{thread_id}@feedwatch>`` (then the alert it supersedes, if any)
and ``In-Reply-To`` the last of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import ssl
from collections.abc import Callable, Sequence
from datetime import datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from typing import Any, Literal

import aiosmtplib

from worker.alerts import clean_line
from worker.channels.base import NO_POLICY, ChannelPolicy
from worker.config import EmailChannelSettings
from worker.errors import ConfigError, DeliveryError
from worker.models import Envelope, utcnow

__all__ = ["EmailChannel", "message_id"]

log = logging.getLogger(__name__)

MSGID_DOMAIN = "feedwatch"
_MSGID_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,200}$")
CLOSE_WAIT = 2.0
"""Seconds to wait for a TLS connection's closing handshake after QUIT."""
Security = Literal["none", "starttls", "tls"]


def message_id(key: str) -> str:
    """``<key@feedwatch>``; keys that are not plain atoms are hashed first."""
    if not _MSGID_SAFE.match(key) or ".." in key or key.endswith("."):
        key = "h" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<{key}@{MSGID_DOMAIN}>"


def _check_address(name: str, field: str, value: str) -> Address:
    """``a@b.example`` or ``Name <a@b.example>``; ConfigError naming the key if not."""
    key = f"channels.{name}.{field}"
    if any(c in value for c in "\r\n\0"):
        raise ConfigError(None, key, "an address cannot contain CR, LF or NUL")
    found = getaddresses([value])
    if len(found) != 1:
        raise ConfigError(None, key, f"expected one email address, got {value!r}")
    display, addr = found[0]
    try:
        parsed = Address(display_name=display, addr_spec=addr)
    except (ValueError, IndexError, HeaderParseError) as e:
        raise ConfigError(None, key, f"not an email address: {value!r}") from e
    if not parsed.username or not parsed.domain:
        raise ConfigError(None, key, f"not an email address: {value!r}")
    return parsed


class EmailChannel:
    """Sends each envelope as one email to the configured recipients."""

    supports_html = True
    policy: ChannelPolicy = NO_POLICY

    def __init__(
        self,
        name: str,
        *,
        to: Sequence[str],
        sender: str = "feedwatch@localhost",
        host: str = "localhost",
        port: int = 25,
        username: str | None = None,
        password: str | None = None,
        security: Security = "none",
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not to:
            raise ConfigError(None, f"channels.{name}.to", "at least one recipient")
        self.name = name
        self._from = _check_address(name, "from", sender)
        self._to = tuple(_check_address(name, "to", addr) for addr in to)
        self.sender = self._from.addr_spec
        """The envelope sender (MAIL FROM)."""
        self.to = tuple(a.addr_spec for a in self._to)
        """The envelope recipients (RCPT TO)."""
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.security = security
        self.timeout = timeout
        self._tls_context = tls_context
        self._local_hostname = local_hostname
        self._clock = clock

    @classmethod
    def from_settings(
        cls,
        settings: EmailChannelSettings,
        *,
        tls_context: ssl.SSLContext | None = None,
    ) -> EmailChannel:
        """Build the channel from its config section (``tls_context``: custom CAs)."""
        return cls(
            settings.name,
            to=settings.to,
            sender=settings.sender,
            host=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password.get_secret_value()
            if settings.password
            else None,
            security=settings.security,
            timeout=settings.timeout,
            tls_context=tls_context,
        )

    def __repr__(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return (
            f"EmailChannel(name={self.name!r}, server={user}{self.host}:{self.port}, "
            f"security={self.security!r}, to={list(self.to)!r})"
        )

    def build_message(self, envelope: Envelope) -> EmailMessage:
        """The message for one envelope; the subject is one line, whatever came in."""
        msg = EmailMessage()
        msg["Subject"] = clean_line(envelope.subject, 250) or "feedwatch"
        msg["From"] = self._from
        msg["To"] = self._to
        msg["Date"] = format_datetime(self._clock())
        msg["Message-ID"] = message_id(envelope.id)
        if envelope.thread_id and envelope.thread_id != envelope.id:
            # Every alert of a story refers to the story's (virtual) root, so mail
            # clients thread them; a status change replies to the alert it updates.
            refs = [message_id(envelope.thread_id)]
            supersedes = envelope.data.get("supersedes")
            if isinstance(supersedes, str) and supersedes:
                refs.append(message_id(supersedes))
            msg["In-Reply-To"] = refs[-1]
            msg["References"] = " ".join(refs)
        # RFC 3834: tells auto-responders not to answer.
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Feedwatch-Kind"] = envelope.kind
        msg.set_content(envelope.text)
        if envelope.html:
            msg.add_alternative(envelope.html, subtype="html")
        return msg

    async def send(self, envelope: Envelope) -> None:
        """Send by SMTP; 4xx answers, timeouts and connection failures are retryable,
        5xx answers and missing server features are not."""
        msg = self.build_message(envelope)
        where = f"smtp://{self.host}:{self.port}"

        def error(message: str, *, retryable: bool) -> DeliveryError:
            return DeliveryError(
                self.name, envelope.id, f"{where}: {message}", retryable=retryable
            )

        try:
            refused = await self._session(msg)
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = [r.code for r in e.recipients]
            detail = "; ".join(
                f"{r.recipient}: {r.code} {r.message}" for r in e.recipients
            )
            raise error(
                f"every recipient refused ({detail})",
                retryable=any(400 <= c < 500 for c in codes),
            ) from e
        except aiosmtplib.SMTPResponseException as e:
            raise error(
                f"{type(e).__name__}: {e.code} {clean_line(e.message, 300)}",
                retryable=400 <= e.code < 500,
            ) from e
        except aiosmtplib.SMTPNotSupported as e:
            raise error(f"the server does not support it: {e}", retryable=False) from e
        except aiosmtplib.SMTPTimeoutError as e:
            raise error(f"timed out ({e})", retryable=True) from e
        except (aiosmtplib.SMTPException, OSError) as e:
            raise error(f"{type(e).__name__}: {e}", retryable=True) from e
        if refused:
            # Some recipients took it: retrying would send them a duplicate.
            log.warning(
                "channel %s, alert %s: delivered, but refused by %s",
                self.name,
                envelope.id,
                ", ".join(f"{k} ({v.code} {v.message})" for k, v in refused.items()),
            )

    async def _session(self, msg: EmailMessage) -> dict[str, aiosmtplib.SMTPResponse]:
        """One SMTP session; returns the recipients refused while others accepted.

        The steps are explicit (connect, STARTTLS, login, send, quit) so that the
        socket is known from the start and its close awaited at the end, even when a
        step fails: a TLS transport otherwise finishes closing after the caller's
        event loop may be gone (one-shot CLI commands).
        """
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.security == "tls",
            start_tls=False,
            tls_context=self._tls_context,
            timeout=self.timeout,
            local_hostname=self._local_hostname,
        )
        sock: Any = None
        try:
            await client.connect()
            sock = client.get_transport_info("socket")
            if self.security == "starttls":
                await self._require(client, "starttls", "STARTTLS")
                await client.starttls()
            if self.username:
                await self._require(client, "auth", "AUTH (login)")
                await client.login(self.username, self._password or "")
            refused, _ = await client.send_message(
                msg, sender=self.sender, recipients=list(self.to)
            )
            with contextlib.suppress(aiosmtplib.SMTPException):
                await client.quit()
            return refused
        finally:
            client.close()
            if sock is not None:
                await _socket_closed(sock)

    async def _require(
        self, client: aiosmtplib.SMTP, extension: str, what: str
    ) -> None:
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        if not client.supports_extension(extension):
            hint = ""
            if extension == "auth" and self.security == "none":
                hint = " without TLS (try security: starttls or tls)"
            raise aiosmtplib.SMTPNotSupported(f"{what} is not offered{hint}")

    async def aclose(self) -> None:
        """Nothing to release: one SMTP connection per envelope."""


async def _socket_closed(sock: Any) -> None:
    """Wait, at most CLOSE_WAIT seconds, until the transport has closed its socket."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CLOSE_WAIT):
            # asyncio offers no event for "the socket under a TLS transport closed".
            while sock.fileno() != -1:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
