"""Apprise channel: ``Envelope`` -> a title and body sent to every configured Apprise
URL (Slack, Teams, Telegram, Discord, ntfy, ...); needs ``feedwatch[apprise]``.

Services that prefer HTML get ``envelope.html``, the others ``envelope.text``. URLs
carry tokens, so only their masked form (``url(privacy=True)``) reaches logs.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from worker.channels.base import NO_POLICY, ChannelPolicy
from worker.config import AppriseChannelSettings
from worker.errors import ConfigError, DeliveryError
from worker.models import Envelope

if TYPE_CHECKING:
    import apprise

__all__ = ["AppriseChannel"]

log = logging.getLogger(__name__)

_SENT_MEMORY = 10_000
"""(envelope, url) pairs remembered as sent, so a retry after a partial failure
does not send the services that already took it again (within one process)."""


def _import_apprise() -> Any:
    try:
        with warnings.catch_warnings():
            # apprise 2.x still imports the stdlib's deprecated imghdr module.
            warnings.simplefilter("ignore", DeprecationWarning)
            import apprise
    except ImportError as e:
        raise ConfigError(
            None,
            "channels.type",
            "the apprise channel needs the apprise package: "
            "pip install 'feedwatch[apprise]'",
        ) from e
    return apprise


def _prefers_html(server: Any, html_format: object) -> bool:
    # apprise 1.x: one NotifyFormat; 2.x: a tuple, preferred first.
    fmt = server.notify_format
    if isinstance(fmt, tuple | list):
        fmt = fmt[0] if fmt else None
    return bool(fmt == html_format)


class AppriseChannel:
    """Sends each envelope to a set of Apprise URLs; any failed URL makes the
    delivery retryable (apprise does not tell permanent from temporary)."""

    supports_html = True
    policy: ChannelPolicy = NO_POLICY

    def __init__(
        self, name: str, urls: Sequence[str], *, timeout: float = 30.0
    ) -> None:
        if not urls:
            raise ConfigError(None, f"channels.{name}.urls", "at least one URL")
        lib = _import_apprise()
        self.name = name
        self.timeout = timeout
        self._lib = lib
        self._html = lib.NotifyFormat.HTML
        self._servers: list[tuple[str, apprise.Apprise, bool]] = []
        for i, url in enumerate(urls):
            with warnings.catch_warnings():
                # Plugins load on first use; one imports the deprecated imghdr.
                warnings.simplefilter("ignore", DeprecationWarning)
                server = lib.Apprise.instantiate(url)
            if server is None:
                raise ConfigError(
                    None,
                    f"channels.{name}.urls.{i}",
                    "not a URL apprise knows (see https://github.com/caronc/apprise"
                    "/wiki for the services and their URL forms)",
                )
            one = lib.Apprise()
            one.add(server)
            masked = str(server.url(privacy=True)).split("?", 1)[0]
            self._servers.append((masked, one, _prefers_html(server, self._html)))
        self._sent: OrderedDict[tuple[str, int], None] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: AppriseChannelSettings) -> AppriseChannel:
        """Build the channel from its config section."""
        return cls(
            settings.name,
            [u.get_secret_value() for u in settings.urls],
            timeout=settings.timeout,
        )

    def __repr__(self) -> str:
        urls = [masked for masked, _, _ in self._servers]
        return f"AppriseChannel(name={self.name!r}, urls={urls!r})"

    async def send(self, envelope: Envelope) -> None:
        """Notify every URL not yet sent this envelope; DeliveryError (retryable)
        naming the masked URLs that failed."""
        failed: list[str] = []
        for index, (masked, server, html) in enumerate(self._servers):
            key = (envelope.id, index)
            if key in self._sent:
                continue
            use_html = html and envelope.html is not None
            try:
                async with asyncio.timeout(self.timeout):
                    result = await server.async_notify(
                        body=envelope.html if use_html else envelope.text,
                        title=envelope.subject,
                        body_format=self._lib.NotifyFormat.HTML
                        if use_html
                        else self._lib.NotifyFormat.TEXT,
                    )
            except TimeoutError:
                failed.append(f"{masked} (timed out after {self.timeout:g}s)")
                continue
            if bool(result):
                self._remember(key)
            else:
                failed.append(masked)
        if failed:
            raise DeliveryError(
                self.name,
                envelope.id,
                f"apprise could not notify {', '.join(failed)}",
                retryable=True,
            )

    def _remember(self, key: tuple[str, int]) -> None:
        self._sent[key] = None
        while len(self._sent) > _SENT_MEMORY:
            self._sent.popitem(last=False)

    async def aclose(self) -> None:
        """Nothing to release: apprise opens a connection per notification."""
