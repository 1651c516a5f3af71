"""The Channel protocol: a transport that carries a rendered ``Envelope`` somewhere.

Channels do not render; ``alerts.render_alert`` and the digest do that once.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from worker.models import Envelope

__all__ = ["Channel"]


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
    """Whether the channel shows ``envelope.html`` (only email does)."""

    async def send(self, envelope: Envelope) -> None:
        """Deliver one envelope, or raise DeliveryError."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...
