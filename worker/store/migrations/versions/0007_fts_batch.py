"""Store stage: migration 0007, indexing new items once per transaction.

Input: the schema of 0006; output: on SQLite, ``items`` without its AFTER INSERT
trigger. FTS5 writes a new index segment at the end of every statement that adds
to it, so a trigger made one segment per multi-row INSERT (one per feed in a poll)
and automerge rewrote them over and over; the stores now index the items a
transaction inserted with one ``INSERT ... SELECT`` before it commits. The index
and its delete/update triggers stay as they are. PostgreSQL: nothing to do (its
search index is an expression index, kept by the database).
"""

from __future__ import annotations

from alembic import op

revision = "0007_fts_batch"
down_revision: str | None = "0006_stale_work"
branch_labels: str | None = None
depends_on: str | None = None

# Written out here, as in 0002 (and identical to it, so a downgraded database has
# the schema of a fresh 0006 one).
_INSERT_TRIGGER = (
    "CREATE TRIGGER items_fts_ai AFTER INSERT ON items BEGIN "
    "INSERT INTO items_fts(rowid, title, summary) "
    "VALUES (new.id, new.title, new.summary); END"
)


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    """Drop the per-row insert trigger; the index keeps every stored item."""
    if _sqlite():
        op.execute("DROP TRIGGER IF EXISTS items_fts_ai")


def downgrade() -> None:
    """Put the trigger back and rebuild the index from ``items``, so it holds
    every stored item exactly once whatever wrote them."""
    if _sqlite():
        op.execute("DROP TRIGGER IF EXISTS items_fts_ai")
        op.execute(_INSERT_TRIGGER)
        op.execute("INSERT INTO items_fts(items_fts) VALUES ('rebuild')")
