"""Benchmark input: N deterministic, news-like feeds (RSS 2.0 and Atom 1.0) as bytes.

Input: a feed count and a seed; output: documents that gain items on ``tick()``.
Contains no business logic. Shape as in shared/PERF-NOTES.md section 1: 73% RSS,
27% Atom, 20-50 items, HTML descriptions, some CJK, some content:encoded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

__all__ = ["Feed", "FeedSet"]

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
# About 2% of items are East-Asian diplomacy (what the rules alert on); the rest is
# ordinary news. A generator where 30% of all items share three summit headlines makes
# one story with thousands of sources, which measures worker/stories.py, not polling.
_DIPLOMACY = [
    "Leaders of China, Japan and South Korea to hold trilateral summit",
    "Foreign ministers agree to push for a leaders' summit",
    "Prime minister to travel to China for the Asian Games",
]
_TOPICS = [
    "Stocks close higher as markets weigh rate outlook",
    "Heavy rain expected across the southern coast",
    "National team wins friendly match in extra time",
    "Central bank keeps its policy rate unchanged",
    "Tech firm unveils new smartphone lineup",
    "Transport ministry announces new rail link",
    "Typhoon season forecast to be milder than usual",
]
_CJK = ["上海股市收盘上涨", "東京株式市場は続伸", "台風シーズンの予報は平年並み"]
_SENTENCES = [
    "Officials said talks would continue next week.",
    "The ministry did not give a date.",
    "Analysts expect little change before the end of the year.",
    "The announcement came after months of preparation.",
    "Critics questioned the timing of the decision.",
]


@dataclass
class Feed:
    """One generated feed and its items, newest first."""

    n: int
    kind: str  # rss | atom
    cjk: bool
    content: bool
    items: list[tuple[int, datetime]] = field(default_factory=list)
    version: int = 0

    def render(self, rng: random.Random) -> bytes:
        """The document as bytes (deterministic for a given state and seed)."""
        if self.kind == "atom":
            return self._atom(rng)
        return self._rss(rng)

    def _text(self, i: int) -> tuple[str, str]:
        r = random.Random(self.n * 100_003 + i)
        if r.random() < 0.02:
            title = f"{r.choice(_DIPLOMACY)} ({self.n}-{i})"
        elif self.cjk or r.random() < 0.03:
            title = f"{r.choice(_CJK)} ({i})"
        else:
            title = f"{r.choice(_TOPICS)} ({self.n}-{i})"
        sentences = " ".join(r.sample(_SENTENCES, r.randint(1, 3)))
        extra = "&nbsp;&mdash; &#8217;" if r.random() < 0.3 else ""
        amp = " R&amp;D" if r.random() < 0.05 else ""
        html = f'<p>{sentences}{extra}{amp}</p><img src="/i/{i}.jpg"/>'
        if r.random() < 0.2:
            html += "<script>track()</script>"
        return title, html

    def _rss(self, rng: random.Random) -> bytes:
        out = [
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>Outlet {self.n}</title><link>http://outlet{self.n}.example/"
            "</link><description>News</description>"
        ]
        for i, when in self.items:
            title, html = self._text(i)
            desc = f"<![CDATA[{html}]]>" if i % 2 else escape(html)
            out.append(
                f"<item><title>{escape(title)}</title>"
                f"<link>http://outlet{self.n}.example/news/{i}?utm_source=rss</link>"
                f"<description>{desc}</description>"
                f'<guid isPermaLink="false">outlet{self.n}-{i}</guid>'
                f"<pubDate>{format_datetime(when)}</pubDate>"
                "<dc:creator>Desk</dc:creator><category>World</category>"
            )
            if self.content:
                out.append(
                    f"<content:encoded><![CDATA[{html}<p>More.</p>]]></content:encoded>"
                )
            out.append("</item>")
        out.append("</channel></rss>")
        return "".join(out).encode()

    def _atom(self, rng: random.Random) -> bytes:
        updated = self.items[0][1].isoformat() if self.items else T0.isoformat()
        out = [
            '<?xml version="1.0" encoding="utf-8"?>\n'
            '<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>Outlet {self.n}</title><id>urn:outlet:{self.n}</id>"
            f'<link rel="alternate" href="http://outlet{self.n}.example/"/>'
            f"<updated>{updated}</updated>"
        ]
        for i, when in self.items:
            title, html = self._text(i)
            out.append(
                f"<entry><id>urn:outlet:{self.n}:{i}</id><title>{escape(title)}</title>"
                f'<link rel="alternate" href="http://outlet{self.n}.example/a/{i}"/>'
                f"<published>{when.isoformat()}</published>"
                f"<updated>{when.isoformat()}</updated>"
                f'<summary type="html">{escape(html)}</summary>'
                "<author><name>Desk</name></author></entry>"
            )
        out.append("</feed>")
        return "".join(out).encode()


class FeedSet:
    """N feeds; ``tick`` gives a fraction of them 1-5 new items at the top."""

    def __init__(self, count: int, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.feeds: list[Feed] = []
        self._next = 0
        for n in range(count):
            f = Feed(
                n=n,
                kind="atom" if self.rng.random() < 0.27 else "rss",
                cjk=self.rng.random() < 0.10,
                content=self.rng.random() < 0.25,
            )
            for k in range(self.rng.randint(20, 50)):
                f.items.append((self._id(), T0 - timedelta(hours=k * 3)))
            self.feeds.append(f)

    def _id(self) -> int:
        self._next += 1
        return self._next

    def tick(self, fraction: float = 0.1, now: datetime | None = None) -> list[int]:
        """Add 1-5 items to ``fraction`` of the feeds; returns their numbers."""
        when = now or datetime.now(UTC)
        chosen = self.rng.sample(
            range(len(self.feeds)), int(len(self.feeds) * fraction)
        )
        for n in chosen:
            f = self.feeds[n]
            new = [(self._id(), when) for _ in range(self.rng.randint(1, 5))]
            f.items[:0] = new
            f.version += 1
        return chosen

    def total_items(self) -> int:
        """Items published now, over all feeds."""
        return sum(len(f.items) for f in self.feeds)
