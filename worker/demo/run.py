"""``feedwatch demo``: bundled sample feeds on 127.0.0.1 -> the daemon -> the console."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import click

from worker.config import (
    ConsoleChannelSettings,
    DeliverySettings,
    FeedSettings,
    FetchSettings,
    PollSettings,
    Settings,
)
from worker.core import make_feedwatch
from worker.demo.server import DemoFeedServer
from worker.digest import build_digest, digest_payload, render_digest
from worker.models import utcnow
from worker.scheduler import Daemon

__all__ = ["demo_settings", "run_demo"]


def demo_settings(urls: list[str], database: str, *, as_json: bool) -> Settings:
    """Settings for the demo: the served feeds, a temp database, the console."""
    return Settings(
        database=database,
        feeds=tuple(FeedSettings(url=u, interval=60.0) for u in urls),
        channels=(
            ConsoleChannelSettings(
                type="console", name="console", format="json" if as_json else "text"
            ),
        ),
        fetch=FetchSettings(allow_private_addresses=True),
        poll=PollSettings(interval=60.0, tick=5.0),
        delivery=DeliverySettings(interval=1.0),
    )


async def run_demo(*, duration: float | None, as_json: bool) -> None:
    """Run the daemon against the demo feeds, then print a digest of what it found."""
    started = utcnow()
    with DemoFeedServer() as server, tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'demo.db'}"
        settings = demo_settings(server.urls(), db, as_json=as_json)
        if not as_json:
            click.echo(
                f"feedwatch demo: {len(server.urls())} sample feeds on "
                f"{server.base_url}, database {db}\n"
            )
        fw = make_feedwatch(settings)
        try:
            daemon = Daemon(fw)
            if duration is None:
                await asyncio.to_thread(fw.sync_config_feeds)
                await daemon.poll()
                await daemon.drain()
            else:
                await daemon.run(duration=duration)
            d = build_digest(fw.store, started, utcnow())
            if as_json:
                click.echo(json.dumps(digest_payload(d), ensure_ascii=False))
            else:
                click.echo("\n" + render_digest(d, "text"))
        finally:
            await fw.aclose()
