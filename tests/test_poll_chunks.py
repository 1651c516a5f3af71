"""A pass records its feeds in chunks of ``RECORD_CHUNK`` (``poll.batch`` if smaller),
in claim order, with the same rows and alerts as one big transaction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from feedserver import FeedServer

import worker.poll
from worker.config import (
    FeedSettings,
    FetchSettings,
    FileChannelSettings,
    PollSettings,
    Settings,
)
from worker.core import make_feedwatch
from worker.poll import poll_once
from worker.store.base import PollIntent, PollRecord

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>Wire {n}</title>
<link>https://wire.example/</link><description>d</description>{items}</channel></rss>"""
ITEM = """<item><guid>{guid}</guid><title>{title}</title>
<link>https://wire.example/{guid}</link><description>{summary}</description></item>"""
SUMMIT = (
    "Leaders of China, Japan and South Korea to hold trilateral summit in Tokyo",
    "The three leaders will meet next month, the foreign ministry said.",
)
WEATHER = ("Heavy rain expected in Busan", "Forecasters warned of flooding.")


def _feed(n: int) -> bytes:
    items = ITEM.format(guid=f"f{n}-summit", title=SUMMIT[0], summary=SUMMIT[1])
    items += ITEM.format(guid=f"f{n}-rain", title=WEATHER[0], summary=WEATHER[1])
    return RSS.format(n=n, items=items).encode()


@pytest.mark.parametrize(
    ("chunk", "batch", "sizes"),
    [(2, 1000, [2, 2, 1]), (250, 2, [2, 2, 1]), (250, 1000, [5])],
)
async def test_feeds_are_recorded_in_chunks_in_claim_order(
    feed_server: FeedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunk: int,
    batch: int,
    sizes: list[int],
) -> None:
    monkeypatch.setattr(worker.poll, "RECORD_CHUNK", chunk)
    urls = []
    for n in range(5):
        feed_server.set(f"/f{n}.xml", _feed(n))
        urls.append(feed_server.url(f"/f{n}.xml"))
    settings = Settings(
        database=f"sqlite:///{tmp_path / 'fw.db'}",
        cache_dir=str(tmp_path / "cache"),
        feeds=tuple(FeedSettings(url=u, interval=3600.0) for u in urls),
        fetch=FetchSettings(allow_private_addresses=True, timeout=10.0),
        poll=PollSettings(batch=batch),
        channels=(
            FileChannelSettings(
                type="file", name="all", path=str(tmp_path / "a.jsonl")
            ),
        ),
    )
    with make_feedwatch(settings) as fw:
        fw.sync_config_feeds()
        recorded: list[list[str]] = []
        real = fw.store.record_polls

        def record_polls(intents: Sequence[PollIntent]) -> list[PollRecord]:
            recorded.append([i.feed.url for i in intents])
            return real(intents)

        monkeypatch.setattr(fw.store, "record_polls", record_polls)
        summary = await poll_once(fw, all_feeds=True)

        assert [len(r) for r in recorded] == sizes
        assert [u for r in recorded for u in r] == urls  # claim order
        assert (summary.feeds, summary.polled, summary.new_items) == (5, 5, 10)
        # Five reports of one story: one alert, for the first feed claimed.
        assert summary.alerts == 1
        [row] = fw.store.list_alerts()
        assert row.alert.item.url == "https://wire.example/f0-summit"
        again = await poll_once(fw, all_feeds=True)
        assert (again.not_modified, again.new_items) == (5, 0)
