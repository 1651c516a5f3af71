"""Console channel: ``Envelope`` -> a text block (subject + text) or one JSON line
(``envelope.data``) on a stream, stdout by default."""

from __future__ import annotations

import json
import sys
from typing import Literal, TextIO

from worker.channels.base import NO_POLICY, ChannelPolicy
from worker.errors import DeliveryError
from worker.models import Envelope

__all__ = ["ConsoleChannel"]


class ConsoleChannel:
    """Prints envelopes for people watching a terminal or for a pipe (``json``)."""

    supports_html = False
    policy: ChannelPolicy = NO_POLICY

    def __init__(
        self,
        name: str = "console",
        *,
        format: Literal["text", "json"] = "text",
        stream: TextIO | None = None,
    ) -> None:
        self.name = name
        self.format = format
        self._stream = stream

    def __repr__(self) -> str:
        return f"ConsoleChannel(name={self.name!r}, format={self.format!r})"

    def render(self, envelope: Envelope) -> str:
        """What ``send`` writes for the envelope, trailing newline included."""
        if self.format == "json":
            return json.dumps(envelope.data, ensure_ascii=False) + "\n"
        rule = "-" * min(max(len(envelope.subject), 20), 78)
        return f"{envelope.subject}\n{rule}\n{envelope.text.rstrip()}\n\n"

    async def send(self, envelope: Envelope) -> None:
        """Write the envelope and flush; a closed or broken stream is retryable."""
        # Looked up at send time so a replaced sys.stdout (tests, daemons) is honoured.
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            stream.write(self.render(envelope))
            stream.flush()
        except (OSError, ValueError) as e:
            raise DeliveryError(
                self.name,
                envelope.id,
                f"cannot write to the console: {e}",
                retryable=True,
            ) from e

    async def aclose(self) -> None:
        """Nothing to release: the stream belongs to the caller."""
