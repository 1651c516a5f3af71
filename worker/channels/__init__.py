"""Channels: build the configured transports (``ChannelSettings`` -> ``Channel``).

The registry is a plain dict keyed by the config's ``type:``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from worker.channels.base import NO_POLICY, Channel, ChannelPolicy
from worker.channels.console import ConsoleChannel
from worker.channels.email import EmailChannel
from worker.channels.file import FileChannel
from worker.channels.webhook import WebhookChannel
from worker.config import (
    AppriseChannelSettings,
    ChannelSettings,
    ConsoleChannelSettings,
    FileChannelSettings,
)
from worker.errors import ConfigError

__all__ = [
    "NO_POLICY",
    "REGISTRY",
    "Channel",
    "ChannelPolicy",
    "ConsoleChannel",
    "EmailChannel",
    "FileChannel",
    "WebhookChannel",
    "aclose_channels",
    "make_channel",
    "make_channels",
]


def _console(settings: ConsoleChannelSettings) -> Channel:
    return ConsoleChannel(settings.name, format=settings.format)


def _file(settings: FileChannelSettings) -> Channel:
    return FileChannel(settings.name, settings.path)


def _apprise(settings: AppriseChannelSettings) -> Channel:
    # Imported here: apprise is an optional extra.
    from worker.channels.apprise import AppriseChannel

    try:
        return AppriseChannel.from_settings(settings)
    except ConfigError as e:
        raise ConfigError(
            None,
            e.key_path.replace("channels.type", f"channels.{settings.name}.type"),
            e.expected,
        ) from e


REGISTRY: dict[str, Callable[[Any], Channel]] = {
    "console": _console,
    "file": _file,
    "webhook": WebhookChannel.from_settings,
    "email": EmailChannel.from_settings,
    "apprise": _apprise,
}
"""Channel factories by config ``type``."""


def make_channel(settings: ChannelSettings) -> Channel:
    """The channel a config section describes; ConfigError for an unknown type."""
    factory = REGISTRY.get(settings.type)
    if factory is None:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigError(
            None,
            f"channels.{settings.name}.type",
            f"unknown channel type {settings.type!r} (known: {known})",
        )
    channel = factory(settings)
    if settings.rate_limit is not None or settings.quiet_hours is not None:
        channel.policy = ChannelPolicy(settings.rate_limit, settings.quiet_hours)
    return channel


def make_channels(settings: Sequence[ChannelSettings]) -> dict[str, Channel]:
    """Every configured channel, by name."""
    return {s.name: make_channel(s) for s in settings}


async def aclose_channels(channels: Mapping[str, Channel]) -> None:
    """Close every channel, even if one fails to close (the first error is raised)."""
    first: BaseException | None = None
    for channel in channels.values():
        try:
            await channel.aclose()
        except Exception as e:
            first = first or e
    if first is not None:
        raise first
