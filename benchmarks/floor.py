"""The floor of a CLI poll: the least any one-shot ``poll`` command on feedwatch's stack
must do, run as a third contender in benchmarks/poll.py.

Input: a SQLite file made by ``--setup``; output: one JSON line (seconds inside the
process, feeds not modified, new items). Usage::

    python benchmarks/floor.py --setup DB BASE_URL N   # subscribe N generated feeds
    python benchmarks/floor.py DB                       # one pass over every feed
    python benchmarks/floor.py DB --processes=2         # ... in two processes
    python benchmarks/floor.py DB --raw                 # ... without aiohttp

It starts Python, imports what feedwatch cannot do without (asyncio, aiohttp,
httpx, pydantic, sqlite3; lxml once a body changed), validates a two-field pydantic
settings model, reads the feeds' validators, sends every conditional GET at
concurrency 64 through one bare aiohttp session, skips a 200 whose sha256 is the
stored one, reads each changed body's entries with lxml (id and title only),
inserts the new ones and writes the feeds back in one transaction. One process, no
classification, stories, search index, dates, schedule or retries: less than
feedwatch does, so its time is a lower bound for the same pass through a CLI.
``--processes=2`` forks after the imports and fetches and reads every other feed
in the forked process (as feedwatch's poll processes share a pass on two CPUs);
the results come back pickled and are written in one transaction.

``--raw`` replaces aiohttp with 64 keep-alive connections of hand-written HTTP/1.1
on asyncio streams (Content-Length bodies only, enough for benchmarks/feedserver.py
without gzip): what the floor would be without an HTTP library's import and
per-request cost. Not a client to ship: no chunked bodies, compression, TLS, proxies
or timeouts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pickle
import sqlite3
import ssl
import sys
import time
from typing import Any

import httpx  # noqa: F401  (feedwatch's client API)
import pydantic

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
    """(id, title) of each RSS item or Atom entry: guid/id, else link. A body lxml
    cannot read (malformed XML, a JSON Feed) gives none: less than feedwatch does."""
    from lxml import etree  # type: ignore[import-untyped]

    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(body, parser)
    except (etree.XMLSyntaxError, ValueError):
        return []
    atom = "{http://www.w3.org/2005/Atom}"
    out = []
    for el in root.iter("item", f"{atom}entry"):
        ident = el.findtext("guid") or el.findtext(f"{atom}id") or el.findtext("link")
        title = el.findtext("title") or el.findtext(f"{atom}title") or ""
        if ident:
            out.append((ident.strip(), title))
    return out


def _import_aiohttp() -> None:
    """Import aiohttp as feedwatch does: without loading the CA store twice (the
    floor never opens a TLS connection)."""
    load_ca = ssl.SSLContext.set_default_verify_paths
    ssl.SSLContext.set_default_verify_paths = lambda self: None  # type: ignore[method-assign]
    try:
        import aiohttp  # noqa: F401
    finally:
        ssl.SSLContext.set_default_verify_paths = load_ca  # type: ignore[method-assign]


async def _fetch(rows: list[tuple[Any, ...]], limit: int) -> list[tuple[Any, ...]]:
    """(feed id, status, etag, last-modified, body) for every feed."""
    import aiohttp

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


async def _fetch_raw(rows: list[tuple[Any, ...]], limit: int) -> list[tuple[Any, ...]]:
    """``_fetch`` over hand-written HTTP/1.1 (see the module's ``--raw``)."""
    from urllib.parse import urlsplit

    todo = list(reversed(rows))
    out: list[tuple[Any, ...]] = []

    async def connection() -> None:
        host = urlsplit(rows[0][1])
        reader, writer = await asyncio.open_connection(host.hostname, host.port)
        while todo:
            fid, url, etag, modified, _ = todo.pop()
            head = f"GET {urlsplit(url).path} HTTP/1.1\r\nHost: {host.netloc}\r\n"
            if etag:
                head += f"If-None-Match: {etag}\r\n"
            if modified:
                head += f"If-Modified-Since: {modified}\r\n"
            writer.write((head + "\r\n").encode("latin-1"))
            lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            status_line, *fields = lines.split("\r\n")
            headers = {}
            for field in fields:
                name, _, value = field.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
            status = int(status_line.split(" ", 2)[1])
            out.append(
                (fid, status, headers.get("etag"), headers.get("last-modified"), body)
            )
        writer.close()

    await asyncio.gather(*(connection() for _ in range(min(limit, len(rows)))))
    return out


def _work(
    rows: list[tuple[Any, ...]], hashes: dict[int, str | None], limit: int, raw: bool
) -> list[tuple[Any, ...]]:
    """Fetch ``rows`` and read the changed bodies: per feed (id, status, etag,
    last-modified, sha256, entries or None if the body is the stored one)."""
    fetch = _fetch_raw if raw else _fetch
    out: list[tuple[Any, ...]] = []
    for fid, status, etag, modified, body in asyncio.run(fetch(rows, limit)):
        if status == 304:
            out.append((fid, status, None, None, None, None))
            continue
        if status != 200:
            raise RuntimeError(f"feed {fid}: HTTP {status}")
        digest = hashlib.sha256(body).hexdigest()
        entries = _entries(body) if digest != hashes[fid] else None
        out.append((fid, status, etag, modified, digest, entries))
    return out


def _work_forked(
    rows: list[tuple[Any, ...]], hashes: dict[int, str | None], limit: int, raw: bool
) -> list[tuple[Any, ...]]:
    """``_work`` with every other feed in a forked process, as feedwatch's poll
    processes share a pass on two CPUs; its results come back pickled."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the forked process: its half, then exit without cleanup
        os.close(read_end)
        code = 1
        try:
            data = pickle.dumps(_work(rows[1::2], hashes, limit, raw))
            with os.fdopen(write_end, "wb") as f:
                f.write(data)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    mine = _work(rows[0::2], hashes, limit, raw)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError("the forked process failed")
    theirs: list[tuple[Any, ...]] = pickle.loads(data)  # our own child's
    return mine + theirs


def poll(db: str, *, raw: bool = False, processes: int = 1) -> dict[str, Any]:
    if not raw:
        _import_aiohttp()
    started = time.perf_counter()
    settings = Settings(database=db)
    conn = sqlite3.connect(settings.database)
    rows = conn.execute(
        "SELECT id, url, etag, last_modified, body_hash FROM feeds"
    ).fetchall()
    hashes = {r[0]: r[4] for r in rows}
    work = _work_forked if processes == 2 else _work
    results = work(rows, hashes, settings.concurrency, raw)
    not_modified = new_items = 0
    with conn:
        for fid, status, etag, modified, digest, entries in results:
            if status == 304:
                not_modified += 1
                continue
            if entries is not None:
                cur = conn.executemany(
                    "INSERT OR IGNORE INTO items (feed_id, item_id, title) "
                    "VALUES (?, ?, ?)",
                    [(fid, ident, title) for ident, title in entries],
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
    opts = sys.argv[2:]
    processes = 2 if "--processes=2" in opts else 1
    print(json.dumps(poll(sys.argv[1], raw="--raw" in opts, processes=processes)))


if __name__ == "__main__":
    main()
