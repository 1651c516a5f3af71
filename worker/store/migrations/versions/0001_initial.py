"""Store stage: migration 0001, the initial schema.

Input: an empty database; output: the tables of ``worker.store.schema`` (written out
by hand so that later edits of ``schema.py`` never change what this revision does).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _when(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table and index of the first schema."""
    op.create_table(
        "feeds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("body_hash", sa.Text(), nullable=True),
        _when("last_checked_at"),
        _when("next_check_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        _when("lease_expires_at"),
        _when("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feeds"),
        sa.UniqueConstraint("url", name="uq_feeds_url"),
    )
    op.create_index("ix_feeds_next_check_at", "feeds", ["next_check_at"])

    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=True),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("feed_url", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        _when("published"),
        sa.Column("source", sa.Text(), nullable=True),
        _when("first_seen", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
        sa.ForeignKeyConstraint(
            ["feed_id"],
            ["feeds.id"],
            name="fk_items_feed_id_feeds",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("feed_id", "item_id", name="uq_items_feed_id_item_id"),
    )
    op.create_index("ix_items_first_seen", "items", ["first_seen"])

    op.create_table(
        "matches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_row_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_matches"),
        sa.ForeignKeyConstraint(
            ["item_row_id"],
            ["items.id"],
            name="fk_matches_item_row_id_items",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("item_row_id", "rule", name="uq_matches_item_row_id_rule"),
    )

    op.create_table(
        "stories",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        _when("first_seen", nullable=False),
        _when("last_seen", nullable=False),
        sa.Column("event", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_stories"),
    )
    op.create_index("ix_stories_last_seen", "stories", ["last_seen"])

    op.create_table(
        "story_items",
        sa.Column("story_id", sa.Text(), nullable=False),
        sa.Column("item_row_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("story_id", "item_row_id", name="pk_story_items"),
        sa.ForeignKeyConstraint(
            ["story_id"],
            ["stories.id"],
            name="fk_story_items_story_id_stories",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_row_id"],
            ["items.id"],
            name="fk_story_items_item_row_id_items",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_story_items_item_row_id", "story_items", ["item_row_id"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("story_id", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        _when("created_at", nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("supersedes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_story_id", "alerts", ["story_id"])
    op.create_index("ix_alerts_created_at", "alerts", ["created_at"])

    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("next_attempt_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _when("delivered_at"),
        _when("created_at", nullable=False),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        _when("lease_expires_at"),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name="fk_deliveries_alert_id_alerts",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "alert_id", "channel", name="uq_deliveries_alert_id_channel"
        ),
    )
    op.create_index(
        "ix_deliveries_status_next_attempt_at",
        "deliveries",
        ["status", "next_attempt_at"],
    )


def downgrade() -> None:
    """Drop everything ``upgrade`` created (children first)."""
    for table in (
        "deliveries",
        "alerts",
        "story_items",
        "stories",
        "matches",
        "items",
        "feeds",
    ):
        op.drop_table(table)
