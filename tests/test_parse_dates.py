"""Dates written with month or day names in other languages, the East Asian way,
with numbers alone, in ISO 8601's compact form or asctime's, zone names
feedparser does not know, and JSON Feed's dates.

A localized date used to give no date at all (the item then got its first-seen
time); a numeric one ("2026.11.27 09:30") a made-up one (feedparser keeps the year
and takes this month and the 1st); a zone name feedparser does not know ("CET")
UTC. Real strings from the corpus and from feeds reported in other readers'
issues, each language, offsets and zone names, garbage and ambiguous dates that
must give no date, and English dates that must read as before, on both the fast
path and feedparser's (and in JSON Feed); the corpora read as feedparser reads
them but for the dates changed on purpose. A compact ISO 8601 date and time
("20261127T093000Z") read as midnight; an asctime date with a zone after the year
as the year 900, with a name feedparser does not know as UTC. JSON Feed's dates
were read by email.utils too, which makes dates of junk ("1 jan 1 1:1").
"""

from __future__ import annotations

import email._parseaddr
import email.utils
import json
import random
import re
import warnings
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import feedparser
import feedparser.datetimes.rfc822
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import worker.parse as wp
from worker.parse import ParsedFeed, parse_feed, parse_feed_quick

CORPUS = Path("/work/shared/corpus")
FEEDS = CORPUS / "feeds"
NOW = datetime(2028, 1, 1, tzinfo=UTC)
URL = "http://127.0.0.1/feed"


def _rss(*dates: str) -> bytes:
    items = "".join(
        f"<item><guid>g{n}</guid><title>t{n}</title><pubDate>{d}</pubDate></item>"
        for n, d in enumerate(dates)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>T</title>{items}</channel></rss>"
    ).encode()


def _atom(*dates: str) -> bytes:
    entries = "".join(
        f"<entry><id>urn:{n}</id><title>t{n}</title><updated>{d}</updated></entry>"
        for n, d in enumerate(dates)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><id>urn:f</id>'
        f"{entries}</feed>"
    ).encode()


def _json(*dates: str) -> bytes:
    items = [
        {"id": f"g{n}", "title": f"t{n}", "date_published": d}
        for n, d in enumerate(dates)
    ]
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": items}
    return json.dumps(doc).encode()


def _dump(parsed: ParsedFeed) -> list[dict[str, object]]:
    return [item.model_dump() for item in parsed.items]


def _both_paths(body: bytes) -> list[datetime | None]:
    """The dates feedparser's path gives; the fast path, if it takes the
    document, must give the same items."""
    slow = parse_feed(body, URL, now=NOW, fast=False)
    quick = parse_feed_quick(body, URL, now=NOW)
    if quick is not None:
        assert _dump(quick) == _dump(slow)
    assert parse_feed(body, URL, now=NOW).items == slow.items
    return [item.published for item in slow.items]


def _every_path(text: str) -> datetime | None:
    """The date ``text`` gives as an RSS pubDate, an Atom updated and a JSON Feed
    date_published, which must all agree (the XML ones on both paths)."""
    (rss,) = _both_paths(_rss(text))
    (atom,) = _both_paths(_atom(text))
    (item,) = parse_feed(_json(text), URL, now=NOW).items
    assert rss == atom == item.published, (rss, atom, item.published)
    assert rss is None or rss.tzinfo is UTC
    return rss


def _utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# -- real strings ----------------------------------------------------------------------


def test_corpus_feeds_with_localized_dates_get_their_dates() -> None:
    # UOL (Portuguese): every pubDate is "Seg, 24 Set 2018 19:18:49 -0300" style.
    uol = parse_feed((FEEDS / "uol__noticias_rss-parser.rss").read_bytes(), URL)
    assert len(uol.items) == 15
    assert all(i.published is not None for i in uol.items)
    dated = {i.title: i.published for i in uol.items}
    assert _utc(2018, 9, 24, 22, 18, 49) in dated.values()  # 19:18:49 -0300
    assert _utc(2018, 9, 24, 22, 42, 40) in dated.values()
    # Il Messaggero (Italian day name): "mer, 16 nov 2022 00:38:15 +0100".
    body = (FEEDS / "ilmessaggero__mondo_feed-rs.xml").read_bytes()
    assert _both_paths(body) == [_utc(2022, 11, 15, 23, 38, 15)]
    assert parse_feed_quick(body, URL, now=NOW) is not None  # stays on the fast path


# Each: the text, the instant it names. Strings marked "real" are as feeds sent
# them (the corpus, or other readers' bug reports); the rest follow each
# language's usual abbreviations.
LOCALIZED = [
    # Portuguese (real, corpus uol)
    ("Seg, 24 Set 2018 19:18:49 -0300", _utc(2018, 9, 24, 22, 18, 49)),
    ("sexta-feira, 27 de novembro de 2026 09:30:00 -03:00", _utc(2026, 11, 27, 12, 30)),
    ("Sáb, 05 Dez 2026 08:00:00 BRT", _utc(2026, 12, 5, 11, 0)),
    ("Qui, 01 Out 2026 23:10:00 +0000", _utc(2026, 10, 1, 23, 10)),
    # Italian (real, corpus ilmessaggero)
    ("mer, 16 nov 2022 00:38:15 +0100", _utc(2022, 11, 15, 23, 38, 15)),
    ("gio, 05 giu 2025 14:00:00 +0200", _utc(2025, 6, 5, 12, 0)),
    ("lunedì, 12 gennaio 2026 07:45 CET", _utc(2026, 1, 12, 6, 45)),
    # German (real: SimplePie issue #631)
    ("Do, 31 Okt 2019 23:52:59 -0400", _utc(2019, 11, 1, 3, 52, 59)),
    ("Fr, 11 Okt 2019 11:14:11 -0400", _utc(2019, 10, 11, 15, 14, 11)),
    ("Mi., 27. Nov. 2026 09:30 MEZ", _utc(2026, 11, 27, 8, 30)),
    ("Di, 03 Mär 2026 10:00:00 +0100", _utc(2026, 3, 3, 9, 0)),
    ("Sonntag, 5. Juli 2026 18:00:00 MESZ", _utc(2026, 7, 5, 16, 0)),
    # Spanish (real: BNRSSFeedParser issue #6)
    ("mar, 02 oct 2012 19:56:51 +0000", _utc(2012, 10, 2, 19, 56, 51)),
    ("mié, 07 ene 2026 12:00:00 GMT", _utc(2026, 1, 7, 12, 0)),
    ("viernes, 27 de noviembre de 2026 09:30 GMT+1", _utc(2026, 11, 27, 8, 30)),
    ("sáb, 14 ago 2027 00:15:00 -0600", _utc(2027, 8, 14, 6, 15)),
    # French
    ("ven., 27 nov. 2026 09:30:00 +0100", _utc(2026, 11, 27, 8, 30)),
    ("jeu, 05 févr 2026 16:20:00 +01:00", _utc(2026, 2, 5, 15, 20)),
    ("lundi 17 août 2026 06:00 UTC", _utc(2026, 8, 17, 6, 0)),
    ("sam., 19 déc. 2026 22:00:00 CET", _utc(2026, 12, 19, 21, 0)),
    # Dutch
    ("vr, 27 okt 2026 09:30:00 +0200", _utc(2026, 10, 27, 7, 30)),
    ("wo, 04 mrt 2026 11:11:11 +0100", _utc(2026, 3, 4, 10, 11, 11)),
    ("zaterdag, 16 mei 2026 20:00:00 GMT", _utc(2026, 5, 16, 20, 0)),
    # Japanese
    ("2026年11月27日 09:30 +09:00", _utc(2026, 11, 27, 0, 30)),
    ("2026年11月27日(金) 9時30分 JST", _utc(2026, 11, 27, 0, 30)),
    ("2026年11月27日 午後3時30分 JST", _utc(2026, 11, 27, 6, 30)),
    ("2026年11月27日 午前0時 JST", _utc(2026, 11, 26, 15, 0)),
    ("２０２６年１１月２７日（金）　０９：３０　ＪＳＴ", _utc(2026, 11, 27, 0, 30)),
    # Chinese
    ("2026年11月27日 星期五 09:30 +0800", _utc(2026, 11, 27, 1, 30)),
    ("2026年11月27日 下午3:05:09 (UTC+8)", _utc(2026, 11, 27, 7, 5, 9)),
    ("2026年1月5日 周一 08:00 HKT", _utc(2026, 1, 5, 0, 0)),
    # Korean
    ("2026년 11월 27일 (금) 오후 3:30 KST", _utc(2026, 11, 27, 6, 30)),
    ("2026년 11월 27일 금요일 15시 30분 +09:00", _utc(2026, 11, 27, 6, 30)),
    ("2026년 1월 2일 오전 12:10 KST", _utc(2026, 1, 1, 15, 10)),
]


@pytest.mark.parametrize(("text", "expected"), LOCALIZED)
def test_localized_dates_give_their_instant(text: str, expected: datetime) -> None:
    when = wp._localized_date(text)
    assert when is not None and when == expected
    # In a feed, on both paths, as aware UTC; in RSS pubDate and Atom updated.
    assert _both_paths(_rss(text)) == [expected]
    assert _both_paths(_atom(text)) == [expected]
    (item,) = parse_feed(_rss(text), URL, now=NOW).items
    assert item.published is not None and item.published.tzinfo is UTC


def test_localized_rss_feed_stays_on_the_fast_path() -> None:
    texts = [t for t, _ in LOCALIZED]
    body = _rss(*texts)
    quick = parse_feed_quick(body, URL, now=NOW)
    assert quick is not None
    assert [i.published for i in quick.items] == [e for _, e in LOCALIZED]
    assert _dump(quick) == _dump(parse_feed(body, URL, now=NOW, fast=False))


def test_json_feed_localized_dates() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "J",
        "items": [
            {"id": "1", "title": "a", "date_published": "2026年11月27日 09:30 +09:00"},
            {
                "id": "2",
                "title": "b",
                "date_published": "Seg, 24 Set 2018 19:18:49 -0300",
            },
            {"id": "3", "title": "c", "date_published": "kein Datum"},
            {
                "id": "4",
                "title": "d",
                "date_published": "Xyz, 1 Foo 2026",
                "date_modified": "Mo, 05 Jan 2026 08:00:00 +0100",
            },
        ],
    }
    parsed = parse_feed(json.dumps(doc).encode(), URL, now=NOW)
    assert [i.published for i in parsed.items] == [
        _utc(2026, 11, 27, 0, 30),
        _utc(2018, 9, 24, 22, 18, 49),
        None,
        _utc(2026, 1, 5, 7, 0),
    ]


def _random_date(rng: random.Random) -> str:
    """A date-like string: mostly well formed, often broken in one place."""
    if rng.random() < 0.3:
        y, m, d = rng.choice([("年", "月", "日"), ("년", "월", "일")])
        return (
            f"{rng.choice(['2026', '２０２６', '1999', '26'])}{y}"
            f" {rng.choice(['1', '11', '13', '０２'])}{m}"
            f" {rng.choice(['5', '27', '30', '32'])}{d}"
            f"{rng.choice(['', ' (金)', ' 星期五', ' 금요일', ' (X)'])}"
            f"{rng.choice(['', ' 午後', ' 오전', ' pm'])}"
            f"{rng.choice(['', ' 09:30', ' 3:05:09', ' 13:00', ' 9時30分', ' 15시'])}"
            f"{rng.choice(['', ' JST', ' +0900', ' CST', ' (UTC+8)', ' junk'])}"
        )
    return " ".join(
        part
        for part in (
            rng.choice(["", "Seg,", "mer,", "Mi.,", "sexta-feira,", "Fri,", "Xyz,"]),
            rng.choice(["1", "05", "27.", "31", "32", "x"]),
            rng.choice(["Set", "nov", "Okt", "de noviembre de", "mrt", "Nov", "Foo"]),
            rng.choice(["2026", "2018", "26", "0000", "9999"]),
            rng.choice(["", "09:30", "19:18:49", "25:00", "9:5"]),
            rng.choice(["", "+0100", "-03:00", "GMT+1", "CET", "EST", "XYZ", "+2400"]),
        )
        if part
    )


def test_both_paths_agree_on_random_dates() -> None:
    rng = random.Random(29)
    read_quick = 0  # new readings taken on the fast path
    for _ in range(300):
        dates = [_random_date(rng) for _ in range(2)]
        for body in (_rss(*dates), _atom(*dates)):
            slow = parse_feed(body, URL, now=NOW, fast=False)
            quick = parse_feed_quick(body, URL, now=NOW)
            if quick is not None:
                assert _dump(quick) == _dump(slow), dates
            for text, item in zip(dates, slow.items, strict=True):
                # Where only the new readings apply, theirs is the item's date.
                local = wp._localized_date(text)
                if local is None or local.year == 9999:
                    continue
                if wp._own_reader(text) or wp._feedparser_date(text) is None:
                    assert item.published == local, text
                    read_quick += quick is not None
    assert read_quick > 20


# -- zones -----------------------------------------------------------------------------


def test_zone_less_localized_dates_are_utc_like_zone_less_english_ones() -> None:
    english = _both_paths(_rss("27 Nov 2026 09:30:00", "27 Nov 2026"))
    assert english == [_utc(2026, 11, 27, 9, 30), _utc(2026, 11, 27)]
    local = _both_paths(
        _rss(
            "Fr, 27 Nov 2026 09:30:00",
            "2026年11月27日 09:30",
            "2026년 11월 27일 09:30",
            "2026년 11월 27일",
            "ven., 27 nov. 2026",
        )
    )
    assert local == [*[english[0]] * 3, english[1], english[1]]


def test_offsets_are_honoured() -> None:
    base = "Mi, 27 Nov 2026 09:30:00"
    cases = {
        "+0530": _utc(2026, 11, 27, 4, 0),
        "-09:30": _utc(2026, 11, 27, 19, 0),
        "GMT-3": _utc(2026, 11, 27, 12, 30),
        "UTC+09:00": _utc(2026, 11, 27, 0, 30),
        "(CEST)": _utc(2026, 11, 27, 7, 30),
        "PST": _utc(2026, 11, 27, 17, 30),
        "Z": _utc(2026, 11, 27, 9, 30),
    }
    for zone, expected in cases.items():
        when = wp._localized_date(f"{base} {zone}")
        assert when == expected, zone
    east = wp._localized_date("2026年11月27日 09:30 KST")
    assert east is not None and east.utcoffset() == timedelta(hours=9)


def test_east_asian_form_is_not_left_to_feedparser() -> None:
    """feedparser's ISO 8601 handler reads only the year of "2026年03月27日" and
    makes up the month and day (today's month, the 1st); its Korean OnBlog
    handler, which would read the next string as KST, comes after it. Such a
    string is read here alone, zone-less as UTC, on both paths."""
    made_up = wp._feedparser_date("2026年03月27日")
    assert isinstance(made_up, tuple) and made_up[0] == 2026 and made_up[2] == 1
    assert _both_paths(_rss("2026年03月27日")) == [_utc(2026, 3, 27)]
    onblog = "2004년 05월 28일  01:31:15"
    assert _both_paths(_rss(onblog)) == [_utc(2004, 5, 28, 1, 31, 15)]
    assert parse_feed_quick(_rss(onblog), URL, now=NOW) is not None


def test_a_zone_feedparser_reads_as_utc_is_read_here() -> None:
    """feedparser reads a zone name it does not know as UTC; the reading here
    (CET, +1) is taken over it, on the fast path too (no feedparser there)."""
    text = "Fri, 27 Nov 2026 09:30 CET"
    assert wp._feedparser_date(text)[:5] == (2026, 11, 27, 9, 30)  # type: ignore[index]
    assert _every_path(text) == _utc(2026, 11, 27, 8, 30)
    assert wp._fast_date(text) == _utc(2026, 11, 27, 8, 30)


def test_future_localized_dates_are_dropped_like_others() -> None:
    body = _rss("Fr, 27 Nov 2026 09:30:00 +0000", "2026年11月27日 09:30")
    early = datetime(2026, 11, 1, tzinfo=UTC)
    assert [i.published for i in parse_feed(body, URL, now=early).items] == [None, None]
    quick = parse_feed_quick(body, URL, now=early)
    assert quick is not None and [i.published for i in quick.items] == [None, None]


# -- garbage ---------------------------------------------------------------------------


GARBAGE = [
    "",
    "   ",
    "lorem ipsum",
    "kein Datum",
    "Xyz, 24 Set 2018 19:18:49 -0300",  # unknown day name
    "Seg, 24 Foo 2018 19:18:49 -0300",  # unknown month name
    "Seg, 24 Set 2018 19:18:49 -0300 extra",  # trailing text
    "Seg, 24 Set 2018 19:18:49 XYZ",  # unknown zone
    "Seg, 24 Set 2018 19:18:49 +2400",  # offset of a day
    "Seg, 24 Set 2018 19:18:49 +0160",  # minutes past 59
    "Seg, 24 Set 2018 19:18:49 +1",  # bare offset without minutes
    "Seg, 24 Set 18 19:18:49 -0300",  # two-digit year
    "Seg, 24 Set 20186 19:18:49",  # five-digit year
    "Seg, 31 Fev 2018 10:00:00 -0300",  # no such day
    "Seg, 24 Set 2018 25:00:00 -0300",  # no such hour
    "Seg, 24 Set 2018 10:61 -0300",  # no such minute
    "Seg, 24 Set 2018 10:00:00 -0300 -0300",
    "Seg 24 Set",
    "24 Set",
    "Set 2018",
    "Seg, 24 Set 0000 10:00:00",
    "2026年13月27日",
    "2026年2月30日 09:30",
    "2026年11月27日 25:00",
    "2026年11月27日 午後13時",  # a 12-hour clock past 12
    "2026年11月27日 午後",  # afternoon, no time
    "2026年11月27日 09:30 CST",  # China's or the US's: not guessed
    "2026年11月27日 09:30 北京",
    "2026年11月",
    "年月日",
    "2026년 11월",
    "2026년 11월 27일 9",
    "٢٠٢٦年١١月٢٧日",  # Arabic-Indic digits are not read as digits
    "Seg, 24 Set 2018" + " " * 100 + "19:18:49 -0300",  # longer than any date
    "Seg, " + "2" * 500 + " Set 2018",
    "\x00\ud800\ufffd",
]


@pytest.mark.parametrize("text", GARBAGE)
def test_garbage_gives_no_date(text: str) -> None:
    assert wp._localized_date(text) is None
    body = _rss(text.replace("\x00", "").replace("\ud800", ""))
    assert _both_paths(body) == [None]


def test_non_strings_give_no_date() -> None:
    for value in (None, 20261127, b"2026\xe5\xb9\xb4", ["2026年11月27日"]):
        assert wp._localized_date(value) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_gives_an_aware_date_or_none(text: str) -> None:
    when = wp._localized_date(text)
    assert when is None or when.utcoffset() is not None


# -- round trips over each language's names ------------------------------------------

# The names as each language writes them (Monday first), full and abbreviated.
MONTHS = {
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November"
    " Dezember|Jan Feb Mär Apr Mai Jun Jul Aug Sep Okt Nov Dez",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre"
    " décembre|janv. févr. mars avr. mai juin juil. août sept. oct. nov. déc.",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre"
    " noviembre diciembre|ene feb mar abr may jun jul ago sep oct nov dic",
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre"
    " novembre dicembre|gen feb mar apr mag giu lug ago set ott nov dic",
    "pt": "janeiro fevereiro março abril maio junho julho agosto setembro outubro"
    " novembro dezembro|jan fev mar abr mai jun jul ago set out nov dez",
    "nl": "januari februari maart april mei juni juli augustus september oktober"
    " november december|jan feb mrt apr mei jun jul aug sep okt nov dec",
}
DAYS = {
    "de": "Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag"
    "|Mo Di Mi Do Fr Sa So",
    "fr": "lundi mardi mercredi jeudi vendredi samedi dimanche"
    "|lun. mar. mer. jeu. ven. sam. dim.",
    "es": "lunes martes miércoles jueves viernes sábado domingo"
    "|lun mar mié jue vie sáb dom",
    "it": "lunedì martedì mercoledì giovedì venerdì sabato domenica"
    "|lun mar mer gio ven sab dom",
    "pt": "segunda-feira terça-feira quarta-feira quinta-feira sexta-feira sábado"
    " domingo|seg ter qua qui sex sáb dom",
    "nl": "maandag dinsdag woensdag donderdag vrijdag zaterdag zondag"
    "|ma di wo do vr za zo",
}


@settings(max_examples=400, deadline=None)
@given(
    lang=st.sampled_from(sorted(MONTHS)),
    form=st.sampled_from([0, 1]),
    upper=st.booleans(),
    when=st.datetimes(datetime(1990, 1, 1), datetime(2099, 12, 31)),
    offset=st.integers(-12 * 4, 14 * 4),
)
def test_every_language_round_trips(
    lang: str, form: int, upper: bool, when: datetime, offset: int
) -> None:
    zone = timezone(timedelta(minutes=15 * offset))
    when = when.replace(microsecond=0, tzinfo=zone)
    month = MONTHS[lang].split("|")[form].split()[when.month - 1]
    day = DAYS[lang].split("|")[form].split()[when.weekday()]
    sign = "-" if offset < 0 else "+"
    hh, mm = divmod(abs(offset) * 15, 60)
    text = (
        f"{day}, {when.day:02d} {month} {when.year} "
        f"{when:%H:%M:%S} {sign}{hh:02d}{mm:02d}"
    )
    if upper:
        text = text.upper()
    got = wp._localized_date(text)
    assert got == when and got.utcoffset() == when.utcoffset(), text


@settings(max_examples=200, deadline=None)
@given(
    when=st.datetimes(datetime(1990, 1, 1), datetime(2099, 12, 31)),
    korean=st.booleans(),
)
def test_east_asian_form_round_trips(when: datetime, korean: bool) -> None:
    when = when.replace(second=0, microsecond=0)
    y, mo, d = ("년", "월", "일") if korean else ("年", "月", "日")
    text = f"{when.year}{y} {when.month}{mo} {when.day}{d} {when:%H:%M}"
    assert wp._localized_date(text) == when.replace(tzinfo=UTC), text


# -- English as before -----------------------------------------------------------------


ENGLISH = [
    ("Mon, 05 Jan 2026 08:00:00 +0000", _utc(2026, 1, 5, 8, 0)),
    ("Mon, 05 Jan 2026 08:00:00 GMT", _utc(2026, 1, 5, 8, 0)),
    ("Tue, 10 Jun 2003 04:00:00 +0900", _utc(2003, 6, 9, 19, 0)),
    ("Mon, 05 Jan 2026 08:00:00 EST", _utc(2026, 1, 5, 13, 0)),
    ("2026-01-05T08:00:00Z", _utc(2026, 1, 5, 8, 0)),
    ("2026-01-05T08:00:00+09:00", _utc(2026, 1, 4, 23, 0)),
    ("Thu, 01 Jan 2004", _utc(2004, 1, 1)),
    ("Mon, 26 January 2004 16:31:00 PT", _utc(2004, 1, 27, 0, 31)),
    ("Sun, 16 zzz 2012 11:47:32 GMT", None),
    ("Fri, 31 Dec 9999 23:00:00 -0500", None),
]


def test_english_forms_feedparser_read_no_date_in() -> None:
    """The fallback reads English names too: a zone-less date with a day name
    (feedparser wants five fields after the day name) and "27." with a dot."""
    texts = ("Fri, 27 Nov 2026 09:30:00", "Fri, 27. Nov 2026 09:30 +0100")
    assert all(wp._feedparser_date(t) is None for t in texts)
    assert _both_paths(_rss(*texts)) == [
        _utc(2026, 11, 27, 9, 30),
        _utc(2026, 11, 27, 8, 30),
    ]


@pytest.mark.parametrize(("text", "expected"), ENGLISH)
def test_english_dates_read_as_before(text: str, expected: datetime | None) -> None:
    assert _both_paths(_rss(text)) == [expected]


def test_fast_date_common_forms_unchanged() -> None:
    for text, expected in ENGLISH[:6]:
        got = wp._fast_date(text)
        assert got == expected and got is not None and got.tzinfo is UTC
    # A localized date on the fast path is UTC too; garbage still declines.
    local = wp._fast_date("Seg, 24 Set 2018 19:18:49 -0300")
    assert local == _utc(2018, 9, 24, 22, 18, 49) and local.tzinfo is UTC
    with pytest.raises(wp._Decline):  # feedparser's path gives its answer
        wp._fast_date("Seg, 24 Foo 2018 19:18:49 -0300")
    # What feedparser's path gives for a broken East Asian date: none.
    assert wp._fast_date("2026年13月27日") is None


# -- numeric dates ---------------------------------------------------------------------


# Each: the text, the instant it names (zone-less as UTC, like every other date).
NUMERIC = [
    # Year first, dotted (Korean sites) or slashed: feedparser kept the year only.
    ("2026.11.27 09:30", _utc(2026, 11, 27, 9, 30)),
    ("2026.11.27", _utc(2026, 11, 27)),
    ("2026.11.27.", _utc(2026, 11, 27)),
    ("2026. 11. 27. 오후 3:30:00", _utc(2026, 11, 27, 15, 30)),
    ("2026.11.27 (금) 09:30 KST", _utc(2026, 11, 27, 0, 30)),
    ("2026.11.27 09:30:00 +0900", _utc(2026, 11, 27, 0, 30)),
    ("2026.11.27T09:30:00Z", _utc(2026, 11, 27, 9, 30)),
    ("2026/11/27", _utc(2026, 11, 27)),
    ("2026/11/27 09:30:00", _utc(2026, 11, 27, 9, 30)),
    ("2026/11/27 09:30 JST", _utc(2026, 11, 27, 0, 30)),
    ("2020/1/10 14:33:00", _utc(2020, 1, 10, 14, 33)),  # real: corpus kc0011
    ("2026/11/27 9:30 PM EST", _utc(2026, 11, 28, 2, 30)),
    ("２０２６／１１／２７ ０９：３０", _utc(2026, 11, 27, 9, 30)),
    # Year first with dashes where feedparser dropped the time or the zone.
    ("2026-11-27 09:30:00 CET", _utc(2026, 11, 27, 8, 30)),
    ("2026-11-27T09:30:00 JST", _utc(2026, 11, 27, 0, 30)),
    ("2026-11-27 09:30 EST", _utc(2026, 11, 27, 14, 30)),
    ("2026-11-27T09:30:00+0530", _utc(2026, 11, 27, 4, 0)),  # feedparser: +05:00
    ("2004-05-25 오후 11:23:17", _utc(2004, 5, 25, 23, 23, 17)),
    # Year first with dashes as feedparser read them.
    ("2026-08-28 14:57:04", _utc(2026, 8, 28, 14, 57, 4)),  # real: corpus hanion
    ("2026-11-27", _utc(2026, 11, 27)),
    ("2026-1-5", _utc(2026, 1, 5)),
    ("2026-11-27T09:30", _utc(2026, 11, 27, 9, 30)),
    ("2026-11-27T09+09:00", _utc(2026, 11, 27, 0, 0)),
    ("2026-11-27T09:30:00+09", _utc(2026, 11, 27, 0, 30)),
    ("2004-07-08 23:56:58 -00:20", _utc(2004, 7, 9, 0, 16, 58)),
    ("2004-07-08 23:56:58.0", _utc(2004, 7, 8, 23, 56, 58)),
    # Day.month.year (the European order); day and month either way where one
    # order alone gives a date. feedparser read none of these but "27-11-2026"
    # (as 2027-11-20).
    ("27.11.2026 09:30", _utc(2026, 11, 27, 9, 30)),
    ("27.11.2026", _utc(2026, 11, 27)),
    ("11.12.2026", _utc(2026, 12, 11)),
    ("5.1.2026, 18:00 MEZ", _utc(2026, 1, 5, 17, 0)),
    ("27.11.2026 09:30 CEST", _utc(2026, 11, 27, 7, 30)),
    ("11/27/2026", _utc(2026, 11, 27)),
    ("27/11/2026", _utc(2026, 11, 27)),
    ("11/27/2026, 9:30:00 PM", _utc(2026, 11, 27, 21, 30)),
    ("27-11-2026 09:30", _utc(2026, 11, 27, 9, 30)),
    ("05/05/2026", _utc(2026, 5, 5)),
]


@pytest.mark.parametrize(("text", "expected"), NUMERIC)
def test_numeric_dates_give_their_instant(text: str, expected: datetime) -> None:
    assert _every_path(text) == expected
    # The fast path reads them itself (the document does not go to feedparser).
    assert parse_feed_quick(_rss(text), URL, now=NOW) is not None
    assert parse_feed_quick(_atom(text), URL, now=NOW) is not None


# Numeric dates that give no date: ambiguous, two-digit years, partial, broken.
NUMERIC_NO_DATE = [
    "11/12/2026",  # 11 December or November 12
    "11-12-2026",
    "03-12-31",  # feedparser: 2003-12-31; as well 3 December 2031 or March 12
    "27-11-26",  # feedparser: 2027-11-26
    "27.11.26",
    "26.11.27",
    "09:30",  # feedparser: today at 09:30
    "09:30 27.11.2026",
    "2026/11",  # feedparser: this month of 2026, the 1st
    "2026.11",
    "2026/11/27 09:30 CST",  # China's zone or the US's
    "2026/11/27 09:30 IST",
    "2026/11/27 09:30 XYZ",
    "2026-11-27 09:30 XYZ",
    "2026-11-27 garbage",  # feedparser: midnight
    "2026.11.27 (xyz) 09:30",
    "2026/11/27 9",  # an hour alone only after ISO's "T"
    "2026/11/27 25:00",
    "2026/11/27 13:00 pm",
    "2026/11/27 오후",
    "2026/11/27 09:30 +2400",
    "2026/13/27",
    "2026/02/30",
    "13/13/2026",
    "31.02.2026",
    "2026/11/27.",  # the trailing dot is the dotted form's
    "٢٠٢٦/١١/٢٧",  # Arabic-Indic digits are not read as digits
]


@pytest.mark.parametrize("text", NUMERIC_NO_DATE)
def test_ambiguous_and_partial_numeric_dates_give_none(text: str) -> None:
    assert wp._numeric_date(text) is None
    assert _every_path(text) is None
    assert parse_feed_quick(_rss(text), URL, now=NOW) is not None


def test_feedparser_makes_up_numeric_dates() -> None:
    """Why the numeric forms are read here alone: feedparser's ISO 8601 handler
    keeps the year of "2026.11.27" and takes the month from today and the 1st,
    reads "27-11-2026" as 2027-11-20 and "09:30" as today at 09:30."""
    month = datetime.now(UTC).month
    made_up = wp._feedparser_date("2026.11.27 09:30")
    assert isinstance(made_up, tuple) and made_up[:4] == (2026, month, 1, 0)
    made_up = wp._feedparser_date("27-11-2026")
    assert isinstance(made_up, tuple) and made_up[:3] == (2027, 11, 20)
    made_up = wp._feedparser_date("09:30")
    assert isinstance(made_up, tuple) and made_up[3:5] == (9, 30)
    assert _every_path("2026.11.27 09:30") == _utc(2026, 11, 27, 9, 30)
    assert _every_path("27-11-2026") == _utc(2026, 11, 27)
    assert _every_path("09:30") is None


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(datetime(1990, 1, 1), datetime(2099, 12, 31)),
    form=st.sampled_from(
        [
            "{y}.{m:02d}.{d:02d} {H:02d}:{M:02d}:{S:02d}",
            "{y}. {m}. {d}. {H}:{M:02d}:{S:02d}",
            "{y}/{m}/{d} {H:02d}:{M:02d}:{S:02d}",
            "{y}-{m:02d}-{d:02d} {H:02d}:{M:02d}:{S:02d}",
            "{d}.{m}.{y} {H:02d}:{M:02d}:{S:02d}",
            "{d:02d}/{m:02d}/{y} {H:02d}:{M:02d}:{S:02d}",
            "{m}/{d}/{y} {H:02d}:{M:02d}:{S:02d}",
        ]
    ),
    offset=st.integers(-12 * 4, 14 * 4),
)
def test_numeric_forms_round_trip(when: datetime, form: str, offset: int) -> None:
    zone = timezone(timedelta(minutes=15 * offset))
    when = when.replace(microsecond=0, tzinfo=zone)
    hh, mm = divmod(abs(offset) * 15, 60)
    text = (
        form.format(
            y=when.year,
            m=when.month,
            d=when.day,
            H=when.hour,
            M=when.minute,
            S=when.second,
        )
        + f" {'-' if offset < 0 else '+'}{hh:02d}:{mm:02d}"
    )
    got = wp._numeric_date(text)
    if "/{y}" in form and when.day <= 12 and when.day != when.month:
        assert got is None, text  # day and month can be read either way
    else:
        assert got == when and got.utcoffset() == when.utcoffset(), text


def _random_numeric(rng: random.Random) -> str:
    """A numeric or RFC 822 date, often broken or ambiguous in one place."""
    if rng.random() < 0.7:
        y = rng.choice(["2026", "1999", "0000", "26"])
        a = rng.choice(["1", "01", "11", "12", "13", "27", "31", "00"])
        b = rng.choice(["1", "05", "11", "12", "27", "30", "13"])
        sep = rng.choice([".", "/", "-", ". "])
        day = rng.choice([f"{y}{sep}{a}{sep}{b}", f"{a}{sep}{b}{sep}{y}"])
        clock = [" 09:30", "T09:30:00", " 9:05:07.5", "T09", " 25:00", " 12:30 pm"]
        clock += ["", " 오후 3:30", ", 9:30:00 AM", " (금) 09:30", " (fri) 09:30"]
        zones = ["", "Z", "+09:00", "+0900", "+09", " KST", " CET", " CST", " XYZ"]
        zones += [" (UTC+8)", " GMT+1", " EST", " PT", " +2400"]
        return day + rng.choice(clock) + rng.choice(zones)
    day = rng.choice(
        ["Fri, 27 Nov 2026", "27 Nov 2026", "Nov 27 2026", "Xyz, 1 Nov 2026"]
    )
    zones = ["CET", "(CET)", "(EST)", "(GMT)", "UTC+8", "GMT-3", "GMT+01:00", "Etc/GMT"]
    zones += ["XYZ", "PM", "IST", "AEST", "MET", "PT", "A", "WET", "+0100 (CET)"]
    return f"{day} {rng.choice(['09:30', '09:30:00', '9:5'])} {rng.choice(zones)}"


def test_both_paths_agree_on_random_numeric_dates_and_zones() -> None:
    rng = random.Random(31)
    own = 0  # dates read here alone
    for _ in range(150):
        dates = [_random_numeric(rng) for _ in range(3)]
        for body in (_rss(*dates), _atom(*dates)):
            slow = parse_feed(body, URL, now=NOW, fast=False)
            quick = parse_feed_quick(body, URL, now=NOW)
            if quick is not None:
                assert _dump(quick) == _dump(slow), dates
        got = [i.published for i in parse_feed(_rss(*dates), URL, now=NOW).items]
        in_json = [i.published for i in parse_feed(_json(*dates), URL, now=NOW).items]
        for text, xml, from_json in zip(dates, got, in_json, strict=True):
            reader = wp._own_reader(text)
            if reader is not None:
                own += 1
                assert xml == from_json, text
                local = reader(text)
                assert xml == (None if local is None else local.astimezone(UTC)), text
    assert own > 300


def test_w3cdtf_shapes_fromisoformat_cannot_read() -> None:
    """A leap second, 24:00, a day that does not exist, digits other than ASCII
    ones: the W3CDTF shortcut's shape, but not datetime.fromisoformat's (the fast
    path used to fail the pass with ValueError). feedparser's ISO 8601 handler
    rolls the first two over, as here, and makes up 1999-<this month>-01 from
    the year of "1999-31-11T09:30:00+09:00"."""
    cases = [
        ("2026-12-31T23:59:60Z", _utc(2027, 1, 1)),
        ("2026-12-31T23:59:60+09:00", _utc(2026, 12, 31, 15, 0)),
        ("2026-11-27T24:00:00Z", _utc(2026, 11, 28)),
        ("２０２６-11-27T09:30:00Z", _utc(2026, 11, 27, 9, 30)),
        ("1999-31-11T09:30:00+09:00", None),
        ("2026-02-29T09:30:00Z", None),
        ("2026-11-27T24:30:00Z", None),
    ]
    for text, expected in cases:
        assert wp._fast_date(text) == expected, text
        assert _every_path(text) == expected, text
    made_up = wp._feedparser_date("1999-31-11T09:30:00+09:00")
    assert isinstance(made_up, tuple) and made_up[0] == 1999 and made_up[2] == 1


# -- zone names ------------------------------------------------------------------------


# Each: a zone name and its hours east of UTC. Those feedparser knows read as
# before; the others feedparser read as UTC.
ZONES = [
    ("CET", 1),
    ("CEST", 2),
    ("MEZ", 1),
    ("MESZ", 2),
    ("EET", 2),
    ("EEST", 3),
    ("WET", 0),
    ("WEST", 1),
    ("MSK", 3),
    ("JST", 9),
    ("KST", 9),
    ("HKT", 8),
    ("SGT", 8),
    ("AWST", 8),
    ("AEST", 10),
    ("AEDT", 11),
    ("NZST", 12),
    ("NZDT", 13),
    # feedparser's own
    ("GMT", 0),
    ("UT", 0),
    ("UTC", 0),
    ("Z", 0),
    ("EST", -5),
    ("EDT", -4),
    ("CST", -6),
    ("PDT", -7),
    ("PT", -8),
    ("AT", -4),
    ("MET", 1),
    ("MEST", 2),
]


@pytest.mark.parametrize(("name", "hours"), ZONES)
def test_zone_names_on_every_path(name: str, hours: int) -> None:
    expected = _utc(2026, 11, 27, 9, 30) - timedelta(hours=hours)
    assert _every_path(f"Fri, 27 Nov 2026 09:30:00 {name}") == expected
    assert _every_path(f"27 Nov 2026 09:30 {name}") == expected
    assert _every_path(f"Fr, 27 Nov 2026 09:30 {name}") == expected
    if name != "CST":  # China's or the US's there
        assert _every_path(f"2026/11/27 09:30 {name}") == expected
    if name in ("CET", "JST", "AEST"):
        # feedparser read them as UTC; the fast path needs it no more.
        fp = wp._feedparser_date(f"Fri, 27 Nov 2026 09:30:00 {name}")
        assert isinstance(fp, tuple) and fp[3:5] == (9, 30)
        assert parse_feed_quick(_rss(f"27 Nov 2026 09:30 {name}"), URL, now=NOW)


ZONE_FORMS = [
    ("Fri, 27 Nov 2026 09:30:00 (EST)", _utc(2026, 11, 27, 14, 30)),
    ("Fri, 27 Nov 2026 09:30:00 (CET)", _utc(2026, 11, 27, 8, 30)),
    ("Fri, 27 Nov 2026 09:30:00 UTC+8", _utc(2026, 11, 27, 1, 30)),
    ("Fri, 27 Nov 2026 09:30:00 (UTC+08:00)", _utc(2026, 11, 27, 1, 30)),
    ("Fri, 27 Nov 2026 09:30:00 GMT+01:00", _utc(2026, 11, 27, 8, 30)),
    ("Fri, 27 Nov 2026 09:30:00 GMT-3", _utc(2026, 11, 27, 12, 30)),
    ("Fri, 27 Nov 2026 09:30:00 Etc/GMT", _utc(2026, 11, 27, 9, 30)),
    ("Fri, 27 Nov 2026 09:30:00 +0100 (CET)", _utc(2026, 11, 27, 8, 30)),
]


@pytest.mark.parametrize(("text", "expected"), ZONE_FORMS)
def test_zone_forms(text: str, expected: datetime) -> None:
    assert _every_path(text) == expected


# Zone names read as no date (feedparser: UTC). IST is India's, Ireland's or
# Israel's, BST British Summer Time or Bangladesh's; an unknown name could be
# any offset, up to a day off, where first-seen time is minutes off.
UNKNOWN_ZONES = [
    "Fri, 27 Nov 2026 09:30:00 XYZ",
    "Fri, 27 Nov 2026 09:30:00 IST",
    "Fri, 27 Nov 2026 09:30:00 BST",
    "Fri, 27 Nov 2026 09:30:00 (XYZ)",
    "Fri, 27 Nov 2026 09:30:00 Europe/Berlin",
    "Fri, 27 Nov 2026 09:30:00 Pacific Standard Time",
    "Sat, Dec 16 2023 02:02:33 PM",  # real: corpus nbcnewyork ("PM" as a zone)
]


@pytest.mark.parametrize("text", UNKNOWN_ZONES)
def test_unknown_zone_names_give_none(text: str) -> None:
    assert wp._feedparser_date(text) is not None  # a date in UTC there
    assert _every_path(text) is None


def test_zone_tables_agree_with_feedparser_and_email_utils() -> None:
    assert feedparser.datetimes.rfc822.timezone_names == wp._FP_ZONES
    email_zones: dict[str, int] = email._parseaddr._timezones
    assert {name.lower() for name in email_zones} == wp._EMAIL_NAMES
    for name, hhmm in email_zones.items():
        assert wp._LOCAL_ZONES[name.lower()] * 100 == hhmm
    for name, hours in wp._FP_ZONES.items():
        assert wp._LOCAL_ZONES[name] == hours == wp._NUMERIC_ZONES.get(name, hours)
    assert not {"ist", "bst"} & set(wp._LOCAL_ZONES)
    assert "cst" not in wp._NUMERIC_ZONES and "cst" not in wp._EAST_ASIAN_ZONES


# -- the corpora -----------------------------------------------------------------------


# Corpus entry dates read otherwise than feedparser's handlers read them, on
# purpose: kc0011 writes "2020/1/10 14:33:00" (feedparser: 2020, this month, the
# 1st); NBC New York "Sat, Dec 16 2023 02:02:33 PM" (feedparser: "PM" as a zone).
INTENDED: dict[str, datetime | None] = {
    f"2020/1/10 14:{m:02d}:00": _utc(2020, 1, 10, 14, m)
    for m in (3, 6, 7, 12, 13, 15, 16, 21, 22, 23, 25, 26, 28, 33)
}
INTENDED["Sat, Dec 16 2023 02:02:33 PM"] = None
_DATE_TAGS = re.compile(rb"(?i)date|updated|published|created|issued|modified|lastmod")


def test_corpus_dates_change_only_where_intended() -> None:
    """Every entry date of the corpora that feedparser's handlers read (JSON
    Feed: fromisoformat or email.utils) reads the same here, but INTENDED. The
    fast path gives what feedparser's path gives (test_parse.py)."""
    changed: dict[str, datetime | None] = {}
    compared = 0
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    for path in files:
        body = path.read_bytes()
        if path.suffix in (".tsv", ".md", ".jsonl", ".txt") or not _DATE_TAGS.search(
            body
        ):
            continue
        if path.suffix == ".json":
            for item in json.loads(body).get("items", ()):
                for key in ("date_published", "date_modified"):
                    text = item.get(key)
                    theirs = _general_json_date(text)
                    if theirs is not None:
                        compared += 1
                        ours = wp._checked(wp._from_string(text), NOW)
                        if ours != wp._checked(theirs, NOW):
                            changed[text] = ours
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = feedparser.parse(body)
        for e in result.entries:
            for key, parsed_key in wp._ENTRY_DATES:
                text, parsed = dict.get(e, key), dict.get(e, parsed_key)
                theirs = wp._checked(wp._from_struct(parsed), NOW)
                if theirs is None or wp._east_asian(text):
                    continue  # read here before: names in other languages, CJK
                compared += 1
                alone = {key: text, parsed_key: parsed}
                ours = wp._entry_fields(alone, URL, NOW).published
                if ours != theirs:
                    changed[text] = ours
    assert changed == INTENDED
    assert compared > 4_000


def _general_json_date(text: object) -> datetime | None:
    """What the JSON Feed path read before the readings here took some dates."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None


@settings(max_examples=500, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(
            list("0123456789./-: tTzZ+,()年月日오후pmaCESTKX２／")
        ),
        max_size=40,
    )
)
def test_any_date_like_text_gives_an_aware_date_or_none(text: str) -> None:
    for reader in (wp._numeric_date, wp._named_date):
        when = reader(text)
        assert when is None or when.utcoffset() is not None, text
    wp._from_string(text)  # JSON Feed's reading does not raise either
    try:
        when = wp._fast_date(text.strip())
    except wp._Decline:
        return  # feedparser's turn
    assert when is None or when.tzinfo is UTC


# -- compact ISO 8601 ------------------------------------------------------------------


# Each: the text, the instant it names. feedparser's ISO 8601 handler read all of
# them as midnight.
COMPACT = [
    ("20261127T093000Z", _utc(2026, 11, 27, 9, 30)),
    ("20261127T0930+0900", _utc(2026, 11, 27, 0, 30)),
    ("20261127T093000-0500", _utc(2026, 11, 27, 14, 30)),
    ("20261127T093015+05:30", _utc(2026, 11, 27, 4, 0, 15)),
    ("20261127T093000+09", _utc(2026, 11, 27, 0, 30)),
    ("20261127T09:30:00+09:00", _utc(2026, 11, 27, 0, 30)),
    ("20261127T093000.250Z", _utc(2026, 11, 27, 9, 30)),
    ("20261127t0930z", _utc(2026, 11, 27, 9, 30)),
    ("20261127T09Z", _utc(2026, 11, 27, 9, 0)),
    ("20261127T093000", _utc(2026, 11, 27, 9, 30)),  # zone-less as UTC
    ("20261231T235960Z", _utc(2027, 1, 1)),  # a leap second
    ("20261127T240000Z", _utc(2026, 11, 28)),  # the end of the day
]


@pytest.mark.parametrize(("text", "expected"), COMPACT)
def test_compact_iso_dates_give_their_instant(text: str, expected: datetime) -> None:
    assert _every_path(text) == expected
    assert wp._fast_date(text) == expected
    assert parse_feed_quick(_rss(text), URL, now=NOW) is not None


def test_feedparser_drops_the_time_of_compact_iso_dates() -> None:
    made_up = wp._feedparser_date("20261127T093000Z")
    assert isinstance(made_up, tuple) and made_up[:5] == (2026, 11, 27, 0, 0)
    # A compact date alone reads as before: midnight, UTC.
    assert wp._feedparser_date("20261127") == made_up
    assert _every_path("20261127") == _utc(2026, 11, 27)


COMPACT_NO_DATE = [
    "20261327T093000Z",  # no 13th month
    "20260230T093000Z",  # no 30 February
    "20261127T2500Z",  # no such hour
    "20261127T0960Z",  # no such minute
    "20261127T093000+2400",  # an offset of a day
    "20261127T093000+0960",
    "20261127T0930X",
    "20261127T093",
    "20261127T09:3000Z",  # basic and extended time mixed
    "20261127T",
    "20261127T093000Z junk",
]


@pytest.mark.parametrize("text", COMPACT_NO_DATE)
def test_broken_compact_iso_dates_give_none(text: str) -> None:
    assert wp._compact_date(text) is None
    assert _every_path(text) is None


# -- asctime ---------------------------------------------------------------------------


ASCTIME = [
    ("Fri Nov 27 09:30:00 2026", _utc(2026, 11, 27, 9, 30)),
    ("Fri Nov  7 09:30:00 2026", _utc(2026, 11, 7, 9, 30)),
    ("Nov 27 09:30:00 2026", _utc(2026, 11, 27, 9, 30)),
    ("Fri Nov 27 09:30 2026", _utc(2026, 11, 27, 9, 30)),
    ("Fri Nov 27 09:30:00 UTC 2026", _utc(2026, 11, 27, 9, 30)),
    ("FRI NOV 27 09:30:00 GMT 2026", _utc(2026, 11, 27, 9, 30)),
    ("Fri Nov 27 09:30:00 JST 2026", _utc(2026, 11, 27, 0, 30)),
    ("Fri Nov 27 09:30:00 CET 2026", _utc(2026, 11, 27, 8, 30)),
    ("Fri Nov 27 09:30:00 EST 2026", _utc(2026, 11, 27, 14, 30)),
    ("Fri Nov 27 09:30:00 +0900 2026", _utc(2026, 11, 27, 0, 30)),
    ("Fri Nov 27 09:30:00 2026 +0900", _utc(2026, 11, 27, 0, 30)),
    ("Fri Nov 27 09:30:00 2026 -05:00", _utc(2026, 11, 27, 14, 30)),
    ("Fri Nov 27 09:30:00 2026 JST", _utc(2026, 11, 27, 0, 30)),
    ("Fri Nov 27 09:30:00 (CEST) 2026", _utc(2026, 11, 27, 7, 30)),
]


@pytest.mark.parametrize(("text", "expected"), ASCTIME)
def test_asctime_dates_give_their_instant(text: str, expected: datetime) -> None:
    assert _every_path(text) == expected
    assert wp._fast_date(text) == expected
    assert parse_feed_quick(_rss(text), URL, now=NOW) is not None


def test_feedparser_misreads_asctime_zones() -> None:
    """feedparser reads a zone after the year as the year and a zone name it
    does not know as UTC; both read right here."""
    year_900 = wp._feedparser_date("Fri Nov 27 09:30:00 2026 +0900")
    assert isinstance(year_900, tuple) and year_900[0] == 900
    as_utc = wp._feedparser_date("Fri Nov 27 09:30:00 JST 2026")
    assert isinstance(as_utc, tuple) and as_utc[3:5] == (9, 30)


ASCTIME_NO_DATE = [
    "Fri Nov 27 09:30:00 XYZ 2026",  # unknown zone names, as elsewhere
    "Fri Nov 27 09:30:00 IST 2026",
    "Fri Nov 27 09:30:00 2026 XYZ",
    "Fri Nov 27 09:30:00 PM 2026",
    "Fri Nov 27 09:30:00 UTC 2026 +0900",  # two zones
    "Fri Nov 27 09:30:00 +2400 2026",
    "Fri Nov 31 09:30:00 2026",  # no 31 November
    "Fri Nov 27 25:00:00 2026",
    "Fri Foo 27 09:30:00 2026",
    "Xyz Nov 27 09:30:00 2026",
    "Fri Nov 27 09:30:00",
    "Fri Nov 27 09:30:00 2026 extra text",
]


@pytest.mark.parametrize("text", ASCTIME_NO_DATE)
def test_broken_asctime_dates_give_none(text: str) -> None:
    assert wp._asctime_date(text) is None
    assert _every_path(text) is None


# -- JSON Feed -------------------------------------------------------------------------


# RFC 3339, as JSON Feed has its dates, and what real feeds write instead (read
# as the XML path reads them).
JSON_DATES = [
    ("2026-11-27T09:30:00Z", _utc(2026, 11, 27, 9, 30)),
    ("2026-11-27T09:30:00+09:00", _utc(2026, 11, 27, 0, 30)),
    ("2017-06-02T22:05:47-07:00", _utc(2017, 6, 3, 5, 5, 47)),  # real: inessential
    ("2026-11-27t09:30:00z", _utc(2026, 11, 27, 9, 30)),
    ("2026-11-27 09:30:00+09:00", _utc(2026, 11, 27, 0, 30)),
    ("2026-12-31T23:59:60Z", _utc(2027, 1, 1)),
    ("2026-11-27", _utc(2026, 11, 27)),
    ("Fri, 31 May 2019 12:17:58 -0700", _utc(2019, 5, 31, 19, 17, 58)),  # real
    ("Fri, 27 Nov 2026 09:30 CET", _utc(2026, 11, 27, 8, 30)),
    ("Fri, 27 Nov 2026 09:30:00 +0100 (CET)", _utc(2026, 11, 27, 8, 30)),
    ("Fri, 27 Nov 26 09:30:00 GMT", _utc(2026, 11, 27, 9, 30)),
    ("Nov 27 2026 09:30:00 EST", _utc(2026, 11, 27, 14, 30)),
    ("Fri, 27 Nov 2026 09:30:00 Etc/GMT", _utc(2026, 11, 27, 9, 30)),
    ("20261127T093000Z", _utc(2026, 11, 27, 9, 30)),
    ("Fri Nov 27 09:30:00 JST 2026", _utc(2026, 11, 27, 0, 30)),
    ("2026.11.27 09:30 KST", _utc(2026, 11, 27, 0, 30)),
]


@pytest.mark.parametrize(("text", "expected"), JSON_DATES)
def test_json_feed_dates(text: str, expected: datetime) -> None:
    assert _every_path(text) == expected


def test_json_feed_keeps_fractions_of_a_second() -> None:
    (item,) = parse_feed(_json("2026-11-27T09:30:00.250+01:00"), URL, now=NOW).items
    assert item.published == datetime(2026, 11, 27, 8, 30, 0, 250_000, tzinfo=UTC)


# Strings email.utils made dates of (the JSON Feed path read them so); no date
# now. (feedparser makes dates of most of them: the XML path is no model here.)
JSON_JUNK = [
    "1 jan 1 1:1",
    "Xyz, 27 Nov 2026 09:30:00 +0000",
    "Fri, 27 Nov 2026 09:30:00 +0000 trailing junk",
    "27 November 99 09.30.00 foo",
    "Fri, 27 Nov 0 09:30:00 GMT",
    "Fri, 27 Nov 2026 09:30:00 +0160",
]
# Strings no reader made a date of.
JSON_NO_DATE = [
    "",
    "not a date",
    "2026",
    "2026-02-30T09:30:00Z",
    "2026-11-27T25:00:00Z",
    "Fri, 31 Feb 2026 09:30:00 GMT",
    "Fri, 27 Nov 2026 09:30:00 +9999",
    "Fri, 27 Nov 2026 09:30:00 Etc/EST",
    "Fri, 27 Nov 2026 09:30:00 XYZ (CET)",
]


@pytest.mark.parametrize("text", JSON_JUNK)
def test_json_feed_junk_email_utils_read_gives_no_date(text: str) -> None:
    assert _general_json_date(text) is not None
    assert wp._from_string(text) is None
    (item,) = parse_feed(_json(text), URL, now=NOW).items
    assert item.published is None


@pytest.mark.parametrize("text", JSON_NO_DATE)
def test_json_feed_impossible_dates_give_no_date(text: str) -> None:
    assert wp._from_string(text) is None
    (item,) = parse_feed(_json(text), URL, now=NOW).items
    assert item.published is None


def test_json_feed_junk_date_published_falls_back_to_date_modified() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "J",
        "items": [
            {
                "id": "1",
                "title": "a",
                "date_published": "1 jan 1 1:1",
                "date_modified": "2026-11-27T09:30:00Z",
            },
            {"id": "2", "title": "b", "date_published": "1 jan 1 1:1"},
        ],
    }
    parsed = parse_feed(json.dumps(doc).encode(), URL, now=NOW)
    assert [i.published for i in parsed.items] == [_utc(2026, 11, 27, 9, 30), None]


def _random_rfc822ish(rng: random.Random) -> str:
    """An RFC 822-like string, often broken in one place or shuffled."""
    parts = [
        ["", "Fri,", "Fri", "fri,", "Friday,"],
        ["27", "7", "27"],
        ["Nov", "nov", "November", "NOV"],
        ["2026", "2026", "26", "99"],
        ["09:30", "09:30:00", "9:05", ""],
        ["", "+0000", "GMT", "UTC", "EST", "JST", "CET", "-0300", "+09:00", "GMT+1"],
        [""],
    ]
    broken = [
        ["Xyz,", "Mo", "2026"],
        ["0", "32", "2026", "Nov"],
        ["Nov.", "Foo", "11", "27"],
        ["0", "20266", "9"],
        ["9:5", "09.30.00", "25:00", "9", "T09:30"],
        ["foo", "+9999", "+2400", "PM", "Europe/Berlin", "(EST)"],
        ["Z", "(EST)", "(JST)", "junk here", "2026"],
    ]
    words = [rng.choice(p) for p in parts]
    if not words[4]:
        words[5] = ""  # feedparser reads a zone after a date alone as the time
    if rng.random() < 0.6:
        where = rng.randrange(len(broken))
        words[where] = rng.choice(broken[where])
    if rng.random() < 0.1:
        rng.shuffle(words)
    return " ".join(w for w in words if w)


def test_json_feed_reads_no_date_the_xml_path_does_not() -> None:
    """Where the JSON Feed path reads a date in an RFC 822-like string, the
    XML path reads the same one (it reads more: feedparser makes some up)."""
    rng = random.Random(37)
    dated = 0
    for _ in range(200):
        dates = [_random_rfc822ish(rng) for _ in range(5)]
        xml = [i.published for i in parse_feed(_rss(*dates), URL, now=NOW).items]
        in_json = [i.published for i in parse_feed(_json(*dates), URL, now=NOW).items]
        for text, from_xml, from_json in zip(dates, xml, in_json, strict=True):
            if from_json is not None:
                dated += 1
                assert from_json == from_xml, text
    assert dated > 50
