"""Shared helpers for the classify tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from worker.models import Item

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared"
DATA = Path(__file__).resolve().parent / "data"


def make_item(
    title: str,
    summary: str = "",
    published: str | None = None,
    source: str | None = None,
    ident: str = "t",
) -> Item:
    """An Item from plain strings (published as YYYY-MM-DD)."""
    when = None
    if published:
        y, m, d = (int(x) for x in published.split("-"))
        when = datetime(y, m, d, tzinfo=UTC)
    return Item(id=ident, title=title, summary=summary, published=when, source=source)
