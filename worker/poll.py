"""One poll pass: claim due feeds -> fetch -> parse -> new items -> classify -> stories
-> alerts, each feed's outcome written to the store in a single transaction.

The shell around the pure stages (reader's update pipeline): it reads what the store
knows, calls parse/classify/stories, and records one PollIntent per feed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from worker import __version__
from worker.alerts import alert_id, route
from worker.errors import FeedError, FetchError
from worker.fetch import Fetched, Fetcher, NotModified
from worker.models import Alert, Decision, Feed, FeedStatus, Item, Story, utcnow
from worker.parse import ParsedFeed, parse_feed
from worker.store.base import AlertRecord, PollIntent, StoryLink
from worker.stories import StoryIndex

if TYPE_CHECKING:
    from worker.core import Feedwatch

__all__ = ["FeedOutcome", "PollSummary", "next_check", "poll_once"]

log = logging.getLogger(__name__)

MAX_ERROR_BACKOFF = 24 * 3600.0
STORY_ALERT_KEY = "story"


@dataclass
class FeedOutcome:
    """How one feed's poll went (the per-feed summary line)."""

    url: str
    status: str  # ok | not_modified | unchanged | error
    new_items: int = 0
    alerts: int = 0
    error: str | None = None


@dataclass
class PollSummary:
    """What one pass did; ``feedwatch poll --once --json`` prints it."""

    feeds: int = 0
    polled: int = 0
    not_modified: int = 0
    failed: int = 0
    new_items: int = 0
    alerts: int = 0
    alert_ids: list[str] = field(default_factory=list)
    outcomes: list[FeedOutcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """The JSON summary (counts, then one entry per feed)."""
        return {
            "feeds": self.feeds,
            "polled": self.polled,
            "not_modified": self.not_modified,
            "failed": self.failed,
            "new_items": self.new_items,
            "alerts": self.alerts,
            "errors": [
                {"url": o.url, "error": o.error}
                for o in self.outcomes
                if o.status == "error"
            ],
        }


def next_check(feed: Feed, now: datetime, *, failed: bool) -> datetime:
    """When to poll again: the interval with ±10 % jitter, backing off on errors."""
    base = float(feed.interval)
    if failed:
        base = min(base * 2 ** min(feed.error_count, 16), MAX_ERROR_BACKOFF)
    return now + timedelta(seconds=base * random.uniform(0.9, 1.1))  # noqa: S311


@dataclass
class _Fetch:
    feed: Feed
    result: Fetched | NotModified | None = None
    parsed: ParsedFeed | None = None
    error: FeedError | None = None


async def _fetch_one(
    fetcher: Fetcher, feed: Feed, sem: asyncio.Semaphore, now: datetime
) -> _Fetch:
    out = _Fetch(feed)
    async with sem:
        try:
            res = await fetcher.fetch(
                feed.url, etag=feed.etag, last_modified=feed.last_modified
            )
        except FeedError as e:
            out.error = e
            return out
    out.result = res
    if isinstance(res, Fetched) and res.body_hash != feed.body_hash:
        try:
            out.parsed = await asyncio.to_thread(
                parse_feed,
                res.body,
                res.url,
                content_type=res.content_type,
                source=feed.title,
                now=now,
            )
        except FeedError as e:
            out.error = e
    return out


def _error_intent(feed: Feed, err: FeedError, now: datetime) -> PollIntent:
    failed = feed.model_copy(
        update={
            "status": FeedStatus.ERROR,
            "last_error": str(err),
            "error_count": feed.error_count + 1,
            "last_checked_at": now,
        }
    )
    wait = next_check(failed, now, failed=True)
    if isinstance(err, FetchError) and err.retry_after:
        wait = max(
            wait, now + timedelta(seconds=min(err.retry_after, MAX_ERROR_BACKOFF))
        )
    return PollIntent(feed=failed.model_copy(update={"next_check_at": wait}))


def _ok_state(feed: Feed, res: Fetched | NotModified, now: datetime) -> Feed:
    update: dict[str, object] = {
        "status": FeedStatus.ACTIVE,
        "last_error": None,
        "error_count": 0,
        "last_checked_at": now,
        "etag": res.etag,
        "last_modified": res.last_modified,
    }
    if isinstance(res, Fetched):
        update["body_hash"] = res.body_hash
    ok = feed.model_copy(update=update)
    return ok.model_copy(update={"next_check_at": next_check(ok, now, failed=False)})


class _Pass:
    """State shared by the feeds of one pass: the story index and the summary."""

    def __init__(self, fw: Feedwatch, stories: StoryIndex, now: datetime) -> None:
        self.fw = fw
        self.stories = stories
        self.now = now
        self.summary = PollSummary()

    def intent_for(self, f: _Fetch, known: set[str]) -> tuple[PollIntent, str]:
        feed, now = f.feed, self.now
        if f.error is not None:
            return _error_intent(feed, f.error, now), "error"
        assert f.result is not None
        state = _ok_state(feed, f.result, now)
        if f.parsed is None:
            status = (
                "not_modified" if isinstance(f.result, NotModified) else "unchanged"
            )
            return PollIntent(feed=state), status
        if state.title is None and f.parsed.title:
            state = state.model_copy(update={"title": f.parsed.title})
        new_items = [i for i in f.parsed.items if i.id not in known]
        decisions = [self.fw.ruleset.classify(i) for i in new_items]
        matched: list[Decision] = []
        links: list[StoryLink] = []
        alerts: list[AlertRecord] = []
        assert feed.id is not None
        for item, decision in zip(new_items, decisions, strict=True):
            if not decision.rules:
                continue
            matched.append(decision)
            if not decision.alert:
                continue
            story = self.stories.assign(item, decision, now)
            links.append(StoryLink(story=story, item_id=item.id, feed_id=feed.id))
            alerts.extend(self._alerts(item, decision, story))
        intent = PollIntent(
            feed=state,
            items=new_items,
            decisions=matched,
            story_links=links,
            alerts=alerts,
        )
        return intent, "ok"

    def _alerts(
        self, item: Item, decision: Decision, story: Story
    ) -> list[AlertRecord]:
        # One alert per story, whatever rules fired: the rules are facets of one
        # watch, and three alerts for one event is the noise feedwatch exists to
        # remove. Later reports join the story and appear in digests.
        alert = Alert(
            id=alert_id(story.id, STORY_ALERT_KEY),
            story_id=story.id,
            rule=decision.rules[0],
            topics=decision.topics,
            severity=decision.severity,
            score=decision.score,
            created_at=self.now,
            item=item,
            decision=decision,
            story=story,
        )
        return [AlertRecord(alert, route(alert, self.fw.settings.channels))]


async def poll_once(
    fw: Feedwatch,
    *,
    all_feeds: bool = False,
    now: datetime | None = None,
    fetcher: Fetcher | None = None,
) -> PollSummary:
    """Poll every due feed (every feed with ``all_feeds``) once and record the results."""
    now = now or utcnow()
    settings = fw.settings
    store = fw.store
    feeds = await asyncio.to_thread(
        store.claim_due_feeds,
        fw.worker_id,
        now,
        settings.poll.batch,
        max(settings.fetch.timeout * 4, 120.0),
        all_feeds=all_feeds,
    )
    if not feeds:
        return PollSummary()
    fw.ruleset  # noqa: B018 - compile rules before fetching, so a bad rule fails fast
    sem = asyncio.Semaphore(settings.poll.concurrency)
    own = fetcher is None
    f = fetcher or Fetcher(settings.fetch, version=__version__, allow_files=True)
    try:
        if own:
            await f.__aenter__()
        fetched = await asyncio.gather(
            *(_fetch_one(f, feed, sem, now) for feed in feeds)
        )
    finally:
        if own:
            await f.__aexit__(None, None, None)

    recent = await asyncio.to_thread(
        store.recent_stories, now - timedelta(seconds=settings.stories.window)
    )
    index = StoryIndex(
        recent,
        window=timedelta(seconds=settings.stories.window),
        threshold=settings.stories.threshold,
    )
    p = _Pass(fw, index, now)
    summary = p.summary
    summary.feeds = len(feeds)
    for item in fetched:
        known: set[str] = set()
        if item.parsed is not None and item.feed.id is not None:
            known = await asyncio.to_thread(
                store.known_item_ids, item.feed.id, [i.id for i in item.parsed.items]
            )
        intent, status = p.intent_for(item, known)
        record = await asyncio.to_thread(store.record_poll, intent)
        outcome = FeedOutcome(
            url=item.feed.url,
            status=status,
            new_items=record.new_items,
            alerts=record.new_alerts,
            error=intent.feed.last_error if status == "error" else None,
        )
        summary.outcomes.append(outcome)
        summary.new_items += record.new_items
        summary.alerts += record.new_alerts
        summary.alert_ids.extend(record.alert_ids)
        if status == "error":
            summary.failed += 1
        else:
            summary.polled += 1
            if status in ("not_modified", "unchanged"):
                summary.not_modified += 1
        log.info(
            "poll url=%s status=%s new_items=%d alerts=%d%s",
            outcome.url,
            status,
            outcome.new_items,
            outcome.alerts,
            f" error={outcome.error}" if outcome.error else "",
        )
    return summary
