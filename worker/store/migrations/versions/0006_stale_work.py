"""Store stage: migration 0006, recovering work that outlived its worker.

Input: the schema of 0005; output: ``feeds.lease_claimed_at`` (which claim holds a
feed, so a poll that outlived its lease cannot overwrite a newer one),
``feeds.config_url`` (the URL the config lists a feed under, kept when it moves),
and ``digest_runs.period_start`` / ``period_end`` (so a claimed run whose sender
died can be sent for its own period). All nullable: existing rows stay as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_stale_work"
down_revision: str | None = "0005_digest_runs"
branch_labels: str | None = None
depends_on: str | None = None


def _when(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


# Plain ALTER TABLE on both dialects, not batch mode: on SQLite a batch drop would
# copy ``feeds`` and drop the old table, which with foreign keys on empties the
# feed ids of its items and deletes its subscriptions. SQLite >= 3.35 drops columns.


def upgrade() -> None:
    """Add the columns."""
    op.add_column("feeds", _when("lease_claimed_at"))
    op.add_column("feeds", sa.Column("config_url", sa.Text(), nullable=True))
    op.add_column("digest_runs", _when("period_start"))
    op.add_column("digest_runs", _when("period_end"))


def downgrade() -> None:
    """Drop what ``upgrade`` added."""
    op.drop_column("digest_runs", "period_end")
    op.drop_column("digest_runs", "period_start")
    op.drop_column("feeds", "config_url")
    op.drop_column("feeds", "lease_claimed_at")
