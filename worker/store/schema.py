"""Store stage: the database schema as SQLAlchemy Core tables.

Input: nothing; output: ``metadata`` with the tables the SQL stores read and write.
Migration ``0001_initial`` creates exactly these tables (a test compares the two);
``0002_search`` adds the full-text index, which lives outside ``metadata``
(``0007_fts_batch`` leaves indexing new items to the stores).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = [
    "FTS_TABLE",
    "NAMING_CONVENTION",
    "SEARCH_CONFIG",
    "SEARCH_INDEX",
    "SEARCH_VECTOR",
    "UTCDateTime",
    "alerts",
    "deliveries",
    "digest_runs",
    "feeds",
    "include_name",
    "items",
    "matches",
    "metadata",
    "stories",
    "story_items",
    "subscriptions",
]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime that is stored as UTC and always read back aware UTC.

    SQLite keeps no offset, so values are converted to UTC before they are written and
    UTC is re-attached when they are read; PostgreSQL's ``timestamptz`` comes back in
    the session time zone and is converted to UTC. Naive datetimes are refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        """Refuse naive values (they have no instant) and normalise to UTC."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} (expected UTC-aware)")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        """Read back as aware UTC whatever the driver returns."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(naming_convention=NAMING_CONVENTION)

feeds = Table(
    "feeds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("title", Text),
    Column("interval", Integer, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("body_hash", Text),
    Column("last_checked_at", UTCDateTime),
    Column("next_check_at", UTCDateTime),
    Column("last_error", Text),
    Column("error_count", Integer, nullable=False),
    Column("lease_owner", Text),
    Column("lease_expires_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    # Migration 0006: the ``now`` of the latest claim (with ``lease_owner``, which
    # claim holds the feed; left as is when the lease is released, as the owner is
    # then NULL), and the URL the config file lists the feed under (NULL for feeds
    # added otherwise; ``url`` moves on a 301/308, this does not).
    Column("lease_claimed_at", UTCDateTime),
    Column("config_url", Text),
    UniqueConstraint("url"),
    Index(None, "next_check_at"),
)

# ``feed_id`` is set to NULL when a feed is removed: its items stay for digests and
# stories, and ``feed_url`` still says where they came from.
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("feed_id", Integer, ForeignKey("feeds.id", ondelete="SET NULL")),
    Column("item_id", Text, nullable=False),
    Column("feed_url", Text),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("url", Text),
    Column("published", UTCDateTime),
    Column("source", Text),
    Column("first_seen", UTCDateTime, nullable=False),
    UniqueConstraint("feed_id", "item_id"),
    Index(None, "first_seen"),
)

# One row per rule a decision fired ('' when it fired none), so a union of rules and
# topics per story is a plain query and a repeated poll cannot duplicate a match.
matches = Table(
    "matches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "item_row_id",
        Integer,
        ForeignKey("items.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("rule", Text, nullable=False),
    Column("topics", JSON, nullable=False),
    Column("score", Float, nullable=False),
    Column("decision", JSON, nullable=False),
    UniqueConstraint("item_row_id", "rule"),
)

stories = Table(
    "stories",
    metadata,
    Column("id", Text, primary_key=True),
    Column("title", Text, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("event", JSON(none_as_null=True)),
    Index(None, "last_seen"),
)

story_items = Table(
    "story_items",
    metadata,
    Column(
        "story_id",
        Text,
        ForeignKey("stories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "item_row_id",
        Integer,
        ForeignKey("items.id", ondelete="CASCADE"),
        nullable=False,
    ),
    PrimaryKeyConstraint("story_id", "item_row_id"),
    Index(None, "item_row_id"),
)

# No foreign key to stories: an alert is never lost because its story row is missing.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("story_id", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("supersedes", Text),
    Index(None, "story_id"),
    Index(None, "created_at"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "alert_id",
        Text,
        ForeignKey("alerts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("channel", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text),
    Column("delivered_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("lease_owner", Text),
    Column("lease_expires_at", UTCDateTime),
    # Migration 0003: the digest that carried a delivery held in quiet hours.
    Column("digest_id", Text),
    UniqueConstraint("alert_id", "channel"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "channel", "delivered_at"),
)

# Migration 0004: one WebSub subscription per feed, from hub discovery to lease end.
# ``requested_at`` is set while a subscribe request awaits the hub's verification.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column(
        "feed_id",
        Integer,
        ForeignKey("feeds.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("hub", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("secret", Text),
    Column("state", String(16), nullable=False),
    Column("lease_seconds", Integer),
    Column("lease_expires_at", UTCDateTime),
    Column("requested_at", UTCDateTime),
    Column("verified_at", UTCDateTime),
    Column("last_push_at", UTCDateTime),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Migration 0005: one row per scheduled digest and period, so only the replica that
# claims it first sends it; a claim never marked sent may be taken over after a lease.
# Migration 0006: the period itself, so a run whose sender died can be sent again.
digest_runs = Table(
    "digest_runs",
    metadata,
    Column("schedule", Text, nullable=False),
    Column("digest_id", Text, nullable=False),
    Column("worker_id", Text, nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("period_start", UTCDateTime),
    Column("period_end", UTCDateTime),
    PrimaryKeyConstraint("schedule", "digest_id"),
)

# -- full-text search (migration 0002) ------------------------------------------------
# The search index lives outside ``metadata``: SQLite keeps it in an FTS5 table,
# PostgreSQL in a GIN expression index on ``items``. Migration 0002 writes both as
# raw DDL; schema comparisons skip them by name (``include_name``). On SQLite,
# triggers on ``items`` carry deletes and title/summary updates into the index;
# since migration 0007 inserts are indexed by the stores themselves, once per write
# transaction (``worker.store.fts``): every path that inserts items must do so. A
# SQLite batch migration that rebuilds ``items`` drops the FTS triggers: such a
# migration must create them again and rebuild the index.

FTS_TABLE = "items_fts"
"""SQLite: FTS5 table over ``items.title`` and ``items.summary`` (external content,
``porter unicode61`` tokenizer: English stemming, diacritics folded)."""

SEARCH_CONFIG = "english"
"""PostgreSQL text search configuration (English stemming, like porter in SQLite)."""

SEARCH_INDEX = "ix_items_search"
"""PostgreSQL: the GIN index on ``SEARCH_VECTOR``."""

SEARCH_VECTOR = f"to_tsvector('{SEARCH_CONFIG}'::regconfig, title || ' ' || summary)"
"""PostgreSQL: the indexed expression; a query must repeat it verbatim to use it."""


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic ``include_name`` hook: leave the search index (raw DDL, not in
    ``metadata``) out of schema comparisons and autogenerate."""
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith(FTS_TABLE)
    if type_ == "index":
        return name != SEARCH_INDEX
    return True
