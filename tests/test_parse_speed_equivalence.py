"""The per-item speed-ups of the parse fast path give what the general code gives.

Differential checks, seeded and bounded: the RFC 822 date shortcut against
parsedate_to_datetime, the scrub/zero-width searches against str.translate, the
feedparser text fix-ups against their plain form, Items built without
model_construct against validated Items (every item of every corpus file and of the
benchmark's generated feeds), and the fast path on generated feeds against
feedparser.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

import worker.parse as wp
from worker.errors import ParseError
from worker.models import Item

CORPUS = Path("/work/shared/corpus")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from feedgen import FeedSet  # noqa: E402

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


# -- dates ---------------------------------------------------------------------------


def _reference_date(value: str) -> datetime | str | None:
    """_fast_date as it was before the RFC 822 shortcut ("decline" for _Decline)."""
    if not value:
        return None
    when: datetime
    if wp._W3CDTF.match(value):
        when = datetime.fromisoformat(value)
    elif wp._RFC822.match(value):
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return "decline"
    else:
        return "decline"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(microsecond=0)


def _fast_date(value: str) -> datetime | str | None:
    try:
        return wp._fast_date(value)
    except wp._Decline:
        return "decline"


def _outcome(f: object, value: str) -> tuple[str, object]:
    try:
        result = f(value)  # type: ignore[operator]
    except Exception as e:  # e.g. OverflowError at the ends of the calendar
        return ("raises", type(e))
    if isinstance(result, datetime):
        return ("date", (result, result.tzinfo, result.utcoffset()))
    return ("value", result)


def test_rfc822_shortcut_matches_parsedate() -> None:
    rng = random.Random(3)
    days = ["Mon", "Tue", "Sun", "mon", "Xyz"]
    months = ["Jan", "Feb", "Jun", "Dec", "jan", "DEC", "Foo"]
    zones = ["+0000", "-0000", "GMT", "+0530", "-0800", "+2359", "+2400", "-2400"]
    zones += ["+0099", "-0001", "UT", "Z", "EST", "+000", "gmt"]
    taken = 0
    for _ in range(20_000):
        day = rng.choice([rng.randint(0, 32), rng.randint(1, 28)])
        value = (
            f"{rng.choice(days)}, {day:0{rng.choice([1, 2])}d} {rng.choice(months)} "
            f"{rng.choice([1000, 1999, 2026, 2024, 9999, 999, 10000, 50])} "
            f"{rng.randint(0, 25):02d}:{rng.randint(0, 60):02d}:"
            f"{rng.randint(0, 61):02d} {rng.choice(zones)}"
        )
        if rng.random() < 0.05:
            value = value.replace(", ", ",", 1)
        if rng.random() < 0.05:
            value = value.replace(" ", "  ", 1)
        taken += wp._RFC822_PLAIN.match(value) is not None
        assert _outcome(_fast_date, value) == _outcome(_reference_date, value), value
    assert taken > 2_000  # the shortcut itself was exercised


def test_w3cdtf_shortcut_matches_astimezone() -> None:
    rng = random.Random(5)
    for _ in range(5_000):
        when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(
            seconds=rng.randint(-(10**8), 10**8), microseconds=rng.choice([0, 0, 5])
        )
        value = when.isoformat()
        value = rng.choice(
            [value, value.replace("+00:00", "Z"), value.replace("+00:00", "+05:30")]
        )
        assert _outcome(_fast_date, value) == _outcome(_reference_date, value), value


def test_date_edges() -> None:
    gmt = wp._fast_date("Mon, 05 Jan 2026 08:00:00 GMT")
    assert gmt == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert gmt is not None and gmt.tzinfo is UTC
    east = wp._fast_date("Mon, 05 Jan 2026 08:00:00 +0900")
    assert east == datetime(2026, 1, 4, 23, 0, tzinfo=UTC)
    for bad in ("Mon, 31 Feb 2026 08:00:00 +0000", "Mon, 05 Jan 2026 08:00:00 +2400"):
        with pytest.raises(wp._Decline):
            wp._fast_date(bad)
    # A year the zone pushes past the calendar: the document goes to feedparser,
    # whose path gives no date (it once crashed the pass with OverflowError).
    with pytest.raises(wp._Decline):
        wp._fast_date("Fri, 31 Dec 9999 23:00:00 -0500")
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><guid>a</guid><title>Far</title>"
        b"<pubDate>Fri, 31 Dec 9999 23:00:00 -0500</pubDate></item>"
        b"</channel></rss>"
    )
    assert wp.parse_feed_quick(body, "http://127.0.0.1/f", content_type=None) is None
    parsed = wp.parse_feed(body, "http://127.0.0.1/f", content_type=None)
    (item,) = parsed.items
    assert item.title == "Far" and item.published is None


# -- text ----------------------------------------------------------------------------


def test_char_classes_match_the_translate_tables() -> None:
    for table, pattern in (
        (wp._SCRUB, wp._SCRUB_CHAR),
        (wp._ZERO_WIDTH, wp._ZERO_WIDTH_CHAR),
    ):
        found = {c for c in range(0x110000) if pattern.match(chr(c))}
        assert found == set(table)
        # normalize_text and _scrub skip the search for printable text.
        assert not any(chr(c).isprintable() for c in table)


_TEXT_PIECES = [
    "word",
    " ",
    "\n",
    "\t",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1f",
    "\x00",
    "\x7f",
    "\x85",
    "\xa0",
    "\u200b",
    "\u00ad",
    "\ufeff",
    "\u2060",
    "\ud800",
    "中文",
    "é",
    "Ã©",
    "\x80",
    "\x9d",
    "\u2028",
    "\u3000",
]


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(_TEXT_PIECES) for _ in range(rng.randint(0, 10)))


def test_scrub_and_normalize_match_translate() -> None:
    rng = random.Random(13)
    for _ in range(20_000):
        text = _random_text(rng)
        assert wp._scrub(text) == text.translate(wp._SCRUB), repr(text)
        limit = rng.choice([None, 1, 2, 3, 5, 8, 20])
        expected = " ".join(text.translate(wp._ZERO_WIDTH).split())
        if limit is not None and len(expected) > limit:
            expected = expected[:limit].rstrip()
        assert wp.normalize_text(text, limit) == expected, repr(text)


def _reference_fixups(text: str) -> str:
    if not text.isascii():
        try:
            text = text.encode("iso-8859-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        text = text.translate(wp._CP1252)
    return text


def test_fp_fixups_matches_its_plain_form() -> None:
    rng = random.Random(17)
    pieces = [*_TEXT_PIECES, "â€™", "Ã", "\xc3", "\xa9", "\x93", "\xff"]
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        assert wp._fp_fixups(text) == _reference_fixups(text), repr(text)


def test_fp_urljoin_shortcut_matches_feedparsers_urljoin() -> None:
    """Absolute URLs skip urljoin's parsing only where its answer is the URL itself:
    never with brackets in the host, which it may refuse (feedparser then gives "")."""
    from feedparser.urls import _urljoin  # type: ignore[import-untyped]

    rng = random.Random(23)
    bases = ["http://x.example/feed", "https://x.example/a/b", "http:///x.example/"]
    heads = ["http:", "https:", "HTTP:", "ftp:", "mailto:", "", "//", "/"]
    hosts = ["//h.example", "//[::1]:8", "//a.c[o.test", "//b]x", "//", "///h", ""]
    tails = ["", "/p", "/p?", "/p#", "/p?#f", "?q=[1]", " /s", "/\tt", "#"]
    for _ in range(5_000):
        uri = rng.choice(heads) + rng.choice(hosts) + rng.choice(tails)
        base = rng.choice(bases)
        assert wp._fp_urljoin(base, uri) == _urljoin(base, uri), (base, uri)


def test_tracking_and_netloc_memos_match_fresh_values() -> None:
    rng = random.Random(19)
    keys = ["utm_source", "UTM_x", "%75tm_a", " fbclid", "id", "a%", "ref_src", "x"]
    for _ in range(2_000):
        key = rng.choice(keys) + rng.choice(["", "1", "%20"])
        k = wp.urllib.parse.unquote(key).strip().lower()
        assert wp._is_tracking(key) == (k.startswith("utm_") or k in wp.TRACKING_PARAMS)
        netloc = rng.choice(["Ex.COM", "a@B.com:80", "[::1]:443", "x:0080", "h:"])
        scheme = rng.choice(["http", "https"])
        fresh = wp._canonical_netloc_once(scheme, netloc)
        assert wp._canonical_netloc(scheme, netloc) == fresh
    assert len(wp._TRACKING_KEYS) <= wp._MEMO_MAX
    assert len(wp._NETLOCS) <= wp._MEMO_MAX


# -- Items ---------------------------------------------------------------------------


def test_direct_items_equal_model_construct_and_validated_items() -> None:
    assert wp._item_direct()  # Item is as _new_item expects
    args = ("url:a", "T", "S", None, None, None, "https://f.example/")
    direct = wp._new_item(*args)
    built = Item.model_construct(**dict(zip(wp._ITEM_FIELDS, args, strict=True)))
    assert vars(direct) == vars(built)
    assert direct.model_fields_set == built.model_fields_set == set(wp._ITEM_FIELDS)
    assert direct.model_fields_set is not wp._new_item(*args).model_fields_set
    assert direct == Item(**dict(zip(wp._ITEM_FIELDS, args, strict=True)))
    with pytest.raises(Exception, match="frozen"):
        direct.title = "changed"  # type: ignore[misc]


def _generated(count: int) -> list[tuple[bytes, str, str]]:
    feeds = FeedSet(count, 1)
    return [
        (
            f.render(feeds.rng),
            f"http://127.0.0.1:8765/feed/{f.n}",
            "application/atom+xml" if f.kind == "atom" else "application/rss+xml",
        )
        for f in feeds.feeds
    ]


def _corpus() -> list[tuple[bytes, str, str | None]]:
    headers: dict[str, dict[str, str]] = {}
    with (CORPUS / "feedparser" / "INDEX.jsonl").open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            h: dict[str, str] = {}
            for header in rec.get("headers") or ():
                name, _, value = str(header).partition(":")
                h[name.strip().lower()] = value.strip()
            headers[rec["path"]] = h
    out: list[tuple[bytes, str, str | None]] = []
    for folder in ("feeds", "feedparser"):
        for path in sorted((CORPUS / folder).rglob("*")):
            if not path.is_file() or path.suffix in (".tsv", ".md", ".jsonl", ".txt"):
                continue
            rel = (
                path.relative_to(CORPUS / "feedparser").as_posix()
                if folder == "feedparser"
                else ""
            )
            h = headers.get(rel, {})
            url = h.get("content-location") or path.as_uri()
            out.append((path.read_bytes(), url, h.get("content-type")))
    return out


def test_every_built_item_equals_its_validated_item() -> None:
    checked = 0
    docs = [*_generated(300), *_corpus()]
    for body, url, ctype in docs:
        try:
            parsed = wp.parse_feed(body, url, content_type=ctype, now=NOW)
        except (ParseError, OverflowError):
            continue
        for item in parsed.items:
            dump = item.model_dump()
            validated = Item.model_validate(dump)
            assert validated.model_dump() == dump
            assert Item(**dump) == item
            assert vars(Item.model_construct(**dump)) == vars(item)
            assert item.model_fields_set == validated.model_fields_set
            assert item.published is None or item.published.tzinfo is UTC
            checked += 1
    assert checked > 12_000


# -- encodings -----------------------------------------------------------------------


@pytest.mark.parametrize("encoding", sorted(wp._SINGLE_BYTE))
def test_single_byte_encodings_read_as_feedparser_reads_them(encoding: str) -> None:
    """Every byte the encoding defines, in a title and a summary, under the content
    types a server sends: the fast path reads it as feedparser does, or declines
    (an HTTP charset that contradicts the document's)."""
    undefined = {b[0] for b in wp._SINGLE_BYTE[encoding]}
    text = bytes(b for b in range(0x20, 0x100) if b not in undefined | set(b"<&>"))
    body = (
        (
            f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel>'
            "<title>T</title><item><guid>g</guid><title>"
        ).encode()
        + text
        + b"</title><description>"
        + text
        + (b"</description></item></channel></rss>")
    )
    expected = {
        None: True,
        "application/rss+xml": True,
        "text/xml": True,
        f"application/xml; charset={encoding}": True,
        "application/xml; charset=utf-8": False,
    }
    for ctype, quick in expected.items():
        parsed = wp.parse_feed_quick(
            body, "http://x.example/", content_type=ctype, now=NOW
        )
        assert (parsed is not None) == quick, ctype
        full = wp.parse_feed(
            body, "http://x.example/", content_type=ctype, now=NOW, fast=False
        )
        if parsed is not None:
            assert _data(parsed) == _data(full), ctype
    if undefined:  # feedparser would try other encodings: not the fast path's
        odd = body.replace(b"<guid>g", b"<guid>g" + bytes([min(undefined)]))
        assert wp.parse_feed_quick(odd, "http://x.example/", now=NOW) is None


# -- the fast path on the benchmark's feeds ------------------------------------------


def _data(parsed: wp.ParsedFeed) -> tuple[object, ...]:
    return (
        parsed.title,
        parsed.link,
        parsed.ttl,
        [item.model_dump() for item in parsed.items],
    )


def test_generated_feeds_fast_path_agrees_with_feedparser() -> None:
    for body, url, ctype in _generated(40):
        quick = wp.parse_feed_quick(body, url, content_type=ctype, now=NOW)
        assert quick is not None  # the benchmark's feeds take the fast path
        slow = wp.parse_feed(body, url, content_type=ctype, now=NOW, fast=False)
        assert _data(quick) == _data(slow)


# -- entries already stored, skipped -------------------------------------------------


def _without(parsed: wp.ParsedFeed, skip: set[str]) -> tuple[object, ...]:
    title, link, ttl, items = _data(parsed)
    assert isinstance(items, list)
    return title, link, ttl, [i for i in items if f"{i['id']}" not in skip]


def test_skipping_known_entries_gives_the_other_items_unchanged() -> None:
    """For every document (generated and corpus), with a seeded random part of the
    guids taken as stored: the new items are those of the full parse, field for
    field, and no skipped entry is read."""
    rng = random.Random(5)
    skipped = compared = 0
    for body, url, ctype in [*_generated(60), *_corpus()]:
        try:
            full = wp.parse_feed(body, url, content_type=ctype, now=NOW)
            quick = wp.QuickParse(body, url, content_type=ctype, now=NOW)
        except (ParseError, OverflowError):
            continue
        ids = quick.ids
        assert set(ids) <= {i.id for i in full.items}  # read as the full parse does
        skip = {i for i in ids if rng.random() < 0.8}
        part = quick.result(skip)
        if part is None:  # declined, as parse_feed_quick
            assert wp.parse_feed_quick(body, url, content_type=ctype, now=NOW) is None
            continue
        assert _without(part, skip) == _without(full, skip)
        assert not any(i.id in skip for i in part.items)
        whole = quick.result()
        if whole is not None:  # else a skipped entry was one the fast path declines
            assert _data(whole) == _data(full)
        skipped += len(skip)
        compared += 1
    assert compared > 100 and skipped > 3_000


def test_ids_are_the_guid_identities_of_the_items() -> None:
    rss = _rss(
        "<item><guid isPermaLink='false'>g1</guid><title>a</title></item>"
        "<item><guid>/rel/2</guid><title>b</title></item>"
        "<item><title>no guid</title><link>http://x.example/3</link></item>"
        "<item><guid></guid><title>empty guid</title></item>"
    )
    quick = wp.QuickParse(rss, "http://x.example/feed", now=NOW)
    assert quick.ids == ["guid:g1", "guid:http://x.example/rel/2"]
    parsed = quick.result()
    assert parsed is not None
    assert [i.id for i in parsed.items][:2] == quick.ids
    only_new = quick.result({"guid:g1"})
    assert only_new is not None
    assert [i.title for i in only_new.items] == ["b", "no guid", "empty guid"]


def test_a_skipped_entry_that_would_decline_is_not_read() -> None:
    """Skipping never reads a stored entry, so one the fast path would hand to
    feedparser does not decline the document; two guids do not give an id."""
    odd = (
        "<item><guid isPermaLink='false'>old</guid><title>old</title>"
        "<m:group xmlns:m='http://search.yahoo.com/mrss/'><m:title>t</m:title>"
        "</m:group></item>"
    )
    twice = "<item><guid>t1</guid><guid>t2</guid><title>t</title></item>"
    body = _rss(odd + "<item><guid>new</guid><title>new</title></item>")
    quick = wp.QuickParse(body, "http://x.example/feed", now=NOW)
    assert quick.result() is None
    only_new = quick.result({"guid:old"})
    assert only_new is not None
    assert [i.title for i in only_new.items] == ["new"]
    assert wp.QuickParse(_rss(twice), "http://x.example/", now=NOW).ids == []


def test_json_feed_has_no_ids_and_reads_whole() -> None:
    body = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "J",
            "items": [{"id": "1", "content_text": "x"}],
        }
    ).encode()
    quick = wp.QuickParse(body, "http://x.example/feed.json", now=NOW)
    assert quick.ids == []
    parsed = quick.result({"guid:1"})
    assert parsed is not None and len(parsed.items) == 1


# -- what the fast path declines -----------------------------------------------------


def _rss(channel: str, ns: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"{ns}>'
        f"<channel><title>T</title>{channel}</channel></rss>"
    ).encode()


_ITEM = "<item><title>a</title><link>http://x.example/a</link>{}</item>"
_DC = ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
_ATOM_NS = ' xmlns:atom="http://www.w3.org/2005/Atom"'
_MEDIA = ' xmlns:media="http://search.yahoo.com/mrss/"'
_VIDEO = '<media:content url="http://x.example/v.mp4"/>'
_REL_ITEM = (
    "<item><title>a</title><link>rel/a</link><guid>g/1</guid>"
    "<description>&lt;a href='x'&gt;d&lt;/a&gt;</description></item>"
)
_BASED_CHANNEL = (
    '<?xml version="1.0"?><rss version="2.0"><channel xml:base="http://c.example/">'
    f"<title>T</title><link>home</link>{_REL_ITEM}</channel></rss>"
).encode()
_BASED_ATOM = (
    b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://a.example/blog/">'
    b'<title>T</title><link href="/"/><entry><title>e</title><id>e/1</id>'
    b'<link href="2026/post"/><content type="html" xml:base="/c/">&lt;p&gt;x'
    b"&lt;/p&gt;</content></entry></feed>"
)
_STRAY_ITEM = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
    f"</channel>{_ITEM.format('')}</rss>"
).encode()


@pytest.mark.parametrize(
    ("body", "quick"),
    [
        (_rss(_ITEM.format("")), True),
        (_rss(_ITEM.format("<category>World</category>") * 2), True),
        (_rss(_ITEM.format("<category><b>x</b></category>")), False),
        (_rss(_ITEM.format("<title>b</title>")), False),
        (_rss(_ITEM.format("<dc:creator>D</dc:creator>") * 2, _DC), True),
        (_rss(_ITEM.format("<dc:date>2026-01-05T08:00:00Z</dc:date>"), _DC), True),
        (_rss(_ITEM.format("<dc:date>2026</dc:date>" * 2), _DC), False),
        (_rss(_ITEM.format('<atom:link rel="self" href="/s"/>'), _ATOM_NS), True),
        (_rss(_ITEM.format('<atom:link href="/a"/>'), _ATOM_NS), False),
        (_rss("<Title>U</Title>" + _ITEM.format("")), False),
        (_rss("<dc:title>U</dc:title>" + _ITEM.format(""), _DC), False),
        (_rss("<entry/>" + _ITEM.format("")), False),
        (_STRAY_ITEM, False),
        # containers: read if everything inside has a harmless handler too
        (_rss(_ITEM.format(f"<media:group>{_VIDEO * 2}</media:group>"), _MEDIA), True),
        (
            _rss(
                _ITEM.format(
                    '<media:content url="http://x.example/p.jpg">'
                    "<media:credit>AP</media:credit></media:content>"
                ),
                _MEDIA,
            ),
            True,
        ),
        (_rss(_ITEM.format("<x:y xmlns:x='urn:x'><z>1</z><z/></x:y>")), True),
        (
            _rss(
                _ITEM.format("<media:group><media:title>t</media:title></media:group>"),
                _MEDIA,
            ),
            False,
        ),
        (
            _rss(
                _ITEM.format(
                    "<media:group><media:content url='/v'><media:description>d"
                    "</media:description></media:content></media:group>"
                ),
                _MEDIA,
            ),
            False,
        ),
        (_rss(_ITEM.format("<x:y xmlns:x='urn:x'><title>t</title></x:y>")), False),
        (
            _rss(_ITEM.format("<x:y xmlns:x='urn:x'><z><link>/l</link></z></x:y>")),
            False,
        ),
        # xml:base: links resolve against the root's or the channel's; elsewhere
        # only on text-only elements
        (_rss(_REL_ITEM, ' xml:base="http://b.example/dir/"'), True),
        (_rss(_REL_ITEM, ' xml:base="/other/"'), True),
        (_rss(_REL_ITEM, ' xml:base=""'), True),
        (_BASED_CHANNEL, True),
        (_BASED_ATOM, True),
        (
            _rss(_REL_ITEM.replace("<description>", '<description xml:base="/d/">')),
            True,
        ),
        (_rss(_REL_ITEM.replace("<item>", '<item xml:base="/i/">')), False),
        (_rss(_REL_ITEM.replace("<link>", '<link xml:base="/l/">')), False),
        (_rss(_REL_ITEM.replace("<item>", '<item base="/i/">')), False),
        (_rss(_REL_ITEM, ' xml:base="javascript:alert(1)"'), False),
    ],
)
def test_fast_path_accepts_and_declines_as_before(body: bytes, quick: bool) -> None:
    parsed = wp.parse_feed_quick(body, "http://x.example/feed", now=NOW)
    assert (parsed is not None) == quick
    full = wp.parse_feed(body, "http://x.example/feed", now=NOW, fast=False)
    if parsed is not None:
        assert _data(parsed) == _data(full)


@pytest.mark.parametrize("tag", sorted(wp._RISKY_SEED))
def test_seeded_risk_is_what_feedparser_gives(tag: str) -> None:
    ns, _, local = tag[1:].partition("}")
    assert ns.lower() in wp._fp_prefixes()  # its prefix cannot change the name
    assert (wp._fp_name(ns, local, None) in wp._fp_risky()) == wp._RISKY_SEED[tag]


def test_unknown_namespace_prefix_is_not_memoised() -> None:
    """feedparser names an element of a namespace it does not know by its prefix,
    so "itunes:summary" there is risky and "x:summary" is not, in either order."""

    def doc(prefix: str) -> bytes:
        child = f"<{prefix}:summary>s</{prefix}:summary>"
        return _rss(_ITEM.format(child) * 2, f' xmlns:{prefix}="urn:unknown"')

    for order in (("itunes", "x"), ("x", "itunes")):
        wp._RISKY_TAGS.clear()
        for prefix in order:
            parsed = wp.parse_feed_quick(doc(prefix), "http://x.example/", now=NOW)
            assert (parsed is None) == (prefix == "itunes")
