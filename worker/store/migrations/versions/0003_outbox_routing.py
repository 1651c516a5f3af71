"""Store stage: migration 0003, outbox routing (quiet hours and rate limits).

Input: the schema of 0002; output: ``deliveries.digest_id`` (the digest that carried
a delivery held in quiet hours) and an index for per-channel rate-limit counts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_outbox"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the column and the index."""
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("digest_id", sa.Text(), nullable=True))
    op.create_index(
        "ix_deliveries_channel_delivered_at",
        "deliveries",
        ["channel", "delivered_at"],
    )


def downgrade() -> None:
    """Drop what ``upgrade`` added."""
    op.drop_index("ix_deliveries_channel_delivered_at", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("digest_id")
