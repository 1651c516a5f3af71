"""Parse stage: feed document bytes -> ``ParsedFeed`` of normalised ``Item``s.

RSS/Atom/RDF via feedparser, JSON Feed via ``json``; plain text, canonical links, UTC.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import logging
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any, NamedTuple
from xml.sax import SAXParseException

import feedparser

from worker.errors import ParseError
from worker.models import Item, utcnow

__all__ = [
    "MAX_SUMMARY_CHARS",
    "MAX_TITLE_CHARS",
    "TRACKING_PARAMS",
    "ParsedFeed",
    "canonical_url",
    "html_to_text",
    "item_identity",
    "normalize_text",
    "parse_feed",
]

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 1_000
MAX_SUMMARY_CHARS = 10_000
# An identity longer than this is shortened to a hash of its value (some feeds put
# whole paragraphs in <guid>).
_MAX_IDENTITY_VALUE = 1_000
# A published date further ahead of ``now`` than this is a wrong clock or time zone,
# not news from the future; it is dropped (the store records first-seen time).
_FUTURE_SLACK = timedelta(days=1)

TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "msclkid",
        "yclid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "ref_src",
        "ref_url",
        "cmpid",
        "cmp",
        "ocid",
        "smid",
        "at_medium",
        "at_campaign",
        "at_custom1",
        "at_custom2",
        "at_custom3",
        "at_custom4",
        "_ga",
        "_gl",
        "mkt_tok",
        "wt.mc_id",
        "ns_mchannel",
        "ns_source",
        "ns_campaign",
        "ns_linkname",
        "ns_fee",
        "__twitter_impression",
    }
)
"""Query parameters dropped by ``canonical_url`` (plus every ``utm_*``)."""

# Control characters and lone surrogates (from JSON "\\ud800" escapes) cannot be
# stored or encoded as UTF-8; zero-width characters split words for the matcher.
_SCRUB: dict[int, str | None] = {
    **dict.fromkeys([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F], None),
    **dict.fromkeys(range(0xD800, 0xE000), "\ufffd"),
}
_ZERO_WIDTH: dict[int, str | None] = {
    **_SCRUB,
    **dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None),
}
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 "
    "h3 h4 h5 h6 header hr img li main nav ol p pre section table td th tr ul".split()
)
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_LEADING_JUNK = re.compile(rb"^(?:\s+|<!--.*?-->|<\?.*?\?>)+", re.DOTALL)
_DOCTYPE = re.compile(rb"^<!DOCTYPE(?:[^>\[]|\[[^\]]*\])*>\s*", re.IGNORECASE)
_FIRST_TAG = re.compile(rb"<\s*([A-Za-z_][\w.:-]*)")


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What one feed document says: its own title and link, and its items."""

    title: str | None
    link: str | None
    items: list[Item]
    ttl: int | None
    """RSS <ttl>, minutes, if the feed gives one."""
    bozo: str | None
    """Why the document was ill-formed, when items could still be recovered."""


# -- text --------------------------------------------------------------------------


def normalize_text(text: str, limit: int | None = None) -> str:
    """Remove zero-width and control characters, collapse whitespace, trim, cap."""
    text = " ".join(text.translate(_ZERO_WIDTH).split())
    if limit is not None and len(text) > limit:
        text = text[:limit].rstrip()
    return text


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


_TAG = re.compile(r"<[^>]*>?")
_LOOKS_LIKE_TAG = re.compile(r"</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>|<!--")
_SCRIPT = re.compile(r"<(script|style)\b.*?(?:</\1\s*>|$)", re.IGNORECASE | re.DOTALL)


def html_to_text(markup: str, limit: int | None = None) -> str:
    """Plain text of an HTML fragment: tags and <script>/<style> dropped, entities
    decoded once, whitespace normalised."""
    if "<" not in markup:
        return normalize_text(html.unescape(markup), limit)
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # html.parser can still assert on odd markup; fall back
        text = html.unescape(_TAG.sub(" ", _SCRIPT.sub(" ", markup)))
    return normalize_text(text, limit)


def _text(value: object, kind: str | None, limit: int) -> str:
    """Plain text of a feed field; ``kind`` is its media type, None if unknown (then
    it is treated as HTML if it holds something that looks like a tag)."""
    if not isinstance(value, str) or not value:
        return ""
    if kind is None:
        kind = "text/html" if _LOOKS_LIKE_TAG.search(value) else "text/plain"
    if "html" in kind:
        return html_to_text(value, limit)
    return normalize_text(html.unescape(value), limit)


# -- URLs and identity ---------------------------------------------------------------


def _is_tracking(key: str) -> bool:
    k = urllib.parse.unquote(key).strip().lower()
    return k.startswith("utm_") or k in TRACKING_PARAMS


def _canonical_netloc(scheme: str, netloc: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    hostport = hostport.rstrip(":")
    port = ""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end == -1:
            host = hostport
        else:
            host, rest = hostport[: end + 1], hostport[end + 1 :]
            if rest.startswith(":"):
                port = rest[1:]
            elif rest:
                host = hostport
    else:
        host, colon, port = hostport.rpartition(":")
        if not colon or not port.isdigit():
            host, port = hostport, ""
    host = host.lower()
    if port and port.isdigit() and port.lstrip("0") == _DEFAULT_PORTS.get(scheme):
        port = ""
    hostport = f"{host}:{port}" if port else host
    return f"{userinfo}{at}{hostport}"


def canonical_url(url: str, base: str | None = None) -> str:
    """The form of a link used for identity and display: absolute (joined with
    ``base``), scheme and host lower-cased, default port and fragment dropped,
    tracking parameters (``utm_*``, ``fbclid``, ...) removed, other parameters kept
    in order. Not an http(s) URL: returned joined and trimmed, otherwise unchanged.

    >>> canonical_url("/a?utm_source=x&id=7#top", "HTTP://Example.COM:80/feed")
    'http://example.com/a?id=7'
    """
    out = _canonical_once(url, base)
    # A pass can expose something the next pass would change (whitespace before a
    # dropped query, a port after a dropped colon); settle on a fixed point so that
    # canonical_url(canonical_url(u)) == canonical_url(u).
    for _ in range(4):
        again = _canonical_once(out, None)
        if again == out:
            break
        out = again
    return out


def _canonical_once(url: str, base: str | None) -> str:
    url = url.strip()
    try:
        if base:
            url = urllib.parse.urljoin(base.strip(), url)
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        return url
    netloc = _canonical_netloc(scheme, parts.netloc)
    query = "&".join(
        p for p in parts.query.split("&") if p and not _is_tracking(p.split("=", 1)[0])
    )
    path = parts.path or "/"
    canonical = urllib.parse.urlunsplit((scheme, netloc, path, query, ""))
    # urlunsplit re-splits oddly built inputs differently (e.g. a path starting with
    # "//"); keep the result only if it is stable, so canonical_url is idempotent.
    try:
        again = urllib.parse.urlsplit(canonical)
    except ValueError:
        return url
    if (again.scheme, again.netloc, again.path, again.query) != (
        scheme,
        netloc,
        path,
        query,
    ):
        return url
    return canonical


def _bounded(value: str) -> str:
    if len(value) <= _MAX_IDENTITY_VALUE:
        return value
    return (
        "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    )


def item_identity(guid: str | None, link: str | None, title: str, summary: str) -> str:
    """An item's identity within its feed: ``guid:<guid>``, else ``url:<canonical
    link>``, else ``hash:<sha256(title, summary)[:32]>``."""
    guid = guid.translate(_SCRUB).strip() if guid else None
    if guid:
        return "guid:" + _bounded(guid)
    link = link.translate(_SCRUB).strip() if link else None
    if link:
        return "url:" + _bounded(canonical_url(link))
    text = f"{title}\n{summary}".translate(_SCRUB)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return "hash:" + digest[:32]


def _http_link(link: object, base: str | None) -> str | None:
    """A canonical http(s) link, or None (javascript:, mailto:, junk)."""
    if not isinstance(link, str) or not link.strip():
        return None
    url = canonical_url(link.translate(_SCRUB), base)
    return url if url.lower().startswith(("http://", "https://")) else None


# -- dates ---------------------------------------------------------------------------


def _checked(when: datetime | None, now: datetime) -> datetime | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        when = when.astimezone(UTC)
    except (OverflowError, ValueError):  # year 1 or 9999 pushed past the range
        return None
    if when > now + _FUTURE_SLACK:
        return None
    return when


def _from_struct(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        y, mo, d, h, mi, sec = (int(v) for v in value[:6])  # type: ignore[index]
        return datetime(y, mo, d, h, mi, min(sec, 59), tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _from_string(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


# -- documents -----------------------------------------------------------------------


def _sniff(body: bytes) -> bytes:
    """The start of the document after BOM, XML declaration, comments and PIs."""
    head = body[:4096]
    for bom in (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"):
        if head.startswith(bom):
            head = head[len(bom) :]
            break
    if head[:1] == b"\0" or head[1:2] == b"\0":
        # UTF-16/32 without a BOM or with one: compare on the ASCII bytes only.
        head = head.replace(b"\0", b"")
    head = _XML_DECL.sub(b"", head)
    return _LEADING_JUNK.sub(b"", head)


def _looks_like_html(start: bytes) -> bool:
    """True if the document element (after any doctype) is html, head or body, or an
    HTML doctype precedes something other than a feed element."""
    html_doctype = start[:14].lower() == b"<!doctype html"
    tag = _FIRST_TAG.search(_DOCTYPE.sub(b"", start, count=1))
    name = tag.group(1).lower() if tag else b""
    if name in (b"html", b"head", b"body"):
        return True
    return html_doctype and name not in (b"rss", b"feed", b"rdf:rdf", b"channel")


def parse_feed(
    body: bytes,
    url: str,
    *,
    content_type: str | None = None,
    source: str | None = None,
    now: datetime | None = None,
) -> ParsedFeed:
    """Parse one feed document fetched from ``url``; raises ParseError if it is not a
    feed. ``source`` names the outlet (default: the feed's title); published dates
    more than a day after ``now`` are dropped as wrong."""
    now = now or utcnow()
    if not body or not body.strip():
        raise ParseError(url, "empty document")
    start = _sniff(body)
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if start.startswith(b"{") or (not start.startswith(b"<") and "json" in ctype):
        return _parse_json(body, url, source, now)
    if _looks_like_html(start):
        raise ParseError(url, "not a feed: looks like an HTML page")
    return _parse_xml(body, url, content_type, source, now)


class _Fields(NamedTuple):
    title: str
    summary: str
    guid: str | None
    link: str | None
    published: datetime | None


def _build_items(rows: Iterable[_Fields], url: str, source: str | None) -> list[Item]:
    seen: set[str] = set()
    items: list[Item] = []
    for row in rows:
        identity = item_identity(row.guid, row.link, row.title, row.summary)
        if identity in seen:
            continue  # the first of several entries with one identity wins
        seen.add(identity)
        items.append(
            Item(
                id=identity,
                title=row.title,
                summary=row.summary,
                url=_http_link(row.link, None),
                published=row.published,
                source=source,
                feed_url=url,
            )
        )
    return items


def _raw(d: Mapping[str, Any], key: str) -> Any:
    # FeedParserDict.get maps missing keys to others (with a DeprecationWarning for
    # updated_parsed); read what feedparser really stored.
    return dict.get(d, key) if isinstance(d, dict) else d.get(key)


def _entry_fields(e: Mapping[str, Any], url: str, now: datetime) -> _Fields:
    title = _text(_raw(e, "title"), _kind(_raw(e, "title_detail")), MAX_TITLE_CHARS)
    summary = _text(
        _raw(e, "summary"), _kind(_raw(e, "summary_detail")), MAX_SUMMARY_CHARS
    )
    if not summary:
        for content in _raw(e, "content") or ():
            if isinstance(content, Mapping):
                summary = _text(content.get("value"), _kind(content), MAX_SUMMARY_CHARS)
                if summary:
                    break
    guid = _raw(e, "id")
    link = _raw(e, "link")
    published = None
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        published = _checked(_from_struct(_raw(e, key)), now)
        if published is not None:
            break
    return _Fields(
        title,
        summary,
        guid if isinstance(guid, str) else None,
        canonical_url(link, url) if isinstance(link, str) and link.strip() else None,
        published,
    )


def _kind(detail: object) -> str | None:
    if isinstance(detail, Mapping):
        kind = detail.get("type")
        return kind if isinstance(kind, str) else None
    return None


def _has_xml_declaration(body: bytes) -> bool:
    head = body[:64]
    for bom in (
        b"\xef\xbb\xbf",
        b"\xff\xfe\x00\x00",
        b"\x00\x00\xfe\xff",
        b"\xff\xfe",
        b"\xfe\xff",
    ):
        if head.startswith(bom):
            head = head[len(bom) :]
            break
    return head.replace(b"\0", b"").startswith(b"<?xml")


def _bozo_message(exc: object, body: bytes) -> str:
    if isinstance(exc, SAXParseException):
        line = exc.getLineNumber()
        # feedparser puts an XML declaration and a newline before a document that
        # has none, so the parser counts one line too many.
        if isinstance(line, int) and line > 1 and not _has_xml_declaration(body):
            line -= 1
        return f"malformed XML at line {line}: {exc.getMessage()}"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _parse_xml(
    body: bytes,
    url: str,
    content_type: str | None,
    source: str | None,
    now: datetime,
) -> ParsedFeed:
    # feedparser follows RFC 3023 (text/xml without charset = us-ascii, no
    # Content-Type = iso-8859-1); give it only the charset, so the BOM or XML
    # declaration decides otherwise, as RFC 7303 says.
    charset = ""
    if content_type:
        m = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
        if m:
            charset = f"; charset={m.group(1)}"
    headers = {"content-location": url, "content-type": f"application/xml{charset}"}
    try:
        result = feedparser.parse(
            io.BytesIO(body),
            response_headers=headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as e:  # feedparser should not raise; a bug there is a bad feed
        raise ParseError(url, f"the feed parser failed: {type(e).__name__}: {e}") from e
    feed = result.get("feed") or {}
    entries = [e for e in result.get("entries") or () if isinstance(e, Mapping)]
    version = result.get("version") or ""
    bozo = (
        _bozo_message(result.get("bozo_exception"), body)
        if result.get("bozo")
        else None
    )
    title = _text(
        _raw(feed, "title"), _kind(_raw(feed, "title_detail")), MAX_TITLE_CHARS
    )
    if not entries:
        if not version:
            if bozo:
                raise ParseError(url, f"not a feed: {bozo}")
            tag = _FIRST_TAG.search(_sniff(body))
            root = (
                f" (the document element is <{tag.group(1).decode()}>)" if tag else ""
            )
            raise ParseError(url, f"not a feed: no RSS, Atom or RDF element{root}")
        if bozo and not title:
            raise ParseError(url, bozo)
    link = _raw(feed, "link")
    ttl_text = _raw(feed, "ttl")
    ttl = (
        int(ttl_text.strip())
        if isinstance(ttl_text, str)
        and ttl_text.strip().isdecimal()
        and len(ttl_text.strip()) <= 9
        else None
    )
    rows = (_entry_fields(e, url, now) for e in entries)
    items = _build_items(rows, url, source or title or None)
    if bozo:
        log.debug(
            "%s: recovered %d items from an ill-formed feed: %s", url, len(items), bozo
        )
    return ParsedFeed(
        title=title or None,
        link=_http_link(link, url),
        items=items,
        ttl=ttl,
        bozo=bozo,
    )


def _parse_json(body: bytes, url: str, source: str | None, now: datetime) -> ParsedFeed:
    try:
        doc = json.loads(body)  # detects UTF-8 (with or without BOM), UTF-16, UTF-32
    except UnicodeDecodeError as e:
        raise ParseError(url, f"JSON Feed is not UTF-8 (byte {e.start})") from e
    except json.JSONDecodeError as e:
        raise ParseError(
            url, f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from e
    except RecursionError as e:
        raise ParseError(url, "malformed JSON: nested too deeply") from e
    except ValueError as e:  # e.g. an integer with more digits than Python allows
        raise ParseError(url, f"malformed JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ParseError(url, "not a feed: the JSON document is not an object")
    raw_items = doc.get("items")
    if not isinstance(raw_items, list):
        raise ParseError(url, "not a JSON Feed: no 'items' list")
    warnings: list[str] = []
    version = doc.get("version")
    if not (
        isinstance(version, str) and version.startswith("https://jsonfeed.org/version/")
    ):
        warnings.append(f"unknown JSON Feed version {version!r}")
    good = [i for i in raw_items if isinstance(i, dict)]
    if len(good) != len(raw_items):
        warnings.append(
            f"skipped {len(raw_items) - len(good)} items that are not objects"
        )
    title = _text(doc.get("title"), "text/plain", MAX_TITLE_CHARS)
    rows = (_json_fields(i, url, now) for i in good)
    items = _build_items(rows, url, source or title or None)
    return ParsedFeed(
        title=title or None,
        link=_http_link(doc.get("home_page_url"), url),
        items=items,
        ttl=None,
        bozo="; ".join(warnings) or None,
    )


def _json_fields(item: Mapping[str, Any], url: str, now: datetime) -> _Fields:
    title = _text(item.get("title"), "text/plain", MAX_TITLE_CHARS)
    summary = _text(item.get("summary"), "text/plain", MAX_SUMMARY_CHARS)
    if not summary:
        summary = _text(item.get("content_text"), "text/plain", MAX_SUMMARY_CHARS)
    if not summary:
        summary = _text(item.get("content_html"), "text/html", MAX_SUMMARY_CHARS)
    raw_id = item.get("id")
    guid = (
        str(raw_id)
        if isinstance(raw_id, str | int) and not isinstance(raw_id, bool)
        else None
    )
    link = item.get("url")
    if not isinstance(link, str) or not link.strip():
        link = item.get("external_url")
    published = _checked(_from_string(item.get("date_published")), now) or _checked(
        _from_string(item.get("date_modified")), now
    )
    return _Fields(
        title,
        summary,
        guid,
        canonical_url(link, url) if isinstance(link, str) and link.strip() else None,
        published,
    )
