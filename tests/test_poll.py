"""One poll pass against a real feed server and a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from conftest import publish_demo_feeds
from feedserver import FeedServer

from worker.config import (
    ConsoleChannelSettings,
    FeedSettings,
    FetchSettings,
    FileChannelSettings,
    PollSettings,
    Settings,
)
from worker.core import Feedwatch, make_feedwatch
from worker.models import Feed, FeedStatus, utcnow
from worker.poll import (
    PollSummary,
    Schedule,
    error_delay,
    next_check,
    poll_interval,
    poll_once,
)

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


async def test_changed_feeds_are_read_past_their_stored_entries_within_bounds(
    feed_server: FeedServer, fw_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed feed's stored entries are looked up before its entries are read;
    at most LOOKUP_DOCS documents wait for a lookup at once, and a body over
    LOOKUP_MAX_BODY is read whole, without one."""
    import asyncio

    import worker.poll as wp

    calls: list[int] = []
    in_flight = [0, 0]  # now, most
    read_unknown = wp._parse_unknown

    async def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        in_flight[0] += 1
        in_flight[1] = max(in_flight)
        try:
            await asyncio.sleep(0.05)  # lets other documents try to start meanwhile
            return await read_unknown(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            in_flight[0] -= 1

    monkeypatch.setattr(wp, "_parse_unknown", counted)
    monkeypatch.setattr(wp, "LOOKUP_DOCS", 2)
    paths = [f"/{n}.xml" for n in range(5)]
    for n, path in enumerate(paths):
        feed_server.set(path, rss((f"w{n}", *WEATHER)))
    fw = fw_factory([feed_server.url(p) for p in paths])
    first = await poll_once(fw, all_feeds=True)
    assert (first.new_items, calls) == (5, [])  # nothing stored to look up yet

    for n, path in enumerate(paths):
        feed_server.set(path, rss((f"s{n}", *SUMMIT), (f"w{n}", *WEATHER)))
    changed = await poll_once(fw, all_feeds=True)
    assert (changed.new_items, len(calls), in_flight[1]) == (5, 5, 2)

    calls.clear()
    monkeypatch.setattr(wp, "LOOKUP_MAX_BODY", 100)
    for n, path in enumerate(paths):
        feed_server.set(path, rss((f"t{n}", *WEATHER), (f"w{n}", *WEATHER)))
    large = await poll_once(fw, all_feeds=True)
    assert (large.new_items, calls) == (5, [])
    assert fw.store.count_items() == 15


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


# -- fetching at scale: redirects, 410, server hints, schedules, batches -------------


async def test_permanent_redirect_updates_the_stored_url(
    feed_server: FeedServer, fw_factory
) -> None:
    feed_server.set("/new.xml", rss(("w1", *WEATHER)))
    feed_server.redirect("/old.xml", "/new.xml", 301)
    fw = fw_factory([feed_server.url("/old.xml")])
    res = await poll_once(fw, all_feeds=True)
    assert (res.polled, res.new_items) == (1, 1)
    [stored] = fw.store.list_feeds()
    assert stored.url == feed_server.url("/new.xml")
    assert fw.store.count_items() == 1
    await poll_once(fw, all_feeds=True)
    assert feed_server.requests_for("/old.xml")[1:] == []  # asked once only


async def test_temporary_redirect_keeps_the_url(
    feed_server: FeedServer, fw_factory
) -> None:
    feed_server.set("/new.xml", rss(("w1", *WEATHER)))
    feed_server.redirect("/old.xml", "/new.xml", 302)
    fw = fw_factory([feed_server.url("/old.xml")])
    await poll_once(fw, all_feeds=True)
    assert [f.url for f in fw.store.list_feeds()] == [feed_server.url("/old.xml")]


async def test_gone_disables_the_feed_with_a_reason(
    feed_server: FeedServer, fw_factory
) -> None:
    feed_server.set("/ok.xml", rss(("w1", *WEATHER)))
    feed_server.fail("/gone.xml", 410, times=None)
    fw = fw_factory([feed_server.url("/ok.xml"), feed_server.url("/gone.xml")])
    res = await poll_once(fw, all_feeds=True)
    assert (res.polled, res.failed) == (1, 1)
    gone = fw.store.get_feed(feed_server.url("/gone.xml"))
    assert gone.status == FeedStatus.DISABLED
    assert gone.last_error is not None
    assert "410" in gone.last_error and "disabled" in gone.last_error
    again = await poll_once(fw, all_feeds=True)
    assert again.feeds == 1  # the disabled feed is not polled any more
    assert len(feed_server.requests_for("/gone.xml")) == 1


def _wait(fw: Feedwatch, url: str, before: datetime) -> float:
    feed = fw.store.get_feed(url)
    assert feed.next_check_at is not None
    return (feed.next_check_at - before).total_seconds()


@pytest.mark.parametrize(
    ("headers", "ttl", "expected"),
    [
        ({"Cache-Control": "public, max-age=7200"}, None, 7200),
        ({"Cache-Control": "max-age=999999"}, None, 6 * 3600),  # capped by max
        ({}, 180, 180 * 60),
        ({"Expires": "Thu, 01 Jan 2099 00:00:00 GMT"}, None, 6 * 3600),
        ({"Cache-Control": "no-cache, max-age=7200"}, None, None),
    ],
)
async def test_server_hints_are_lower_bounds_of_the_next_check(
    feed_server: FeedServer,
    tmp_path: Path,
    headers: dict[str, str],
    ttl: int | None,
    expected: float | None,
) -> None:
    body = rss(("w1", *WEATHER))
    if ttl is not None:
        body = body.replace(
            b"<description>d</description>", f"<ttl>{ttl}</ttl>".encode()
        )
    feed_server.set("/a.xml", body, headers=headers)
    url = feed_server.url("/a.xml")
    settings = _settings(tmp_path, [], poll=PollSettings(jitter=0.1))
    with make_feedwatch(settings) as fw:
        fw.store.add_feed(Feed(url=url, interval=60))
        before = utcnow()
        await poll_once(fw, all_feeds=True)
        wait = _wait(fw, url, before)
    # The feed published nothing this week that dates it: adaptive max (6 h) unless
    # the hint is longer; a hint below the max lifts the interval to at least it.
    if expected is None or expected >= 6 * 3600:
        assert 6 * 3600 * 0.89 <= wait <= 6 * 3600 * 1.11
    else:
        assert wait >= expected - 5


async def test_adaptive_interval_follows_update_frequency(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    now = utcnow()
    busy = "".join(
        ITEM.format(guid=f"b{n}", title=f"t{n}", summary="s").replace(
            "</item>",
            f"<pubDate>{format_datetime(now - timedelta(hours=n))}</pubDate></item>",
        )
        for n in range(100)
    )
    feed_server.set("/busy.xml", RSS.format(items=busy).encode())
    feed_server.set("/quiet.xml", rss(("q1", *WEATHER)).replace(b"<item>", b"<item>"))
    urls = [feed_server.url("/busy.xml"), feed_server.url("/quiet.xml")]
    settings = _settings(
        tmp_path,
        [],
        poll=PollSettings(min_interval=600, max_interval=4 * 3600, jitter=0.1),
    )
    with make_feedwatch(settings) as fw:
        for u in urls:
            fw.store.add_feed(Feed(url=u))
        before = utcnow()
        await poll_once(fw, all_feeds=True)
        busy_wait = _wait(fw, urls[0], before)
        quiet_wait = _wait(fw, urls[1], before)
    # 100 items in a week: 7 d / 100 = 6048 s, inside [600, 14400]
    assert 6048 * 0.89 <= busy_wait <= 6048 * 1.11
    # an undated item counts as seen now: 7 d / 1 -> capped at the max
    assert 4 * 3600 * 0.89 <= quiet_wait <= 4 * 3600 * 1.11


async def test_per_feed_overrides_of_interval_bounds(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.set("/a.xml", rss(("w1", *WEATHER)))
    feed_server.set("/b.xml", rss(("w2", *WEATHER)))
    a, b = feed_server.url("/a.xml"), feed_server.url("/b.xml")
    settings = Settings(
        database=f"sqlite:///{tmp_path / 'fw.db'}",
        feeds=(
            FeedSettings(url=a, max_interval=1200),
            FeedSettings(url=b, interval=300),
        ),
        fetch=FetchSettings(allow_private_addresses=True),
        channels=(),
        poll=PollSettings(jitter=0.0),
    )
    with make_feedwatch(settings) as fw:
        fw.sync_config_feeds()
        before = utcnow()
        await poll_once(fw, all_feeds=True)
        assert 1190 <= _wait(fw, a, before) <= 1210  # adaptive, capped by its own max
        assert 290 <= _wait(fw, b, before) <= 310  # fixed interval


async def test_all_feeds_are_polled_across_batches(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    urls = []
    for n in range(7):
        feed_server.set(f"/f{n}.xml", rss((f"i{n}", *WEATHER)))
        urls.append(feed_server.url(f"/f{n}.xml"))
    settings = _settings(tmp_path, urls, poll=PollSettings(batch=3))
    with make_feedwatch(settings) as fw:
        fw.sync_config_feeds()
        res = await poll_once(fw, all_feeds=True)
        assert (res.feeds, res.polled, res.new_items) == (7, 7, 7)
        again = await poll_once(fw, all_feeds=True)
        assert (again.feeds, again.not_modified) == (7, 7)
        assert await poll_once(fw) == PollSummary()  # nothing due


def test_error_backoff_doubles_up_to_the_ceiling_and_never_stops() -> None:
    s = Schedule(fixed=None, min_interval=300, max_interval=3600, error_base=900)
    delays = [error_delay(s, n) for n in range(1, 12)]
    assert delays[:4] == [900, 1800, 3600, 7200]
    assert max(delays) == 86400 and delays[-1] == 86400
    assert error_delay(s, 10_000) == 86400  # huge counts do not overflow
    assert error_delay(s, 1, retry_after=7200) == 7200
    assert error_delay(s, 1, retry_after=10**9) == 86400
    now = utcnow()
    feed = Feed(url="http://127.0.0.1/a", error_count=30)
    for _ in range(50):
        wait = (next_check(feed, now, failed=True, schedule=s) - now).total_seconds()
        assert 0 < wait <= 86400


def test_next_check_jitter_spreads_polls_within_bounds() -> None:
    s = Schedule(fixed=1000.0, min_interval=1, max_interval=10**6, jitter=0.1)
    now = utcnow()
    feed = Feed(url="http://127.0.0.1/a")
    waits = {
        (next_check(feed, now, failed=False, schedule=s) - now).total_seconds()
        for _ in range(200)
    }
    assert all(900 <= w <= 1100 for w in waits)
    assert len(waits) > 100  # spread, not one value


def test_poll_interval_is_miniflux_entry_frequency() -> None:
    s = Schedule(fixed=None, min_interval=300, max_interval=86400)
    assert poll_interval(s, 0) == 86400
    assert poll_interval(s, 7) == 86400
    assert poll_interval(s, 7 * 24) == 3600
    assert poll_interval(s, 10**6) == 300
    assert poll_interval(s, 7 * 24, hint=7200) == 7200
    assert poll_interval(s, 7 * 24, hint=10**7) == 86400


async def test_a_poll_pass_feeds_the_metrics(
    feed_server: FeedServer, fw_factory
) -> None:
    feed_server.set("/a.xml", rss(("s1", *SUMMIT), ("w1", *WEATHER)))
    feed_server.set("/bad.xml", b"", "application/rss+xml")
    feed_server.fail("/bad.xml", 500, times=None)
    fw = fw_factory([feed_server.url("/a.xml"), feed_server.url("/bad.xml")])
    await poll_once(fw, all_feeds=True)
    text = fw.metrics.render().decode()
    assert "feedwatch_items_new_total 2.0" in text
    assert 'feedwatch_fetch_errors_total{kind="status"} 1.0' in text
    [alert_line] = [
        line for line in text.splitlines() if line.startswith("feedwatch_alerts_total{")
    ]
    assert alert_line.endswith(" 1.0")
    assert "feedwatch_poll_duration_seconds_count 1.0" in text
