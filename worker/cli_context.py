"""What every CLI command shares: the ``--config`` path and settings loaded once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from worker.config import Settings

__all__ = ["CliContext", "resolve_rules_dir", "settings_from"]


@dataclass
class CliContext:
    """Carried in ``click.Context.obj``; settings are loaded on first use only."""

    config_path: str | None = None
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """The settings, loaded once (raises ConfigError on a bad file)."""
        if self._settings is None:
            from worker.config import load_settings  # pydantic-settings: ~0.1 s

            self._settings = load_settings(self.config_path)
        return self._settings


def settings_from(ctx: click.Context) -> Settings:
    """Settings of the running command (defaults if the group set no context)."""
    obj = ctx.find_object(CliContext)
    if obj is None:
        obj = ctx.ensure_object(CliContext)
    return obj.settings()


def resolve_rules_dir(ctx: click.Context, explicit: str | None) -> str | None:
    """``--rules DIR`` if given, else the config's ``rules``; None means bundled."""
    if explicit:
        return explicit
    return settings_from(ctx).rules
