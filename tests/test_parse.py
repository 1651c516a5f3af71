"""Tests of the parse stage: the shared feed corpora, encodings, text, links, identity."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.errors import ParseError
from worker.parse import (
    MAX_SUMMARY_CHARS,
    MAX_TITLE_CHARS,
    ParsedFeed,
    canonical_url,
    html_to_text,
    item_identity,
    normalize_text,
    parse_feed,
    parse_feed_quick,
)

CORPUS = Path("/work/shared/corpus")
FEEDS = CORPUS / "feeds"
FEEDPARSER = CORPUS / "feedparser"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"


def corpus_file(name: str) -> tuple[bytes, str]:
    path = FEEDS / name
    return path.read_bytes(), path.as_uri()


def parse_corpus(name: str, **kw: Any) -> ParsedFeed:
    body, url = corpus_file(name)
    return parse_feed(body, url, **kw)


def rss(items: str, *, channel: str = "<title>T</title>", base: str = "") -> bytes:
    attr = f' xml:base="{base}"' if base else ""
    doc = f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"{attr}>'
    return f"{doc}<channel>{channel}{items}</channel></rss>".encode()


# -- the corpora: never anything but ParsedFeed or ParseError ------------------------


def _feedparser_headers() -> dict[str, dict[str, str]]:
    """Per file of the feedparser corpus, the HTTP headers its test asks for."""
    out: dict[str, dict[str, str]] = {}
    with (FEEDPARSER / "INDEX.jsonl").open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            headers: dict[str, str] = {}
            for h in rec.get("headers") or ():
                name, _, value = str(h).partition(":")
                headers[name.strip().lower()] = value.strip()
            out[rec["path"]] = headers
    return out


CORPUS_DIRS = [
    "feeds",
    "feedparser/tests/wellformed",
    "feedparser/tests/illformed",
    "feedparser/tests/entities",
    "feedparser/tests/encoding",
    "feedparser/tests/json",
    "feedparser/docs",
]


@pytest.mark.parametrize("corpus_dir", CORPUS_DIRS)
def test_corpus_parses_or_raises_parse_error(corpus_dir: str) -> None:
    headers = _feedparser_headers()
    root = CORPUS / corpus_dir
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix not in (".tsv", ".md", ".jsonl", ".txt")
    )
    assert files, f"no corpus files under {root}"
    offenders: list[str] = []
    parsed = 0
    for path in files:
        rel = (
            path.relative_to(FEEDPARSER).as_posix()
            if "feedparser" in corpus_dir
            else ""
        )
        h = headers.get(rel, {})
        url = h.get("content-location") or path.as_uri()
        try:
            result = parse_feed(
                path.read_bytes(), url, content_type=h.get("content-type")
            )
        except ParseError as e:
            if not str(e).startswith(url):
                offenders.append(f"{path}: ParseError does not name the URL: {e}")
            continue
        except Exception as e:
            offenders.append(f"{path}: {type(e).__name__}: {e}")
            continue
        parsed += 1
        assert isinstance(result, ParsedFeed)
    assert not offenders, "\n".join(offenders)
    # Nearly everything in these folders is a feed; a parser refusing them all is broken.
    share = 0.5 if corpus_dir.endswith("illformed") else 0.9
    assert parsed >= len(files) * share, f"only {parsed} of {len(files)} parsed"


# -- the lxml fast path agrees with feedparser wherever it answers -------------------

_FIXED_NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _as_data(parsed: ParsedFeed) -> tuple[object, ...]:
    return (
        parsed.title,
        parsed.ttl,
        [i.model_dump() for i in parsed.items],
    )


@pytest.mark.parametrize("corpus_dir", CORPUS_DIRS)
def test_fast_path_agrees_with_feedparser(corpus_dir: str) -> None:
    headers = _feedparser_headers()
    files = sorted(
        p
        for p in (CORPUS / corpus_dir).rglob("*")
        if p.is_file() and p.suffix not in (".tsv", ".md", ".jsonl", ".txt")
    )
    answered = 0
    differ: list[str] = []
    for path in files:
        rel = (
            path.relative_to(FEEDPARSER).as_posix()
            if "feedparser" in corpus_dir
            else ""
        )
        h = headers.get(rel, {})
        url = h.get("content-location") or path.as_uri()
        body, ctype = path.read_bytes(), h.get("content-type")
        try:
            quick = parse_feed_quick(body, url, content_type=ctype, now=_FIXED_NOW)
        except ParseError:
            continue
        if quick is None or body.lstrip()[:1] in (b"{", b"["):
            continue  # feedparser's turn, or JSON (one parser only)
        answered += 1
        ref = parse_feed(body, url, content_type=ctype, now=_FIXED_NOW, fast=False)
        if _as_data(quick) != _as_data(ref):
            differ.append(str(path))
    assert not differ, "fast path and feedparser disagree on:\n" + "\n".join(differ)
    if corpus_dir in ("feeds", "feedparser/tests/wellformed"):
        assert answered >= 20, f"the fast path answered only {answered} documents"


def _manifest() -> list[dict[str, str]]:
    with (FEEDS / "MANIFEST.tsv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _distinct_identities(body: bytes, url: str, is_json: bool) -> int:
    """Distinct identities, counted straight from the raw entries."""
    keys: set[tuple[str, str]] = set()
    if is_json:
        for i in json.loads(body)["items"]:
            if i.get("id") is not None:
                keys.add(("guid", str(i["id"])))
            else:
                keys.add(("url", canonical_url(i["url"], url)))
        return len(keys)
    result = feedparser.parse(
        io.BytesIO(body),
        response_headers={"content-location": url, "content-type": "application/xml"},
    )
    for e in result.entries:
        if e.get("id", "").strip():
            keys.add(("guid", e["id"].strip()))
        elif e.get("link", "").strip():
            keys.add(("url", canonical_url(e["link"], url)))
        else:
            keys.add(("text", f"{e.get('title')}|{e.get('summary')}"))
    return len(keys)


def test_feeds_corpus_counts_match_manifest() -> None:
    rows = _manifest()
    assert len(rows) == 71
    problems: list[str] = []
    for row in rows:
        body, url = corpus_file(row["file"])
        parsed = parse_feed(body, url)
        expected = int(row["item_count"])
        is_json = row["format"].startswith("JSON")
        distinct = _distinct_identities(body, url, is_json)
        n = len(parsed.items)
        if n != distinct:
            problems.append(f"{row['file']}: {n} items, {distinct} distinct identities")
        if n > expected or (is_json and n != expected):
            problems.append(f"{row['file']}: {n} items, MANIFEST says {expected}")
        if len({i.id for i in parsed.items}) != n:
            problems.append(f"{row['file']}: duplicate identities in the output")
        ill_formed = "NOT well-formed" in row["notes"]
        if (parsed.bozo is not None) != ill_formed:
            problems.append(
                f"{row['file']}: bozo={parsed.bozo!r}, notes={row['notes']!r}"
            )
    assert not problems, "\n".join(problems)


def test_dedup_counts_in_known_duplicate_feeds() -> None:
    # AP 2026-01-15 has no guids and 36 items repeating an earlier link.
    assert len(parse_corpus("ap__scraped-2026-01-15_wl.xml").items) == 464
    # AP 2026-05-17 repeats links under distinct guids: the guid is the identity.
    assert len(parse_corpus("ap__scraped-2026-05-17_wl.xml").items) == 500


# -- encodings ------------------------------------------------------------------------


def test_undeclared_latin1_titles_decode() -> None:
    uol = parse_corpus("uol__noticias_rss-parser.rss")
    assert uol.title == "UOL Noticias"
    assert uol.items[0].title == (
        "Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em simulações de 2º turno"
    )
    assert uol.bozo is not None and "parsed as" in uol.bozo
    psy = parse_corpus("cerclepsy__undeclared-iso-8859-1_miniflux.xml")
    titles = [i.title for i in psy.items]
    assert any("très complexe" in t for t in titles)
    assert not any("\ufffd" in t or "Ã" in t for t in titles)


def test_gb2312_feed_gives_chinese() -> None:
    feed = parse_corpus("kc0011__gb2312_rsparser.rss")
    assert feed.title == "投资资讯网交易在线--流通纪念币最新20篇论坛主题-全文"
    assert feed.items[0].title == "建国35周年纪念，华表，和平鸽"
    assert feed.items[0].source == feed.title


def test_korean_feed_gives_hangul() -> None:
    feed = parse_corpus(
        "hanion__hankyoreh-on-popular-2026-08-29_personal-news-reader.xml"
    )
    assert feed.title == "한겨레:온 - 최근인기기사"
    assert feed.items[0].title == "승리와 고립, 핵관의 장막에 갇힌 자"
    # No zone given: read as UTC.
    assert feed.items[0].published == datetime(2026, 8, 28, 14, 57, 4, tzinfo=UTC)


def test_windows_1251_feed_gives_cyrillic() -> None:
    feed = parse_corpus("oren-ru__windows-1251_node-feedparser.xml")
    assert feed.items
    assert all(any("а" <= c <= "я" for c in i.title.lower()) for i in feed.items)


def test_http_charset_is_honoured() -> None:
    body = rss("<item><title>caf\xe9</title><guid>1</guid></item>").replace(
        b'encoding="utf-8"', b""
    )
    body = body.decode().encode("latin-1")
    feed = parse_feed(
        body, "http://x.test/f", content_type="text/xml; charset=ISO-8859-1"
    )
    assert feed.items[0].title == "café"


# -- text -----------------------------------------------------------------------------


def test_zero_width_chars_removed_from_reuters() -> None:
    body, _ = corpus_file("reuters__scraped-fulltext-2026-03-06_wl.xml")
    assert "\u200b".encode() in body  # the test would prove nothing otherwise
    feed = parse_corpus("reuters__scraped-fulltext-2026-03-06_wl.xml")
    assert len(feed.items) == 500
    for item in feed.items:
        for text in (item.title, item.summary):
            assert not any(c in text for c in ZERO_WIDTH), text[:80]
            assert text == text.strip() and "  " not in text


def test_html_to_text() -> None:
    markup = (
        "<p>Xi&nbsp;meets <b>Lee</b>&amp;co</p><script>alert('x')</script>"
        "<style>p{}</style><ul><li>one</li><li>two</li></ul>line<br>break"
        " \u200bzero&#8203;width &lt;tag&gt;"
    )
    assert html_to_text(markup) == "Xi meets Lee&co one two line break zerowidth <tag>"
    assert html_to_text("no markup &amp; entity") == "no markup & entity"
    assert html_to_text("a < b and <unclosed") == "a < b and <unclosed"
    assert html_to_text("<![if !supportLists]>x<![endif]>") == "x"
    assert html_to_text("x" * 50, limit=10) == "x" * 10


def test_normalize_text() -> None:
    assert normalize_text("  a\u2060b\t\n c\u00a0 d\x00 ") == "ab c d"
    assert normalize_text("word " * 10, limit=12) == "word word wo"


def test_escaped_html_descriptions_become_text() -> None:
    feed = parse_corpus("ap__scraped-2026-01-15_wl.xml")
    for item in feed.items:
        assert "<img" not in item.summary and "&lt;" not in item.summary


def test_title_and_summary_caps() -> None:
    body = rss(
        f"<item><guid>1</guid><title>{'t' * 5000}</title>"
        f"<description>{'s ' * 20000}</description></item>"
    )
    item = parse_feed(body, "http://x.test/f").items[0]
    assert len(item.title) == MAX_TITLE_CHARS
    assert len(item.summary) <= MAX_SUMMARY_CHARS and item.summary.startswith("s s")


def test_summary_falls_back_to_content() -> None:
    body = rss(
        "<item><guid>1</guid><title>T</title>"
        "<content:encoded><![CDATA[<p>Full <em>text</em></p>]]></content:encoded></item>"
    ).replace(
        b'version="2.0"',
        b'version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"',
    )
    assert parse_feed(body, "http://x.test/f").items[0].summary == "Full text"


# -- links and identity ---------------------------------------------------------------


def test_relative_links_resolved_with_xml_base() -> None:
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://example.org/news/">
  <title>Base</title><id>urn:feed</id><updated>2024-05-01T00:00:00Z</updated>
  <link href="/"/>
  <entry xml:base="asia/">
    <title>Summit</title><id>urn:1</id><updated>2024-05-01T00:00:00Z</updated>
    <link href="2024/summit.html?utm_source=rss#top"/>
  </entry>
  <entry>
    <title>Visit</title><id>urn:2</id><updated>2024-05-01T00:00:00Z</updated>
    <link href="visit.html"/>
  </entry>
</feed>"""
    feed = parse_feed(body, "http://feeds.example.org/atom.xml")
    assert [i.url for i in feed.items] == [
        "http://example.org/news/asia/2024/summit.html",
        "http://example.org/news/visit.html",
    ]
    assert feed.link == "http://example.org/"


def test_relative_links_resolved_against_feed_url() -> None:
    body = rss("<item><title>A</title><link>/story/1?id=3&amp;fbclid=x</link></item>")
    feed = parse_feed(body, "https://News.Example.com:443/rss/feed.xml")
    assert feed.items[0].url == "https://news.example.com/story/1?id=3"
    assert feed.items[0].id == "url:https://news.example.com/story/1?id=3"


def test_utm_params_stripped_in_corpus() -> None:
    body, _ = corpus_file("scmp__prospect-2026-04-01_swelbyboy.xml")
    assert b"utm_source=" in body
    feed = parse_corpus("scmp__prospect-2026-04-01_swelbyboy.xml")
    assert feed.items
    for item in feed.items:
        assert item.url is not None and "utm_" not in item.url
        assert item.url.startswith("https://www.scmp.com/")


def test_non_http_links_are_not_item_urls() -> None:
    body = rss("<item><title>A</title><link>javascript:alert(1)</link></item>")
    item = parse_feed(body, "http://x.test/f").items[0]
    assert item.url is None
    assert item.id == "url:javascript:alert(1)"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("http://example.com/a#frag", "http://example.com/a"),
        (
            "http://example.com/a?utm_source=x&b=2&UTM_Medium=y&a=1&gclid=z",
            "http://example.com/a?b=2&a=1",
        ),
        ("http://example.com/a?fbclid=1&mc_cid=2&igshid=3", "http://example.com/a"),
        ("http://User@Example.com/A/B", "http://User@example.com/A/B"),
        ("http://[::1]:80/x", "http://[::1]/x"),
        ("  http://example.com/a b  ", "http://example.com/a b"),
        ("mailto:Someone@Example.com", "mailto:Someone@Example.com"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_canonical_url_joins_base() -> None:
    assert (
        canonical_url("../b?x=1", "http://h.test/a/c/feed") == "http://h.test/a/b?x=1"
    )
    assert canonical_url("//cdn.test/p", "https://h.test/") == "https://cdn.test/p"


_url_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@st.composite
def urlish(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "ftp", "", "mailto"]))
    host = draw(st.sampled_from(["Example.COM", "a.test", "[::1]", "", "x.test:80"]))
    port = draw(st.sampled_from(["", ":443", ":8080", ":", ":abc"]))
    path = draw(_url_text)
    params = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["utm_source", "id", "fbclid", "q", "", "UTM_x"]),
                _url_text,
            ),
            max_size=4,
        )
    )
    query = "&".join(f"{k}={v}" for k, v in params)
    frag = draw(st.sampled_from(["", "#frag", "#"]))
    sep = "://" if scheme else draw(st.sampled_from(["", "//"]))
    return f"{scheme}{sep}{host}{port}/{path}?{query}{frag}"


@settings(max_examples=400, deadline=None)
@given(st.one_of(urlish(), _url_text))
def test_canonical_url_is_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


@settings(max_examples=200, deadline=None)
@given(st.one_of(urlish(), _url_text), urlish())
def test_canonical_url_with_base_is_idempotent(url: str, base: str) -> None:
    once = canonical_url(url, base)
    assert canonical_url(once) == once


def test_item_identity() -> None:
    assert item_identity(" abc ", "http://x.test/a", "t", "s") == "guid:abc"
    assert item_identity(None, "HTTP://X.test/a?utm_medium=m", "t", "s") == (
        "url:http://x.test/a"
    )
    h = item_identity("", None, "title", "summary")
    assert h.startswith("hash:") and len(h) == len("hash:") + 32
    assert h == item_identity(None, "  ", "title", "summary")
    assert h != item_identity(None, None, "title", "other summary")
    long_guid = item_identity("g" * 5000, None, "", "")
    assert long_guid.startswith("guid:sha256:") and len(long_guid) < 100


def test_duplicate_identities_in_one_document_first_wins() -> None:
    body = rss(
        "<item><guid>g1</guid><title>first</title></item>"
        "<item><guid>g1</guid><title>second</title></item>"
        "<item><link>http://x.test/a?utm_source=1</link><title>third</title></item>"
        "<item><link>http://x.test/a</link><title>fourth</title></item>"
        "<item><title>same</title><description>text</description></item>"
        "<item><title>same</title><description>text</description></item>"
    )
    feed = parse_feed(body, "http://x.test/f")
    assert [i.title for i in feed.items] == ["first", "third", "same"]


# -- JSON Feed ------------------------------------------------------------------------


def test_json_feed_1_1() -> None:
    feed = parse_corpus("influxdata__jsonfeed-1.1_feed-rs.json")
    assert feed.title == "Blog – InfluxData"
    assert feed.link == "https://www.influxdata.com/blog/"
    assert feed.bozo is None
    assert len(feed.items) == 3
    first = feed.items[0]
    assert first.id.startswith("url:https://www.influxdata.com/blog/influxdb-")
    assert first.title.startswith("InfluxDB vs. Graphite")
    assert first.summary.startswith("This blog post has been updated")
    assert first.source == "Blog – InfluxData"
    # RFC 822 instead of RFC 3339: read anyway.
    assert first.published == datetime(2019, 5, 31, 19, 17, 58, tzinfo=UTC)
    assert feed.items[2].published is None


def test_json_feed_1_0_ids_and_html_content() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1",
        "title": "J",
        "items": [
            {
                "id": 42,
                "content_html": "<p>Hello <b>world</b></p>",
                "url": "/p/42",
                "date_published": "2024-03-01T10:00:00+09:00",
            },
            {"id": "42", "title": "duplicate id"},
            "not an object",
        ],
    }
    feed = parse_feed(json.dumps(doc).encode(), "https://j.test/feed.json")
    assert len(feed.items) == 1
    item = feed.items[0]
    assert (item.id, item.summary, item.url) == (
        "guid:42",
        "Hello world",
        "https://j.test/p/42",
    )
    assert item.published == datetime(2024, 3, 1, 1, 0, tzinfo=UTC)
    assert feed.bozo is not None and "not objects" in feed.bozo


def test_json_feed_detected_by_content_type_and_errors_named() -> None:
    url = "https://j.test/feed.json"
    with pytest.raises(ParseError, match=r"malformed JSON at line 1, column 12"):
        parse_feed(b'{"items": [,]}', url)
    with pytest.raises(ParseError, match="no 'items' list"):
        parse_feed(b'{"version": "https://jsonfeed.org/version/1.1"}', url)
    with pytest.raises(ParseError, match="not an object") as info:
        parse_feed(b"[1, 2]", url, content_type="application/feed+json")
    assert str(info.value).startswith(url)


# -- dates ----------------------------------------------------------------------------


def test_feed_without_dates_gives_none() -> None:
    feed = parse_corpus("heise__rss090_miniflux.rdf")
    assert len(feed.items) == 60
    assert all(i.published is None for i in feed.items)


def test_dates_are_aware_utc() -> None:
    feed = parse_corpus("bbc__home-2020-09-09_headlines.xml")
    assert all(
        i.published is not None and i.published.utcoffset() is not None
        for i in feed.items
    )
    body = rss(
        "<item><guid>1</guid><pubDate>Tue, 10 Jun 2003 04:00:00 +0900</pubDate></item>"
    )
    item = parse_feed(body, "http://x.test/f").items[0]
    assert item.published == datetime(2003, 6, 9, 19, 0, tzinfo=UTC)
    assert item.published is not None and item.published.tzinfo == UTC


def test_unparseable_and_future_dates_give_none() -> None:
    body = rss(
        "<item><guid>1</guid><pubDate>Xyz, 24 Foo 2018 10:00:00 -0300</pubDate></item>"
        "<item><guid>2</guid><pubDate>Tue, 10 Jun 2031 04:00:00 GMT</pubDate></item>"
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    items = parse_feed(body, "http://x.test/f", now=now).items
    assert [i.published for i in items] == [None, None]
    later = parse_feed(body, "http://x.test/f", now=datetime(2032, 1, 1, tzinfo=UTC))
    assert later.items[1].published == datetime(2031, 6, 10, 4, 0, tzinfo=UTC)


# -- feed metadata ---------------------------------------------------------------------


def test_source_argument_and_ttl() -> None:
    body = rss(
        "<item><guid>1</guid><title>A</title></item>",
        channel="<title>Own</title><ttl>30</ttl>",
    )
    feed = parse_feed(body, "http://x.test/f", source="Configured Name")
    assert feed.title == "Own"
    assert feed.ttl == 30
    assert feed.items[0].source == "Configured Name"
    assert feed.items[0].feed_url == "http://x.test/f"


def test_empty_feed_is_not_an_error() -> None:
    feed = parse_feed(rss("", channel="<title>Quiet</title>"), "http://x.test/f")
    assert (feed.title, feed.items, feed.bozo) == ("Quiet", [], None)


def test_truncated_feed_with_title_is_kept_with_warning() -> None:
    feed = parse_corpus("reuters__most-read-2020_invalid_feed-rs.xml")
    assert feed.title == "Reuters: Most Read Articles"
    assert feed.items == []
    assert feed.bozo is not None and feed.bozo.startswith("malformed XML at line 19")


# -- not feeds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE html>\n<html><head><title>Home</title></head><body>hi</body></html>",
        b"\xef\xbb\xbf  <html lang='en'><body><p>x</p></body></html>",
        b"<?xml version='1.0'?><!-- c --><html xmlns='http://www.w3.org/1999/xhtml'/>",
    ],
)
def test_html_page_is_parse_error_naming_url(body: bytes) -> None:
    url = "https://news.example.com/world"
    with pytest.raises(ParseError) as info:
        parse_feed(body, url, content_type="text/html; charset=utf-8")
    assert str(info.value) == f"{url}: not a feed: looks like an HTML page"
    assert info.value.url == url


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (bytes(range(256)) * 8, "not a feed"),
        (b"\x00\x01\x02garbage\xff\xfe", "not a feed"),
        (b"   \n\t", "empty document"),
        (b"", "empty document"),
        (
            b"<?xml version='1.0'?><catalog><book/></catalog>",
            "document element is <catalog>",
        ),
        (
            b"<rss version='2.0'>\n<chan",
            "malformed XML at line 2",
        ),
    ],
)
def test_garbage_is_parse_error(body: bytes, message: str) -> None:
    url = "http://x.test/feed"
    with pytest.raises(ParseError, match=message) as info:
        parse_feed(body, url)
    assert str(info.value).startswith(url + ": ")


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda t: f"<rss><channel><item>{t}".encode()),
        st.text(max_size=300).map(lambda t: ('{"items": [' + t).encode()),
    )
)
def test_arbitrary_bytes_parse_or_raise_parse_error(body: bytes) -> None:
    try:
        result = parse_feed(body, "http://x.test/feed")
    except ParseError:
        return
    assert isinstance(result, ParsedFeed)


# -- hostile documents ------------------------------------------------------------------

_LAUGHS = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))


@pytest.mark.parametrize(
    "body",
    [
        (
            f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY lol0 "lol">{_LAUGHS}]>'
            '<rss version="2.0"><channel><title>t</title>'
            "<item><guid>1</guid><title>&lol9;</title></item></channel></rss>"
        ).encode(),
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<rss version="2.0"><channel><title>t</title>'
        b"<item><guid>1</guid><title>x&xxe;y</title></item></channel></rss>",
    ],
    ids=["billion-laughs", "external-entity"],
)
def test_entity_attacks_are_not_expanded(body: bytes) -> None:
    try:
        feed = parse_feed(body, "http://x.test/f")
    except ParseError:
        return
    for item in feed.items:
        assert len(item.title) < 100
        assert "root:" not in item.title


def test_json_controls_and_lone_surrogates_are_scrubbed() -> None:
    body = (
        b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "a\\u0000b",'
        b' "title": "x\\ud800y\\u0007z", "url": "http://x.test/\\u0000p"}]}'
    )
    item = parse_feed(body, "http://x.test/f.json").items[0]
    assert item.id == "guid:ab"
    assert item.title == "x\ufffdyz"
    assert item.url == "http://x.test/p"
    item.title.encode("utf-8")


def test_json_with_oversized_integer_is_parse_error() -> None:
    with pytest.raises(ParseError, match="malformed JSON"):
        parse_feed(b'{"items": [{"id": ' + b"9" * 5000 + b"}]}", "http://x.test/f")
