"""Store stage: adding newly inserted items to SQLite's full-text index.

Input: a write transaction that inserted items; output: those items in the FTS5
table ``items_fts``, added by one statement. Shared by ``FastSQLiteStore``
(sqlite3) and ``SQLiteStore`` (SQLAlchemy), so it imports neither. Contains no
business logic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = ["LAST_ITEM_ID", "index_items_after"]

LAST_ITEM_ID = "SELECT coalesce(max(id), 0) FROM items"
"""The newest item row id (0 if none). Read under the write lock (``BEGIN
IMMEDIATE``), every row above it is one the same transaction inserts."""

# Which of the index and the insert trigger the schema has: before migration 0002
# neither (nothing to index), up to 0006 both (the trigger indexes each row, and a
# second entry for a row would corrupt the external-content index).
_SCHEMA = "SELECT name FROM sqlite_master WHERE name IN ('items_fts', 'items_fts_ai')"
# In rowid order: FTS5 flushes its pending terms early on a rowid that goes back.
_INDEX_AFTER = (
    "INSERT INTO items_fts(rowid, title, summary) "
    "SELECT id, title, summary FROM items WHERE id > ? ORDER BY id"
)


class _Rows(Protocol):
    def fetchall(self) -> Sequence[Any]: ...


def index_items_after(
    execute: Callable[[str, tuple[int, ...]], _Rows], last: int
) -> None:
    """Index the items whose row id is above ``last``: all of them inserted by the
    running write transaction, which must hold the write lock since it read
    ``last`` (or the ids it inserted). FTS5 writes a segment per statement that
    adds to it, so this runs once, after the transaction's last item insert. On a
    schema before migration 0007 (tests, or ``migrate`` not yet run) it leaves the
    items to the trigger, or to no index at all."""
    names = {row[0] for row in execute(_SCHEMA, ()).fetchall()}
    if names == {"items_fts"}:
        execute(_INDEX_AFTER, (last,))
