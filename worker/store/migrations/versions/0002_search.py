"""Store stage: migration 0002, full-text search over item titles and summaries.

Input: the schema of 0001 (items possibly stored); output: SQLite an FTS5 table kept
in step by triggers, PostgreSQL a GIN expression index, both filled for existing items.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

# Written out here, not imported from schema.py, so that this revision always does
# the same thing; ``schema.SEARCH_VECTOR`` and ``schema.FTS_TABLE`` must agree with it.
_UPGRADE: dict[str, tuple[str, ...]] = {
    "sqlite": (
        "CREATE VIRTUAL TABLE items_fts USING fts5("
        "title, summary, content='items', content_rowid='id', "
        "tokenize='porter unicode61 remove_diacritics 2')",
        "CREATE TRIGGER items_fts_ai AFTER INSERT ON items BEGIN "
        "INSERT INTO items_fts(rowid, title, summary) "
        "VALUES (new.id, new.title, new.summary); END",
        "CREATE TRIGGER items_fts_ad AFTER DELETE ON items BEGIN "
        "INSERT INTO items_fts(items_fts, rowid, title, summary) "
        "VALUES ('delete', old.id, old.title, old.summary); END",
        "CREATE TRIGGER items_fts_au AFTER UPDATE OF title, summary ON items BEGIN "
        "INSERT INTO items_fts(items_fts, rowid, title, summary) "
        "VALUES ('delete', old.id, old.title, old.summary); "
        "INSERT INTO items_fts(rowid, title, summary) "
        "VALUES (new.id, new.title, new.summary); END",
        # Index the items stored before this revision.
        "INSERT INTO items_fts(items_fts) VALUES ('rebuild')",
    ),
    "postgresql": (
        "CREATE INDEX ix_items_search ON items USING gin "
        "((to_tsvector('english'::regconfig, title || ' ' || summary)))",
    ),
}

_DOWNGRADE: dict[str, tuple[str, ...]] = {
    "sqlite": (
        "DROP TRIGGER IF EXISTS items_fts_ai",
        "DROP TRIGGER IF EXISTS items_fts_ad",
        "DROP TRIGGER IF EXISTS items_fts_au",
        "DROP TABLE IF EXISTS items_fts",
    ),
    "postgresql": ("DROP INDEX IF EXISTS ix_items_search",),
}


def _dialect() -> str:
    name = op.get_bind().dialect.name
    if name not in _UPGRADE:
        raise NotImplementedError(f"no full-text search for the {name} dialect")
    return name


def upgrade() -> None:
    """Create the search index and fill it from the stored items."""
    for statement in _UPGRADE[_dialect()]:
        op.execute(statement)


def downgrade() -> None:
    """Drop the search index (the items stay)."""
    for statement in _DOWNGRADE[_dialect()]:
        op.execute(statement)
