"""The floor of a CLI poll: the least any one-shot ``poll`` command on feedwatch's stack
must do, run as a third contender in benchmarks/poll.py.

Input: a SQLite file made by ``--setup``; output: one JSON line (seconds inside the
process, feeds not modified, new items). Usage::

    python benchmarks/floor.py --setup DB BASE_URL N   # subscribe N generated feeds
    python benchmarks/floor.py DB                       # one pass over every feed

It starts Python, imports what feedwatch cannot do without (asyncio, aiohttp,
httpx, pydantic, sqlite3; lxml once a body changed), validates a two-field pydantic
settings model, reads the feeds' validators, sends every conditional GET at
concurrency 64 through one bare aiohttp session, skips a 200 whose sha256 is the
stored one, reads each changed body's entries with lxml (id and title only),
inserts the new ones and writes the feeds back in one transaction. One process, no
classification, stories, search index, dates, schedule or retries: less than
feedwatch does, so its time is a lower bound for the same pass through a CLI.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import ssl
import sys
import time
from typing import Any

# aiohttp loads the CA store twice when imported; feedwatch defers that, so the
# floor does too (it never opens a TLS connection).
_load_ca = ssl.SSLContext.set_default_verify_paths
ssl.SSLContext.set_default_verify_paths = lambda self: None  # type: ignore[method-assign]
import aiohttp  # noqa: E402

ssl.SSLContext.set_default_verify_paths = _load_ca  # type: ignore[method-assign]
import httpx  # noqa: E402,F401  (feedwatch's client API)
import pydantic  # noqa: E402

SCHEMA = """
CREATE TABLE feeds (id INTEGER PRIMARY KEY, url TEXT UNIQUE, etag TEXT,
                    last_modified TEXT, body_hash TEXT);
CREATE TABLE items (feed_id INTEGER, item_id TEXT, title TEXT,
                    PRIMARY KEY (feed_id, item_id));
"""
CONCURRENCY = 64


class Settings(pydantic.BaseModel):
    database: str
    concurrency: int = CONCURRENCY


def setup(db: str, base: str, feeds: int) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.executescript(SCHEMA)
        conn.executemany(
            "INSERT INTO feeds (url) VALUES (?)",
            [(f"{base}/feed/{n}",) for n in range(feeds)],
        )
    conn.close()


def _entries(body: bytes) -> list[tuple[str, str]]:
    """(id, title) of each RSS item or Atom entry: guid/id, else link."""
    from lxml import etree  # type: ignore[import-untyped]

    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(body, parser)
    atom = "{http://www.w3.org/2005/Atom}"
    out = []
    for el in root.iter("item", f"{atom}entry"):
        ident = el.findtext("guid") or el.findtext(f"{atom}id") or el.findtext("link")
        title = el.findtext("title") or el.findtext(f"{atom}title") or ""
        if ident:
            out.append((ident.strip(), title))
    return out


async def _fetch(rows: list[tuple[Any, ...]], limit: int) -> list[tuple[Any, ...]]:
    """(feed id, status, etag, last-modified, body) for every feed."""
    sem = asyncio.Semaphore(limit)
    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(row: tuple[Any, ...]) -> tuple[Any, ...]:
            fid, url, etag, modified, _ = row
            headers = {"Accept-Encoding": "gzip"}
            if etag:
                headers["If-None-Match"] = etag
            if modified:
                headers["If-Modified-Since"] = modified
            async with sem, session.get(url, headers=headers) as resp:
                body = await resp.read()
                return (
                    fid,
                    resp.status,
                    resp.headers.get("ETag"),
                    resp.headers.get("Last-Modified"),
                    body,
                )

        return await asyncio.gather(*(one(r) for r in rows))


def poll(db: str) -> dict[str, Any]:
    started = time.perf_counter()
    settings = Settings(database=db)
    conn = sqlite3.connect(settings.database)
    rows = conn.execute(
        "SELECT id, url, etag, last_modified, body_hash FROM feeds"
    ).fetchall()
    hashes = {r[0]: r[4] for r in rows}
    results = asyncio.run(_fetch(rows, settings.concurrency))
    not_modified = new_items = 0
    with conn:
        for fid, status, etag, modified, body in results:
            if status == 304:
                not_modified += 1
                continue
            if status != 200:
                raise RuntimeError(f"feed {fid}: HTTP {status}")
            digest = hashlib.sha256(body).hexdigest()
            if digest != hashes[fid]:
                cur = conn.executemany(
                    "INSERT OR IGNORE INTO items (feed_id, item_id, title) "
                    "VALUES (?, ?, ?)",
                    [(fid, ident, title) for ident, title in _entries(body)],
                )
                new_items += cur.rowcount
            conn.execute(
                "UPDATE feeds SET etag = ?, last_modified = ?, body_hash = ? "
                "WHERE id = ?",
                (etag, modified, digest, fid),
            )
    conn.close()
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "feeds": len(rows),
        "not_modified": not_modified,
        "new_items": new_items,
    }


def main() -> None:
    if sys.argv[1:2] == ["--setup"]:
        setup(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    print(json.dumps(poll(sys.argv[1])))


if __name__ == "__main__":
    main()
