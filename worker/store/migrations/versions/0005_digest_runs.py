"""Store stage: migration 0005, scheduled digest runs.

Input: the schema of 0004; output: the ``digest_runs`` table (one row per schedule
and period: who claimed it, when, and when it was sent).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_digest_runs"
down_revision: str | None = "0004_websub"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "digest_runs",
        sa.Column("schedule", sa.Text(), nullable=False),
        sa.Column("digest_id", sa.Text(), nullable=False),
        sa.Column("worker_id", sa.Text(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("schedule", "digest_id", name="pk_digest_runs"),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("digest_runs")
