"""Feed subscriptions: from config, from OPML or URL lists, and back out as OPML.

Input: settings or a file; output: Feed records for the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from worker.config import Settings
from worker.errors import FeedwatchError
from worker.models import Feed

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

__all__ = ["SourceFileError", "config_feeds", "export_opml", "read_feed_list"]

_URL = re.compile(r"^(https?|file)://\S+$")


class SourceFileError(FeedwatchError):
    """A subscription file (OPML or URL list) cannot be read; names file and line."""


def config_feeds(settings: Settings) -> list[Feed]:
    """The feeds the config file lists, with the default interval filled in; each
    ``url`` is the configured one (``Store.add_config_feeds`` matches a feed that
    moved since by it)."""
    return [
        Feed(
            url=f.url,
            title=f.name,
            interval=int(f.interval or settings.poll.interval),
            tags=f.tags,
        )
        for f in settings.feeds
    ]


def read_feed_list(path: str | Path, *, interval: int) -> list[Feed]:
    """Feeds from an OPML file or a text file of one URL a line (``#`` comments)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise SourceFileError(f"{p}: cannot read: {e.strerror}") from e
    head = data.lstrip()[:200].lower()
    if head.startswith(b"<?xml") or head.startswith(b"<opml"):
        return _read_opml(p, data, interval)
    feeds: list[Feed] = []
    for n, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not _URL.match(line):
            raise SourceFileError(
                f"{p}:{n}: expected an http(s):// or file:// URL, got {line[:80]!r}"
            )
        feeds.append(Feed(url=line, interval=interval))
    return feeds


def _read_opml(path: Path, data: bytes, interval: int) -> list[Feed]:
    # Imported here: a poll, which reads no OPML, need not load XML libraries.
    import xml.etree.ElementTree as ET

    # defusedxml is not a dependency; expat in CPython >= 3.7.1 does not fetch
    # external entities, and we refuse DTDs outright to stop entity expansion.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise SourceFileError(f"{path}: OPML with a DOCTYPE or entities is refused")
    try:
        root = ET.fromstring(data)  # noqa: S314 - DTDs refused above
    except ET.ParseError as e:
        line, col = e.position
        raise SourceFileError(f"{path}:{line}:{col}: not well-formed OPML: {e}") from e
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise SourceFileError(f"{path}: not an OPML document (no <opml><body>)")
    feeds: list[Feed] = []
    # Depth-first in document order with an explicit stack: a hostile file can nest
    # outlines deeper than Python's recursion limit.
    stack: list[tuple[Iterator[ET.Element], tuple[str, ...]]] = [
        (iter(body.findall("outline")), ())
    ]
    while stack:
        outlines, tags = stack[-1]
        outline = next(outlines, None)
        if outline is None:
            stack.pop()
            continue
        url = (outline.get("xmlUrl") or "").strip()
        label = outline.get("title") or outline.get("text")
        if not url:
            inner = (*tags, label) if label else tags
            stack.append((iter(outline.findall("outline")), inner))
            continue
        if not _URL.match(url):
            raise SourceFileError(
                f"{path}: outline {label or '(untitled)'!r}: xmlUrl: expected an "
                f"http(s):// or file:// URL, got {url[:80]!r}"
            )
        own = tuple(t.strip() for t in (outline.get("category") or "").split(","))
        all_tags = tuple(dict.fromkeys(t for t in (*tags, *own) if t))
        feeds.append(Feed(url=url, title=label, interval=interval, tags=all_tags))
    return feeds


def export_opml(
    feeds: Iterable[Feed], *, title: str = "feedwatch subscriptions"
) -> str:
    """OPML 2.0 of the feeds, tags as ``category`` so import round-trips them."""
    from xml.sax.saxutils import quoteattr

    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        f"  <head><title>{_esc(title)}</title></head>",
        "  <body>",
    ]
    for f in feeds:
        label = f.title or f.url
        attrs = [
            f"type={quoteattr('rss')}",
            f"text={quoteattr(label)}",
            f"title={quoteattr(label)}",
            f"xmlUrl={quoteattr(f.url)}",
        ]
        if f.tags:
            attrs.append(f"category={quoteattr(','.join(f.tags))}")
        lines.append(f"    <outline {' '.join(attrs)}/>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def _esc(text: str) -> str:
    from xml.sax.saxutils import quoteattr

    return quoteattr(text)[1:-1]
