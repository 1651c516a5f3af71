"""One poll pass against a real feed server and a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import publish_demo_feeds
from feedserver import FeedServer

from worker.config import (
    ConsoleChannelSettings,
    FeedSettings,
    FetchSettings,
    FileChannelSettings,
    Settings,
)
from worker.core import Feedwatch, make_feedwatch
from worker.models import FeedStatus, utcnow
from worker.poll import poll_once

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>
<link>https://wire.example/</link><description>d</description>{items}</channel></rss>"""
ITEM = """<item><guid>{guid}</guid><title>{title}</title><link>https://wire.example/{guid}</link>
<description>{summary}</description></item>"""

SUMMIT = (
    "Leaders of China, Japan and South Korea to hold trilateral summit in Tokyo",
    "The three leaders will meet next month, the foreign ministry said.",
)
WEATHER = ("Heavy rain expected in Busan", "Forecasters warned of flooding.")


def rss(*items: tuple[str, str, str]) -> bytes:
    body = "".join(ITEM.format(guid=g, title=t, summary=s) for g, t, s in items)
    return RSS.format(items=body).encode()


def _settings(tmp_path: Path, urls: list[str], **extra: object) -> Settings:
    return Settings(
        database=f"sqlite:///{tmp_path / 'fw.db'}",
        feeds=tuple(FeedSettings(url=u, interval=3600.0) for u in urls),
        fetch=FetchSettings(allow_private_addresses=True, timeout=10.0),
        channels=(
            FileChannelSettings(
                type="file", name="all", path=str(tmp_path / "a.jsonl")
            ),
            ConsoleChannelSettings(type="console", name="visits", topics=("visit",)),
        ),
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def fw_factory(tmp_path: Path) -> Iterator[object]:
    opened: list[Feedwatch] = []

    def make(urls: list[str], **extra: object) -> Feedwatch:
        fw = make_feedwatch(_settings(tmp_path, urls, **extra))
        fw.sync_config_feeds()
        opened.append(fw)
        return fw

    yield make
    for fw in opened:
        fw.close()


async def test_new_items_once_then_not_modified(
    feed_server: FeedServer, fw_factory
) -> None:
    feed_server.set("/a.xml", rss(("s1", *SUMMIT), ("w1", *WEATHER)))
    fw = fw_factory([feed_server.url("/a.xml")])
    first = await poll_once(fw, all_feeds=True)
    assert (first.feeds, first.polled, first.failed, first.new_items) == (1, 1, 0, 2)
    assert first.alerts == 1
    [row] = fw.store.list_alerts()
    assert row.alert.item.title == SUMMIT[0]
    # routed by topic: the summit alert goes to "all", not to the visits-only channel
    assert [d.channel for d in row.deliveries] == ["all"]
    assert fw.store.count_items() == 2

    second = await poll_once(fw, all_feeds=True)
    assert (second.not_modified, second.new_items, second.alerts) == (1, 0, 0)
    conditional = feed_server.requests_for("/a.xml")[-1].headers
    assert "if-none-match" in conditional


async def test_unchanged_body_without_validators_is_not_parsed_again(
    feed_server: FeedServer, fw_factory
) -> None:
    feed_server.set("/a.xml", rss(("w1", *WEATHER)), etag=False, last_modified=False)
    fw = fw_factory([feed_server.url("/a.xml")])
    await poll_once(fw, all_feeds=True)
    again = await poll_once(fw, all_feeds=True)
    assert again.outcomes[0].status == "unchanged"
    assert again.not_modified == 1 and again.new_items == 0


async def test_only_new_items_are_stored_and_classified(
    feed_server: FeedServer, fw_factory
) -> None:
    feed_server.set("/a.xml", rss(("w1", *WEATHER)))
    fw = fw_factory([feed_server.url("/a.xml")])
    await poll_once(fw, all_feeds=True)
    feed_server.set("/a.xml", rss(("s1", *SUMMIT), ("w1", *WEATHER)))
    res = await poll_once(fw, all_feeds=True)
    assert (res.new_items, res.alerts) == (1, 1)
    assert fw.store.count_items() == 2


async def test_a_failing_feed_backs_off_and_does_not_stop_the_others(
    feed_server: FeedServer, fw_factory
) -> None:
    feed_server.set("/ok.xml", rss(("w1", *WEATHER)))
    feed_server.set("/bad.xml", rss(("w2", *WEATHER)))
    feed_server.fail("/bad.xml", 503, times=1, headers={"Retry-After": "7200"})
    fw = fw_factory([feed_server.url("/ok.xml"), feed_server.url("/bad.xml")])
    before = utcnow()
    res = await poll_once(fw, all_feeds=True)
    assert (res.polled, res.failed, res.new_items) == (1, 1, 1)
    bad = fw.store.get_feed(feed_server.url("/bad.xml"))
    assert bad.status == FeedStatus.ERROR and bad.error_count == 1
    assert bad.last_error is not None and "503" in bad.last_error
    assert bad.next_check_at is not None
    assert bad.next_check_at >= before + timedelta(seconds=7200)  # Retry-After honoured
    # it recovers on the next poll
    res = await poll_once(fw, all_feeds=True)
    bad = fw.store.get_feed(feed_server.url("/bad.xml"))
    assert (
        bad.status == FeedStatus.ACTIVE
        and bad.error_count == 0
        and bad.last_error is None
    )
    assert res.new_items == 1


async def test_malformed_feed_is_an_error_not_a_crash(
    feed_server: FeedServer, fw_factory
) -> None:
    feed_server.set(
        "/html", b"<html><body><p>Not a feed</p></body></html>", "text/html"
    )
    fw = fw_factory([feed_server.url("/html")])
    res = await poll_once(fw, all_feeds=True)
    assert res.failed == 1
    assert feed_server.url("/html") in (res.outcomes[0].error or "")


async def test_due_feeds_only_unless_all(feed_server: FeedServer, fw_factory) -> None:
    feed_server.set("/a.xml", rss(("w1", *WEATHER)))
    fw = fw_factory([feed_server.url("/a.xml")])
    assert (await poll_once(fw)).feeds == 1  # never polled: due
    assert (await poll_once(fw)).feeds == 0  # next check an hour away
    assert (await poll_once(fw, all_feeds=True)).feeds == 1


async def test_private_addresses_are_refused_by_default(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.set("/a.xml", rss(("w1", *WEATHER)))
    settings = Settings(
        database=f"sqlite:///{tmp_path / 'fw.db'}",
        feeds=(FeedSettings(url=feed_server.url("/a.xml")),),
    )
    with make_feedwatch(settings) as fw:
        fw.sync_config_feeds()
        res = await poll_once(fw, all_feeds=True)
    assert res.failed == 1 and "private" in (res.outcomes[0].error or "").lower()
    assert feed_server.requests == []


async def test_demo_feeds_alert_once_per_story(
    feed_server: FeedServer, fw_factory, demo_expected: dict
) -> None:
    urls = publish_demo_feeds(feed_server)
    fw = fw_factory(list(urls.values()))
    res = await poll_once(fw, all_feeds=True)
    assert res.failed == 0
    assert res.new_items == sum(
        f["item_count"] for f in demo_expected["feeds"].values()
    )
    assert res.alerts == demo_expected["alert_count"]
    stories = fw.store.stories(utcnow() - timedelta(hours=1))
    pair = set(demo_expected["same_story"][0])
    joined = [
        s
        for s in stories
        if {src.item_id.split(":", 1)[1] for src in s.story.sources} == pair
    ]
    assert len(joined) == 1
