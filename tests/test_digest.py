"""Digests: grouped by story, every format, hostile text inert, held alerts included."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from feedserver import FeedServer
from pg import PgDatabases
from receivers import SmtpReceiver
from sqlalchemy import select

from worker.config import (
    DigestSchedule,
    EmailChannelSettings,
    FeedSettings,
    FetchSettings,
    FileChannelSettings,
    QuietHours,
    Settings,
)
from worker.core import make_feedwatch
from worker.deliver import drain_outbox
from worker.digest import (
    DIGEST_RETRY_HORIZON,
    DIGEST_RUN_LEASE_SECONDS,
    Digest,
    build_digest,
    render_digest,
    retry_unsent_digests,
    send_digest,
    send_scheduled_digest,
)
from worker.errors import DeliveryError
from worker.models import DeliveryStatus, utcnow
from worker.poll import poll_once
from worker.store.schema import deliveries
from worker.store.sql import SqlStore

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
    # Two replicas run the same cron job moments apart: they name one period,
    # so the second finds it claimed and sends nothing.
    schedule = DigestSchedule(name="daily", cron="0 8 * * *", channel="desk")
    settings = _settings(tmp_path, "http://127.0.0.1:9/feed.xml")
    fired = datetime(2026, 5, 1, 8, 0, 0, 400_000, tzinfo=UTC)
    with make_feedwatch(settings) as fw:
        channel = fw.channels["desk"]
        first = await send_scheduled_digest(
            fw.store, channel, schedule, worker_id="a", now=fired
        )
        second = await send_scheduled_digest(
            fw.store,
            channel,
            schedule,
            worker_id="b",
            now=fired + timedelta(seconds=40),
        )
        await channel.aclose()
    assert first is not None and second is None
    assert first.until == datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    assert first.until - first.since == timedelta(days=1)
    assert len((tmp_path / "desk.jsonl").read_text().splitlines()) == 1


# -- replicas: one scheduled digest per period ------------------------------------------


@pytest.fixture(scope="module")
def digest_pg_url(pg_databases: PgDatabases) -> str:
    """A throwaway PostgreSQL database for this module, dropped at the end."""
    return pg_databases.create()


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)]
)
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL two replicas share: a SQLite file, or PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("digest_pg_url"))


def _replica(tmp_path: Path, database: str, feed_url: str, name: str) -> Settings:
    """One replica's settings: the shared database, its own file for channel desk
    (quiet all night, then digest)."""
    quiet = QuietHours(start="22:00", end="07:00", timezone="UTC", then="digest")
    return Settings(
        database=database,
        feeds=(FeedSettings(url=feed_url),),
        fetch=FetchSettings(allow_private_addresses=True),
        channels=(
            FileChannelSettings(
                type="file",
                name="desk",
                path=str(tmp_path / f"{name}.jsonl"),
                quiet_hours=quiet,
            ),
        ),
    )


def _lines(*paths: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for p in paths
        if p.exists()
        for line in p.read_text().splitlines()
    ]


async def test_two_replicas_send_one_scheduled_digest(
    tmp_path: Path, feed_server: FeedServer, shared_db: str
) -> None:
    feed_server.set("/f.xml", FEED.encode())
    url = feed_server.url("/f.xml")
    schedule = DigestSchedule(name="daily", cron="0 8 * * *", channel="desk")
    a = make_feedwatch(_replica(tmp_path, shared_db, url, "a"))
    b = make_feedwatch(_replica(tmp_path, shared_db, url, "b"))
    try:
        a.sync_config_feeds()
        assert (await poll_once(a, all_feeds=True)).alerts == 2
        night = (utcnow() + timedelta(days=1)).replace(hour=23, minute=0, tzinfo=UTC)
        held = await drain_outbox(
            a.store, a.channels, a.settings.delivery, worker_id="a", now=lambda: night
        )
        assert held.held == 2

        # The job fires after the alerts were raised (periods end on the minute).
        fired = utcnow() + timedelta(minutes=1)
        sent = await asyncio.gather(
            send_scheduled_digest(
                a.store, a.channels["desk"], schedule, worker_id="a", now=fired
            ),
            send_scheduled_digest(
                b.store, b.channels["desk"], schedule, worker_id="b", now=fired
            ),
        )
        [d] = [x for x in sent if x is not None]
        assert len(sent) == 2
        [line] = _lines(tmp_path / "a.jsonl", tmp_path / "b.jsonl")
        assert line["type"] == "feedwatch.digest" and line["id"] == d.id
        assert len(line["stories"]) == 2
        # released once, by the digest that was sent
        assert a.store.held_alerts("desk") == []
        assert isinstance(a.store, SqlStore)
        with a.store.engine.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.status, deliveries.c.digest_id)
            ).all()
        assert sorted(rows) == [("delivered", d.id), ("delivered", d.id)]
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_dead_claimers_digest_is_taken_over_after_the_lease(
    tmp_path: Path, shared_db: str
) -> None:
    schedule = DigestSchedule(name="hourly", cron="0 * * * *", channel="desk")
    url = "http://127.0.0.1:9/feed.xml"
    (tmp_path / "dead.jsonl").mkdir()  # its sends fail: it claims, then "dies"
    dead = make_feedwatch(_replica(tmp_path, shared_db, url, "dead"))
    live = make_feedwatch(_replica(tmp_path, shared_db, url, "live"))
    fired = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    try:
        with pytest.raises(DeliveryError):
            await send_scheduled_digest(
                dead.store, dead.channels["desk"], schedule, worker_id="dead", now=fired
            )
        # Within the lease the run is still the dead worker's.
        early = await send_scheduled_digest(
            live.store,
            live.channels["desk"],
            schedule,
            worker_id="live",
            fired_at=fired,
            now=fired + timedelta(seconds=DIGEST_RUN_LEASE_SECONDS - 1),
        )
        assert early is None and _lines(tmp_path / "live.jsonl") == []
        late = await send_scheduled_digest(
            live.store,
            live.channels["desk"],
            schedule,
            worker_id="live",
            fired_at=fired,
            now=fired + timedelta(seconds=DIGEST_RUN_LEASE_SECONDS),
        )
        assert late is not None and late.until == fired
        [line] = _lines(tmp_path / "live.jsonl")
        assert line["id"] == late.id
        # Sent: the period is never sent again, whoever asks and however late.
        again = await send_scheduled_digest(
            live.store,
            live.channels["desk"],
            schedule,
            worker_id="other",
            fired_at=fired,
            now=fired + timedelta(days=1),
        )
        assert again is None and len(_lines(tmp_path / "live.jsonl")) == 1
    finally:
        await dead.aclose()
        await live.aclose()


# -- a claimed run whose sender died is sent again by the retry ---------------------


def _emailing(database: str, smtp: SmtpReceiver) -> Settings:
    """A replica's settings: the shared database, channel desk by real SMTP, three
    schedules on it."""
    return Settings(
        database=database,
        channels=(
            EmailChannelSettings(
                type="email",
                name="desk",
                host=smtp.host,
                port=smtp.port,
                to=("desk@example.org",),
                timeout=10.0,
            ),
        ),
        digests=tuple(
            DigestSchedule(name=name, cron=cron, channel="desk")
            for name, cron in (
                ("daily", "0 8 * * *"),
                ("hourly", "0 * * * *"),
                ("weekly", "0 8 * * 1"),
            )
        ),
    )


async def test_a_dead_claimers_digest_is_sent_once_by_the_retry(
    shared_db: str, smtp: SmtpReceiver
) -> None:
    a = make_feedwatch(_emailing(shared_db, smtp))
    b = make_feedwatch(_emailing(shared_db, smtp))
    now = utcnow()
    fired = now.replace(second=0, microsecond=0) - timedelta(hours=1)
    daily, hourly, weekly = a.settings.digests
    try:
        # The dead worker claimed the daily run an hour ago and never sent it.
        smtp.fail_next(reply="421 4.3.0 going down")
        with pytest.raises(DeliveryError):
            await send_scheduled_digest(
                a.store, a.channels["desk"], daily, worker_id="dead", now=fired
            )
        # The weekly run went out; the hourly one was claimed a minute ago.
        sent = await send_scheduled_digest(
            a.store, a.channels["desk"], weekly, worker_id="a", now=fired
        )
        assert sent is not None and len(smtp.messages) == 1
        busy = now - timedelta(minutes=1)
        assert await asyncio.to_thread(
            a.store.claim_digest_run,
            "hourly",
            "dg_busy",
            "busy",
            busy,
            since=busy - timedelta(hours=1),
            until=busy,
        )

        # Two replicas retry at once: one of them sends the daily digest.
        retried = await asyncio.gather(
            *(
                retry_unsent_digests(
                    fw.store,
                    fw.channels,
                    fw.settings.digests,
                    worker_id=name,
                    now=now,
                )
                for fw, name in ((a, "a"), (b, "b"))
            )
        )
        [d] = [d for batch in retried for d in batch]
        assert (d.since, d.until) == (fired - timedelta(days=1), fired)
        mails = smtp.messages
        assert len(mails) == 2
        subject = str(mails[1].message["Subject"])
        assert f"to {fired:%Y-%m-%d %H:%M} UTC" in subject

        # Sent: never again. The fresh hourly claim is left to its worker.
        later = await retry_unsent_digests(
            a.store, a.channels, a.settings.digests, worker_id="a", now=now
        )
        assert later == [] and len(smtp.messages) == 2
        [waiting] = a.store.unsent_digest_runs(now, now - timedelta(days=1))
        assert (waiting.schedule, waiting.worker_id) == ("hourly", "busy")
        assert hourly.name == waiting.schedule
    finally:
        await a.aclose()
        await b.aclose()


async def test_the_retry_is_bounded_and_waits_out_a_failed_tries_claim(
    tmp_path: Path, smtp: SmtpReceiver
) -> None:
    fw = make_feedwatch(_emailing(f"sqlite:///{tmp_path / 'fw.db'}", smtp))
    now = utcnow()
    ended = now - timedelta(hours=3)
    try:
        for name, run, end in (
            ("removed", "dg_removed", now - timedelta(hours=2)),
            ("daily", "dg_ancient", now - timedelta(seconds=DIGEST_RETRY_HORIZON + 60)),
            ("daily", "dg_failing", ended),
        ):
            assert fw.store.claim_digest_run(
                name, run, "dead", end, since=end - timedelta(days=1), until=end
            )

        async def retry(at: datetime) -> list[Digest]:
            return await retry_unsent_digests(
                fw.store, fw.channels, fw.settings.digests, worker_id="w", now=at
            )

        # The channel is down: the try fails and leaves the run claimed anew.
        smtp.stop()
        assert await retry(now) == []
        smtp.start()
        assert await retry(now + timedelta(seconds=DIGEST_RUN_LEASE_SECONDS - 1)) == []
        assert smtp.messages == []
        [d] = await retry(now + timedelta(seconds=DIGEST_RUN_LEASE_SECONDS))
        assert (d.since, d.until) == (ended - timedelta(days=1), ended)
        # Neither the removed schedule's run nor the one past the horizon.
        assert await retry(now + timedelta(hours=1)) == []
        assert len(smtp.messages) == 1
    finally:
        await fw.aclose()
