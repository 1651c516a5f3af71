"""Compiled matcher: one Aho-Corasick automaton over every phrase, mask and alias.

Input: an ``Item``; output: an ``Analysis`` (phrase hits and resolved actor mentions)
that compiled rule conditions are evaluated on, giving ``(holds, evidence spans)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import ahocorasick

from worker.classify.gazetteer import AliasEntry, Gazetteer
from worker.classify.rules import Cond, RuleSource
from worker.classify.text import FieldText, expand_phrase, is_word_char, word_map
from worker.models import Item

__all__ = [
    "Analysis",
    "Compiler",
    "Mention",
    "Node",
    "Scanner",
    "Span",
    "Trace",
]

FIELDS = ("title", "summary")

Span = tuple[str, int, int, str, str | None]
"""(field, start, end, kind "phrase"/"actor", actor name or lexicon)."""

Trace = list[tuple[int, str, bool, str]]
"""(depth, condition text, holds, detail) rows, for ``rules explain``."""


@dataclass(slots=True)
class Mention:
    """An actor named in the text, resolved through the gazetteer."""

    field: str
    start: int
    end: int
    kind: str
    country: str | None
    name: str
    office: str | None
    official: bool
    text: str
    plural: bool = False
    capital: bool = False
    former: bool = False
    ident: str = ""
    """``identity()``, cached once resolution is done."""

    def identity(self) -> str:
        """Who this is, so two mentions of one actor count once."""
        if self.ident:
            return self.ident
        if self.kind == "person":
            return self.name
        if self.kind == "title":
            if self.country is not None:
                return f"{self.office}:{self.country}"
            return f"{self.office}@{self.field}{self.start}"
        if self.kind == "country" or self.capital:
            return f"country:{self.country}"
        return f"place:{self.name}"


class Analysis:
    """Everything the conditions look at for one item; mentions resolve lazily."""

    __slots__ = ("_mentions", "date", "fields", "gaz", "hits", "item", "raw")

    def __init__(self, item: Item, gaz: Gazetteer) -> None:
        self.item = item
        self.gaz = gaz
        self.date: date | None = item.published.date() if item.published else None
        self.fields: dict[str, FieldText] = {}
        self.hits: dict[str, list[tuple[str, int, int]]] = {}
        self.raw: list[tuple[str, int, int, tuple[AliasEntry, ...]]] = []
        self._mentions: list[Mention] | None = None

    @property
    def mentions(self) -> list[Mention]:
        """Actor mentions, resolved on first use."""
        if self._mentions is None:
            self._mentions = _resolve(self)
        return self._mentions

    def span_text(self, field: str, start: int, end: int) -> str:
        """The original text of a span."""
        return self.fields[field].text[start:end]


# "SEOUL, March 2 (Reuters) - ", "BEIJING/GENEVA, Jan 12 (Reuters) - ",
# "Jan 14 (Reuters) - ", "TOKYO (AP) — ": where the reporter filed from, not a party.
_DATELINE = re.compile(
    r"[A-Z][A-Z .'/]{1,60}(?:,[^()\n]{1,25})?\s*\([^()\n]{1,40}\)\s*(?:-{1,2}|[–—])\s"
    r"|[A-Z][a-z]{2,4}\.? \d{1,2} \([^()\n]{1,40}\)\s*(?:-{1,2}|[–—])\s"
    r"|[A-Z][A-Z .'/]{1,60}, [A-Z][a-z]{2,8}\.? \d{1,2}\s*(?:-{1,2}|[–—])\s"
)
_FORMER = ("former ", "ex ", "then ", "late ")
# 岸田前首相, 元首相, 문재인 전 대통령: "former" written before the title
_FORMER_CJK = ("前", "元", " 전 ")


def dateline_end(text: str) -> int:
    """Where a leading agency dateline ends (0: none)."""
    m = _DATELINE.match(text)
    return m.end() if m else 0


def _resolve(an: Analysis) -> list[Mention]:
    chosen: list[Mention] = []
    by_field: dict[str, list[tuple[str, int, int, tuple[AliasEntry, ...]]]] = {}
    for r in an.raw:
        by_field.setdefault(r[0], []).append(r)
    for fname, raws in by_field.items():
        ft = an.fields[fname]
        raws.sort(key=lambda r: (r[1], r[1] - r[2]))
        last_end = dateline_end(ft.text) if fname == "summary" else -1
        for _, start, end, entries in raws:
            if start < last_end:
                continue
            m = _pick(an, fname, ft, start, end, entries)
            if m is not None:
                if m.kind == "title" and m.official and _after_former(ft.norm, start):
                    m.office, m.official, m.former = f"former_{m.office}", False, True
                chosen.append(m)
                last_end = end
    _tie_titles(an, chosen)
    for m in chosen:
        m.ident = m.identity()
    return chosen


def _after_former(norm: str, start: int) -> bool:
    """Whether a title follows "former"/"ex-", perhaps with a country between
    ("former Japanese prime minister", "ex-South Korean president"), or 前/元/전."""
    head = norm[max(0, start - 40) : start]
    if head.endswith(_FORMER_CJK):
        return True
    for w in _FORMER:
        k = head.rfind(w)
        if k >= 0 and (k == 0 or not head[k - 1].isalnum()):
            between = head[k + len(w) :].split()
            if len(between) <= 2:
                return True
    return False


def _pick(
    an: Analysis,
    fname: str,
    ft: FieldText,
    start: int,
    end: int,
    entries: tuple[AliasEntry, ...],
) -> Mention | None:
    gaz = an.gaz
    text = ft.text[start:end]
    for e in entries:
        if e.case_sensitive and " ".join(text.replace("-", " ").split()) != e.alias:
            continue
        if e.kind == "person":
            if e.case_sensitive and _other_name(ft.text, start, end):
                continue  # "Li Chenggang", "Cheng Li-wun": someone else
            term = gaz.resolve_person(e, an.date)
            if term is None:
                continue
            office = term.office if term.current else f"former_{term.office}"
            return Mention(
                fname,
                start,
                end,
                "person",
                term.country,
                term.name,
                office,
                term.current and gaz.is_official(term.office),
                text,
                former=not term.current,
            )
        if e.kind == "title":
            return Mention(
                fname,
                start,
                end,
                "title",
                None,
                e.alias,
                e.office,
                gaz.is_official(e.office),
                text,
                plural=e.plural,
            )
        return Mention(
            fname,
            start,
            end,
            e.kind,
            e.country,
            e.name or text,
            None,
            False,
            text,
            capital=e.capital,
        )
    return None


_NOT_NAMES = frozenset(
    "to and for in of on at with as from by says said meets met visits visit "
    "arrives arrived holds held will hosts host calls urges set seeks agrees "
    "tells heads leaves lands wraps talks is was has says' the a an after before "
    "amid over".split()
)


_TITLE_WORDS = frozenset(
    "president premier minister prime pm fm leader chairman chairwoman secretary "
    "counterpart mr ms mrs dr sir madam emperor king chancellor vice".split()
)


def _other_name(text: str, start: int, end: int) -> bool:
    """Whether a surname alias is part of someone else's name: a capitalised word
    joined to it ("Li Chenggang", "Cheng Li-wun"), not a title or headline verb."""
    if end < len(text) and text[end] in " -":
        k = end + 1
        while k < len(text) and text[k].isalpha():
            k += 1
        word = text[end + 1 : k]
        if word and word[0].isupper() and word.lower() not in _NOT_NAMES:
            return True
    if start >= 2 and text[start - 1] in " -":
        k = start - 1
        while k > 0 and text[k - 1].isalpha():
            k -= 1
        word = text[k : start - 1]
        low = word.lower()
        if (
            word
            and word[0].isupper()
            and low not in _NOT_NAMES
            and low not in _TITLE_WORDS
            and k > 0  # the first word of a sentence is capitalised anyway
            and text[k - 1] not in ".!?\"'“‘:"
        ):
            return True
    return False


def _tie_titles(an: Analysis, ms: list[Mention]) -> None:
    """Give generic titles a country: from the name after them ("Prime Minister
    Fumio Kishida"), the country before them ("Japan's prime minister"), "of Japan"
    after them, the outlet, or the only country the item names."""
    drop: set[int] = set()
    for i, m in enumerate(ms):
        if m.kind != "title":
            continue
        norm = an.fields[m.field].norm
        nxt = ms[i + 1] if i + 1 < len(ms) and ms[i + 1].field == m.field else None
        prv = ms[i - 1] if i > 0 and ms[i - 1].field == m.field else None
        if (
            nxt is not None
            and nxt.kind == "person"
            and norm[m.end : nxt.start] in (" ", ", ")
        ):
            nxt.start = m.start
            nxt.text = an.span_text(m.field, nxt.start, nxt.end)
            drop.add(i)
            continue
        if (
            prv is not None
            and prv.kind in ("country", "place")
            and norm[prv.end : m.start].strip() in ("", "'s", "'", ",")
        ) or (
            prv is not None
            and prv.kind == "title"
            and prv.country
            and norm[prv.end : m.start].strip() in ("", "and", ",")
        ):
            m.country = prv.country
        elif (
            nxt is not None
            and nxt.kind in ("country", "place")
            and norm[m.end : nxt.start] in (" of ", " of the ")
        ):
            m.country = nxt.country
    if drop:
        ms[:] = [m for i, m in enumerate(ms) if i not in drop]
    _spread_plural_titles(an, ms)
    untied = [m for m in ms if m.kind == "title" and m.country is None and not m.plural]
    if untied:
        ctx = an.gaz.outlet_country(an.item.source)
        if ctx is None:
            named = {m.country for m in ms if m.kind != "title" and m.country}
            ctx = next(iter(named)) if len(named) == 1 else None
        if ctx is not None:
            for m in untied:
                if m.office not in ("leader",):
                    m.country = ctx
    people = {(m.office, m.country): m.name for m in ms if m.kind == "person"}
    for m in ms:
        if m.kind == "title" and (m.office, m.country) in people:
            m.name = people[m.office, m.country]
            m.kind = "person"


_LIST_GLUE = frozenset({"", ",", "and", ", and", "&", "'s"})


def _spread_plural_titles(an: Analysis, ms: list[Mention]) -> None:
    """ "China, Japan and South Korea foreign ministers" / "foreign ministers of
    China, Japan and South Korea": one official per listed country."""
    extra: list[Mention] = []
    for i, m in enumerate(ms):
        if m.kind != "title" or not m.plural:
            continue
        norm = an.fields[m.field].norm
        codes: list[str] = []
        j, edge = i - 1, m.start
        while j >= 0 and ms[j].field == m.field and ms[j].kind == "country":
            if norm[ms[j].end : edge].strip() not in _LIST_GLUE:
                break
            codes.append(ms[j].country or "")
            edge = ms[j].start
            j -= 1
        if not codes and norm[m.end : m.end + 4] == " of ":
            j, edge = i + 1, m.end + 3
            while j < len(ms) and ms[j].field == m.field and ms[j].kind == "country":
                gap = norm[edge : ms[j].start].strip()
                if gap not in _LIST_GLUE and gap not in ("the", ", the", "and the"):
                    break
                codes.append(ms[j].country or "")
                edge = ms[j].end
                j += 1
        codes = [c for c in codes if c]
        if len(codes) < 2:
            continue
        m.country = codes[0]
        extra.extend(
            Mention(
                m.field,
                m.start,
                m.end,
                "title",
                c,
                m.name,
                m.office,
                m.official,
                m.text,
                plural=True,
            )
            for c in codes[1:]
        )
    if extra:
        ms.extend(extra)
        ms.sort(key=lambda x: (x.field, x.start))


# ---------------------------------------------------------------- condition nodes


class Node:
    """A compiled condition."""

    label = ""

    def eval(
        self, an: Analysis, trace: Trace | None, depth: int = 0
    ) -> tuple[bool, list[Span]]:
        """Whether the condition holds, and the spans that made it hold."""
        raise NotImplementedError


def _record(trace: Trace | None, depth: int, label: str, ok: bool, detail: str) -> None:
    if trace is not None:
        trace.append((depth, label, ok, detail))


class PhraseNode(Node):
    def __init__(self, lexicon: str, field: str | None, label: str) -> None:
        self.lexicon, self.field, self.label = lexicon, field, label

    def eval(
        self, an: Analysis, trace: Trace | None, depth: int = 0
    ) -> tuple[bool, list[Span]]:
        hits = an.hits.get(self.lexicon)
        spans: list[Span] = []
        if hits:
            spans = [
                (f, s, e, "phrase", None)
                for f, s, e in hits
                if self.field is None or f == self.field
            ]
        if trace is not None:
            found = ", ".join(repr(an.span_text(f, s, e)) for f, s, e, _, _ in spans)
            _record(trace, depth, self.label, bool(spans), found or "no match")
        return bool(spans), spans


class ActorNode(Node):
    def __init__(
        self,
        kinds: frozenset[str] | None,
        countries: frozenset[str] | None,
        offices: frozenset[str] | None,
        official: bool | None,
        party: bool | None,
        minimum: int,
        field: str | None,
        label: str,
    ) -> None:
        self.kinds, self.countries, self.offices = kinds, countries, offices
        self.official, self.min, self.field, self.label = (
            official,
            minimum,
            field,
            label,
        )
        self.party = party

    def match(self, an: Analysis) -> list[Mention]:
        """The mentions this predicate accepts."""
        out = []
        parties: set[tuple[str, str | None]] = set()
        if self.party is not None:
            # A participant is an official named in the same field (headline or
            # lede): each states its event on its own.
            parties = {(m.field, m.country) for m in an.mentions if m.official}
        for m in an.mentions:
            if self.field is not None and m.field != self.field:
                continue
            if self.kinds is not None and m.kind not in self.kinds:
                continue
            if self.countries is not None and m.country not in self.countries:
                continue
            if self.offices is not None and m.office not in self.offices:
                continue
            if self.official is not None and m.official != self.official:
                continue
            if (
                self.party is not None
                and ((m.field, m.country) in parties) != self.party
            ):
                continue
            out.append(m)
        return out

    def eval(
        self, an: Analysis, trace: Trace | None, depth: int = 0
    ) -> tuple[bool, list[Span]]:
        ms = self.match(an)
        ids: set[str] = set()
        for m in ms:
            ident = m.identity()
            ids.add(ident)
            if m.plural:
                ids.add(ident + "+")
        ok = len(ids) >= self.min
        spans: list[Span] = (
            [(m.field, m.start, m.end, "actor", m.name) for m in ms] if ok else []
        )
        if trace is not None:
            found = ", ".join(f"{m.text!r}={m.name}" for m in ms)
            _record(trace, depth, self.label, ok, found or "no actor")
        return ok, spans


class CountriesNode(Node):
    def __init__(
        self,
        minimum: int,
        any_of: frozenset[str] | None,
        kinds: frozenset[str] | None,
        official: bool | None,
        field: str | None,
        label: str,
    ) -> None:
        self.min, self.any_of, self.kinds = minimum, any_of, kinds
        self.official, self.field, self.label = official, field, label

    def eval(
        self, an: Analysis, trace: Trace | None, depth: int = 0
    ) -> tuple[bool, list[Span]]:
        codes: set[str] = set()
        spans: list[Span] = []
        for m in an.mentions:
            if m.country is None:
                continue
            if self.field is not None and m.field != self.field:
                continue
            if self.kinds is not None and m.kind not in self.kinds:
                continue
            if (
                self.official is not None
                and m.kind in ("person", "title")
                and m.official != self.official
            ):
                continue
            codes.add(m.country)
            if self.any_of is not None and m.country in self.any_of:
                spans.append((m.field, m.start, m.end, "actor", m.name))
        ok = len(codes) >= self.min and (
            self.any_of is None or bool(codes & self.any_of)
        )
        if trace is not None:
            _record(trace, depth, self.label, ok, ", ".join(sorted(codes)) or "none")
        return ok, spans if ok else []


class NearNode(Node):
    def __init__(
        self, a: Node, b: Node, within: int, sentence: bool, order: str, label: str
    ) -> None:
        self.a, self.b, self.within, self.sentence = a, b, within, sentence
        self.order, self.label = order, label

    def eval(
        self, an: Analysis, trace: Trace | None, depth: int = 0
    ) -> tuple[bool, list[Span]]:
        sub: Trace | None = [] if trace is not None else None
        ok_a, sa = self.a.eval(an, sub, depth + 1)
        ok_b, sb = self.b.eval(an, sub, depth + 1) if ok_a else (False, [])
        found: list[Span] = []
        if ok_a and ok_b:
            for x in sa:
                ft = an.fields[x[0]]
                for y in sb:
                    if y[0] != x[0]:
                        continue
                    if x[1] < y[2] and y[1] < x[2]:
                        # a cue inside another cue is next to it ("phone talks"
                        # holds "talks"); two overlapping actors are one mention
                        if x[3] == "actor" and y[3] == "actor":
                            continue
                        found += [x, y]
                        continue
                    first, second = (x, y) if x[1] <= y[1] else (y, x)
                    if self.order == "ab" and first is not x:
                        continue
                    gap = ft.word_index(second[1]) - ft.word_index(first[2])
                    if gap > self.within:
                        continue
                    if self.sentence and ft.sentence_index(x[1]) != ft.sentence_index(
                        y[1]
                    ):
                        continue
                    found += [x, y]
        if trace is not None:
            detail = ", ".join(
                repr(an.span_text(f, s, e)) for f, s, e, _, _ in found[:4]
            )
            _record(trace, depth, self.label, bool(found), detail or "not close enough")
            trace.extend(sub or [])
        return bool(found), found


class GroupNode(Node):
    def __init__(
        self, all_: list[Node], any_: list[Node], none: list[Node], label: str
    ) -> None:
        self.all, self.any, self.none, self.label = all_, any_, none, label

    def eval(
        self, an: Analysis, trace: Trace | None, depth: int = 0
    ) -> tuple[bool, list[Span]]:
        spans: list[Span] = []
        sub: Trace | None = [] if trace is not None else None
        ok = True
        for n in self.all:
            r, s = n.eval(an, sub, depth + 1)
            if not r:
                ok = False
                break
            spans += s
        if ok and self.any:
            hit = False
            for n in self.any:
                r, s = n.eval(an, sub, depth + 1)
                if r:
                    hit = True
                    spans += s
                    if sub is None:
                        break
            ok = hit
        if ok:
            for n in self.none:
                r, _ = n.eval(an, sub, depth + 1)
                if r:
                    ok = False
                    if sub is not None:
                        sub.append(
                            (
                                depth + 1,
                                "(the 'none' condition above matched)",
                                False,
                                "",
                            )
                        )
                    break
        if trace is not None:
            _record(trace, depth, self.label, ok, "")
            trace.extend(sub or [])
        return ok, spans if ok else []


# ---------------------------------------------------------------- compiler


class Compiler:
    """Builds the automaton and compiles conditions against one gazetteer."""

    def __init__(self, src: RuleSource, gaz: Gazetteer) -> None:
        self.src, self.gaz = src, gaz
        self.lexicons: dict[str, list[str]] = {
            k: list(v) for k, v in src.lexicon.items()
        }
        self._n = 0

    def cond(self, c: Cond, owner: str) -> Node:
        """Compile one condition (inline phrase lists become private lexicons)."""
        gaz = self.gaz
        if c.phrase is not None:
            if isinstance(c.phrase, str):
                name, label = c.phrase, f"phrase {c.phrase}"
            else:
                self._n += 1
                name = f"@{owner}#{self._n}"
                self.lexicons[name] = list(c.phrase)
                label = f"phrase {c.phrase[:4]}{'...' if len(c.phrase) > 4 else ''}"
            if c.field:
                label += f" in {c.field}"
            return PhraseNode(name, c.field, label)
        if c.actor is not None:
            a = c.actor
            return ActorNode(
                frozenset(a.kind) if a.kind else None,
                gaz.expand(a.country),
                frozenset(a.office) if a.office else None,
                a.official,
                a.party,
                a.min,
                a.field,
                "actor " + _describe(a.model_dump(exclude_defaults=True)),
            )
        if c.countries is not None:
            p = c.countries
            return CountriesNode(
                p.min,
                gaz.expand(p.any_of),
                frozenset(p.kinds) if p.kinds else None,
                p.official,
                p.field,
                "countries " + _describe(p.model_dump(exclude_defaults=True)),
            )
        if c.near is not None:
            n = c.near
            return NearNode(
                self.cond(n.a, owner),
                self.cond(n.b, owner),
                n.within,
                n.sentence,
                n.order,
                f"near (within {n.within} words{', same sentence' if n.sentence else ''})",
            )
        parts = [k for k in ("all", "any", "none") if getattr(c, k)]
        return GroupNode(
            [self.cond(x, owner) for x in c.all or []],
            [self.cond(x, owner) for x in c.any or []],
            [self.cond(x, owner) for x in c.none or []],
            "+".join(parts),
        )

    def automaton(
        self,
        lexicons: set[str] | None = None,
        *,
        gazetteer: bool = True,
        padded: bool = False,
    ) -> Scanner:
        """A scanner over the phrases: key -> (length, lexicons, is_mask, alias
        entries).

        ``lexicons`` limits which lexicons it holds (None: all); masks and, if
        ``gazetteer``, the alias entries are always included. ``padded`` adds an
        automaton with word boundaries built in, for lexicons of short frequent
        words ("in", "at", "on Monday") that would otherwise hit inside words.
        """
        table: dict[str, tuple[set[str], list[bool], list[AliasEntry]]] = {}
        for name, phrases in self.lexicons.items():
            if lexicons is not None and name not in lexicons:
                continue
            for p in phrases:
                for form in expand_phrase(p):
                    table.setdefault(form, (set(), [False], []))[0].add(name)
        for p in self.src.masks:
            for form in expand_phrase(p):
                table.setdefault(form, (set(), [False], []))[1][0] = True
        if gazetteer:
            for key, entries in self.gaz.entries.items():
                table.setdefault(key, (set(), [False], []))[2].extend(entries)
        exact = ahocorasick.Automaton()
        variants: dict[str, list[tuple[int, int, tuple[str, ...], bool, Any, Any]]] = {}
        for key, (lex, mask, entries) in table.items():
            if not key:
                continue
            lexes, ents = tuple(sorted(lex)), tuple(entries)
            wb_start, wb_end = is_word_char(key[0]), is_word_char(key[-1])
            exact.add_word(key, (len(key), lexes, mask[0], ents, wb_start, wb_end))
            # Word boundaries as spaces: the text maps every character that is not a
            # letter or digit to a space, and a key that starts or ends with a
            # letter gets a space there, so the automaton reports whole words only.
            # Keys with punctuation ("2+2", "u.s.") are checked against the text.
            mapped = word_map(key)
            pkey = f"{' ' if wb_start else ''}{mapped}{' ' if wb_end else ''}"
            check = key if mapped != key else None
            variants.setdefault(pkey, []).append(
                (len(key), int(wb_end), lexes, mask[0], ents, check)
            )
        exact.make_automaton()
        if not padded:
            return Scanner(exact, None)
        pad = ahocorasick.Automaton()
        for pkey, vs in variants.items():
            pad.add_word(pkey, tuple(vs))
        pad.make_automaton()
        return Scanner(exact, pad)


@dataclass(frozen=True, slots=True)
class Scanner:
    """Automata over the same keys: ``exact`` checks word boundaries per hit (and
    handles CJK, kana and hangul, which join words without spaces); ``padded``,
    if built, has them built into the keys, for text of alphabetic scripts."""

    exact: Any
    padded: Any | None


def _describe(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items()) or "(any)"


def scan(auto: Scanner, gaz: Gazetteer, item: Item) -> Analysis:
    """Run the automaton over title and summary, keeping whole-word matches only."""
    an = Analysis(item, gaz)
    for fname, text in (("title", item.title), ("summary", item.summary)):
        if text:
            an.fields[fname] = FieldText(text)
    scan_more(auto, an)
    return an


def scan_more(auto: Scanner, an: Analysis) -> None:
    """Add the hits of another automaton (event cues) to an analysis."""
    hits = an.hits
    for fname, ft in an.fields.items():
        masks: list[tuple[int, int]] = []
        lex_found: list[tuple[str, int, int]] = []
        pad_auto = auto.padded
        padded = ft.padded() if pad_auto is not None else ""
        if pad_auto is not None and padded:
            # offsets in ``padded`` are one more than in the text
            norm = ft.norm
            for end_idx, vs in pad_auto.iter(padded):
                for klen, pe, lexes, is_mask, entries, check in vs:
                    end = end_idx - pe
                    start = end - klen
                    if check is not None and norm[start:end] != check:
                        continue
                    if is_mask:
                        masks.append((start, end))
                    lex_found.extend((lx, start, end) for lx in lexes)
                    if entries:
                        an.raw.append((fname, start, end, entries))
        else:
            _scan_exact(auto.exact, fname, ft.norm, an, masks, lex_found)
        for lx, s, e in lex_found:
            if masks and any(ms <= s and e <= me for ms, me in masks):
                continue
            hits.setdefault(lx, []).append((fname, s, e))


def _scan_exact(
    auto: Any,
    fname: str,
    norm: str,
    an: Analysis,
    masks: list[tuple[int, int]],
    lex_found: list[tuple[str, int, int]],
) -> None:
    n = len(norm)
    for end_idx, (klen, lexes, is_mask, entries, wb_start, wb_end) in auto.iter(norm):
        start = end_idx - klen + 1
        # isalnum first: most neighbours are spaces or punctuation.
        if wb_start and start > 0:
            c = norm[start - 1]
            if c.isalnum() and (c < "\u1100" or is_word_char(c)):
                continue
        if wb_end and end_idx + 1 < n:
            c = norm[end_idx + 1]
            if c.isalnum() and (c < "\u1100" or is_word_char(c)):
                continue
        end = end_idx + 1
        if is_mask:
            masks.append((start, end))
        lex_found.extend((lx, start, end) for lx in lexes)
        if entries:
            an.raw.append((fname, start, end, entries))


NodeFn = Callable[[Analysis], tuple[bool, list[Span]]]
