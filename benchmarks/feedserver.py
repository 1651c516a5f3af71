"""Benchmark feed server: ``python benchmarks/feedserver.py --feeds N --port P``.

Input: generated feeds (feedgen.py), or with ``--dir DIR`` the feed files of DIR
(``/feed/n`` is the n-th file, round robin, sent as stored with a content type from
its suffix and no charset); output: HTTP/1.1 keep-alive responses on 127.0.0.1 from
pre-rendered bytes, with ETag/Last-Modified and 304s, gzip when asked.
``GET /_admin/tick?fraction=0.1`` adds items (generated feeds only);
``--no-validators`` never sends validators nor 304. Runs on uvloop when installed.
Contains no business logic.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import sys
import urllib.parse
from email.utils import formatdate
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from feedgen import FeedSet

_TYPES = {
    "atom": b"application/atom+xml; charset=utf-8",
    "rss": b"application/rss+xml; charset=utf-8",
    # Files of --dir: their own encodings, so no charset.
    ".atom": b"application/atom+xml",
    ".json": b"application/feed+json",
    ".rdf": b"application/rdf+xml",
}
FILE_SUFFIXES = (".xml", ".rss", ".atom", ".json", ".rdf")


class _Doc:
    __slots__ = ("body", "etag", "gz", "last_modified", "type")

    def __init__(self, body: bytes, kind: str, stamp: float) -> None:
        self.body = body
        self.gz = gzip.compress(body, 6)
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        self.last_modified = formatdate(stamp, usegmt=True)
        self.type = _TYPES.get(kind, b"application/rss+xml")


class Server:
    """The documents and the request counters."""

    def __init__(
        self, feeds: FeedSet | None, validators: bool, files: list[Path], count: int
    ) -> None:
        self.feeds = feeds
        self.validators = validators
        self.docs: dict[str, _Doc] = {}
        self.stamp = 1_700_000_000.0
        self.counts = {"200": 0, "304": 0, "404": 0}
        if feeds is not None:
            for f in feeds.feeds:
                self.render(f.n)
        for n in range(count if files else 0):
            path = files[n % len(files)]
            self.stamp += 1
            self.docs[f"/feed/{n}"] = _Doc(path.read_bytes(), path.suffix, self.stamp)

    def render(self, n: int) -> None:
        assert self.feeds is not None
        f = self.feeds.feeds[n]
        self.stamp += 1
        self.docs[f"/feed/{n}"] = _Doc(f.render(self.feeds.rng), f.kind, self.stamp)

    def respond(self, path: str, headers: dict[bytes, bytes]) -> bytes:
        if path.startswith("/_admin/"):
            return self.admin(path)
        doc = self.docs.get(path)
        if doc is None:
            self.counts["404"] += 1
            return _response(404, b"text/plain", b"not found", [])
        if self.validators:
            inm = headers.get(b"if-none-match")
            ims = headers.get(b"if-modified-since")
            if (inm is not None and inm.decode() == doc.etag) or (
                inm is None and ims is not None and ims.decode() == doc.last_modified
            ):
                self.counts["304"] += 1
                return _response(
                    304,
                    None,
                    b"",
                    [
                        (b"ETag", doc.etag.encode()),
                        (b"Last-Modified", doc.last_modified.encode()),
                    ],
                )
        extra: list[tuple[bytes, bytes]] = []
        if self.validators:
            extra += [
                (b"ETag", doc.etag.encode()),
                (b"Last-Modified", doc.last_modified.encode()),
            ]
        body = doc.body
        if b"gzip" in headers.get(b"accept-encoding", b""):
            body = doc.gz
            extra.append((b"Content-Encoding", b"gzip"))
        self.counts["200"] += 1
        return _response(200, doc.type, body, extra)

    def admin(self, path: str) -> bytes:
        parts = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        total = self.feeds.total_items() if self.feeds is not None else None
        data: dict[str, int | None]
        if parts.path == "/_admin/tick" and self.feeds is not None:
            chosen = self.feeds.tick(float(query.get("fraction", "0.1")))
            for n in chosen:
                self.render(n)
            data = {"changed": len(chosen), "total_items": self.feeds.total_items()}
        elif parts.path == "/_admin/stats":
            data = {**self.counts, "total_items": total}
        elif parts.path == "/_admin/reset-counts":
            self.counts = dict.fromkeys(self.counts, 0)
            data = {}
        else:
            return _response(404, b"text/plain", b"no such admin path", [])
        return _response(200, b"application/json", json.dumps(data).encode(), [])


_REASONS = {200: b"OK", 304: b"Not Modified", 404: b"Not Found"}


def _response(
    status: int, ctype: bytes | None, body: bytes, extra: list[tuple[bytes, bytes]]
) -> bytes:
    head = [b"HTTP/1.1 %d %s" % (status, _REASONS[status])]
    if ctype is not None:
        head.append(b"Content-Type: " + ctype)
    if status != 304:
        head.append(b"Content-Length: %d" % len(body))
    head += [k + b": " + v for k, v in extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class _Protocol(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's own class

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            raw, self.buf = self.buf[:end], self.buf[end + 4 :]
            lines = raw.split(b"\r\n")
            parts = lines[0].split(b" ")
            path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
            headers: dict[bytes, bytes] = {}
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                headers[k.strip().lower()] = v.strip()
            assert self.transport is not None
            self.transport.write(self.server.respond(path, headers))


async def serve(server: Server, port: int) -> None:
    """Serve until killed; prints ``ready PORT`` on stdout once listening."""
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: _Protocol(server), "127.0.0.1", port)
    print("ready", srv.sockets[0].getsockname()[1], flush=True)
    async with srv:
        await srv.serve_forever()


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-validators", action="store_true")
    ap.add_argument("--dir", type=Path, help="Serve these feed files instead.")
    args = ap.parse_args()
    validators = not args.no_validators
    if args.dir is not None:
        files = sorted(p for p in args.dir.iterdir() if p.suffix in FILE_SUFFIXES)
        server = Server(None, validators, files, args.feeds)
    else:
        server = Server(FeedSet(args.feeds, args.seed), validators, [], 0)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(server, args.port))
    else:
        uvloop.run(serve(server, args.port))


if __name__ == "__main__":
    main()
