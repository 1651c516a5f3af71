"""The nouns that cross pipeline stages or leave the process.

Every datetime here is timezone-aware UTC. Models are frozen pydantic models so that
what one stage hands the next cannot be changed behind its back, and so that the JSON
shapes (classify output, webhook body, API, digest) are validated and documented by
the same classes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ActorRef",
    "Alert",
    "Decision",
    "Delivery",
    "DeliveryStatus",
    "Envelope",
    "Event",
    "EventKind",
    "EventStatus",
    "Evidence",
    "Feed",
    "FeedStatus",
    "Item",
    "Story",
    "StorySource",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the only clock the stages read)."""
    return datetime.now(UTC)


class _Model(BaseModel):
    # Schemas are built on first validation: a pass that never validates an
    # Alert or a Delivery does not pay for building them at import.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class FeedStatus(StrEnum):
    """Whether a feed is polled, and how its last poll went."""

    ACTIVE = "active"
    ERROR = "error"
    DISABLED = "disabled"


class Feed(_Model):
    """A subscription and the state its polls leave behind."""

    id: int | None = None
    """Database id; None before the feed is stored."""
    url: str
    """Where the feed is fetched from."""
    title: str | None = None
    """The feed's own title, once fetched."""
    interval: int = 900
    """Seconds between polls."""
    tags: tuple[str, ...] = ()
    """Free-form labels from config or OPML."""
    status: FeedStatus = FeedStatus.ACTIVE
    etag: str | None = None
    """Validator for conditional GET."""
    last_modified: str | None = None
    """Validator for conditional GET."""
    body_hash: str | None = None
    """sha256 of the last body parsed, so an unchanged body is not parsed again."""
    last_checked_at: datetime | None = None
    next_check_at: datetime | None = None
    last_error: str | None = None
    """The last failure, in words; None after a good poll."""
    error_count: int = 0
    """Consecutive failed polls."""


class Item(_Model):
    """One entry of a feed, normalised: plain text, absolute URL, UTC date."""

    id: str
    """Identity within its feed: ``guid:...``, ``url:...`` or ``hash:...``
    (for JSONL input to ``classify``, the input's own id)."""
    title: str = ""
    summary: str = ""
    """Plain text (HTML stripped) of the description or content."""
    url: str | None = None
    """The item's link, canonical (tracking parameters removed)."""
    published: datetime | None = None
    """When the outlet says it was published; None if it does not say."""
    source: str | None = None
    """The outlet (the feed's title or configured name)."""
    feed_url: str | None = None
    """The feed the item came from, if any."""


class Evidence(_Model):
    """A piece of text that made a rule fire (or count towards it)."""

    rule: str
    """Rule id."""
    field: Literal["title", "summary"]
    start: int
    """Character offset in the field."""
    end: int
    text: str
    """The matched words as they appear in the text."""
    kind: str = "phrase"
    """What matched: phrase, actor, ..."""
    actor: str | None = None
    """Canonical actor the span resolved to, for actor evidence."""


class EventKind(StrEnum):
    """What kind of diplomatic event (both may hold for one item)."""

    SUMMIT = "summit"
    VISIT = "visit"


class EventStatus(StrEnum):
    """Where the event stands, as the text reports it (PLOVER AGREE = announced)."""

    PROPOSED = "proposed"
    ANNOUNCED = "announced"
    HELD = "held"
    CANCELLED = "cancelled"
    POSTPONED = "postponed"
    UNKNOWN = "unknown"


class ActorRef(_Model):
    """An actor resolved through the gazetteer, with its part in the event."""

    name: str
    """Canonical name ("Xi Jinping", "China")."""
    country: str
    """ISO 3166 alpha-2 code ("CN", "JP", "KR", "KP", "US")."""
    kind: Literal["country", "person"] = "country"
    office: str | None = None
    """For people: head_of_state, head_of_government, foreign_minister, ..."""
    role: Literal["visitor", "host", "participant"] | None = None
    """Part in the event, where the text tells it."""
    mention: str | None = None
    """The words in the text that named it."""


class Event(_Model):
    """The typed event extracted from one item."""

    kinds: tuple[EventKind, ...] = ()
    status: EventStatus = EventStatus.UNKNOWN
    actors: tuple[ActorRef, ...] = ()
    countries: tuple[str, ...] = ()
    """Distinct ISO codes of the parties, sorted."""
    location: str | None = None
    when: str | None = None
    """The time expression as the text gives it ("next week", "on Sunday")."""


class Decision(_Model):
    """The classifier's verdict on one item, with everything needed to explain it."""

    id: str
    """The item's id."""
    alert: bool
    topics: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    """Ids of the rules that fired."""
    score: float = 0.0
    severity: str | None = None
    evidence: tuple[Evidence, ...] = ()
    event: Event | None = None


class StorySource(_Model):
    """One outlet's report of a story."""

    item_id: str
    source: str | None = None
    title: str
    lede: str = ""
    """The start of the report's summary (clustering compares it too)."""
    url: str | None = None
    published: datetime | None = None
    feed_url: str | None = None


class Story(_Model):
    """Reports of one event, from one or several outlets."""

    id: str
    """Stable id, derived from the first report."""
    title: str
    """The first report's title."""
    first_seen: datetime
    last_seen: datetime
    event: Event | None = None
    sources: tuple[StorySource, ...] = ()


class Alert(_Model):
    """One alert: one story, one rule. Its id is stable, so receivers can drop repeats."""

    id: str
    story_id: str
    rule: str
    topics: tuple[str, ...] = ()
    severity: str | None = None
    score: float = 0.0
    created_at: datetime
    item: Item
    """The report that raised the alert."""
    decision: Decision
    story: Story | None = None
    """The story as it stood when the alert was raised."""
    supersedes: str | None = None
    """Id of an earlier alert of the same story this one updates (status change)."""


class Envelope(_Model):
    """An alert or digest rendered once, for every channel to carry as it can."""

    id: str
    """Stable id (alert id, or digest id); the webhook-id header."""
    kind: Literal["alert", "digest"] = "alert"
    subject: str
    """One line, no CR/LF."""
    text: str
    html: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    """The JSON body for machine channels (the webhook payload)."""
    thread_id: str | None = None
    """Groups envelopes of one story (email In-Reply-To / References)."""


class DeliveryStatus(StrEnum):
    """Where one alert stands on one channel."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    HELD = "held"


class Delivery(_Model):
    """One alert on one channel: a row of the outbox."""

    id: int | None = None
    alert_id: str
    channel: str
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    created_at: datetime | None = None
