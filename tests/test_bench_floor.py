"""benchmarks/floor.py does the work it stands for: every feed requested, new entries
stored once, 304s and unchanged bodies skipped (a floor that skipped work would make
the poll benchmark's bound meaningless)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from feedserver import FeedServer

FLOOR = Path(__file__).resolve().parents[1] / "benchmarks" / "floor.py"
RSS = "<rss version='2.0'><channel><title>t</title>{}</channel></rss>"
ATOM = (
    "<feed xmlns='http://www.w3.org/2005/Atom'><title>t</title><id>urn:f</id>{}</feed>"
)


def _rss(*guids: str) -> bytes:
    items = "".join(f"<item><guid>{g}</guid><title>T {g}</title></item>" for g in guids)
    return RSS.format(items).encode()


def _atom(*ids: str) -> bytes:
    entries = "".join(f"<entry><id>{i}</id><title>T {i}</title></entry>" for i in ids)
    return ATOM.format(entries).encode()


def _floor(*args: str) -> dict[str, int]:
    res = subprocess.run(
        [sys.executable, str(FLOOR), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = res.stdout.strip()
    return json.loads(out) if out else {}


@pytest.mark.parametrize("options", [(), ("--processes=2",)])
def test_floor_stores_new_entries_and_skips_unchanged(
    feed_server: FeedServer, tmp_path: Path, options: tuple[str, ...]
) -> None:
    db = tmp_path / "floor.sqlite"
    feed_server.set("/feed/0", _rss("a", "b"))
    feed_server.set("/feed/1", _atom("x"), "application/atom+xml")
    feed_server.set("/feed/2", _rss("c"), etag=False, last_modified=False)
    _floor("--setup", str(db), feed_server.url("").rstrip("/"), "3")

    first = _floor(str(db), *options)
    assert (first["feeds"], first["new_items"], first["not_modified"]) == (3, 4, 0)

    feed_server.set("/feed/0", _rss("new", "a", "b"))
    changed = _floor(str(db), *options)
    # feed 2 has no validators: a 200 with the same body, not parsed again
    assert (changed["new_items"], changed["not_modified"]) == (1, 1)

    unchanged = _floor(str(db), *options)
    assert (unchanged["new_items"], unchanged["not_modified"]) == (0, 2)
    assert len(feed_server.requests_for("/feed/2")) == 3

    conn = sqlite3.connect(db)
    stored = conn.execute("SELECT feed_id, item_id FROM items ORDER BY 1, 2").fetchall()
    conn.close()
    assert stored == [(1, "a"), (1, "b"), (1, "new"), (2, "x"), (3, "c")]
