"""One poll pass: claim due feeds -> fetch -> parse -> new items -> classify -> stories
-> alerts, recorded in one store transaction per chunk of feeds.

The shell around the pure stages (reader's update pipeline): it reads what the store
knows, calls parse/classify/stories, and schedules each feed's next check.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import random
import time
from collections import deque
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from worker import __version__
from worker.alerts import alert_marks, route, story_alert, story_marks
from worker.config import FeedSettings, Settings
from worker.errors import FeedError, FetchError, NotFoundError, StoreError
from worker.fetch import Fetched, Fetcher, NotModified, freshness_lifetime
from worker.models import Decision, Feed, FeedStatus, Item, Story, utcnow
from worker.parse import ParsedFeed, QuickParse, parse_feed, parse_feed_quick
from worker.store.base import (
    AlertRecord,
    Lease,
    PollIntent,
    PollRecord,
    Store,
    StoryLink,
)
from worker.websub import Discovery, discover, note_hubs, push_fed

if TYPE_CHECKING:
    from worker.core import Feedwatch
    from worker.pool import ProcessPool
    from worker.stories import StoryIndex

__all__ = [
    "FeedOutcome",
    "PollSummary",
    "Schedule",
    "error_delay",
    "ingest_push",
    "next_check",
    "poll_interval",
    "poll_once",
    "pool_size",
    "start_pool",
]

log = logging.getLogger(__name__)

MAX_ERROR_BACKOFF = 24 * 3600.0
WEEK = 7 * 86400.0
# Claims per pass are bounded: batch x this many feeds at most.
MAX_CLAIMS = 1000
RECORD_CHUNK = 250
"""Most feeds fetched, parsed and recorded together (one store transaction): their
parsed items are held until recorded (~50 KB a feed); chunks of 1,000 held ~45 MB
more at the peak and were no faster (measured at 1,000 and 10,000 feeds)."""
POOL_CHUNKS = 4
"""With poll processes, a pass is cut into at least this many chunks a process
(each at most ``POOL_CHUNK``), so no process idles long at the end."""
POOL_CHUNK = 125
"""Most feeds in one poll process's chunk: each process holds a chunk's items, so
they are half ``RECORD_CHUNK`` (a first poll of 10,000 feeds: see BENCHMARKS.md)."""
LOOKUP_MAX_BODY = 512 * 1024
"""A changed body up to this size is read in two steps, its stored entries left out
unread; a larger one is read whole, without holding its parsed tree over an await."""
LOOKUP_DOCS = 4
"""Most documents of a batch held parsed while their guids are looked up (lxml's
tree of a 512 KiB feed is a few MB)."""


@dataclass
class FeedOutcome:
    """How one feed's poll went (the per-feed summary line)."""

    url: str
    status: str  # ok | not_modified | unchanged | error | disabled
    new_items: int = 0
    alerts: int = 0
    error: str | None = None
    error_kind: str | None = None
    """The FetchError stage, or ``parse``, for failed polls (metrics label)."""


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
    seconds: float = 0.0
    """Wall time of the pass (claim to last record)."""

    def merge(self, other: PollSummary) -> None:
        """Add the counts and outcomes of ``other`` (a chunk polled elsewhere)."""
        self.polled += other.polled
        self.not_modified += other.not_modified
        self.failed += other.failed
        self.new_items += other.new_items
        self.alerts += other.alerts
        self.alert_ids.extend(other.alert_ids)
        self.outcomes.extend(other.outcomes)

    def as_dict(self) -> dict[str, object]:
        """The JSON summary (counts, then one entry per failed feed)."""
        return {
            "feeds": self.feeds,
            "polled": self.polled,
            "not_modified": self.not_modified,
            "failed": self.failed,
            "new_items": self.new_items,
            "alerts": self.alerts,
            "seconds": round(self.seconds, 3),
            "errors": [
                {"url": o.url, "error": o.error}
                for o in self.outcomes
                if o.status in ("error", "disabled")
            ],
        }


# -- scheduling --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schedule:
    """How one feed is scheduled: a fixed interval, or adaptive between bounds."""

    fixed: float | None
    """Seconds between polls; None: adaptive (Miniflux's entry_frequency)."""
    min_interval: float
    max_interval: float
    jitter: float = 0.1
    error_backoff_max: float = MAX_ERROR_BACKOFF
    error_base: float = 900.0
    """First wait after an error, doubled on each further error."""

    @classmethod
    def for_feed(
        cls, feed: Feed, settings: Settings, own: FeedSettings | None
    ) -> Schedule:
        """The schedule of ``feed``: its config entry's overrides, else ``poll.*``."""
        poll = settings.poll
        lo = own.min_interval if own and own.min_interval is not None else None
        hi = own.max_interval if own and own.max_interval is not None else None
        lo = poll.min_interval if lo is None else lo
        hi = poll.max_interval if hi is None else hi
        explicit = own is not None and own.interval is not None
        fixed = float(feed.interval) if explicit or poll.scheduler == "fixed" else None
        return cls(
            fixed=fixed,
            min_interval=min(lo, hi),
            max_interval=max(lo, hi),
            jitter=poll.jitter,
            error_backoff_max=poll.error_backoff_max,
            error_base=fixed if fixed is not None else poll.interval,
        )


def poll_interval(schedule: Schedule, recent: int, hint: float | None = None) -> float:
    """Seconds until the next check of a healthy feed, before jitter.

    Adaptive: a week divided by the items of the last week (none: the maximum),
    clamped to [min, max], as Miniflux's entry_frequency scheduler does. A server
    hint (RSS ttl, Cache-Control max-age, Expires) is a lower bound, itself capped
    at the maximum so a feed asking for a year is still checked.
    """
    if schedule.fixed is not None:
        interval = schedule.fixed
    elif recent <= 0:
        interval = schedule.max_interval
    else:
        interval = min(max(WEEK / recent, schedule.min_interval), schedule.max_interval)
    if hint is not None and hint > interval:
        interval = max(interval, min(hint, max(schedule.max_interval, interval)))
    return interval


def error_delay(
    schedule: Schedule, error_count: int, retry_after: float | None = None
) -> float:
    """Seconds until a failing feed is tried again, before jitter: the base doubled
    per consecutive error, at least Retry-After, never past the ceiling."""
    exponent = min(max(error_count - 1, 0), 32)
    delay = min(schedule.error_base * 2.0**exponent, schedule.error_backoff_max)
    if retry_after:
        delay = max(delay, min(retry_after, schedule.error_backoff_max))
    return delay


def _jittered(seconds: float, schedule: Schedule, cap: float | None = None) -> float:
    j = schedule.jitter
    out = seconds * random.uniform(1 - j, 1 + j) if j else seconds  # noqa: S311
    return min(out, cap) if cap is not None else out


def next_check(
    feed: Feed,
    now: datetime,
    *,
    failed: bool,
    schedule: Schedule | None = None,
    recent: int = 0,
    hint: float | None = None,
    retry_after: float | None = None,
) -> datetime:
    """When to poll ``feed`` again (``feed.error_count`` already counts this poll's
    failure). Without a schedule: a fixed ``feed.interval`` with 10% jitter."""
    schedule = schedule or Schedule(
        fixed=float(feed.interval),
        min_interval=float(feed.interval),
        max_interval=float(feed.interval),
        error_base=float(feed.interval),
    )
    if failed:
        wait = error_delay(schedule, feed.error_count, retry_after)
        wait = _jittered(wait, schedule, cap=schedule.error_backoff_max)
        if retry_after:
            wait = max(wait, min(retry_after, schedule.error_backoff_max))
    else:
        base = poll_interval(schedule, recent, hint)
        wait = _jittered(base, schedule)
        if hint:
            wait = max(wait, min(hint, base))  # a lower bound, jitter or not
    return now + timedelta(seconds=wait)


# -- one feed ------------------------------------------------------------------------


@dataclass
class _Fetch:
    feed: Feed
    result: Fetched | NotModified | None = None
    parsed: ParsedFeed | None = None
    error: FeedError | None = None
    moved_to: str | None = None
    hub: Discovery | None = None
    """The WebSub hub the fetched feed names (looked for only when asked)."""


class _HandOff(Exception):
    """A poll process met a feed whose new items alert: the main process assigns
    their stories and records the feed (``intent``: classified, no stories yet)."""

    def __init__(self, intent: PollIntent) -> None:
        super().__init__()
        self.intent = intent


@dataclass(frozen=True)
class _Lookup:
    """What lets a poll leave out the entries a changed feed already has: the store
    to look their guids up in, and a bound on the documents held parsed meanwhile."""

    store: Store
    held: asyncio.Semaphore


async def _fetch_one(
    fetcher: Fetcher,
    feed: Feed,
    sem: asyncio.Semaphore,
    now: datetime,
    *,
    hubs: bool = False,
    lookup: _Lookup | None = None,
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
    if isinstance(res, Fetched):
        if res.body_hash != feed.body_hash:
            try:
                out.parsed = await _parse_fetched(res, feed, now, lookup)
            except FeedError as e:
                out.error = e
            if hubs and out.parsed is not None:
                out.hub = discover(res.headers, res.body, res.url, res.content_type)
        # Nothing reads the body after this: a batch need not hold every one.
        out.result = replace(res, body=b"")
    return out


async def _parse_fetched(
    res: Fetched, feed: Feed, now: datetime, lookup: _Lookup | None = None
) -> ParsedFeed:
    """A fetched (or pushed) body's items; raises FeedError. With ``lookup``, the
    entries of a feed fetched before that it already has are left out unread
    (most of a changed feed)."""
    # The lxml fast path runs inline (well under a millisecond); documents
    # it declines go to feedparser in a thread, off the event loop.
    if (
        lookup is not None
        and feed.id is not None
        and feed.body_hash is not None
        and len(res.body) <= LOOKUP_MAX_BODY
    ):
        async with lookup.held:
            parsed = await _parse_unknown(res, feed, feed.id, now, lookup.store)
    else:
        parsed = parse_feed_quick(
            res.body, res.url, content_type=res.content_type, source=feed.title, now=now
        )
    if parsed is None:
        parsed = await asyncio.to_thread(
            parse_feed,
            res.body,
            res.url,
            content_type=res.content_type,
            source=feed.title,
            now=now,
            fast=False,
        )
    return parsed


async def _parse_unknown(
    res: Fetched, feed: Feed, feed_id: int, now: datetime, store: Store
) -> ParsedFeed | None:
    """The fast path's read of the entries whose guids the store does not have
    (looked up between its two steps); None when feedparser must read the feed.
    The parsed document lives only as long as this call."""
    quick = QuickParse(
        res.body, res.url, content_type=res.content_type, source=feed.title, now=now
    )
    skip: Container[str] = frozenset()
    ids = quick.ids
    if ids:
        found = await asyncio.to_thread(store.known_item_ids_many, {feed_id: ids})
        skip = found.get(feed_id, skip)
    return quick.result(skip)


def _error_kind(err: FeedError) -> str:
    return err.stage if isinstance(err, FetchError) else "parse"


class _Pass:
    """State shared by the feeds of one pass: settings, stories and the summary."""

    def __init__(self, fw: Feedwatch, now: datetime) -> None:
        self.fw = fw
        self.now = now
        self.summary = PollSummary()
        self._stories: StoryIndex | None = None
        self._seen: dict[str, set[str]] = {}
        self._own = {f.url: f for f in fw.settings.feeds}
        self._moved: dict[int, str] | None = None
        self.pushed: frozenset[int] = frozenset()
        """Feeds a live WebSub hub pushes (``websub.push_fed``)."""
        self.handoff: list[PollIntent] | None = None
        """In a poll process: feeds whose new items alert, classified but left
        unrecorded for the main process, which alone assigns stories (None: assign
        them here)."""

    def schedule(self, feed: Feed) -> Schedule:
        """The feed's schedule (config overrides by URL)."""
        schedule = Schedule.for_feed(feed, self.fw.settings, self._own_settings(feed))
        if feed.id in self.pushed:
            # The hub brings new items; polling stays on as the safety net.
            longest = max(schedule.fixed or 0.0, schedule.max_interval)
            schedule = replace(schedule, fixed=longest)
        return schedule

    def _own_settings(self, feed: Feed) -> FeedSettings | None:
        """The config's entry for the feed: by its URL, or by the URL the config
        lists it under if it moved (301/308) since."""
        own = self._own.get(feed.url)
        if own is None and self._own and feed.id is not None:
            if self._moved is None:
                self._moved = self.fw.store.moved_config_feeds()
            moved = self._moved.get(feed.id)
            own = self._own.get(moved) if moved is not None else None
        return own

    def stories(self) -> StoryIndex:
        """The story index, loaded once per pass, only if something alerts."""
        if self._stories is None:
            from worker.stories import StoryIndex

            settings = self.fw.settings
            window = timedelta(seconds=settings.stories.window)
            recent = self.fw.store.recent_stories(self.now - window)
            self._stories = StoryIndex(
                recent, window=window, threshold=settings.stories.threshold
            )
            raised = self.fw.store.story_alerts([s.id for s in recent])
            self._seen = {sid: story_marks(a) for sid, a in raised.items()}
        return self._stories

    def error_intent(self, feed: Feed, err: FeedError) -> tuple[PollIntent, str]:
        """A failed poll: backoff (Retry-After honoured), or disabled on 410 Gone."""
        now = self.now
        if isinstance(err, FetchError) and err.status == 410:
            gone = feed.model_copy(
                update={
                    "status": FeedStatus.DISABLED,
                    "last_error": f"{err}; disabled: the publisher removed the feed "
                    "(410 Gone), so it is no longer polled",
                    "error_count": feed.error_count + 1,
                    "last_checked_at": now,
                    "next_check_at": None,
                }
            )
            return PollIntent(feed=gone), "disabled"
        failed = feed.model_copy(
            update={
                "status": FeedStatus.ERROR,
                "last_error": str(err),
                "error_count": feed.error_count + 1,
                "last_checked_at": now,
            }
        )
        retry_after = err.retry_after if isinstance(err, FetchError) else None
        wait = next_check(
            failed,
            now,
            failed=True,
            schedule=self.schedule(feed),
            retry_after=retry_after,
        )
        return PollIntent(feed=failed.model_copy(update={"next_check_at": wait})), (
            "error"
        )

    def ok_state(self, f: _Fetch, recent: int) -> Feed:
        """The feed's state after a good poll, with its next check scheduled."""
        res = f.result
        assert res is not None
        update: dict[str, object] = {
            "status": FeedStatus.ACTIVE,
            "last_error": None,
            "error_count": 0,
            "last_checked_at": self.now,
            "etag": res.etag,
            "last_modified": res.last_modified,
        }
        if f.moved_to is not None:
            update["url"] = f.moved_to
        if isinstance(res, Fetched):
            update["body_hash"] = res.body_hash
        if f.parsed is not None and f.feed.title is None and f.parsed.title:
            update["title"] = f.parsed.title
        hint: float | None = None
        if self.fw.settings.fetch.honor_cache_headers:
            hints = [freshness_lifetime(res.headers, now=self.now)]
            if f.parsed is not None and f.parsed.ttl:
                hints.append(f.parsed.ttl * 60.0)
            known = [h for h in hints if h]
            hint = max(known) if known else None
        ok = f.feed.model_copy(update=update)
        when = next_check(
            ok,
            self.now,
            failed=False,
            schedule=self.schedule(f.feed),
            recent=recent,
            hint=hint,
        )
        return ok.model_copy(update={"next_check_at": when})

    def intent_for(
        self, f: _Fetch, known: set[str], recent: int
    ) -> tuple[PollIntent, str]:
        """What to record for one fetched feed, and its outcome status."""
        feed = f.feed
        if f.error is not None:
            return self.error_intent(feed, f.error)
        assert f.result is not None
        if f.parsed is None:
            state = self.ok_state(f, recent)
            status = (
                "not_modified" if isinstance(f.result, NotModified) else "unchanged"
            )
            return PollIntent(feed=state), status
        new_items = [i for i in f.parsed.items if i.id not in known]
        since = self.now - timedelta(seconds=WEEK)
        recent += sum(
            1 for i in new_items if i.published is None or i.published >= since
        )
        state = self.ok_state(f, recent)
        if not new_items:
            return PollIntent(feed=state), "ok"
        classify = self.fw.ruleset.classify
        matched = [d for d in map(classify, new_items) if d.rules]
        intent = PollIntent(feed=state, items=new_items, decisions=matched)
        if self.handoff is not None and any(d.alert for d in matched):
            raise _HandOff(intent)
        return self.with_stories(intent), "ok"

    def with_stories(self, intent: PollIntent) -> PollIntent:
        """``intent`` with its alerting items assigned to stories, and the alerts
        those raise, in the order of its items."""
        alerting = {d.id: d for d in intent.decisions if d.alert}
        if not alerting:
            return intent
        feed_id = intent.feed.id
        assert feed_id is not None
        links: list[StoryLink] = []
        alerts: list[AlertRecord] = []
        for item in intent.items:
            decision = alerting.get(item.id)
            if decision is None:
                continue
            story = self.stories().assign(item, decision, self.now)
            links.append(StoryLink(story=story, item_id=item.id, feed_id=feed_id))
            alerts.extend(self._alerts(item, decision, story))
        return replace(intent, story_links=links, alerts=alerts)

    def _alerts(
        self, item: Item, decision: Decision, story: Story
    ) -> list[AlertRecord]:
        # One alert per story, whatever rules fired, and one more per change of
        # status (held, cancelled, postponed) that refers to the first; other
        # reports join the story quietly and appear in digests.
        seen = self._seen.setdefault(story.id, set())
        alert = story_alert(item, decision, story, seen, self.now)
        if alert is None:
            return []
        seen |= alert_marks(alert)
        return [AlertRecord(alert, route(alert, self.fw.settings.channels))]

    def count(
        self, feed: Feed, status: str, record: PollRecord, intent: PollIntent
    ) -> None:
        """Add one feed's outcome to the summary and log its line."""
        failed = status in ("error", "disabled")
        outcome = FeedOutcome(
            url=feed.url,
            status=status,
            new_items=record.new_items,
            alerts=record.new_alerts,
            error=intent.feed.last_error if failed else None,
        )
        metrics = self.fw.metrics
        metrics.observe_matches(r for d in intent.decisions for r in d.rules)
        inserted = set(record.alert_ids)
        metrics.observe_alerts(
            r.alert.rule for r in intent.alerts if r.alert.id in inserted
        )
        s = self.summary
        s.outcomes.append(outcome)
        s.new_items += record.new_items
        s.alerts += record.new_alerts
        s.alert_ids.extend(record.alert_ids)
        if failed:
            s.failed += 1
        else:
            s.polled += 1
            if status in ("not_modified", "unchanged"):
                s.not_modified += 1
        log.info(
            "poll url=%s status=%s new_items=%d alerts=%d%s",
            outcome.url,
            status,
            outcome.new_items,
            outcome.alerts,
            f" error={outcome.error}" if outcome.error else "",
        )


async def _claim_all(fw: Feedwatch, now: datetime, all_feeds: bool) -> list[Feed]:
    """Lease every due feed (every feed with ``all_feeds``), a batch at a time.

    Leases are held until each feed's result is recorded, so later claims skip
    the feeds already leased; the k-th batch gets a k times longer lease, as it
    is processed k-th.
    """
    settings = fw.settings
    batch = settings.poll.batch
    base_lease = max(settings.fetch.timeout * 4, 120.0)
    claimed: list[Feed] = []
    for k in range(1, MAX_CLAIMS + 1):
        got = await asyncio.to_thread(
            fw.store.claim_due_feeds,
            fw.worker_id,
            now,
            batch,
            base_lease * k,
            all_feeds=all_feeds,
        )
        claimed.extend(got)
        if len(got) < batch:
            break
    return claimed


async def _poll_batch(
    p: _Pass, feeds: Sequence[Feed], fetcher: Fetcher, sem: asyncio.Semaphore
) -> None:
    hubs = p.fw.settings.api.websub
    lookup = _Lookup(p.fw.store, asyncio.Semaphore(LOOKUP_DOCS))
    fetched = await asyncio.gather(
        *(_fetch_one(fetcher, f, sem, p.now, hubs=hubs, lookup=lookup) for f in feeds)
    )
    await _record_batch(p, fetched)
    found = {f.feed.id: f.hub for f in fetched if f.hub and f.feed.id is not None}
    await note_hubs(p.fw, found, p.now)


async def _record_batch(p: _Pass, fetched: Sequence[_Fetch]) -> None:
    """Everything after the fetch: moves, known ids, classify, record, count."""
    fw, now = p.fw, p.now
    store = fw.store

    for f in fetched:
        res = f.result
        target = res.permanent_redirect if isinstance(res, Fetched) else None
        if target and target != f.feed.url and f.feed.id is not None and not f.error:
            if await asyncio.to_thread(store.move_feed, f.feed.id, target):
                log.info("feed moved permanently: %s -> %s", f.feed.url, target)
                f.moved_to = target
            else:
                log.warning(
                    "feed %s moved to %s, which is already subscribed; keeping the "
                    "old URL",
                    f.feed.url,
                    target,
                )

    wanted: dict[int, list[str]] = {
        f.feed.id: [i.id for i in f.parsed.items]
        for f in fetched
        if f.parsed is not None and f.feed.id is not None and f.error is None
    }
    known: Mapping[int, set[str]] = {}
    if wanted:
        known = await asyncio.to_thread(store.known_item_ids_many, wanted)
    adaptive = [
        f.feed.id
        for f in fetched
        if f.error is None
        and f.feed.id is not None
        and p.schedule(f.feed).fixed is None
    ]
    recent: Mapping[int, int] = {}
    if adaptive:
        recent = await asyncio.to_thread(
            store.recent_item_counts, adaptive, now - timedelta(seconds=WEEK)
        )

    def build() -> list[tuple[_Fetch, PollIntent, str]]:
        out = []
        for f in fetched:
            fid = f.feed.id if f.feed.id is not None else -1
            try:
                intent, status = p.intent_for(
                    f, known.get(fid, set()), recent.get(fid, 0)
                )
            except _HandOff as h:
                assert p.handoff is not None
                p.handoff.append(h.intent)
                continue
            out.append((f, intent, status))
        return out

    # Classification and story assignment are CPU work; the store read for the
    # story index is blocking I/O: both off the event loop.
    built = await asyncio.to_thread(build)
    records = await _record(p, [intent for _, intent, _ in built])
    for (f, intent, status), record in zip(built, records, strict=True):
        p.count(intent.feed, status, record, intent)
        if f.error is not None:
            p.summary.outcomes[-1].error_kind = _error_kind(f.error)


async def _record(p: _Pass, intents: list[PollIntent]) -> list[PollRecord]:
    """Record ``intents`` in one transaction, or one by one if that fails."""
    store = p.fw.store
    # The pass claimed its feeds (here or, for a poll process, in the main
    # process) as this worker at p.now: a feed re-claimed since keeps its state.
    lease = Lease(p.fw.worker_id, p.now)
    intents = [replace(i, lease=lease) for i in intents]
    try:
        return await asyncio.to_thread(store.record_polls, intents)
    except StoreError as e:
        # One bad feed must not lose the batch: record them one by one.
        log.warning("batched record failed (%s); recording feed by feed", e)
    records = []
    for intent in intents:
        try:
            records.append(await asyncio.to_thread(store.record_poll, intent))
        except StoreError as one:
            log.error("recording the poll of %s failed: %s", intent.feed.url, one)
            records.append(PollRecord(new_items=0, new_alerts=0))
    return records


async def _record_handed(p: _Pass, handed: list[PollIntent]) -> None:
    """Record the feeds a poll process handed back, with their stories and alerts."""
    intents = await asyncio.to_thread(lambda: [p.with_stories(i) for i in handed])
    records = await _record(p, intents)
    for intent, record in zip(intents, records, strict=True):
        p.count(intent.feed, "ok", record, intent)


async def poll_once(
    fw: Feedwatch,
    *,
    all_feeds: bool = False,
    now: datetime | None = None,
    fetcher: Fetcher | None = None,
) -> PollSummary:
    """Poll every due feed (every feed with ``all_feeds``) once and record the results,
    ``RECORD_CHUNK`` feeds (``poll.batch`` if smaller) per store transaction; with
    poll processes (``fw.pool``) in chunks of ``POOL_CHUNK`` shared between them."""
    started = time.perf_counter()
    now = now or utcnow()
    settings = fw.settings
    feeds = await _claim_all(fw, now, all_feeds)
    if not feeds:
        return PollSummary()
    p = _Pass(fw, now)
    p.summary.feeds = len(feeds)
    p.pushed = await push_fed(fw, now)
    size = min(settings.poll.batch, RECORD_CHUNK)
    queue = deque(feeds)
    del feeds  # each chunk's feeds are released once recorded
    pool = fw.pool if fetcher is None else None
    if pool is not None:
        await pool.revive()  # poll processes that died since the last pass
    n = pool.size + 1 if pool is not None else 1
    # With poll processes this one is one of them: it takes its share of limits.
    local = _LocalFetcher(_share(settings, n) if n > 1 else settings, fetcher)
    try:
        if pool is not None and n > 1:
            # Four chunks a process at least, so they finish close together.
            share = max(1, math.ceil(len(queue) / (n * POOL_CHUNKS)))
            each = min(size, share, POOL_CHUNK)
            await _poll_pooled(p, pool, queue, each, local)
        else:
            f, sem = await local.get()
            while queue:
                chunk = [queue.popleft() for _ in range(min(size, len(queue)))]
                await _poll_batch(p, chunk, f, sem)
    finally:
        await local.aclose()
    p.summary.seconds = time.perf_counter() - started
    fw.metrics.observe_poll(p.summary, p.summary.seconds)
    return p.summary


class _LocalFetcher:
    """The main process's fetcher and semaphore, opened on first use."""

    def __init__(self, settings: Settings, given: Fetcher | None) -> None:
        self.settings = settings
        self.given = given
        self.opened: Fetcher | None = None
        self.sem: asyncio.Semaphore | None = None

    async def get(self) -> tuple[Fetcher, asyncio.Semaphore]:
        if self.sem is None:
            self.sem = asyncio.Semaphore(self.settings.poll.concurrency)
        if self.given is not None:
            return self.given, self.sem
        if self.opened is None:
            f = Fetcher(
                self.settings.fetch,
                version=__version__,
                allow_files=True,
                max_connections=self.settings.poll.concurrency,
            )
            await f.__aenter__()
            self.opened = f
        return self.opened, self.sem

    async def aclose(self) -> None:
        if self.opened is not None:
            f, self.opened = self.opened, None
            await f.__aexit__(None, None, None)


# -- poll processes -------------------------------------------------------------------


@dataclass
class ChunkJob:
    """One chunk of claimed feeds for a poll process (leased by ``worker_id``)."""

    feeds: list[Feed]
    now: datetime
    pushed: frozenset[int]
    worker_id: str


@dataclass
class ChunkResult:
    """What a poll process recorded, plus the feeds it left to the main process."""

    summary: PollSummary
    handoff: list[PollIntent]
    observations: list[Any]
    """Metric observations, replayed into the main process's metrics."""


def _shareable(database: str) -> bool:
    """Whether several processes can open ``database`` (a file or a server)."""
    from worker.store.fastsqlite import sqlite_file_url

    if sqlite_file_url(database) is not None:
        return True
    return database.startswith(("postgresql:", "postgresql+", "postgres:"))


def pool_size(settings: Settings) -> int:
    """Processes a pass uses, this one included: ``poll.processes`` (``auto``: one
    per usable CPU, at most 4); 1 for a database only this process can open."""
    setting = settings.poll.processes
    wanted: int
    if setting == "auto":
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not on Linux
            cpus = os.cpu_count() or 1
        wanted = min(cpus, 4)
    else:
        wanted = setting
    if wanted > 1 and not _shareable(settings.database):
        return 1
    return wanted


def start_pool(settings: Settings) -> ProcessPool | None:
    """Fork the poll processes besides this one (call before opening the store or
    starting a thread); None when the pass runs in this process alone. The factory
    pickles, so the pool can replace a dead one with a fresh interpreter."""
    n = pool_size(settings)
    if n <= 1 or not hasattr(os, "fork"):
        return None
    from functools import partial

    from worker.pool import PoolError, ProcessPool

    _preload(settings)
    try:
        return ProcessPool.fork(n - 1, partial(_PollProcess, settings, n))
    except PoolError as e:
        log.warning("%s; polling in one process", e)
        return None


def _preload(settings: Settings) -> None:
    """Import, once and before forking, what every poll process would otherwise
    import for itself: the HTTP transport and asyncio.to_thread's executor."""
    import concurrent.futures.thread  # noqa: F401

    from worker.fetch import preload_transport

    preload_transport(settings.fetch.transport)


def _share(settings: Settings, n: int) -> Settings:
    """A poll process's settings: the global and per-host request limits split
    between the ``n`` processes, so together they stay within them."""
    poll = settings.poll.model_copy(
        update={"concurrency": math.ceil(settings.poll.concurrency / n)}
    )
    fetch = settings.fetch.model_copy(
        update={
            "per_host_concurrency": math.ceil(settings.fetch.per_host_concurrency / n)
        }
    )
    return settings.model_copy(update={"poll": poll, "fetch": fetch})


class _PollProcess:
    """A poll process's state: its own store connection, fetcher and metrics."""

    def __init__(self, settings: Settings, n: int) -> None:
        self.settings = _share(settings, n)
        self.fw: Feedwatch | None = None
        self.local = _LocalFetcher(self.settings, None)

    async def handle(self, job: ChunkJob) -> ChunkResult:
        """Fetch, parse, classify and record a chunk; alerting feeds come back."""
        from worker.metrics import Metrics

        if self.fw is None:
            from worker.core import Feedwatch
            from worker.store import open_store

            self.fw = Feedwatch(self.settings, open_store(self.settings.database))
        fw = self.fw
        fw.worker_id = job.worker_id
        fw.metrics = Metrics(keep=True)
        p = _Pass(fw, job.now)
        p.pushed = job.pushed
        p.handoff = []
        fetcher, sem = await self.local.get()
        await _poll_batch(p, job.feeds, fetcher, sem)
        log.info(
            "poll process pid=%d feeds=%d handed_back=%d",
            os.getpid(),
            len(job.feeds),
            len(p.handoff),
        )
        return ChunkResult(p.summary, p.handoff, fw.metrics.take())

    async def aclose(self) -> None:
        await self.local.aclose()
        if self.fw is not None:
            self.fw.store.close()


async def _poll_pooled(
    p: _Pass,
    pool: ProcessPool,
    queue: deque[Feed],
    size: int,
    local: _LocalFetcher,
) -> None:
    """Poll the chunks here and in the poll processes, one at a time each; record
    the feeds they hand back here. A process that fails leaves its chunk, and the
    chunks its turn would have taken, to this one (nothing it recorded is recorded
    twice: its feeds' items are known by then)."""
    from worker.pool import PoolError

    settings = p.fw.settings
    wid = p.fw.worker_id
    n = pool.size + 1
    limit = max(settings.fetch.timeout * 4, 120.0) * 2
    # The story index and this process's store connection take one chunk at a
    # time, as in a pass without poll processes.
    here = asyncio.Lock()

    # Chunks shrink as the queue does (a quarter of a process's share of what is
    # left, down to an eighth of ``size``): the processes finish close together.
    least = max(1, size // 8)

    def take() -> list[Feed]:
        k = max(least, min(size, math.ceil(len(queue) / (2 * n))))
        return [queue.popleft() for _ in range(min(k, len(queue)))]

    async def here_poll(chunk: list[Feed]) -> None:
        fetcher, sem = await local.get()
        async with here:
            await _poll_batch(p, chunk, fetcher, sem)

    async def drive_here() -> None:
        # The last chunks go to the other processes: this one still has to
        # record what they hand back.
        while len(queue) > least * (n - 1):
            await here_poll(take())

    async def drive(index: int) -> None:
        # Two chunks queued on the process: it starts the next one without
        # waiting for this one (busy with its own chunk) to read the last result;
        # one near the end, so no process is left holding two.
        sent: deque[list[Feed]] = deque()

        async def refill() -> None:
            while queue and len(sent) < (2 if len(queue) > size * n else 1):
                chunk = take()
                sent.append(chunk)
                await pool.submit(index, ChunkJob(chunk, p.now, p.pushed, wid))

        async def take_over(e: PoolError) -> None:
            log.error("%s; polling its feeds in the main process", e)
            for chunk in sent:
                await here_poll(chunk)
            while queue:
                await here_poll(take())

        while True:
            try:
                await refill()
                if not sent:
                    return
                res: ChunkResult = await pool.result(index, limit=limit)
            except PoolError as e:
                await take_over(e)
                return
            sent.popleft()
            # Its next chunk goes out before this one waits for the lock (held
            # while this process polls a chunk of its own) to record the feeds
            # handed back: the other process does not wait on it.
            failed: PoolError | None = None
            try:
                await refill()
            except PoolError as e:
                failed = e
            p.summary.merge(res.summary)
            p.fw.metrics.replay(res.observations)
            if res.handoff:
                async with here:
                    await _record_handed(p, res.handoff)
            if failed is not None:
                await take_over(failed)
                return

    await asyncio.gather(drive_here(), *(drive(i) for i in pool.live()))


PUSH_LEASE = 120.0
"""Seconds a feed is leased while a pushed body is ingested."""
PUSH_CLAIM_WAIT = 60.0
"""Seconds a push waits for a poll holding the feed's lease to finish."""


async def ingest_push(
    fw: Feedwatch,
    feed: Feed,
    body: bytes,
    content_type: str | None,
    *,
    now: datetime | None = None,
) -> PollSummary:
    """A body a WebSub hub pushed for ``feed``, taken through the path of a fetched
    200 (parse -> new items -> classify -> stories -> alerts, one transaction)
    under the feed's lease, so a poll and a push never record it at once.

    The last fetch's validators are kept (the next poll is still conditional); a
    body that does not parse is logged and leaves the feed's state alone.
    """
    started = time.perf_counter()
    now = now or utcnow()
    if feed.id is None:
        raise NotFoundError("feed", feed.url)
    p = _Pass(fw, now)
    p.summary.feeds = 1
    store = fw.store
    claimed: Feed | None = None
    deadline = time.monotonic() + PUSH_CLAIM_WAIT
    delay = 0.05
    while True:
        claimed = await asyncio.to_thread(
            store.claim_feed, feed.id, fw.worker_id, now, PUSH_LEASE
        )
        if claimed is not None or time.monotonic() >= deadline:
            break
        await asyncio.sleep(delay)  # a poll holds the lease: wait for it
        delay = min(delay * 2, 2.0)
    if claimed is None:
        log.warning(
            "push url=%s dropped: a poll held the feed for %ss",
            feed.url,
            PUSH_CLAIM_WAIT,
        )
        p.summary.failed = 1
        return p.summary
    # The feed's state as claimed, written back (which frees the lease) only while
    # this push still holds the claim: a poll may have taken the feed once
    # PUSH_LEASE ran out, and its newer state must stay.
    unchanged = [PollIntent(feed=claimed, lease=Lease(fw.worker_id, now))]
    if claimed.status == FeedStatus.DISABLED:
        await asyncio.to_thread(store.record_polls, unchanged)
        return p.summary
    res = Fetched(
        url=claimed.url,
        status=200,
        body=body,
        etag=claimed.etag,
        last_modified=claimed.last_modified,
        content_type=content_type,
        body_hash=hashlib.sha256(body).hexdigest(),
        permanent_redirect=None,
        headers=MappingProxyType({}),
    )
    try:
        parsed = await _parse_fetched(res, claimed, now)
    except FeedError as e:
        # The hub sent something unreadable: the feed itself is not failing.
        await asyncio.to_thread(store.record_polls, unchanged)
        log.warning("push url=%s status=error error=%s", claimed.url, e)
        p.summary.failed = 1
        p.summary.outcomes.append(
            FeedOutcome(
                url=claimed.url, status="error", error=str(e), error_kind="parse"
            )
        )
        return p.summary
    p.pushed = await push_fed(fw, now)
    await _record_batch(p, [_Fetch(claimed, result=res, parsed=parsed)])
    p.summary.seconds = time.perf_counter() - started
    return p.summary
