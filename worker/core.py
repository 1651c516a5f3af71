"""The composition root: builds the store, rules, channels and metrics from Settings.

The CLI, the scheduler and the demo all receive a Feedwatch; nothing is global.
"""

from __future__ import annotations

import logging
import os
import socket
from types import TracebackType
from typing import TYPE_CHECKING, Self

from worker.config import Settings
from worker.metrics import Metrics
from worker.sources import config_feeds
from worker.store import open_store

if TYPE_CHECKING:
    from worker.channels.base import Channel
    from worker.classify import Ruleset
    from worker.pool import ProcessPool
    from worker.store.base import Store

__all__ = ["Feedwatch", "make_feedwatch"]

log = logging.getLogger(__name__)


class Feedwatch:
    """Everything a running feedwatch holds; close() releases it."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.metrics = Metrics()
        self._ruleset: Ruleset | None = None
        self._channels: dict[str, Channel] | None = None
        self.pool: ProcessPool | None = None
        """Poll processes forked at start-up (``poll.start_pool``); None: one process."""

    @property
    def ruleset(self) -> Ruleset:
        """The compiled rules, loaded on first use (RuleError if a file is wrong),
        from the compiled-rules cache when the rule files are unchanged."""
        if self._ruleset is None:
            from worker.classify import load_ruleset

            self._ruleset = load_ruleset(
                self.settings.rules, cache_dir=self.settings.cache_dir
            )
        return self._ruleset

    @property
    def channels(self) -> dict[str, Channel]:
        """Configured channels by name, built on first use."""
        if self._channels is None:
            from worker.channels import make_channels

            self._channels = make_channels(self.settings.channels)
        return self._channels

    def sync_config_feeds(self) -> int:
        """Subscribe to the feeds the config lists (idempotent); returns how many.

        A config feed that moved (301/308) is found by the URL it was configured
        under and keeps its new URL, rather than being subscribed again.
        """
        return self.store.add_config_feeds(config_feeds(self.settings))

    async def aclose(self) -> None:
        """Close channels, then the store."""
        if self._channels:
            for ch in self._channels.values():
                try:
                    await ch.aclose()
                except Exception:
                    log.exception("closing channel %s failed", ch.name)
            self._channels = None
        self.store.close()

    def close(self) -> None:
        """Close the store (for commands that never opened channels)."""
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def make_feedwatch(settings: Settings, *, migrate: bool = True) -> Feedwatch:
    """Open the database (migrating it) and wrap it with the settings."""
    store = open_store(settings.database)
    try:
        if migrate:
            store.migrate()
    except BaseException:
        store.close()
        raise
    return Feedwatch(settings, store)
