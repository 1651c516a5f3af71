"""File channel: ``Envelope`` -> one JSON line (``envelope.data``) appended to a
JSON Lines file, flushed and fsynced before ``send`` returns."""

from __future__ import annotations

import asyncio
import errno
import json
import os
from pathlib import Path

from worker.channels.base import NO_POLICY, ChannelPolicy
from worker.errors import DeliveryError
from worker.models import Envelope

__all__ = ["FileChannel"]

# Faults an operator must fix; retrying on a timer will not help.
_PERMANENT_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EROFS,
}


class FileChannel:
    """Appends alert payloads to a JSON Lines file (one object per line).

    Each line is written with a single ``write`` on an ``O_APPEND`` descriptor, so
    lines from several writers (processes or replicas sharing the file) never
    interleave on a local filesystem.
    """

    supports_html = False
    policy: ChannelPolicy = NO_POLICY

    def __init__(self, name: str, path: str | os.PathLike[str]) -> None:
        self.name = name
        self.path = Path(path).expanduser()

    def __repr__(self) -> str:
        return f"FileChannel(name={self.name!r}, path={str(self.path)!r})"

    async def send(self, envelope: Envelope) -> None:
        """Append ``envelope.data`` as one line; disk full is retryable, a path the
        process cannot write is not."""
        line = json.dumps(envelope.data, ensure_ascii=False, separators=(",", ":"))
        data = (line + "\n").encode("utf-8")  # json.dumps never emits a raw newline
        try:
            await asyncio.to_thread(self._append, data)
        except OSError as e:
            raise DeliveryError(
                self.name,
                envelope.id,
                f"cannot append to {self.path}: {e.strerror or e}",
                retryable=e.errno not in _PERMANENT_ERRNOS,
            ) from e

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(
            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
        )
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    async def aclose(self) -> None:
        """Nothing to release: the file is opened per envelope."""
