"""Store stage: migration 0004, WebSub subscriptions.

Input: the schema of 0003; output: the ``subscriptions`` table (one row per feed:
hub, topic, secret, state, lease and last push).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_websub"
down_revision: str | None = "0003_outbox"
branch_labels: str | None = None
depends_on: str | None = None


def _when(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "subscriptions",
        sa.Column("feed_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hub", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lease_seconds", sa.Integer(), nullable=True),
        _when("lease_expires_at"),
        _when("requested_at"),
        _when("verified_at"),
        _when("last_push_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _when("created_at", nullable=False),
        _when("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("feed_id", name="pk_subscriptions"),
        sa.ForeignKeyConstraint(
            ["feed_id"],
            ["feeds.id"],
            name="fk_subscriptions_feed_id_feeds",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("subscriptions")
