"""Digests: grouped by story, every format, hostile text inert, held alerts included."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from feedserver import FeedServer

from worker.config import (
    FeedSettings,
    FetchSettings,
    FileChannelSettings,
    QuietHours,
    Settings,
)
from worker.core import make_feedwatch
from worker.deliver import drain_outbox
from worker.digest import build_digest, render_digest, send_digest
from worker.models import DeliveryStatus, utcnow
from worker.poll import poll_once

FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>Wire &lt;b&gt;</title>
<item><guid>a</guid><title>Leaders of China, Japan and South Korea to hold trilateral summit &lt;script&gt;alert(1)&lt;/script&gt;</title>
<link>javascript:alert(1)</link>
<description>The three leaders will meet in Tokyo next month.</description></item>
<item><guid>b</guid><title>Japan's foreign minister arrives in Seoul for talks with counterpart</title>
<link>https://wire.example/b</link>
<description>The two ministers will hold talks on Friday.</description></item>
<item><guid>c</guid><title>Stocks rise in Tokyo</title><description>Markets.</description></item>
</channel></rss>"""


def _settings(tmp_path: Path, url: str, **channel: object) -> Settings:
    return Settings(
        database=f"sqlite:///{tmp_path / 'fw.db'}",
        feeds=(FeedSettings(url=url),),
        fetch=FetchSettings(allow_private_addresses=True),
        channels=(
            FileChannelSettings(
                type="file", name="desk", path=str(tmp_path / "desk.jsonl"), **channel
            ),
        ),
    )


async def test_digest_groups_by_story_in_every_format(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set("/f.xml", FEED.encode())
    fw = make_feedwatch(_settings(tmp_path, feed_server.url("/f.xml")))
    try:
        fw.sync_config_feeds()
        await poll_once(fw, all_feeds=True)
        d = build_digest(fw.store, utcnow() - timedelta(hours=1))
    finally:
        await fw.aclose()
    assert len(d.stories) == 2
    with make_feedwatch(_settings(tmp_path, feed_server.url("/f.xml"))) as fw2:
        since = utcnow() - timedelta(hours=1)
        rule = d.stories[0].rules[0]
        by_rule = build_digest(fw2.store, since, rules=(rule,))
        assert 1 <= len(by_rule.stories) <= 2
        assert all(rule in r.rules for r in by_rule.stories)
        assert build_digest(fw2.store, since, rules=("no-such-rule",)).stories == ()
        visits = build_digest(fw2.store, since, topics=("visit",))
        assert all("visit" in r.topics for r in visits.stories)
        assert len(visits.stories) == sum("visit" in r.topics for r in d.stories)
    data = json.loads(render_digest(d, "json"))
    titles = [s["title"] for s in data["stories"]]
    assert any("trilateral summit" in t for t in titles)
    assert all("Stocks" not in t for t in titles)
    for s in data["stories"]:
        assert s["sources"][0]["source"] == "Wire <b>"
        assert s["event"] and s["evidence"]
    html = render_digest(d, "html")
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert "javascript:" not in html
    assert 'href="https://wire.example/b"' in html
    text = render_digest(d, "text")
    assert "2 stories" in text and "Stocks" not in text
    md = render_digest(d, "md")
    assert "[Japan's foreign minister arrives in Seoul" in md
    assert "(<https://wire.example/b>)" in md
    # escaped: shown as text by any Markdown renderer, never as a tag or a link
    assert "\\<script\\>" in md and not re.search(r"(?<!\\)<script", md)
    assert "javascript:" not in md


async def test_alerts_held_by_quiet_hours_go_out_in_the_next_digest(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set("/f.xml", FEED.encode())
    quiet = QuietHours(start="22:00", end="07:00", timezone="UTC", then="digest")
    settings = _settings(tmp_path, feed_server.url("/f.xml"), quiet_hours=quiet)
    fw = make_feedwatch(settings)
    try:
        fw.sync_config_feeds()
        res = await poll_once(fw, all_feeds=True)
        assert res.alerts == 2
        night = (utcnow() + timedelta(days=1)).replace(hour=23, minute=0, tzinfo=UTC)
        drained = await drain_outbox(
            fw.store, fw.channels, settings.delivery, worker_id="t", now=lambda: night
        )
        assert drained.held == 2 and drained.delivered == 0
        out = tmp_path / "desk.jsonl"
        assert not out.exists() or out.read_text() == ""

        # A digest of the last minute still carries the alerts held earlier.
        sent = await send_digest(
            fw.store, fw.channels["desk"], utcnow() - timedelta(seconds=1)
        )
        assert len(sent.stories) == 2
        [line] = out.read_text().splitlines()
        assert json.loads(line)["type"] == "feedwatch.digest"
        rows = fw.store.list_alerts()
        assert {d.status for r in rows for d in r.deliveries} == {
            DeliveryStatus.DELIVERED
        }
        # released: the next digest does not have to carry them again
        assert fw.store.held_alerts("desk") == []
    finally:
        await fw.aclose()


def test_empty_digest_says_so(tmp_path: Path) -> None:
    with make_feedwatch(Settings(database=f"sqlite:///{tmp_path / 'x.db'}")) as fw:
        d = build_digest(fw.store, datetime(2026, 1, 1, tzinfo=UTC))
    for fmt in ("text", "md", "html"):
        assert "Nothing matched" in render_digest(d, fmt)
    assert json.loads(render_digest(d, "json"))["stories"] == []


async def test_a_scheduled_digest_has_one_id_per_period(tmp_path: Path) -> None:
    # Two replicas run the same cron job moments apart: receivers can drop the
    # second copy only if both carry the same digest id.
    from worker.channels.file import FileChannel
    from worker.config import DigestSchedule
    from worker.digest import send_scheduled_digest

    schedule = DigestSchedule(name="daily", cron="0 8 * * *", channel="desk")
    settings = _settings(tmp_path, "http://127.0.0.1:9/feed.xml")
    with make_feedwatch(settings) as fw:
        channel = fw.channels["desk"]
        assert isinstance(channel, FileChannel)
        first = await send_scheduled_digest(fw.store, channel, schedule)
        second = await send_scheduled_digest(fw.store, channel, schedule)
        await channel.aclose()
    if first.until.minute == second.until.minute:  # not across a minute boundary
        assert first.id == second.id
    assert first.until.second == 0 and first.until.microsecond == 0
    assert first.until - first.since == timedelta(days=1)
