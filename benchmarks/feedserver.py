"""Benchmark feed server: ``python benchmarks/feedserver.py --feeds N --port P``.

Input: generated feeds (feedgen.py); output: HTTP/1.1 keep-alive responses on
127.0.0.1 from pre-rendered bytes, with ETag/Last-Modified and 304s, gzip when asked.
``GET /_admin/tick?fraction=0.1`` adds items; ``--no-validators`` never sends
validators nor 304. Runs on uvloop when installed. Contains no business logic.
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


class _Doc:
    __slots__ = ("body", "etag", "gz", "last_modified", "type")

    def __init__(self, body: bytes, kind: str, stamp: float) -> None:
        self.body = body
        self.gz = gzip.compress(body, 6)
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        self.last_modified = formatdate(stamp, usegmt=True)
        self.type = (
            b"application/atom+xml" if kind == "atom" else b"application/rss+xml"
        )


class Server:
    """The documents and the request counters."""

    def __init__(self, feeds: FeedSet, validators: bool) -> None:
        self.feeds = feeds
        self.validators = validators
        self.docs: dict[str, _Doc] = {}
        self.stamp = 1_700_000_000.0
        self.counts = {"200": 0, "304": 0, "404": 0}
        for f in feeds.feeds:
            self.render(f.n)

    def render(self, n: int) -> None:
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
        return _response(200, doc.type + b"; charset=utf-8", body, extra)

    def admin(self, path: str) -> bytes:
        parts = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if parts.path == "/_admin/tick":
            chosen = self.feeds.tick(float(query.get("fraction", "0.1")))
            for n in chosen:
                self.render(n)
            data = {"changed": len(chosen), "total_items": self.feeds.total_items()}
        elif parts.path == "/_admin/stats":
            data = {**self.counts, "total_items": self.feeds.total_items()}
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


async def serve(feeds: int, port: int, validators: bool, seed: int) -> None:
    """Serve until killed; prints ``ready PORT`` on stdout once listening."""
    server = Server(FeedSet(feeds, seed), validators)
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
    args = ap.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve(args.feeds, args.port, not args.no_validators, args.seed))


if __name__ == "__main__":
    main()
