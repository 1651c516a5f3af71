"""Store stage: the newest migration revision(s), read without Alembic or SQLAlchemy.

Input: the files of ``migrations/versions``; output: their head revision ids, so
``migrate`` can tell a current schema in two cheap queries. Contains no business
logic.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["MIGRATIONS_DIR", "migration_heads"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_REVISION = re.compile(
    r"^(down_revision|revision)\s*(?::[^=\n]*)?=\s*(None|[\"']([^\"']+)[\"'])\s*$",
    re.MULTILINE,
)
_HEADS: frozenset[str] | None = None


def migration_heads() -> frozenset[str] | None:
    """The newest revision(s) of migrations/versions, read from the files' text;
    None if a file does not say its revisions plainly (then Alembic decides)."""
    global _HEADS
    if _HEADS is None:
        revisions: set[str] = set()
        parents: set[str] = set()
        for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
            found = {
                m.group(1): m.group(3)
                for m in _REVISION.finditer(path.read_text(encoding="utf-8"))
            }
            if not found.get("revision") or "down_revision" not in found:
                return None
            revisions.add(found["revision"])
            parent = found["down_revision"]
            if parent:
                parents.add(parent)
        if not revisions:
            return None
        _HEADS = frozenset(revisions - parents)
    return _HEADS
