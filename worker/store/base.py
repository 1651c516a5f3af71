"""The Store protocol: what the pipeline needs from a database, and the records it trades.

Contains no business logic: the poll and deliver shells decide, the store records.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from worker.models import Alert, Decision, Delivery, Feed, Item, Story

__all__ = [
    "AlertRecord",
    "AlertRow",
    "ClaimedDelivery",
    "DeliveryOutcome",
    "DigestRun",
    "Lease",
    "PollIntent",
    "PollRecord",
    "Store",
    "StoryLink",
    "StoryRow",
    "Subscription",
    "SubscriptionState",
    "lost_lease",
]


@dataclass(frozen=True, slots=True)
class StoryLink:
    """Attach an item to a story (new or existing); ``story`` carries its latest state."""

    story: Story
    item_id: str
    feed_id: int


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert to raise and the channels it is routed to (one outbox row each)."""

    alert: Alert
    channels: Sequence[str]


@dataclass(frozen=True, slots=True)
class Lease:
    """One claim of a feed: the worker that took it and the ``now`` it passed.

    The worker id alone does not name a claim: a worker whose lease ran out may
    claim the feed again (a WebSub push) while its first poll is still running.
    Poll processes record under the claiming process's worker id and the pass's
    ``now``, so a chunk polled elsewhere still holds the lease.
    """

    owner: str
    claimed_at: datetime


def lost_lease(
    feed: Feed,
    holder: tuple[str | None, datetime | None],
    lease: Lease,
    log: logging.Logger,
) -> bool:
    """Whether ``lease`` no longer holds the feed (another claim took it, or its
    lease was released); says so, since that poll's state is then dropped. Both
    SQL stores record a poll through it, each with its own logger."""
    owner, claimed_at = holder
    if owner == lease.owner and claimed_at == lease.claimed_at:
        return False
    log.warning(
        "poll (or WebSub push) of %s claimed by %s at %s outlived its lease (now "
        "%s): its feed state is dropped, its items are kept",
        feed.url,
        lease.owner,
        lease.claimed_at.isoformat(),
        f"held by {owner}" if owner is not None else "released",
    )
    return True


@dataclass(frozen=True, slots=True)
class PollIntent:
    """Everything one poll of one feed changes, written in a single transaction.

    ``feed`` is the feed's new state (validators, body hash, next check, last error).
    ``items`` are the new items only; ``decisions`` those of them that matched a rule.
    """

    feed: Feed
    items: Sequence[Item] = ()
    decisions: Sequence[Decision] = ()
    story_links: Sequence[StoryLink] = ()
    alerts: Sequence[AlertRecord] = ()
    lease: Lease | None = None
    """The claim the poll ran under: its feed state is written only while that
    claim still holds the feed. None: written whatever the lease (no claim made)."""


@dataclass(frozen=True, slots=True)
class PollRecord:
    """What a recorded poll actually wrote (duplicates are skipped, not errors)."""

    new_items: int
    new_alerts: int
    alert_ids: tuple[str, ...] = ()
    stale: bool = False
    """The recorder no longer held the feed's lease: its items (deduplicated) were
    written, the feed's state was not (a newer poll's stays)."""


@dataclass(frozen=True, slots=True)
class DigestRun:
    """A scheduled digest run as claimed: which period, by whom, and since when."""

    schedule: str
    digest_id: str
    worker_id: str
    claimed_at: datetime
    since: datetime | None
    """Start of the period it covers; None for runs claimed before migration 0006."""
    until: datetime | None
    """End of the period (the cron fire time, on the minute)."""


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """An outbox row leased to one worker, with the alert it carries."""

    delivery: Delivery
    alert: Alert


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """The result of one delivery attempt.

    ``ok`` marks it delivered. Otherwise ``retry_at`` schedules the next attempt, and
    ``retry_at=None`` with ``ok=False`` makes it dead (visible, redeliverable).
    """

    delivery_id: int
    ok: bool
    attempted_at: datetime
    error: str | None = None
    retry_at: datetime | None = None
    held: bool = False
    """Not sent: the channel is in quiet hours; the row waits (status ``held``) for
    a digest. Not an attempt: ``attempts`` is unchanged."""
    defer_until: datetime | None = None
    """Not sent: the channel's rate limit (or quiet hours ending) puts it off until
    then, still pending. Not an attempt: ``attempts`` is unchanged."""


@dataclass(frozen=True, slots=True)
class AlertRow:
    """An alert and where it stands on each channel (``alerts list``)."""

    alert: Alert
    deliveries: tuple[Delivery, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class StoryRow:
    """A story with its sources and the alerts it raised (digests)."""

    story: Story
    alerts: tuple[Alert, ...] = ()
    topics: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()


class SubscriptionState(StrEnum):
    """Where a feed's WebSub subscription stands (see ``worker.websub``)."""

    DISCOVERED = "discovered"
    """The feed names a hub; no subscribe request sent yet."""
    PENDING = "pending"
    """Asked; the hub has not verified the request yet."""
    VERIFIED = "verified"
    """The hub verified it; pushes are accepted until ``lease_expires_at``."""
    DENIED = "denied"
    """The hub refused it."""
    EXPIRED = "expired"
    """The lease ran out before a renewal was verified."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """One feed's WebSub subscription: its hub, topic and secret, and its lease."""

    feed_id: int
    hub: str
    topic: str
    secret: str | None
    """HMAC key of pushed content; None until the first subscribe request."""
    state: SubscriptionState
    lease_seconds: int | None
    """What the hub granted at its last verification."""
    lease_expires_at: datetime | None
    requested_at: datetime | None
    """When the subscribe request awaiting verification was sent; None if none is."""
    verified_at: datetime | None
    last_push_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@runtime_checkable
class Store(Protocol):
    """Persistent state of feedwatch.

    Contract, for every implementation:

    - All datetimes in and out are timezone-aware UTC.
    - Every method is one transaction: it commits fully or not at all, and raises
      :class:`~worker.errors.StoreError` (never a driver exception) when it fails.
      Methods that look one thing up raise :class:`~worker.errors.NotFoundError`.
    - Methods are synchronous and thread-safe; async callers use ``asyncio.to_thread``.
    - Claims are leases: a row claimed by one worker is not handed to another until
      the lease expires, so a crashed worker's work is picked up again.

    Groups: lifecycle (``migrate``, ``close``, context manager); feeds (``add_feed``,
    ``add_config_feeds``, ``remove_feed``, ``get_feed``, ``list_feeds``, ``claim_due_feeds``); poll
    (``known_item_ids``, ``record_poll``, ``recent_stories``); outbox
    (``claim_deliveries``, ``record_delivery``, ``redeliver``, ``delivered_times``,
    ``held_alerts``, ``release_held``, ``story_alerts``); queries
    (``list_alerts``, ``get_alert``, ``stories``, ``count_items``); scheduled
    digests (``claim_digest_run``, ``finish_digest_run``).
    """

    url: str

    # lifecycle
    def migrate(self) -> None:
        """Create or upgrade the schema to the current version (idempotent)."""
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def ping(self) -> None:
        """Readiness: one cheap read (StoreError if unreachable or not migrated)."""
        ...

    # feeds
    def add_feed(self, feed: Feed) -> Feed:
        """Subscribe, or update the url's interval, title and tags; keeps poll state.

        Returns the stored feed with its id.
        """
        ...

    def add_config_feeds(self, entries: Sequence[Feed]) -> int:
        """Subscribe the feeds the config file lists, in one transaction; returns
        how many.

        Each is matched first by the URL it was configured under (kept when the
        feed moves: a 301/308 changes only its ``url``), then by ``url``; the
        match's interval, tags and title (if given) are updated, its URL and poll
        state kept. A feed matching neither is added.
        """
        ...

    def remove_feed(self, url: str) -> None:
        """Unsubscribe; its items stay for digests. NotFoundError if unknown."""
        ...

    def get_feed(self, url: str) -> Feed:
        """The stored feed for ``url``. NotFoundError if unknown."""
        ...

    def feed_by_id(self, feed_id: int) -> Feed:
        """The stored feed with this id. NotFoundError if unknown."""
        ...

    def moved_config_feeds(self) -> dict[int, str]:
        """Config feeds that moved: feed id -> the URL the config lists them under
        (their per-feed settings are found by it)."""
        ...

    def update_feed_state(self, feed: Feed) -> None:
        """Write a feed's poll state alone (validators, next check, error) and
        release its lease."""
        ...

    def list_feeds(self) -> list[Feed]:
        """Every feed, disabled ones included, ordered by id."""
        ...

    def claim_due_feeds(
        self,
        worker_id: str,
        now: datetime,
        limit: int,
        lease_seconds: float,
        *,
        all_feeds: bool = False,
    ) -> list[Feed]:
        """Lease up to ``limit`` feeds whose next check is due (every non-disabled
        feed with ``all_feeds``) and not leased by another worker. The claim is
        ``Lease(worker_id, now)``, which ``record_poll`` checks."""
        ...

    # poll
    def known_item_ids(self, feed_id: int, item_ids: Sequence[str]) -> set[str]:
        """Which of ``item_ids`` the feed already has."""
        ...

    def record_poll(self, intent: PollIntent) -> PollRecord:
        """Write a poll's result in one transaction and release the feed's lease.

        Items already stored and alerts whose id exists are skipped silently; outbox
        rows are written only for the alerts this call inserted. With
        ``intent.lease``, the feed's state is written only if that claim still holds
        the feed: a poll that outlived its lease (another claim took the feed, or
        it was released) keeps its items and alerts but not its state
        (``PollRecord.stale``, and a warning), so a newer poll's validators and
        schedule are not undone.
        """
        ...

    def recent_stories(self, since: datetime) -> list[Story]:
        """Stories seen since ``since``, with their sources, for clustering."""
        ...

    # outbox
    def claim_deliveries(
        self, worker_id: str, now: datetime, limit: int, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` pending deliveries due at ``now``, oldest first."""
        ...

    def record_delivery(self, outcome: DeliveryOutcome) -> None:
        """Record one attempt and release the lease."""
        ...

    def redeliver(self, alert_id: str, now: datetime) -> int:
        """Make every delivery of the alert pending again; returns how many.

        NotFoundError if the alert does not exist.
        """
        ...

    def delivered_times(self, channel: str, since: datetime) -> list[datetime]:
        """When the channel's deliveries since ``since`` were made, oldest first
        (rate limits)."""
        ...

    def held_alerts(self, channel: str) -> list[Alert]:
        """Alerts held on ``channel`` in quiet hours, oldest first, for its digest."""
        ...

    def release_held(
        self, channel: str, alert_ids: Sequence[str], digest_id: str, now: datetime
    ) -> int:
        """Mark these held deliveries of ``channel`` delivered by digest
        ``digest_id``; returns how many (rows not held any more are left alone)."""
        ...

    def story_alerts(self, story_ids: Sequence[str]) -> dict[str, list[Alert]]:
        """The alerts each story has raised, oldest first (status-change policy)."""
        ...

    # queries
    def list_alerts(
        self,
        since: datetime | None = None,
        *,
        failed_only: bool = False,
        limit: int = 100,
    ) -> list[AlertRow]:
        """Alerts newest first; ``failed_only`` keeps those with a dead delivery or a
        failed attempt still pending."""
        ...

    def get_alert(self, alert_id: str) -> AlertRow:
        """One alert with its deliveries. NotFoundError if unknown."""
        ...

    def stories(self, since: datetime, until: datetime | None = None) -> list[StoryRow]:
        """Stories with a report seen in [since, until), newest first, for digests."""
        ...

    def count_items(self) -> int:
        """How many items are stored (all feeds)."""
        ...

    def count_pending_deliveries(self) -> int:
        """Outbox depth: deliveries still pending (due or waiting for a retry)."""
        ...

    def search_items(self, q: str, limit: int = 50) -> list[Item]:
        """Full-text search over titles and summaries, best match first."""
        ...

    def item_count_by_feed(self) -> dict[str, int]:
        """Items stored per feed URL (0 for feeds with none)."""
        ...

    # batched poll writes
    def known_item_ids_many(
        self, ids_by_feed: Mapping[int, Sequence[str]]
    ) -> dict[int, set[str]]:
        """For each feed id, which of its item ids are already stored (one
        transaction; every feed id given is a key of the result)."""
        ...

    def record_polls(self, intents: Sequence[PollIntent]) -> list[PollRecord]:
        """``record_poll`` for many feeds in ONE transaction (all or nothing);
        returns one record per intent, in order."""
        ...

    def move_feed(self, feed_id: int, url: str) -> bool:
        """Point a feed at a new URL (permanent redirect); returns False and changes
        nothing if another feed has that URL. NotFoundError if the id is unknown."""
        ...

    def recent_item_counts(
        self, feed_ids: Sequence[int], since: datetime
    ) -> dict[int, int]:
        """Items per feed dated (published, else first seen) at or after ``since``;
        0 for feeds with none. Adaptive scheduling reads this."""
        ...

    def delete_items_before(self, cutoff: datetime) -> int:
        """Retention: delete items first seen before ``cutoff``, except those of
        stories that raised an alert; returns how many."""
        ...

    # WebSub (worker.websub): one subscription row per feed
    def claim_feed(
        self, feed_id: int, worker_id: str, now: datetime, lease_seconds: float
    ) -> Feed | None:
        """Lease one feed (a push to ingest) like ``claim_due_feeds``, whatever its
        schedule, as ``Lease(worker_id, now)``; None while another lease is live.
        NotFoundError if unknown."""
        ...

    def record_hubs(self, found: Mapping[int, tuple[str, str]], now: datetime) -> int:
        """Note each feed's discovered (hub, topic); a new or changed pair starts
        over as ``discovered`` (no secret, no lease). Returns how many changed."""
        ...

    def list_subscriptions(self) -> list[Subscription]:
        """Every subscription row, by feed id."""
        ...

    def get_subscription(self, feed_id: int) -> Subscription:
        """The feed's subscription. NotFoundError if it has none."""
        ...

    def subscription_requested(
        self, feed_id: int, secret: str, now: datetime
    ) -> Subscription:
        """A subscribe request is about to be sent with ``secret``: set
        ``requested_at``; the state becomes ``pending`` unless ``verified``
        (a renewal). NotFoundError if the feed has no subscription."""
        ...

    def subscription_failed(self, feed_id: int, error: str, now: datetime) -> None:
        """The hub refused or could not take the request: keep ``error``."""
        ...

    def verify_subscription(
        self, feed_id: int, topic: str, lease_seconds: int, now: datetime
    ) -> bool:
        """The hub verifies intent: True, and verified until ``now +
        lease_seconds``, only if a request awaits and ``topic`` is the row's."""
        ...

    def deny_subscription(
        self, feed_id: int, topic: str, reason: str | None, now: datetime
    ) -> bool:
        """The hub denies the subscription of ``topic``: True if the row had it."""
        ...

    def expire_subscriptions(self, now: datetime) -> int:
        """Verified subscriptions whose lease ended by ``now`` become expired."""
        ...

    def record_push(self, feed_id: int, now: datetime) -> None:
        """A correctly signed push arrived now (the hub is not silent)."""
        ...

    def push_fed_feeds(self, now: datetime, silent_since: datetime) -> set[int]:
        """Feeds with a verified, unexpired subscription whose last push (or, with
        none yet, verification) is at or after ``silent_since``."""
        ...

    # scheduled digests (worker.digest): one sender per schedule and period
    def claim_digest_run(
        self,
        name: str,
        digest_id: str,
        worker_id: str,
        now: datetime,
        lease_seconds: float = 600.0,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> bool:
        """Claim the sending of digest ``digest_id`` of schedule ``name``: True only
        for the first claimer, or for a later one once a claim never marked sent is
        ``lease_seconds`` old (its sender died). The first claim keeps the period
        [``since``, ``until``) so the run can be sent again later."""
        ...

    def unsent_digest_runs(
        self, claimed_before: datetime, ended_after: datetime
    ) -> list[DigestRun]:
        """Runs claimed at or before ``claimed_before`` and never marked sent, whose
        period ended at or after ``ended_after``, oldest period first (runs with no
        period kept are left out)."""
        ...

    def finish_digest_run(self, name: str, digest_id: str, now: datetime) -> None:
        """The claimed digest was sent: it is never claimed again. NotFoundError if
        it was never claimed."""
        ...
