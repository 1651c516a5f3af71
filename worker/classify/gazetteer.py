"""Actor gazetteer: countries, places, people with terms of office, generic titles.

Input: the gazetteer sections of a ``RuleSource``; output: alias entries for the
matcher and ``resolve_person`` (which person an alias means on a date, in office or
former).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from worker.classify.rules import PersonSpec, RuleSource
from worker.classify.text import normalize_phrase

__all__ = ["AliasEntry", "Gazetteer", "PersonTerm"]

ActorKind = Literal["country", "person", "title", "place"]


@dataclass(frozen=True, slots=True)
class PersonTerm:
    """A person's office at some date; ``current`` False for a former holder."""

    name: str
    country: str
    office: str
    current: bool


@dataclass(frozen=True, slots=True)
class AliasEntry:
    """What one alias of the gazetteer may mean."""

    kind: ActorKind
    alias: str
    """The alias as written in the gazetteer (for case-sensitive checks)."""
    case_sensitive: bool
    country: str | None = None
    name: str | None = None
    office: str | None = None
    people: tuple[int, ...] = ()
    """Indexes into ``Gazetteer.people`` (persons only)."""
    capital: bool = False
    plural: bool = False


_CACHE_MAX = 65_536
"""Resolved (alias, date) pairs kept; a feed's items share few dates."""


def _plural(word: str) -> str:
    head, _, last = word.rpartition(" ")
    if last.endswith("y"):
        last = last[:-1] + "ies"
    elif last.endswith(("s", "ch", "sh")):
        last += "es"
    else:
        last += "s"
    return f"{head} {last}" if head else last


class Gazetteer:
    """Compiled gazetteer: alias entries keyed by normalised alias."""

    def __init__(self, src: RuleSource) -> None:
        self.countries = src.countries
        self.groups = {k: frozenset(v) for k, v in src.groups.items()}
        self.official_offices = frozenset(src.official_offices)
        self.people: list[PersonSpec] = list(src.people)
        self.entries: dict[str, list[AliasEntry]] = {}
        self.outlets: list[tuple[str, str]] = []
        self._resolved: dict[
            tuple[str, tuple[int, ...], date | None], PersonTerm | None
        ] = {}
        for code, c in src.countries.items():
            for n in (c.name, *c.names, *c.demonyms, *c.native):
                self._add(n, AliasEntry("country", n, False, code, c.name))
            for n in c.abbreviations:
                self._add(n, AliasEntry("country", n, True, code, c.name))
            for n in c.capitals:
                self._add(n, AliasEntry("place", n, False, code, n, capital=True))
            for n in c.places:
                self._add(n, AliasEntry("place", n, False, code, n))
            self.outlets += [(normalize_phrase(o), code) for o in c.outlets]
        by_alias: dict[str, list[int]] = {}
        sensitive: set[str] = set()
        for i, p in enumerate(self.people):
            for a in {p.name, *p.aliases}:
                by_alias.setdefault(a, []).append(i)
                if a in p.ambiguous:
                    sensitive.add(a)
        for alias, idx in by_alias.items():
            self._add(
                alias,
                AliasEntry("person", alias, alias in sensitive, people=tuple(idx)),
            )
        for office, words in src.titles.items():
            for w in words:
                upper = w.isupper()
                self._add(w, AliasEntry("title", w, upper, office=office))
                if not upper and not w.endswith("s") and w.isascii():
                    pl = _plural(w)
                    self._add(
                        pl, AliasEntry("title", pl, False, office=office, plural=True)
                    )

    def _add(self, alias: str, entry: AliasEntry) -> None:
        key = normalize_phrase(alias)
        if key:
            lst = self.entries.setdefault(key, [])
            if entry not in lst:
                lst.append(entry)

    def expand(self, codes: list[str] | None) -> frozenset[str] | None:
        """Country codes with group names replaced by their members."""
        if codes is None:
            return None
        out: set[str] = set()
        for c in codes:
            out |= self.groups.get(c, {c})
        return frozenset(out)

    def is_official(self, office: str | None) -> bool:
        """Whether holders of ``office`` count as officials for the rules."""
        return office in self.official_offices

    def resolve_person(self, entry: AliasEntry, when: date | None) -> PersonTerm | None:
        """Which person the alias names on ``when`` (None date: latest holder).

        A person in office wins; else the most recent former holder, unless the
        alias is ambiguous for them (a common word or shared surname).
        """
        key = (entry.alias, entry.people, when)
        try:
            return self._resolved[key]
        except KeyError:
            pass
        if len(self._resolved) >= _CACHE_MAX:
            self._resolved.clear()
        found = self._resolve_person(entry, when)
        self._resolved[key] = found
        return found

    def _resolve_person(
        self, entry: AliasEntry, when: date | None
    ) -> PersonTerm | None:
        best_former: tuple[date, PersonTerm] | None = None
        latest: tuple[date, PersonTerm] | None = None
        for i in entry.people:
            p = self.people[i]
            for t in p.terms:
                term = PersonTerm(p.name, p.country, t.office, True)
                if when is None:
                    key = t.to or date.max
                    if latest is None or key > latest[0]:
                        latest = (key, term)
                    continue
                if t.from_ <= when and (t.to is None or when <= t.to):
                    return term
                if (
                    t.to is not None
                    and t.to < when
                    and entry.alias not in p.ambiguous
                    and (best_former is None or t.to > best_former[0])
                ):
                    best_former = (t.to, PersonTerm(p.name, p.country, t.office, False))
        if latest is not None:
            return latest[1]
        return best_former[1] if best_former is not None else None

    def outlet_country(self, source: str | None) -> str | None:
        """The country of a news outlet named in ``source`` (Yonhap -> KR)."""
        if not source:
            return None
        s = normalize_phrase(source)
        for name, code in self.outlets:
            if name in s:
                return code
        return None
