"""Parse stage: feed document bytes -> ``ParsedFeed`` of normalised ``Item``s.

RSS/Atom/RDF via feedparser, JSON Feed via ``json``; plain text, canonical links, UTC.
"""

from __future__ import annotations

import codecs
import hashlib
import html
import html.entities
import io
import json
import logging
import re
import threading
import unicodedata
import urllib.parse
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from types import ModuleType
from typing import Any, NamedTuple
from xml.sax import SAXParseException

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
    "parse_feed_quick",
]

log = logging.getLogger(__name__)

_FEEDPARSER: ModuleType | None = None
_FEEDPARSER_LOCK = threading.Lock()


def _feedparser() -> ModuleType:
    """feedparser (~30 ms to import), loaded on first use, so a pass whose bodies are
    all unchanged never loads it. One thread imports it: two importing its modules at
    once (the fast path inline, the fallback in a thread) deadlock on their cycles."""
    global _FEEDPARSER
    if _FEEDPARSER is None:
        with _FEEDPARSER_LOCK:
            import feedparser

            _FEEDPARSER = feedparser
    return _FEEDPARSER


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


def _char_class(chars: Iterable[int]) -> re.Pattern[str]:
    """A pattern matching exactly one of ``chars`` (as ranges of code points)."""
    ranges: list[list[int]] = []
    for c in sorted(chars):
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges) + "]")


# str.translate with these tables costs microseconds even when it changes nothing;
# they only map characters that are not printable, and these patterns find them.
_SCRUB_CHAR = _char_class(_SCRUB)
_ZERO_WIDTH_CHAR = _char_class(_ZERO_WIDTH)


def _scrub(text: str) -> str:
    """``text.translate(_SCRUB)``, without the table walk when nothing is mapped."""
    if text.isprintable() or _SCRUB_CHAR.search(text) is None:
        return text
    return text.translate(_SCRUB)


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
    if limit is not None and len(text) > 2 * limit:
        # A long text (a whole article in content:encoded): only a prefix is
        # collapsed when all of it but its last word, which the cut may have
        # split, covers the first ``limit`` characters of the result.
        head = _collapsed(text[: 2 * limit])
        if head.rfind(" ") >= limit:
            return head[:limit].rstrip()
    text = _collapsed(text)
    if limit is not None and len(text) > limit:
        text = text[:limit].rstrip()
    return text


def _collapsed(text: str) -> str:
    if not text.isprintable() and _ZERO_WIDTH_CHAR.search(text) is not None:
        text = text.translate(_ZERO_WIDTH)
    return " ".join(text.split())


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


# The plain markup most feeds carry, read without HTMLParser (~10x faster) when every
# "<" opens one of these tags; the text is then exactly what _TextExtractor gives.
# Whitespace is the ASCII set HTMLParser ends tag names on.
_WS = "[ \t\n\r\f]"
_PLAIN_TAG = re.compile(
    rf"<(?:/([a-zA-Z][a-zA-Z0-9]*){_WS}*|([a-zA-Z][a-zA-Z0-9]*)"
    rf"(?:{_WS}+[a-zA-Z_:][-a-zA-Z0-9_:.]*(?:{_WS}*={_WS}*"
    rf"(?:\"[^\"<>]*\"|'[^'<>]*'|[^ \t\n\r\f\"'<>=`]+))?)*{_WS}*(/?))>"
)
# <script>/<style> start tags whose end HTMLParser finds as a plain walk does.
_PLAIN_CDATA_OPEN = re.compile(rf'<[a-zA-Z]+(?:{_WS}+[a-zA-Z-]+="[^"<>]*")*{_WS}*>')
_CDATA_CLOSE = {
    tag: re.compile(rf"</\s*{tag}\s*>", re.IGNORECASE) for tag in ("script", "style")
}


def _plain_markup_text(markup: str) -> str | None:
    """What _TextExtractor collects from ``markup``, or None unless every tag is
    plain (no comments, declarations, stray "<", odd attributes)."""
    parts: list[str] = []
    pos = 0
    while True:
        j = markup.find("<", pos)
        chunk = markup[pos:] if j < 0 else markup[pos:j]
        if chunk:
            parts.append(html.unescape(chunk) if "&" in chunk else chunk)
        if j < 0:
            return "".join(parts)
        m = _PLAIN_TAG.match(markup, j)
        if m is None:
            return None
        end_name, start_name, slash = m.groups()
        if end_name is not None:
            # An end tag (a stray </script> too: the skip count stays at zero).
            if end_name.lower() in _BLOCK_TAGS:
                parts.append(" ")
        else:
            tag = start_name.lower()
            if slash:
                if tag in _BLOCK_TAGS:
                    parts.append(" ")
            elif tag in _CDATA_CLOSE:
                if not _PLAIN_CDATA_OPEN.fullmatch(m.group()):
                    return None
                close = _CDATA_CLOSE[tag].search(markup, m.end())
                if close is None:
                    return None
                pos = close.end()
                continue
            elif tag in _BLOCK_TAGS:
                parts.append(" ")
        pos = m.end()


def html_to_text(markup: str, limit: int | None = None) -> str:
    """Plain text of an HTML fragment: tags and <script>/<style> dropped, entities
    decoded once, whitespace normalised."""
    if "<" not in markup:
        return normalize_text(html.unescape(markup), limit)
    plain = _plain_markup_text(markup)
    if plain is not None:
        return normalize_text(plain, limit)
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
    tracking = _TRACKING_KEYS.get(key)
    if tracking is None:
        k = urllib.parse.unquote(key).strip().lower()
        tracking = k.startswith("utm_") or k in TRACKING_PARAMS
        if len(_TRACKING_KEYS) >= _MEMO_MAX:
            _TRACKING_KEYS.clear()
        _TRACKING_KEYS[key] = tracking
    return tracking


# Bounded memos of two pure functions: feeds repeat their hosts and parameter names.
_MEMO_MAX = 4_096
_TRACKING_KEYS: dict[str, bool] = {}
_NETLOCS: dict[tuple[str, str], str] = {}


def _canonical_netloc(scheme: str, netloc: str) -> str:
    key = (scheme, netloc)
    out = _NETLOCS.get(key)
    if out is None:
        out = _canonical_netloc_once(scheme, netloc)
        if len(_NETLOCS) >= _MEMO_MAX:
            _NETLOCS.clear()
        _NETLOCS[key] = out
    return out


def _canonical_netloc_once(scheme: str, netloc: str) -> str:
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
    key = (url, base)
    cached = _CANONICAL.get(key)
    if cached is not None:
        return cached
    out = _canonical_plain(url, base)
    if out is None:
        out = _canonical_once(url, base)
        # A pass can expose something the next pass would change (whitespace before
        # a dropped query, a port after a dropped colon); settle on a fixed point so
        # that canonical_url(canonical_url(u)) == canonical_url(u).
        for _ in range(4):
            again = _canonical_once(out, None)
            if again == out:
                break
            out = again
    if len(_CANONICAL) > _CANONICAL_MAX:
        _CANONICAL.clear()
    _CANONICAL[key] = out
    _CANONICAL[(out, None)] = out  # parse canonicalises links twice; make it cheap
    return out


# Bounded memo of canonical_url (a pure function): items' links are canonicalised
# when read and again when built.
_CANONICAL: dict[tuple[str, str | None], str] = {}
_CANONICAL_MAX = 4_096


# An absolute http(s) URL of plain ASCII parts, which urljoin returns unchanged
# whatever the base and urlsplit splits as this does.
_PLAIN_URL = re.compile(
    r"(?i:(https?))://([A-Za-z0-9.-]+(?::[0-9]*)?)"
    r"(/(?!/)[A-Za-z0-9\-._~%!$&'()*+,;=:@/]*)?"
    r"(?:\?([A-Za-z0-9\-._~%!$&'()*+,;=:@/?]+))?"
    r"(?:#[A-Za-z0-9\-._~%!$&'()*+,;=:@/?#]+)?"
)


def _canonical_plain(url: str, base: str | None) -> str | None:
    """``canonical_url`` of a plain absolute http(s) URL (no urllib round trips),
    or None for anything else (a base urljoin could reject included)."""
    if base and not (base.isascii() and "[" not in base and "]" not in base):
        return None
    m = _PLAIN_URL.fullmatch(url.strip())
    if m is None:
        return None
    scheme, netloc, path, query = m.groups()
    if path and ";" in path:
        return None  # urljoin re-assembles path parameters (drops an empty one)
    scheme = scheme.lower()
    netloc = _canonical_netloc(scheme, netloc)
    out = f"{scheme}://{netloc}{path or '/'}"
    if query:
        query = "&".join(
            p for p in query.split("&") if p and not _is_tracking(p.split("=", 1)[0])
        )
        if query:
            out = f"{out}?{query}"
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
    guid = _scrub(guid).strip() if guid else None
    if guid:
        return "guid:" + _bounded(guid)
    link = _scrub(link).strip() if link else None
    if link:
        return "url:" + _bounded(canonical_url(link))
    text = _scrub(f"{title}\n{summary}")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return "hash:" + digest[:32]


def _http_link(link: object, base: str | None) -> str | None:
    """A canonical http(s) link, or None (javascript:, mailto:, junk)."""
    if not isinstance(link, str) or not link.strip():
        return None
    url = canonical_url(_scrub(link), base)
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
    """A JSON Feed date: RFC 3339, as the spec has it, and the forms the XML
    path reads right (the other ISO 8601 forms, RFC 822, the numeric, East
    Asian, compact and asctime forms, names in other languages); None for
    anything else, where email.utils on its own makes dates up from junk ("1
    jan 1 1:1", "Xyz, 27 Nov 0 09:30", a date and trailing text)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    reader = _own_reader(text)
    if reader is not None:
        return reader(text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    when = _named_date(text)
    return _rfc2822_date(text) if when is None else when


# RFC 822 dates _named_date does not read: a two-digit year, the month first, a
# comment after the zone, "Etc/GMT" ("Fri, 27 Nov 26 09:30 GMT", "Nov 27 2026
# 09:30 EST", "Fri, 27 Nov 2026 09:30 +0100 (CET)"); feedparser reads them too.
_RFC2822 = re.compile(
    r"(?:(?P<wday>[a-z]+),?\s+)?"
    r"(?:[0-9]{1,2}\s+[a-z]+|[a-z]+\s+[0-9]{1,2})\s+(?:[0-9]{2}|[0-9]{4})\s+"
    r"[0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?\s+"
    r"(?P<zone>[+-](?:[01][0-9]|2[0-3])[0-5][0-9]|(?:etc/)?[a-z]+)"
    r"(?:\s+\([^()]*\))?\Z",
    re.ASCII | re.IGNORECASE,
)


def _rfc2822_date(text: str) -> datetime | None:
    """The date email.utils reads in an RFC 822 date _named_date does not read
    (see _RFC2822), where the day and zone names are real ones: email.utils
    skips any word before the day and reads a zone name it does not know as
    UTC."""
    m = _RFC2822.match(text)
    if m is None:
        return None
    wday, zone = m["wday"], m["zone"].lower()
    if wday is not None and wday.lower() not in _LOCAL_DAYS:
        return None
    if zone.startswith("etc/"):
        zone = "gmt" if zone in ("etc/gmt", "etc/utc", "etc/ut") else ""
    if not zone.startswith(("+", "-")) and zone not in _EMAIL_NAMES:
        return None
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


# Dates that name the month or the day in German, French, Spanish, Italian,
# Portuguese or Dutch ("Seg, 24 Set 2018 19:18:49 -0300"), or write the date the
# Chinese/Japanese/Korean way ("2026年11月27日 09:30", "2026년 11월 27일"): see
# _named_date and _cjk_date for when each is read. Names are lower case, without
# accents.
_LOCAL_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            "jan january januar janner janvier janv enero ene gennaio gen janeiro"
            " januari",
            "feb february februar feber fevrier fevr fev febrero febbraio fevereiro"
            " februari",
            "mar march marz maerz mrz mars marzo marco maart mrt",
            "apr april avril avr abril abr aprile",
            "may mai mayo maggio mag maio mei",
            "jun june juni juin junio giugno giu junho",
            "jul july juli juillet juil julio luglio lug julho",
            "aug august aout agosto ago augustus",
            "sep sept september septembre septiembre setiembre set settembre setembro",
            "oct october oktober okt octobre octubre ottobre ott outubro out",
            "nov november novembre noviembre novembro",
            "dec december dezember dez decembre diciembre dic dicembre dezembro",
        ),
        start=1,
    )
    for name in names.split()
}
# Day names are only recognised, not checked against the date: email.utils and
# feedparser ignore a wrong one too.
_LOCAL_DAYS = frozenset(
    """
    mon monday tue tues tuesday wed wednesday thu thur thurs thursday fri friday
    sat saturday sun sunday
    mo montag di dienstag mi mittwoch do donnerstag fr freitag sa samstag sonnabend
    so sonntag
    lun lundi mar mardi mer mercredi jeu jeudi ven vendredi sam samedi dim dimanche
    lu lunes ma martes mie miercoles ju jue jueves vi vie viernes sab sabado dom
    domingo
    lunedi martedi mercoledi gio giovedi venerdi sabato domenica
    seg segunda ter terca qua quarta qui quinta sex sexta
    maandag dinsdag wo woensdag donderdag vr vrijdag za zaterdag zo zondag
    """.split()
)
# Zone names (hours east of UTC): those feedparser's RFC 822 handler knows, as it
# reads them (a copy of its table; it reads any other name as UTC, so "utc" right),
# and names that mean one zone only. Left out: IST (India, Ireland or Israel) and
# BST (British Summer Time or Bangladesh); in the East Asian and numeric forms
# also CST (China's zone as often as the US's). email.utils knows fewer names.
_FP_ZONES = {
    "ut": 0, "gmt": 0, "z": 0,
    "adt": -3, "ast": -4, "at": -4, "edt": -4, "est": -5, "et": -5,
    "cdt": -5, "cst": -6, "ct": -6, "mdt": -6, "mst": -7, "mt": -7,
    "pdt": -7, "pst": -8, "pt": -8,
    "a": -1, "n": 1, "m": -12, "y": 12,
    "met": 1, "mest": 2,
}  # fmt: skip
_FP_NAMES = frozenset({*_FP_ZONES, "utc"})
_EMAIL_NAMES = frozenset("ut utc gmt z ast adt est edt cst cdt mst mdt pst pdt".split())
_EAST_ASIAN_ZONES = {"z": 0, "ut": 0, "utc": 0, "gmt": 0}
_EAST_ASIAN_ZONES |= {"jst": 9, "kst": 9, "hkt": 8, "sgt": 8}
_LOCAL_ZONES = _FP_ZONES | _EAST_ASIAN_ZONES | {
    "wet": 0, "wez": 0, "west": 1, "wesz": 1,
    "cet": 1, "mez": 1, "cest": 2, "mesz": 2,
    "eet": 2, "oez": 2, "eest": 3, "oesz": 3, "msk": 3,
    "brt": -3, "brst": -2, "art": -3,
    "awst": 8, "aest": 10, "aedt": 11, "nzst": 12, "nzdt": 13,
}  # fmt: skip
_NUMERIC_ZONES = {name: h for name, h in _LOCAL_ZONES.items() if name != "cst"}
_LOCAL_RFC822 = re.compile(
    r"(?:(?P<wday>[^\W\d_]+(?:-feira)?)\.?,?\s+)?"
    r"(?P<day>[0-9]{1,2})\.?\s+(?:de\s+)?"
    r"(?P<month>[^\W\d_]+)\.?,?\s+(?:de\s+)?"
    r"(?P<year>[0-9]{4})"
    r"(?:,?\s+(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2}))?)?"
    r"(?:\s*(?P<zone>\S.*?))?\s*\Z"
)
_CJK_WEEKDAY = r"[月火水木金土日]曜日?|(?:星期|周|週|礼拜|禮拜)[一二三四五六日天]|[월화수목금토일]요일"
_LOCAL_CJK = re.compile(
    r"(?P<year>[0-9]{4})\s*[年년]\s*(?P<month>[0-9]{1,2})\s*[月월]\s*"
    r"(?P<day>[0-9]{1,2})\s*[日일号號]"
    rf"(?:\s*(?:\(\s*(?:{_CJK_WEEKDAY}|[月火水木金土日一二三四五六天월화수목금토일])\s*\)"
    rf"|{_CJK_WEEKDAY}))?"
    r"(?:\s*(?P<half>午前|午後|上午|下午|오전|오후|am|pm))?"
    r"(?:\s*(?:(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2}))?"
    r"|(?P<uhour>[0-9]{1,2})\s*[時时시](?:\s*(?P<uminute>[0-9]{1,2})\s*[分분]"
    r"(?:\s*(?P<usecond>[0-9]{1,2})\s*[秒초])?)?))?"
    r"(?:\s*(?P<zone>\S.*?))?\s*\Z"
)
_PM = frozenset({"午後", "下午", "오후", "pm"})
# Any digits, as feedparser's ISO 8601 handler reads them.
_CJK_YEAR = re.compile(r"\s*\d{4}\s*[年년]")
_LOCAL_ZONE = re.compile(
    r"(?P<name>[a-z]{1,5})?"
    r"(?:(?P<sign>[+-])(?P<hours>[0-9]{1,2})(?::?(?P<minutes>[0-9]{2}))?)?\Z"
)
# Longer than any real date; bounds the work on hostile text.
_MAX_LOCAL_DATE = 100


def _unaccented(word: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c)
    )


def _local_zone(text: str | None, names: Mapping[str, int]) -> tzinfo | None:
    """The zone after a localized date: UTC when there is none (as for every
    zone-less date here), ±hhmm, ±hh:mm, GMT/UTC±h[h][:mm] or a name in
    ``names``, optionally in parentheses; None for anything else."""
    if text is None:
        return UTC
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    m = _LOCAL_ZONE.match(text)
    if m is None or not text:
        return None
    name, sign, hours, minutes = m.groups()
    if sign is None:
        offset = names.get(name)
        return None if offset is None else timezone(timedelta(hours=offset))
    if name is None and (len(hours) != 2 or minutes is None):
        return None  # a bare offset is ±hhmm or ±hh:mm
    if name is not None and name not in ("gmt", "utc", "ut"):
        return None
    h, mi = int(hours), int(minutes or 0)
    if h > 23 or mi > 59:
        return None
    delta = timedelta(hours=h, minutes=mi)
    return timezone(-delta if sign == "-" else delta)


def _local_text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) > _MAX_LOCAL_DATE:
        return None
    # NFKC: full-width digits and brackets, and decomposed accents, as plain ones.
    return unicodedata.normalize("NFKC", value).strip().lower()


def _local_datetime(
    m: re.Match[str],
    month: int | None,
    clock: tuple[str, str, str],
    zone: tzinfo | None,
) -> datetime | None:
    if month is None or zone is None:
        return None
    hour, minute, second = clock
    try:
        return datetime(
            int(m["year"]),
            month,
            int(m["day"]),
            int(hour),
            int(minute),
            int(second),
            tzinfo=zone,
        )
    except ValueError:
        return None


def _named_date(value: object) -> datetime | None:
    """The date of an RFC 822-like string that names its month (and maybe its
    day) in German, French, Spanish, Italian, Portuguese, Dutch or English;
    None for anything else. Asked only where feedparser's handlers read no
    date: where they read one, it is the same month."""
    text = _local_text(value)
    m = None if text is None else _LOCAL_RFC822.match(text)
    if m is None:
        return None
    wday = m["wday"]
    if wday is not None and _unaccented(wday).removesuffix("-feira") not in (
        _LOCAL_DAYS
    ):
        return None
    clock = (m["hour"] or "0", m["minute"] or "0", m["second"] or "0")
    month = _LOCAL_MONTHS.get(_unaccented(m["month"]))
    return _local_datetime(m, month, clock, _local_zone(m["zone"], _LOCAL_ZONES))


def _east_asian(value: object) -> bool:
    """Whether ``value`` starts as the East Asian form does ("2026年", "2026년").
    feedparser's handlers read only the year of such a string (its ISO 8601
    handler makes up the month and day from today's; its Korean handlers come
    after that one), so _cjk_date alone reads it, or no date is read."""
    return isinstance(value, str) and _CJK_YEAR.match(value) is not None


def _cjk_date(value: object) -> datetime | None:
    """The date of a string in the Chinese/Japanese/Korean year-month-day form
    ("2026年11月27日 09:30", "2026년 11월 27일"); None for anything else."""
    if not _east_asian(value):
        return None
    text = _local_text(value)
    m = None if text is None else _LOCAL_CJK.match(text)
    if m is None:
        return None
    if m["hour"] is not None:
        clock = (m["hour"], m["minute"], m["second"] or "0")
    elif m["uhour"] is not None:
        clock = (m["uhour"], m["uminute"] or "0", m["usecond"] or "0")
    elif m["half"] is not None:
        return None  # "afternoon" and no time
    else:
        clock = ("0", "0", "0")
    if m["half"] is not None:
        twelve = _half_day(clock, m["half"])
        if twelve is None:
            return None
        clock = twelve
    zone = _local_zone(m["zone"], _EAST_ASIAN_ZONES)
    return _local_datetime(m, int(m["month"]), clock, zone)


def _half_day(clock: tuple[str, str, str], half: str) -> tuple[str, str, str] | None:
    """``clock`` on a 12-hour dial read on the 24-hour one (None past 12)."""
    if int(clock[0]) > 12:
        return None
    hour = int(clock[0]) % 12 + (12 if half in _PM else 0)
    return (str(hour), clock[1], clock[2])


def _localized_date(value: object) -> datetime | None:
    """A date in the East Asian form or with names in another language."""
    return _cjk_date(value) or _named_date(value)


# Numeric dates. feedparser's ISO 8601 handler reads only the year of "2026.11.27
# 09:30" or "2026/11/27" (it makes up the month, today's, and the 1st), reads
# "27-11-2026" as 2027-11-20 and "09:30" as today; its W3C handler reads a zone
# name after "2026-11-27 09:30" as UTC, or drops the time. So these forms are
# read here alone (_numeric): year first with ".", "/" or "-" (the dotted form is
# common on Korean sites), day.month.year with dots (the European order), and
# day and month the other way with "/" or "-" only where one order alone gives a
# date ("11/27/2026", not "11/12/2026"); a time, AM/PM and a zone may follow.
# Anything else that starts like these (a two-digit year, a time first) gives no
# date. W3CDTF proper ("2026-11-27T09:30:00Z") stays with feedparser.
_NUMERIC_START = re.compile(
    r"\s*(?:\d{4}(?:[./．／]|[-－]\d{1,2}[-－]\d{1,2}(?!\d))"
    r"|\d{1,2}[-－./．／]\d{1,2}[-－./．／]\d|\d{1,2}[:：]\d{2})"
)
_NUMERIC_DATE = re.compile(
    r"(?:(?P<year>[0-9]{4})(?P<ysep>[./-])\s?(?P<month>[0-9]{1,2})(?P=ysep)\s?"
    r"(?P<day>[0-9]{1,2})(?P<dot>\.)?"
    r"|(?P<a>[0-9]{1,2})(?P<sep>[./-])(?P<b>[0-9]{1,2})(?P=sep)(?P<lyear>[0-9]{4}))"
    r"(?:\s*\(\s*(?P<wday>[^()\s]{1,12})\s*\))?"
    r"(?:(?P<tsep>\s*t\s*|,?\s+)(?:(?P<half>午前|午後|上午|下午|오전|오후|am|pm)\s*)?"
    r"(?P<hour>[0-9]{1,2})(?::(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:[.,][0-9]+)?)?)?(?:\s*(?P<ampm>am|pm))?)?"
    r"(?:\s*(?P<zone>\S.*?))?\s*\Z"
)
_CJK_WEEKDAY_ALONE = re.compile(
    rf"(?:{_CJK_WEEKDAY}|[月火水木金土日一二三四五六天월화수목금토일])\Z"
)
_BARE_HOURS = re.compile(r"[+-][0-9]{2}\Z")
# The zone after the time as RFC 822 readers split it: "09:30 CET", "09:30:00
# (EST)", "09:30 UTC+8", "09:30 Etc/GMT".
_ZONE_AFTER_TIME = re.compile(
    r"[0-9]:[0-9]{1,2}(?::[0-9]{1,2})?\s*(\()?([A-Za-z][A-Za-z_/]*)([+-][0-9:]+)?\)?"
    r"(?:\s|\Z)"
)


def _numeric(value: str) -> bool:
    """Whether ``value`` starts as a numeric date does (see above)."""
    return _NUMERIC_START.match(value) is not None and not _w3cdtf(value.strip())


def _w3cdtf(value: str) -> bool:
    """Whether ``value`` is a W3CDTF date, which feedparser reads right (it makes
    up one of "1999-31-11T09:30:00Z" from the year)."""
    if _W3CDTF.match(value) is None:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:  # no such day or time, digits other than ASCII ones
        return False
    return True


def _is_date(year: int, month: int, day: int) -> bool:
    try:
        datetime(year, month, day)
    except ValueError:
        return False
    return True


def _numeric_date(value: object) -> datetime | None:
    """The date of a string in a numeric form ("2026.11.27 09:30", "2026/11/27",
    "27.11.2026 09:30 MEZ", "11/27/2026 9:30 PM"); None for anything else and
    where day and month can be read either way."""
    text = _local_text(value)
    m = None if text is None else _NUMERIC_DATE.match(text)
    if m is None:
        return None
    if m["year"] is not None:
        if m["dot"] is not None and m["ysep"] != ".":
            return None
        year, month, day = int(m["year"]), int(m["month"]), int(m["day"])
    else:
        year, a, b = int(m["lyear"]), int(m["a"]), int(m["b"])
        orders = {(a, b)} if m["sep"] == "." else {(a, b), (b, a)}
        dates = [(d, mo) for d, mo in orders if _is_date(year, mo, d)]
        if len(dates) != 1:
            return None
        ((day, month),) = dates
    wday = m["wday"]
    if wday is not None and not (
        _CJK_WEEKDAY_ALONE.match(wday) or _unaccented(wday).rstrip(".") in _LOCAL_DAYS
    ):
        return None
    clock = ("0", "0", "0")
    if m["hour"] is not None:
        if m["minute"] is None and m["tsep"].strip() != "t":
            return None  # "2026.11.27 9": an hour alone only in ISO's "T09"
        clock = (m["hour"], m["minute"] or "0", m["second"] or "0")
        if m["half"] is not None and m["ampm"] is not None:
            return None
        half = m["half"] or m["ampm"]
        if half is not None:
            twelve = _half_day(clock, half)
            if twelve is None:
                return None
            clock = twelve
    zone_text = m["zone"]
    if zone_text is not None and _BARE_HOURS.match(zone_text):
        zone_text += "00"  # ISO 8601's "+09"
    return _rolled_over(year, month, day, clock, _local_zone(zone_text, _NUMERIC_ZONES))


def _rolled_over(
    year: int, month: int, day: int, clock: tuple[str, str, str], zone: tzinfo | None
) -> datetime | None:
    """The instant of a numeric date, None where there is no such day, time or
    zone. 23:59:60 and 24:00 (ISO 8601's end of the day) are the next day's
    00:00, as feedparser has them."""
    if zone is None:
        return None
    hour, minute, second = (int(f) for f in clock)
    later = timedelta()
    if second == 60:
        second, later = 59, timedelta(seconds=1)
    elif (hour, minute, second) == (24, 0, 0):
        hour, later = 0, timedelta(days=1)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=zone) + later
    except (ValueError, OverflowError):
        return None


# ISO 8601's basic (compact) form with a time: "20261127T093000Z",
# "20261127T0930+0900", the time maybe with colons. feedparser's ISO 8601 handler
# drops the time (midnight); a compact date alone ("20261127") it reads right.
# Anything else that starts with eight digits and a "T" gives no date.
_COMPACT_START = re.compile(r"\s*[0-9]{8}[Tt]")
_COMPACT_ISO = re.compile(
    r"(?P<year>[0-9]{4})(?P<month>[0-9]{2})(?P<day>[0-9]{2})t"
    r"(?P<hour>[0-9]{2})(?:(?P<tsep>:?)(?P<minute>[0-9]{2})"
    r"(?:(?P=tsep)(?P<second>[0-9]{2})(?:[.,][0-9]+)?)?)?"
    r"(?P<zone>z|[+-][0-9]{2}(?::?[0-9]{2})?)?\Z"
)


def _compact_date(value: object) -> datetime | None:
    """The instant of a compact ISO 8601 date and time ("20261127T093000Z");
    None for anything else."""
    text = _local_text(value)
    m = None if text is None else _COMPACT_ISO.match(text)
    if m is None:
        return None
    zone_text = m["zone"]
    if zone_text is not None and _BARE_HOURS.match(zone_text):
        zone_text += "00"
    clock = (m["hour"], m["minute"] or "0", m["second"] or "0")
    zone = _local_zone(zone_text, _NUMERIC_ZONES)
    return _rolled_over(int(m["year"]), int(m["month"]), int(m["day"]), clock, zone)


# asctime and date(1): "Fri Nov 27 09:30:00 2026", with a zone before or after
# the year ("... 09:30:00 UTC 2026", "... 09:30:00 2026 +0900"). feedparser reads
# a zone after the year as the year (0900), one it does not know before it as
# UTC. Anything else that starts with a month, a day and a time gives no date.
_ASCTIME_START = re.compile(
    r"\s*(?:[^\W\d_]+\.?,?\s+)?[^\W\d_]+\.?\s+[0-9]{1,2}\s+[0-9]{1,2}:[0-9]{2}"
)
_ASCTIME = re.compile(
    r"(?:(?P<wday>[^\W\d_]+)\.?,?\s+)?(?P<month>[^\W\d_]+)\.?\s+"
    r"(?P<day>[0-9]{1,2})\s+"
    r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2}))?"
    r"(?:\s+(?P<zone>\S+))?\s+(?P<year>[0-9]{4})(?:\s+(?P<after>\S+))?\s*\Z"
)


def _asctime_date(value: object) -> datetime | None:
    """The instant of an asctime date, zone-less as UTC, a zone name read as
    _named_date reads it; None for anything else."""
    text = _local_text(value)
    m = None if text is None else _ASCTIME.match(text)
    if m is None or (m["zone"] is not None and m["after"] is not None):
        return None
    wday = m["wday"]
    if wday is not None and _unaccented(wday) not in _LOCAL_DAYS:
        return None
    clock = (m["hour"], m["minute"], m["second"] or "0")
    month = _LOCAL_MONTHS.get(_unaccented(m["month"]))
    zone = _local_zone(m["zone"] or m["after"], _LOCAL_ZONES)
    return _local_datetime(m, month, clock, zone)


def _unread_zone(text: str) -> bool:
    """Whether feedparser's RFC 822 handler reads the zone after the time in
    ``text`` otherwise than _named_date does: it reads a name it does not know
    as UTC ("CET"; garbage, where _named_date reads no date), a name in
    parentheses too, and an offset after a name ("UTC+8") only after "GMT"."""
    m = _ZONE_AFTER_TIME.search(text)
    if m is None:
        return False
    paren, name, offset = m.groups()
    name = name.lower().removeprefix("etc/")
    if offset is not None:
        return name != "gmt"
    theirs = _FP_ZONES.get(name, 0) if name in _FP_NAMES and paren is None else 0
    return _LOCAL_ZONES.get(name) != theirs


def _own_reader(value: object) -> Callable[[object], datetime | None] | None:
    """The reader that alone reads ``value`` where feedparser's handlers make up
    or misread its date: the East Asian form, the numeric, compact ISO 8601 and
    asctime forms, a zone they read as UTC. None where their reading stands."""
    if not isinstance(value, str) or _RFC822_PLAIN.match(value) or _w3cdtf(value):
        return None  # the usual forms, quickly
    if _east_asian(value):
        return _cjk_date
    if _numeric(value):
        return _numeric_date
    if _COMPACT_START.match(value):
        return _compact_date
    if _ASCTIME_START.match(value):
        return _asctime_date
    if _unread_zone(value):
        return _named_date
    return None


# Where feedparser files an entry's dates: the text, and what its handlers read.
_ENTRY_DATES = (
    ("published", "published_parsed"),
    ("updated", "updated_parsed"),
    ("created", "created_parsed"),
)


def _feedparser_date(value: str) -> object:
    """What feedparser's date handlers read in ``value`` (None for no date)."""
    _feedparser()
    from feedparser.datetimes import _parse_date

    return _parse_date(value)


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
    fast: bool = True,
) -> ParsedFeed:
    """Parse one feed document fetched from ``url``; raises ParseError if it is not a
    feed. ``source`` names the outlet (default: the feed's title); published dates
    more than a day after ``now`` are dropped as wrong. ``fast=False`` skips the
    lxml fast path (feedparser reads everything; the conformance reference)."""
    now = now or utcnow()
    if fast:
        parsed = parse_feed_quick(
            body, url, content_type=content_type, source=source, now=now
        )
        if parsed is not None:
            return parsed
    elif _precheck(body, url, content_type):
        return _parse_json(body, url, source, now)
    return _parse_xml(body, url, content_type, source, now)


def parse_feed_quick(
    body: bytes,
    url: str,
    *,
    content_type: str | None = None,
    source: str | None = None,
    now: datetime | None = None,
) -> ParsedFeed | None:
    """``parse_feed`` without feedparser: the result for JSON Feeds and the XML the
    lxml fast path reads, None when feedparser is needed (run it off the event
    loop). Raises ParseError like ``parse_feed``."""
    quick = QuickParse(body, url, content_type=content_type, source=source, now=now)
    return quick.result()


class QuickParse:
    """``parse_feed_quick`` in two steps, so that a poll can look up in between
    which entries it already has: ``ids`` are the identities the entries carry in
    their guid (Atom id, RSS 1.0 rdf:about), read without the rest of the entry;
    ``result(skip)`` is the feed without the entries whose identity is in ``skip``,
    whose other fields are never read (a changed feed is mostly entries stored on
    earlier polls). Raises ParseError like ``parse_feed``."""

    def __init__(
        self,
        body: bytes,
        url: str,
        *,
        content_type: str | None = None,
        source: str | None = None,
        now: datetime | None = None,
    ) -> None:
        self._url = url
        self._source = source
        self._now = now or utcnow()
        self._json = body if _precheck(body, url, content_type) else None
        self._doc = (
            None if self._json is not None else _fast_prepare(body, url, content_type)
        )
        self._ids: list[str | None] | None = None

    @property
    def ids(self) -> list[str]:
        """The identities readable from the entries' guids (none for a JSON Feed
        or a document the fast path declines)."""
        return [i for i in self._entry_ids() if i is not None]

    def _entry_ids(self) -> list[str | None]:
        if self._ids is None:
            doc = self._doc
            self._ids = (
                [_quick_identity(e, doc.fmt, doc.base) for e in doc.entries]
                if doc is not None
                else []
            )
        return self._ids

    def result(self, skip: Container[str] = frozenset()) -> ParsedFeed | None:
        """The feed without the entries whose identity is in ``skip``; None when
        feedparser must read it."""
        if self._json is not None:
            return _parse_json(self._json, self._url, self._source, self._now)
        doc = self._doc
        if doc is None:
            return None
        entries = doc.entries
        if skip:
            entries = [
                e
                for e, i in zip(entries, self._entry_ids(), strict=True)
                if i is None or i not in skip
            ]
        try:
            rows = [_fast_entry(e, doc.fmt, doc.base, self._now) for e in entries]
        except _Decline:
            return None
        return ParsedFeed(
            title=doc.title or None,
            link=_http_link(doc.link, self._url),
            items=_build_items(rows, self._url, self._source or doc.title or None),
            ttl=doc.ttl,
            bozo=None,
        )


def _precheck(body: bytes, url: str, content_type: str | None) -> bool:
    """True for a JSON document; ParseError for an empty one or an HTML page."""
    if not body or not body.strip():
        raise ParseError(url, "empty document")
    start = _sniff(body)
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if start.startswith(b"{") or (not start.startswith(b"<") and "json" in ctype):
        return True
    if _looks_like_html(start):
        raise ParseError(url, "not a feed: looks like an HTML page")
    return False


class _Fields(NamedTuple):
    title: str
    summary: str
    guid: str | None
    link: str | None
    published: datetime | None


_ITEM_FIELDS = ("id", "title", "summary", "url", "published", "source", "feed_url")
_ITEM_DIRECT: bool | None = None
_set_attribute = object.__setattr__


def _new_item(
    identity: str,
    title: str,
    summary: str,
    url: str | None,
    published: datetime | None,
    source: str | None,
    feed_url: str,
) -> Item:
    """The Item ``Item.model_construct`` builds from these values (every field
    given), without its per-field loop; used only if _item_direct says so."""
    item = Item.__new__(Item)
    _set_attribute(
        item,
        "__dict__",
        {
            "id": identity,
            "title": title,
            "summary": summary,
            "url": url,
            "published": published,
            "source": source,
            "feed_url": feed_url,
        },
    )
    _set_attribute(item, "__pydantic_fields_set__", set(_ITEM_FIELDS))
    _set_attribute(item, "__pydantic_extra__", None)
    _set_attribute(item, "__pydantic_private__", None)
    return item


def _item_direct() -> bool:
    """Whether _new_item builds exactly what Item.model_construct builds: Item has
    these fields, no aliases, extras or post-init hook, and a sample agrees
    attribute for attribute (checked once; otherwise model_construct is used)."""
    global _ITEM_DIRECT
    if _ITEM_DIRECT is None:
        fields = Item.model_fields
        ok = (
            tuple(fields) == _ITEM_FIELDS
            and Item.__pydantic_post_init__ is None
            and not Item.__pydantic_root_model__
            and Item.model_config.get("extra") != "allow"
            and all(
                f.alias is None and f.validation_alias is None for f in fields.values()
            )
        )
        if ok:
            when = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
            built = Item.model_construct(
                id="guid:a",
                title="Title",
                summary="Summary",
                url="https://example.com/a",
                published=when,
                source="Outlet",
                feed_url="https://example.com/feed",
            )
            direct = _new_item(
                "guid:a",
                "Title",
                "Summary",
                "https://example.com/a",
                when,
                "Outlet",
                "https://example.com/feed",
            )
            ok = (
                list(vars(built).items()) == list(vars(direct).items())
                and list(built.model_fields_set) == list(direct.model_fields_set)
                and built.__pydantic_extra__ == direct.__pydantic_extra__
                and built.__pydantic_private__ == direct.__pydantic_private__
                and built == direct
            )
        _ITEM_DIRECT = ok
    return _ITEM_DIRECT


def _build_items(rows: Iterable[_Fields], url: str, source: str | None) -> list[Item]:
    seen: set[str] = set()
    items: list[Item] = []
    # Every field is already a checked str/None/aware datetime: skip validation
    # (measurable at tens of thousands of items per pass).
    direct = _item_direct()
    for row in rows:
        identity = item_identity(row.guid, row.link, row.title, row.summary)
        if identity in seen:
            continue  # the first of several entries with one identity wins
        seen.add(identity)
        link = _http_link(row.link, None)
        if direct:
            item = _new_item(
                identity, row.title, row.summary, link, row.published, source, url
            )
        else:
            item = Item.model_construct(
                id=identity,
                title=row.title,
                summary=row.summary,
                url=link,
                published=row.published,
                source=source,
                feed_url=url,
            )
        items.append(item)
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
    for key, parsed_key in _ENTRY_DATES:
        text = _raw(e, key)
        reader = _own_reader(text)
        if reader is not None:
            when = reader(text)
        else:
            when = _from_struct(_raw(e, parsed_key))
            if when is None:  # feedparser's handlers read no date there
                when = _named_date(text)
        published = _checked(when, now)
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
        result = _feedparser().parse(
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


# -- fast path -----------------------------------------------------------------------
#
# feedparser costs ~18 ms a feed (PERF-NOTES 2b); an lxml walk costs well under 1 ms.
# The fast path reads only well-formed UTF-8 RSS 2.0, RSS 1.0 and Atom 1.0 whose
# entries use elements it knows, and reproduces what feedparser (strict mode, as
# called by _parse_xml) would give for exactly those fields; anything else returns
# None and goes to feedparser. tests/test_parse.py checks both paths agree on every
# document of the corpora that the fast path accepts.

_NS_ATOM = "http://www.w3.org/2005/Atom"
_NS_RSS1 = "http://purl.org/rss/1.0/"
_NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_NS_CONTENT = "http://purl.org/rss/1.0/modules/content/"
_NS_DC = "http://purl.org/dc/elements/1.1/"
_NS_MEDIA = "http://search.yahoo.com/mrss/"
# Namespaces whose elements feedparser keeps under keys we never read.
# feedparser handlers (``_start_<name>``) that leave every field we read alone;
# an entry child mapped to any other handler sends the document to feedparser.
_FP_HARMLESS = frozenset(
    """author category enclosure source contributor rights email name uri
    dc_creator dc_subject dc_rights dc_publisher dc_language dc_contributor
    dc_author media_thumbnail media_content media_credit media_category
    media_keywords media_rating media_license media_player media_restriction
    media_group
    creativecommons_license cc_license itunes_author itunes_explicit
    itunes_keywords itunes_image itunes_block itunes_category georss_point
    georss_line georss_polygon georss_box""".split()
)
_FP_RISKY: frozenset[str] | None = None
_FP_PREFIXES: dict[str, str] | None = None
# Per-format entry children: what each is to us ("" = ignored).
_RSS2_CHILDREN = {
    "title": "title",
    "link": "link",
    "description": "description",
    "guid": "guid",
    "pubDate": "published",
    "author": "",
    "category": "",
    "comments": "",
    "enclosure": "",
    "source": "",
}
_RSS1_CHILDREN = {"title": "title", "link": "link", "description": "description"}
_ATOM_CHILDREN = {
    "id": "guid",
    "title": "title",
    "link": "",
    "summary": "summary",
    "content": "content",
    "published": "published",
    "updated": "updated",
    "author": "",
    "category": "",
    "contributor": "",
    "rights": "",
}
_ATOM_PERSON = frozenset(f"{{{_NS_ATOM}}}{n}" for n in ("name", "email", "uri"))
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_CP1252 = {
    i: c
    for i in range(0x80, 0xA0)
    for c in [bytes([i]).decode("cp1252", "ignore")]
    if c
}
_BEYOND_LATIN1 = re.compile("[^\x00-\xff]")
_C1_CHAR = re.compile("[\x80-\x9f]")
_URIFIXER = re.compile(r"^([A-Za-z][A-Za-z0-9+-.]*://)(/*)(.*?)")
_ABSOLUTE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(//[^/?#\s]+)?")
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_BRACKETS = re.compile(r"[\[\]]")
_LINK_ENTITY = re.compile(r"&([A-Za-z0-9_]+);")
_RFC822 = re.compile(
    r"^(?:(?:mon|tue|wed|thu|fri|sat|sun),\s*)?\d{1,2}\s+"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\s+\d{4}\s+"
    r"\d{1,2}:\d{2}(?::\d{2})?\s+(?:[+-]\d{4}|gmt|utc?|z|[ecmp][sd]t)$",
    re.IGNORECASE,
)
# "Mon, 05 Jan 2026 08:00:00 +0000" / "... GMT": a day name, a four-digit year
# (parsedate_to_datetime adds 1900 or 2000 to years below 100), a numeric or GMT zone.
_RFC822_PLAIN = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{1,2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([1-9][0-9]{3}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) (?:([+-])([0-9]{2})([0-9]{2})|GMT)\Z"
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1
    )
}
_ZONES: dict[str, tzinfo] = {}


def _rfc822_zone(sign: str | None, hours: str | None, minutes: str | None) -> tzinfo:
    """The zone of a date parsedate_to_datetime reads, as _fast_date would convert
    it: UTC for GMT, +0000 and -0000 (naive there, then taken as UTC). Raises
    ValueError for an offset of a day or more, as parsedate_to_datetime does."""
    if sign is None or hours is None or minutes is None:
        return UTC
    key = sign + hours + minutes
    zone = _ZONES.get(key)
    if zone is None:
        seconds = int(hours) * 3600 + int(minutes) * 60
        zone = timezone(timedelta(seconds=-seconds if sign == "-" else seconds))
        _ZONES[key] = zone  # at most 2 * 100 * 100 keys
    return zone


_W3CDTF = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})$"
)
_ENCODING_DECL = re.compile(rb"""^<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)""")
_UTF8_NAMES = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
# Single-byte encodings that lxml decodes as Python's codecs (feedparser's) do, by
# declared name, with the bytes Python leaves undefined in them: a document holding
# one goes to feedparser (which would then try other encodings).
_SINGLE_BYTE: dict[str, tuple[bytes, ...]] = {
    **dict.fromkeys(("iso-8859-1", "iso8859-1", "latin1"), ()),
    **dict.fromkeys(("iso-8859-15", "iso8859-15"), ()),
    **dict.fromkeys(
        ("windows-1252", "cp1252"),
        (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d"),
    ),
    **dict.fromkeys(("windows-1251", "cp1251"), (b"\x98",)),
}
_CLOSE_TAG_OR_ENTITY = re.compile(r"</\w+>|&#?\w+;")
_ANY_TAG = re.compile(r"</?(\w+)")
_NAMED_ENTITY = re.compile(r"&(\w+);")


class _Decline(Exception):
    """The fast path does not handle this document; feedparser will."""


def _fp_fixups(text: str) -> str:
    # What feedparser does to every text value of a UTF-8 document: undo UTF-8
    # read as ISO-8859-1, then map the C1 range as windows-1252. (The searches
    # skip an encode bound to fail and a translate bound to change nothing.)
    if not text.isascii():
        if _BEYOND_LATIN1.search(text) is None:
            try:
                text = text.encode("iso-8859-1").decode("utf-8")
            except UnicodeDecodeError:
                pass
        if _C1_CHAR.search(text) is not None:
            text = text.translate(_CP1252)
    return text


def _fp_urljoin(base: str, uri: str) -> str:
    fix = _URIFIXER.match(uri)
    if fix is not None and fix.group(2):  # what _URIFIXER.sub(r"\1\3", uri) does
        uri = fix.group(1) + uri[fix.end(2) :]
    # urljoin returns an absolute URL of another scheme untouched, and one of the
    # same scheme re-assembled from its parts (the same string unless it ends in
    # an empty "?" or "#"); skip its parsing for those.
    m = _ABSOLUTE.match(uri)
    # (Brackets in the host are checked by urljoin, which may refuse them.)
    if m and not _URL_UNSAFE.search(uri) and not _BRACKETS.search(m.group(2) or ""):
        scheme = m.group(1).lower()
        if not base.lower().startswith(scheme + ":"):
            return uri
        if (
            m.group(2)
            and m.group(1) == scheme  # urljoin writes it in lower case
            and not uri.endswith(("?", "#"))
            and "?#" not in uri
        ):
            return uri
    try:
        return urllib.parse.urljoin(base, uri)
    except ValueError:
        return ""


def _text_looks_like_html(text: str) -> bool:
    """feedparser's guess whether nominally plain RSS text is HTML."""
    if _CLOSE_TAG_OR_ENTITY.search(text) is None:
        return False
    _feedparser()
    from feedparser.sanitizer import _HTMLSanitizer

    allowed = _HTMLSanitizer.acceptable_elements
    if any(t.lower() not in allowed for t in _ANY_TAG.findall(text)):
        return False
    return all(e in html.entities.entitydefs for e in _NAMED_ENTITY.findall(text))


def _fp_risky() -> frozenset[str]:
    """Names of feedparser's element handlers that may touch the fields we read."""
    global _FP_RISKY
    if _FP_RISKY is None:
        _feedparser()
        from feedparser.api import StrictFeedParser

        handlers = {
            n.split("_", 2)[2]
            for n in dir(StrictFeedParser)
            if n.startswith(("_start_", "_end_"))
        }
        _FP_RISKY = frozenset(h.lower() for h in handlers - _FP_HARMLESS)
    return _FP_RISKY


def _fp_prefixes() -> dict[str, str]:
    """feedparser's prefixes of the namespaces it knows, by lower-case URI."""
    global _FP_PREFIXES
    if _FP_PREFIXES is None:
        _feedparser()
        from feedparser.mixin import _FeedParserMixin

        _FP_PREFIXES = {k.lower(): v for k, v in _FeedParserMixin.namespaces.items()}
    return _FP_PREFIXES


def _fp_name(ns: str, local: str, prefix: str | None) -> str:
    """The name feedparser files an element under (``dc_date``, ``link``...)."""
    known = _fp_prefixes().get(ns.lower(), prefix or "") if ns else ""
    return f"{known}_{local}".lower() if known else local.lower()


def _leaf_text(el: Any) -> str:
    """Stripped text of an element that must have no child elements."""
    if len(el):
        raise _Decline
    return (el.text or "").strip()


def _content_text(el: Any) -> str:
    """The text of a content element already checked to be a leaf ("" if None)."""
    return "" if el is None else _fp_fixups((el.text or "").strip())


def _fast_date(value: str) -> datetime | None:
    if not value:
        return None
    when: datetime
    m = _RFC822_PLAIN.match(value)
    if m is not None:
        # What parsedate_to_datetime gives for the form most RSS dates take,
        # without its tokenising.
        day, month, year, hour, minute, second, sign, tzh, tzm = m.groups()
        try:
            zone = _rfc822_zone(sign, tzh, tzm)
            when = datetime(
                int(year),
                _MONTHS[month],
                int(day),
                int(hour),
                int(minute),
                int(second),
                tzinfo=zone,
            )
        except ValueError as e:
            raise _Decline from e
        if zone is UTC:
            return when  # what astimezone(UTC).replace(microsecond=0) would give
    elif _W3CDTF.match(value):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:  # "23:59:60", no such day, digits other than ASCII
            local = _numeric_date(value)  # as _entry_fields reads it
            if local is None:
                return None
            when = local
        if when.tzinfo is UTC and not when.microsecond:
            return when
    elif _RFC822.match(value):
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError) as e:
            raise _Decline from e
    else:
        # As _entry_fields reads it: the East Asian and numeric forms and zones
        # feedparser reads as UTC alone, names in another language only where
        # feedparser's handlers read no date.
        reader = _own_reader(value)
        if reader is not None:
            local = reader(value)
            if local is None:
                return None
        else:
            local = _named_date(value)
            if local is None or _feedparser_date(value) is not None:
                raise _Decline
        when = local
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC).replace(microsecond=0)
    except OverflowError as e:  # year 1 or 9999 pushed past the calendar
        raise _Decline from e


def _content_kind(el: Any, default: str) -> str:
    kind = next((v for k, v in el.attrib.items() if k.lower() == "type"), default)
    kind = kind.lower()
    kind = {"text": "text/plain", "plain": "text/plain", "html": "text/html"}.get(
        kind, kind
    )
    if kind not in ("text/plain", "text/html"):
        raise _Decline
    return kind


def _fast_text(el: Any, atom: bool) -> tuple[str, str]:
    """A text construct's value and media type as feedparser reports them."""
    raw = _leaf_text(el)
    if atom:
        return _fp_fixups(raw), _content_kind(el, "text/plain")
    kind = "text/html" if _text_looks_like_html(raw) else "text/plain"
    return _fp_fixups(raw), kind


# What an entry child is to _fast_entry, by format and tag (Clark notation).
_ROLE, _LEAF, _PERSON, _ALTERNATE, _CONTENT, _DC_DATE, _FOREIGN_LINK = range(7)
_ENTRY_TAGS: dict[str, dict[object, tuple[int, str]]] = {}
# What _risky finds (with feedparser) for the namespaced entry children real feeds
# carry most (dc:creator in most of them), so that reading them needs no feedparser
# import (~50 ms); a test checks each against feedparser.
_RISKY_SEED: dict[str, bool] = {
    f"{{{ns}}}{local}": risky
    for ns, names, risky in (
        (
            _NS_DC,
            "creator subject rights publisher language contributor type format "
            "identifier source relation coverage",
            False,
        ),
        (
            _NS_MEDIA,
            "thumbnail content credit category keywords rating license player "
            "restriction",
            False,
        ),
        (_NS_MEDIA, "group", False),  # its handler does nothing
        (_NS_MEDIA, "title description", True),
        (
            "http://www.itunes.com/dtds/podcast-1.0.dtd",
            "author explicit keywords image block category duration episode "
            "season episodeType",
            False,
        ),
        ("http://www.itunes.com/dtds/podcast-1.0.dtd", "subtitle summary", True),
        ("http://wellformedweb.org/CommentAPI/", "commentRss comment", False),
        ("http://purl.org/rss/1.0/modules/slash/", "comments", False),
        ("http://purl.org/dc/terms/", "modified created", True),
    )
    for local in names.split()
}
# Entry children outside _ENTRY_TAGS: whether feedparser's handler for them is risky,
# by tag, for namespaces whose prefix does not change the handler's name.
_RISKY_TAGS: dict[str, bool] = dict(_RISKY_SEED)
_RISKY_TAGS_MAX = 1_024


def _entry_tags(fmt: str) -> dict[object, tuple[int, str]]:
    """The entry children ``fmt`` gives a meaning, by tag: what each is to us."""
    table = _ENTRY_TAGS.get(fmt)
    if table is None:
        atom = fmt == "atom"
        names = (
            _ATOM_CHILDREN
            if atom
            else _RSS1_CHILDREN
            if fmt == "rss1"
            else _RSS2_CHILDREN
        )
        home = _NS_ATOM if atom else _NS_RSS1 if fmt == "rss1" else None
        table = {}
        for local, role in names.items():
            tag = f"{{{home}}}{local}" if home else local
            if atom and local == "link":
                table[tag] = (_ALTERNATE, "")
            elif role:
                table[tag] = (_ROLE, role)
            elif atom and local in ("author", "contributor"):
                table[tag] = (_PERSON, "")
            else:
                table[tag] = (_LEAF, "")
        if not atom:
            table[f"{{{_NS_CONTENT}}}encoded"] = (_CONTENT, "")
            table[f"{{{_NS_DC}}}date"] = (_DC_DATE, "")
            table[f"{{{_NS_ATOM}}}link"] = (_FOREIGN_LINK, "")
        _ENTRY_TAGS[fmt] = table
    return table


def _risky(tag: str, el: Any) -> bool:
    """Whether feedparser's handler for an element named ``tag`` may touch the
    fields we read."""
    risky = _RISKY_TAGS.get(tag)
    if risky is None:
        ns, _, local = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
        risky = _fp_name(ns, local, el.prefix) in _fp_risky()
        prefixes = _FP_PREFIXES
        if not ns or (prefixes is not None and ns.lower() in prefixes):
            if len(_RISKY_TAGS) >= _RISKY_TAGS_MAX:
                _RISKY_TAGS.clear()
                _RISKY_TAGS.update(_RISKY_SEED)
            _RISKY_TAGS[tag] = risky
    return risky


def _harmless_inside(el: Any) -> bool:
    """Whether every element inside ``el`` has a handler that leaves the fields we
    read alone (a <media:content> in a <media:group>, a <media:credit> in that)."""
    for inner in el.iterdescendants():
        tag = inner.tag
        if isinstance(tag, str) and _risky(tag, inner):
            return False
    return True


def _fast_guid(
    el: Any, guid_el: Any, fmt: str, base: str
) -> tuple[str | None, str | None]:
    """The entry's guid (RSS guid, Atom id, RSS 1.0 rdf:about; ``guid_el`` is its
    element, if any) and the link it gives when it is a permalink."""
    guid: str | None = None
    guid_link: str | None = None
    if fmt == "rss1":
        about = el.get(f"{{{_NS_RDF}}}about")
        guid = about if about else None
    if guid_el is not None:
        permalink = next(
            (v for k, v in guid_el.attrib.items() if k.lower() == "ispermalink"),
            "true",
        )
        raw = _leaf_text(guid_el)
        if permalink == "true" and raw:
            raw = _fp_urljoin(base, raw)
        guid = _fp_fixups(raw)
        if permalink == "true":
            guid_link = guid
    return guid, guid_link


# The element of an entry that holds its guid, by format (RSS 1.0 has none: its
# guid is the entry's rdf:about).
_GUID_TAGS = {"rss2": "guid", "atom": f"{{{_NS_ATOM}}}id", "rss1": None}


def _quick_identity(el: Any, fmt: str, base: str) -> str | None:
    """The identity _fast_entry's item gets from the entry's guid, read without the
    rest of the entry; None without a guid or for an entry _fast_entry may decline
    (it is then read in full, and decides)."""
    tag = _GUID_TAGS[fmt]
    guid_el = None
    if tag is not None:
        for child in el:
            if child.tag == tag:
                if guid_el is not None:
                    return None
                guid_el = child
    try:
        guid, _ = _fast_guid(el, guid_el, fmt, base)
    except _Decline:
        return None
    if not guid or not _scrub(guid).strip():
        return None
    return item_identity(guid, None, "", "")


def _fast_entry(el: Any, fmt: str, base: str, now: datetime) -> _Fields:
    atom = fmt == "atom"
    table = _entry_tags(fmt)
    seen: dict[str, Any] = {}
    alternate: str | None = None
    content: Any = None
    dc_date: Any = None
    for child in el:
        tag = child.tag
        known = table.get(tag)
        if known is None:
            # Comments and processing instructions (tags that are not str) are
            # skipped; any other element must have a harmless handler, and so
            # must everything in it (feedparser handles nested elements as if
            # they were the entry's own: a <media:title> in a <media:group>
            # would set the title).
            if isinstance(tag, str) and (
                _risky(tag, child) or (len(child) and not _harmless_inside(child))
            ):
                raise _Decline
            continue
        action, role = known
        if action == _ROLE:
            if role in seen:
                raise _Decline
            seen[role] = child
        elif action == _LEAF:
            if len(child):
                raise _Decline  # e.g. an <image> with a <title> inside <category>
        elif action == _ALTERNATE:
            href = _atom_link(child, base)
            if href is not None:
                alternate = href
        elif action == _PERSON:
            if len(child) and not all(
                g.tag in _ATOM_PERSON for g in child if isinstance(g.tag, str)
            ):
                raise _Decline
        elif action == _CONTENT:
            if content is not None:
                raise _Decline
            content = child
        elif action == _DC_DATE:
            if dc_date is not None:
                raise _Decline
            dc_date = child
        elif _atom_link(child, base) is not None:  # _FOREIGN_LINK
            raise _Decline  # would replace <link>; feedparser decides
    if atom:
        content = seen.get("content")
        if content is not None and any(k.lower() == "src" for k in content.attrib):
            raise _Decline

    title = ""
    if "title" in seen:
        value, kind = _fast_text(seen["title"], atom)
        title = _text(value, kind, MAX_TITLE_CHARS)

    content_kind = "text/html"
    if content is not None:
        if len(content):
            raise _Decline  # what _leaf_text checks; its text is read when needed
        if atom:
            content_kind = _content_kind(content, "text/plain")
    desc = seen.get("summary" if atom else "description")
    if desc is not None:
        value = _fp_fixups(_leaf_text(desc))
        kind = _content_kind(desc, "text/plain") if atom else "text/html"
        summary = _text(value, kind, MAX_SUMMARY_CHARS)
    else:
        # feedparser copies the content into "summary" without a media type.
        summary = _text(_content_text(content), None, MAX_SUMMARY_CHARS)
    if not summary and content is not None:
        summary = _text(_content_text(content), content_kind, MAX_SUMMARY_CHARS)

    guid, guid_link = _fast_guid(el, seen.get("guid"), fmt, base)

    link: str | None
    if atom:
        link = alternate if alternate is not None else guid_link
    elif "link" in seen:
        raw = _leaf_text(seen["link"])
        if raw:
            raw = _fp_urljoin(base, raw)
        raw = _fp_fixups(raw)
        if "&" in raw:
            raw = _LINK_ENTITY.sub(r"&\g<1>", raw.replace("&amp;", "&"))
        link = raw
    else:
        link = guid_link

    published = None
    updated_el = seen.get("updated") if atom else dc_date
    for date_el in (seen.get("published"), updated_el):
        if date_el is not None:
            # _fast_date gives UTC, which _checked would only compare with now.
            published = _fast_date(_fp_fixups(_leaf_text(date_el)))
            if published is not None and published > now + _FUTURE_SLACK:
                published = None
            if published is not None:
                break
    return _Fields(
        title,
        summary,
        guid,
        canonical_url(link, base) if link and link.strip() else None,
        published,
    )


def _atom_link(el: Any, base: str) -> str | None:
    """The href of an alternate HTML link (feedparser's ``entry.link``), else None."""
    attrs = {k.lower(): v for k, v in el.attrib.items()}
    href = attrs.get("url", attrs.get("uri", attrs.get("href")))
    if not href:
        raise _Decline
    rel = attrs.get("rel", "alternate").lower()
    kind = attrs.get("type", "application/atom+xml" if rel == "self" else "text/html")
    kind = {"html": "text/html", "xhtml": "application/xhtml+xml"}.get(
        kind.lower(), kind.lower()
    )
    if rel == "alternate" and kind in _HTML_TYPES:
        return _fp_urljoin(base, href)
    return None


_XML_PARSER: Any = None


def _xml_parser() -> Any:
    global _XML_PARSER
    if _XML_PARSER is None:
        from lxml import etree  # type: ignore[import-untyped]

        _XML_PARSER = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            load_dtd=False,
        )
    return _XML_PARSER


class _FastDoc(NamedTuple):
    """A document the fast path reads: its head read, its entries not yet."""

    fmt: str
    entries: list[Any]
    base: str
    title: str
    link: str | None
    ttl: int | None


def _fast_prepare(body: bytes, url: str, content_type: str | None) -> _FastDoc | None:
    """The document parsed by lxml with its head read, or None if feedparser must
    read it."""
    head = body[:1024].lstrip()
    bom = head.startswith(b"\xef\xbb\xbf")
    if bom:
        head = head[3:]
    if not _fast_encoding(head, body, content_type, bom):
        return None
    if b"<!DOCTYPE" in head.upper() or b"\0" in head:
        return None
    try:
        from lxml import etree
    except ImportError:  # pragma: no cover - lxml is a dependency
        return None
    try:
        root = etree.fromstring(body, _xml_parser())
    except (etree.XMLSyntaxError, ValueError):
        return None
    try:
        # xml:base, or a plain base attribute: feedparser reads both.
        if _BASE_ATTR.search(body):
            url = _xml_base(root, url)
        return _fast_head(root, url)
    except _Decline:
        return None


def _fast_encoding(
    head: bytes, body: bytes, content_type: str | None, bom: bool
) -> bool:
    """Whether lxml decodes the document as feedparser would: UTF-8 (or ASCII), or
    a single-byte encoding both read alike, declared by the document and not
    contradicted by the HTTP charset (which feedparser would try first)."""
    m = _ENCODING_DECL.match(head)
    declared = m.group(1).decode("ascii").lower() if m else None
    http: str | None = None
    if content_type:
        cs = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
        http = cs.group(1).lower() if cs else None
    if declared is None or declared in _UTF8_NAMES:
        return http is None or http in _UTF8_NAMES
    undefined = _SINGLE_BYTE.get(declared)
    if undefined is None or bom:
        return False
    if http is not None:
        try:
            if codecs.lookup(http).name != codecs.lookup(declared).name:
                return False
        except LookupError:
            return False
    return not any(byte in body for byte in undefined)


_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_BASE_ATTR = re.compile(rb"base\s*=")
# Elements whose content we read as text only: an xml:base on them changes only the
# links inside their HTML, which the text leaves out.
_TEXT_ONLY = frozenset(
    {"title", "description", "summary", "content", "encoded", "subtitle", "tagline"}
)


def _xml_base(root: Any, url: str) -> str:
    """The URL the document's links resolve against: ``url``, or where the xml:base
    of its root or RSS channel points; _Decline for an xml:base anywhere else a
    link we read may be under (or on the root and the channel both), a plain
    ``base`` attribute, or a base feedparser would not take (not http or https)."""
    head: str | None = None
    for el in root.xpath("//*[@xml:base or @base]"):
        if el.get("base") is not None:
            raise _Decline
        parent = el.getparent()
        if el is root or (parent is root and el.tag == "channel"):
            value = el.get(_XML_BASE)
            if not value:
                continue  # feedparser keeps the base it has
            if head is not None:
                raise _Decline
            # feedparser joins the root's base to the feed's URL as given, and a
            # channel's to that URL with slashes collapsed (the root's own base).
            start = url if el is root else _URIFIXER.sub(r"\1\3", url)
            head = _fp_urljoin(start, value)
        elif not (
            isinstance(el.tag, str)
            and el.tag.rpartition("}")[2] in _TEXT_ONLY
            and len(el) == 0
        ):
            raise _Decline
    if head is None:
        return url
    try:
        scheme = urllib.parse.urlsplit(head).scheme.lower()
    except ValueError:
        raise _Decline from None
    if scheme not in ("http", "https"):
        raise _Decline
    return head


_HEAD_NAMES = frozenset({"title", "link", "ttl", "item", "entry", "channel"})
_HOME_NS = frozenset({"", _NS_ATOM, _NS_RSS1})


def _check_tag(tag: str, entry: str) -> None:
    """Decline what feedparser would read differently from a plain walk: element
    names in other letter cases (feedparser lower-cases them), feed titles from
    other elements, entries where the format does not put them (``entry`` is the
    format's entry element)."""
    ns, _, local = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
    lower = local.lower()
    if lower != local and lower in _HEAD_NAMES and ns in _HOME_NS:
        raise _Decline
    if lower in ("item", "entry") and lower != entry:
        raise _Decline
    if ns == _NS_DC and lower == "title":
        raise _Decline


def _children(parent: Any, entry: str) -> dict[object, list[Any]]:
    """The children of the root or the feed head by tag, each list in document
    order, in one walk; every distinct tag passes _check_tag."""
    groups: dict[object, list[Any]] = {}
    for c in parent:
        tag = c.tag
        group = groups.get(tag)
        if group is None:
            if isinstance(tag, str):
                _check_tag(tag, entry)
            groups[tag] = [c]
        else:
            group.append(c)
    return groups


def _fast_head(root: Any, url: str) -> _FastDoc:
    tag = root.tag
    if tag == "rss":
        top = _children(root, "item")
        channels = top.get("channel", [])
        if len(channels) != 1 or "item" in top:
            raise _Decline
        head, fmt = channels[0], "rss2"
        kids = _children(head, "item")
        entries = kids.get("item", [])
        title_tag, link_tag = "title", "link"
    elif tag == f"{{{_NS_RDF}}}RDF":
        top = _children(root, "item")
        channels = top.get(f"{{{_NS_RSS1}}}channel", [])
        if len(channels) != 1:
            raise _Decline
        head, fmt = channels[0], "rss1"
        entries = top.get(f"{{{_NS_RSS1}}}item", [])
        kids = _children(head, "item")
        if f"{{{_NS_RSS1}}}item" in kids:
            raise _Decline
        title_tag, link_tag = f"{{{_NS_RSS1}}}title", f"{{{_NS_RSS1}}}link"
    elif tag == f"{{{_NS_ATOM}}}feed":
        fmt = "atom"
        kids = _children(root, "entry")
        entries = kids.get(f"{{{_NS_ATOM}}}entry", [])
        title_tag, link_tag = f"{{{_NS_ATOM}}}title", ""
    else:
        raise _Decline
    atom = fmt == "atom"
    title = ""
    titles = kids.get(title_tag)
    if titles:
        value, kind = _fast_text(titles[0], atom)
        title = _text(value, kind, MAX_TITLE_CHARS)
    link: str | None = None
    ttl: int | None = None
    if atom:
        for c in kids.get(f"{{{_NS_ATOM}}}link", ()):
            link = _atom_link(c, url) or link
    else:
        links = kids.get(link_tag)
        if links:
            raw = _leaf_text(links[-1])
            link = _fp_fixups(_fp_urljoin(url, raw) if raw else raw)
        ttls = kids.get("ttl") if fmt == "rss2" else None
        if ttls:
            ttl_text = _fp_fixups(_leaf_text(ttls[-1]))
            if ttl_text.isdecimal() and len(ttl_text) <= 9:
                ttl = int(ttl_text)
    # feedparser's base URI has the slashes after "scheme://" collapsed.
    base = _URIFIXER.sub(r"\1\3", url)
    return _FastDoc(fmt, entries, base, title, link, ttl)
