"""A status change of a known story is one new alert that supersedes the first;
other reports of the story, however many outlets, raise nothing (poll.py + alerts.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from feedserver import FeedServer

from worker.alerts import STORY_KEY, alert_id
from worker.config import FeedSettings, FetchSettings, FileChannelSettings, Settings
from worker.core import make_feedwatch
from worker.poll import poll_once

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>{name}</title>
<link>https://x.example/</link><description>d</description>{items}</channel></rss>"""
ITEM = """<item><guid>{guid}</guid><title>{title}</title>
<pubDate>{date}</pubDate><description>{summary}</description></item>"""
ANNOUNCED = (
    "China's Xi to visit Seoul next week for summit with Lee",
    "Chinese President Xi Jinping will travel to Seoul next week for a summit with "
    "South Korean President Lee Jae-myung, officials said.",
)
HELD = (
    "Xi arrives in Seoul for summit with Lee",
    "Chinese President Xi Jinping arrived in Seoul on Tuesday and held a summit with "
    "South Korean President Lee Jae-myung.",
)
HELD_AGAIN = (
    "Xi and Lee hold summit in Seoul",
    "Chinese President Xi Jinping and South Korean President Lee Jae-myung held "
    "talks in Seoul on Tuesday.",
)


def _feed(name: str, *items: tuple[str, tuple[str, str], str]) -> bytes:
    body = "".join(
        ITEM.format(guid=g, title=t, summary=s, date=d) for g, (t, s), d in items
    )
    return RSS.format(name=name, items=body).encode()


async def test_status_change_alerts_once_and_refers_to_the_first(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    mon, tue = "Mon, 07 Sep 2026 09:00:00 GMT", "Tue, 08 Sep 2026 09:00:00 GMT"
    feed_server.set("/a.xml", _feed("A", ("a1", ANNOUNCED, mon)), "application/rss+xml")
    feed_server.set("/b.xml", _feed("B"), "application/rss+xml")
    settings = Settings(
        database=f"sqlite:///{tmp_path / 'fw.db'}",
        feeds=tuple(
            FeedSettings(url=feed_server.url(p), interval=3600.0)
            for p in ("/a.xml", "/b.xml")
        ),
        fetch=FetchSettings(allow_private_addresses=True, timeout=10.0),
        channels=(
            FileChannelSettings(type="file", name="f", path=str(tmp_path / "a")),
        ),
    )
    now = datetime(2026, 9, 8, 12, tzinfo=UTC)
    with make_feedwatch(settings) as fw:
        fw.sync_config_feeds()
        first = await poll_once(fw, all_feeds=True, now=now)
        assert first.alerts == 1
        [first_id] = first.alert_ids
        story_id = fw.store.get_alert(first_id).alert.story_id
        assert first_id == alert_id(story_id, STORY_KEY)

        # two outlets report it held, in one pass: one new alert, superseding
        feed_server.set(
            "/a.xml",
            _feed("A", ("a1", ANNOUNCED, mon), ("a2", HELD, tue)),
            "application/rss+xml",
        )
        feed_server.set(
            "/b.xml", _feed("B", ("b1", HELD_AGAIN, tue)), "application/rss+xml"
        )
        second = await poll_once(fw, all_feeds=True, now=now)
        assert second.alerts == 1
        update = fw.store.get_alert(second.alert_ids[0]).alert
        assert update.supersedes == first_id and update.story_id == story_id
        assert update.id == alert_id(story_id, STORY_KEY, "held")
        assert [d.channel for d in fw.store.get_alert(update.id).deliveries] == ["f"]

        # another report of the held summit a pass later: nothing new
        feed_server.set(
            "/b.xml",
            _feed("B", ("b1", HELD_AGAIN, tue), ("b2", HELD, tue)),
            "application/rss+xml",
        )
        third = await poll_once(fw, all_feeds=True, now=now)
        assert third.new_items == 1 and third.alerts == 0
