"""``poll.ingest_push``: a pushed body through the poll path, under the feed's lease,
on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import worker.poll
from worker.core import Feedwatch, make_feedwatch
from worker.models import Feed, FeedStatus, utcnow
from worker.poll import ingest_push

from .conftest import SUMMIT, WEATHER, atom, settings_for

FEED_URL = "https://wire.example/news.xml"


@pytest.fixture
def fw(store_url: str, tmp_path: Path) -> Iterator[Feedwatch]:
    """A Feedwatch with one stored feed (never polled)."""
    with make_feedwatch(settings_for(store_url, tmp_path)) as f:
        f.store.add_feed(Feed(url=FEED_URL, interval=600, etag='"v1"'))
        yield f


async def test_a_push_is_recorded_like_a_poll_and_keeps_the_validators(
    fw: Feedwatch,
) -> None:
    feed = fw.store.get_feed(FEED_URL)
    body = atom(SUMMIT, WEATHER)
    now = utcnow()
    first = await ingest_push(fw, feed, body, "application/atom+xml", now=now)
    assert (first.feeds, first.polled, first.new_items, first.alerts) == (1, 1, 2, 1)
    assert [o.status for o in first.outcomes] == ["ok"]
    after = fw.store.get_feed(FEED_URL)
    assert after.etag == '"v1"' and after.title == "Wire"
    assert after.last_checked_at == now and after.next_check_at is not None
    # the lease is released: another worker can claim the feed at once
    assert fw.store.claim_feed(feed.id or 0, "other", now, 60) is not None
    fw.store.update_feed_state(after)

    again = await ingest_push(fw, after, body, "application/atom+xml")
    assert (again.new_items, again.alerts) == (0, 0)
    assert len(fw.store.list_alerts()) == 1 and fw.store.count_items() == 2


async def test_an_unreadable_push_leaves_the_feed_alone(fw: Feedwatch) -> None:
    before = fw.store.get_feed(FEED_URL)
    summary = await ingest_push(fw, before, b"\x00 not a feed", "text/plain")
    assert summary.failed == 1 and summary.outcomes[0].error_kind == "parse"
    assert fw.store.get_feed(FEED_URL) == before  # not marked failing
    assert fw.store.claim_feed(before.id or 0, "other", utcnow(), 60) is not None


async def test_a_push_waits_for_the_poll_holding_the_feed_then_gives_up(
    fw: Feedwatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker.poll, "PUSH_CLAIM_WAIT", 0.3)
    now = utcnow()
    [held] = fw.store.claim_due_feeds("poller", now, 10, 300)
    summary = await ingest_push(fw, held, atom(SUMMIT), None, now=now)
    assert summary.failed == 1 and fw.store.count_items() == 0
    fw.store.update_feed_state(held)  # the poll ends
    summary = await ingest_push(fw, held, atom(SUMMIT), None, now=now)
    assert summary.new_items == 1


async def test_a_push_for_a_disabled_feed_is_ignored(fw: Feedwatch) -> None:
    feed = fw.store.get_feed(FEED_URL)
    off = feed.model_copy(update={"status": FeedStatus.DISABLED})
    fw.store.update_feed_state(off)
    summary = await ingest_push(fw, off, atom(SUMMIT), None)
    assert (summary.new_items, summary.polled) == (0, 0)
    assert fw.store.count_items() == 0
    later = utcnow() + timedelta(seconds=1)
    assert fw.store.claim_feed(feed.id or 0, "other", later, 60) is not None


@pytest.mark.parametrize("push", ["unreadable", "disabled"])
async def test_a_push_that_outlived_its_lease_leaves_the_newer_state_alone(
    fw: Feedwatch,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    push: str,
) -> None:
    store = fw.store
    feed = store.get_feed(FEED_URL)
    fid = feed.id or 0
    if push == "disabled":
        feed = feed.model_copy(update={"status": FeedStatus.DISABLED})
        store.update_feed_state(feed)
    body = b"\x00 not a feed" if push == "unreadable" else atom(SUMMIT)
    claim = store.claim_feed
    newer = feed.model_copy(
        update={
            "status": FeedStatus.ACTIVE,
            "etag": '"v2"',
            "body_hash": "b" * 64,
            "last_checked_at": utcnow(),
            "next_check_at": utcnow() + timedelta(minutes=10),
        }
    )

    def taken_over(fid_: int, worker_id: str, now: datetime, secs: float) -> Feed:
        # The push's claim (an hour old, so long expired) is taken over by a poll
        # that records a newer state (the feed re-enabled), then a next poll
        # claims the feed, all before the push writes anything.
        claimed = claim(fid_, worker_id, now, secs)
        assert claimed is not None
        poller = utcnow()
        assert claim(fid, "poller", poller, 300) is not None
        store.update_feed_state(newer)
        assert claim(fid, "poller", poller, 300) is not None
        return claimed

    monkeypatch.setattr(store, "claim_feed", taken_over)
    with caplog.at_level(logging.WARNING, logger="worker"):
        summary = await ingest_push(
            fw, feed, body, None, now=utcnow() - timedelta(hours=1)
        )
    monkeypatch.undo()
    assert summary.new_items == 0
    assert store.get_feed(FEED_URL) == newer, "the late push overwrote the newer state"
    # nor did it free the next poll's lease
    assert store.claim_feed(fid, "other", utcnow(), 60) is None
    assert any("outlived its lease" in r.getMessage() for r in caplog.records)
