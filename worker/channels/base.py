"""The Channel protocol: a transport that carries a rendered ``Envelope`` somewhere.

Channels do not render; ``alerts.render_alert`` and the digest do that once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from worker.config import QuietHours, RateLimit
from worker.models import Envelope

__all__ = ["NO_POLICY", "Channel", "ChannelPolicy", "policy_of"]


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    """When a channel may send: its rate limit and quiet hours (from its config)."""

    rate_limit: RateLimit | None = None
    quiet_hours: QuietHours | None = None


NO_POLICY = ChannelPolicy()


@runtime_checkable
class Channel(Protocol):
    """A destination for envelopes (console, file, webhook, email).

    Contract:

    - ``send`` delivers one envelope or raises
      :class:`~worker.errors.DeliveryError` with ``retryable=True`` when trying again
      later may succeed (timeouts, connection errors, HTTP 408/429/5xx, SMTP 4xx),
      ``retryable=False`` when it cannot (HTTP 4xx, SMTP 5xx, bad configuration), and
      ``retry_after`` (seconds) when the receiver said when to come back. Any other
      exception is a bug in the channel.
    - ``send`` may be called concurrently from one event loop; ``envelope.id`` is
      stable, so receivers can drop repeats of an at-least-once delivery.
    - ``aclose`` releases connections; the channel is unusable afterwards.
    """

    name: str
    """The configured channel name (routing, ``--send``, outbox rows)."""
    supports_html: bool
    """Whether the channel shows ``envelope.html`` (email, and Apprise services
    that take HTML)."""
    policy: ChannelPolicy
    """Rate limit and quiet hours the outbox applies before sending."""

    async def send(self, envelope: Envelope) -> None:
        """Deliver one envelope, or raise DeliveryError."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...


def policy_of(channel: object) -> ChannelPolicy:
    """The channel's policy; none for a channel that does not declare one."""
    policy = getattr(channel, "policy", None)
    return policy if isinstance(policy, ChannelPolicy) else NO_POLICY
