"""Rule language: YAML rule files -> validated specs (RuleSpec, gazetteer, lexicons).

Input: a directory of ``*.yaml`` files; output: a ``RuleSource`` of pydantic specs.
Every mistake raises ``RuleError`` naming the file, the line of the key and its path.

A rule file may hold any of these top-level sections (merged across the directory)::

    lexicon:            # named phrase lists; "word~" inflects the word
      travel: [visit~, arrive~ in, state visit, trip to]
    masks: [business summit, summit of mount]   # spans that cancel cue matches
    rules:
      - id: visit-official
        topics: [visit]
        when:
          all:
            - near: {a: {phrase: travel}, b: {actor: {official: true}}, sentence: true}
            - countries: {min: 2, any_of: cjk}
          none:
            - phrase: [tourists, tour group~]
        examples:
          positive: ["Japanese PM arrives in Seoul for talks"]
          negative: ["Chinese tour groups return to Japan"]
    countries: {...}   people: [...]   titles: {...}   groups: {...}   # gazetteer
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from worker.errors import RuleError

# PyYAML is imported when a rule file is read: a compiled-rules cache hit (every
# command after the first) needs none of it.
if TYPE_CHECKING:
    import yaml

__all__ = [
    "ActorPred",
    "Cond",
    "CountriesPred",
    "CountrySpec",
    "EventSpec",
    "Example",
    "NearPred",
    "OfficeTerm",
    "PersonSpec",
    "RuleFile",
    "RuleSource",
    "RuleSpec",
    "load_rule_source",
    "rule_files",
]

FieldName = Literal["title", "summary"]
OFFICES = (
    "head_of_state",
    "head_of_government",
    "vice_president",
    "foreign_minister",
    "deputy_foreign_minister",
    "minister",
    "leader",
    "regional_leader",
    "ambassador",
    "legislator",
    "party_official",
    "business",
    "royal",
)


class _Spec(BaseModel):
    # Validators are built on first validation, not at import: a ruleset loaded
    # from the cache (worker.classify.cache) never validates a spec.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ActorPred(_Spec):
    """Some actor mention matches: filters are ANDed; lists mean "any of"."""

    kind: list[Literal["country", "person", "title", "place"]] | None = None
    country: list[str] | None = None
    """ISO codes or group names (``cjk``)."""
    office: list[str] | None = None
    official: bool | None = None
    """True: a person or title holding an official office at the item's date."""
    party: bool | None = None
    """True: the actor's country is the country of an official named in the same
    field (a place in a participant's own country). Offices may be ``former_*``."""
    min: int = 1
    """At least this many distinct actors must match."""
    field: FieldName | None = None


class CountriesPred(_Spec):
    """Distinct countries named in the item (people, titles, places, countries)."""

    min: int = 1
    any_of: list[str] | None = None
    """At least one of them must be one of these codes or groups."""
    kinds: list[Literal["country", "person", "title", "place"]] | None = None
    official: bool | None = None
    """True: people and titles count only if they are officials in office
    (countries and places of ``kinds`` still count)."""
    field: FieldName | None = None


class NearPred(_Spec):
    """Two leaf predicates whose spans lie close together in the same field."""

    a: Cond
    b: Cond
    within: int = 8
    """Maximum words between the two spans."""
    sentence: bool = False
    """Both spans must lie in the same sentence."""
    order: Literal["any", "ab"] = "any"


class Cond(_Spec):
    """One condition node: exactly one of the keys below."""

    all: list[Cond] | None = None
    any: list[Cond] | None = None
    none: list[Cond] | None = None
    phrase: str | list[str] | None = None
    """A lexicon name, or an inline list of phrases."""
    actor: ActorPred | None = None
    countries: CountriesPred | None = None
    near: NearPred | None = None
    field: FieldName | None = None
    """Restrict a ``phrase`` to the title or the summary."""

    @model_validator(mode="after")
    def _one_key(self) -> Cond:
        keys = [
            k
            for k in ("phrase", "actor", "countries", "near")
            if getattr(self, k) is not None
        ]
        groups = [k for k in ("all", "any", "none") if getattr(self, k) is not None]
        if len(keys) > 1 or (keys and groups):
            raise ValueError(f"a condition holds one predicate, got {keys + groups}")
        if not keys and not groups:
            raise ValueError(
                "a condition needs one of all/any/none/phrase/actor/countries/near"
            )
        if self.field is not None and self.phrase is None:
            raise ValueError("'field' applies to 'phrase' only (actors have their own)")
        return self


class Example(_Spec):
    """An item for ``rules test``; a bare string is the title."""

    title: str
    summary: str = ""
    published: date | None = None


class Examples(_Spec):
    positive: list[str | Example] = Field(default_factory=list)
    negative: list[str | Example] = Field(default_factory=list)


class Boost(_Spec):
    """Adds ``weight`` (may be negative) to the score when ``when`` holds."""

    when: Cond
    weight: float


class RuleSpec(_Spec):
    """One rule: fires when ``when`` holds and its score reaches ``threshold``."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    topics: list[str] = Field(min_length=1)
    severity: Literal["alert", "info"] = "alert"
    weight: float = 1.0
    threshold: float = 1.0
    when: Cond
    boost: list[Boost] = Field(default_factory=list)
    examples: Examples = Field(default_factory=Examples)


class OfficeTerm(_Spec):
    """An office and its term; ``to`` None means still in office."""

    office: str
    from_: date = Field(alias="from")
    to: date | None = None


class PersonSpec(_Spec):
    """A person of the gazetteer: aliases resolve to them within their terms."""

    name: str
    country: str
    aliases: list[str] = Field(default_factory=list)
    terms: list[OfficeTerm] = Field(min_length=1)
    ambiguous: list[str] = Field(default_factory=list)
    """Aliases that are common words or shared surnames: matched case-sensitively
    and only while the person is in office."""


class CountrySpec(_Spec):
    """A country: names, demonyms, capital metonyms, abbreviations, native script."""

    name: str
    names: list[str] = Field(default_factory=list)
    demonyms: list[str] = Field(default_factory=list)
    capitals: list[str] = Field(default_factory=list)
    """Used as metonyms ("Beijing said") and as places."""
    places: list[str] = Field(default_factory=list)
    """Other cities and venues, for the location of an event."""
    abbreviations: list[str] = Field(default_factory=list)
    """Matched case-sensitively (ROK, PRC, US)."""
    native: list[str] = Field(default_factory=list)
    outlets: list[str] = Field(default_factory=list)
    """News outlets of the country: context for a bare "the prime minister"."""


class EventSpec(_Spec):
    """Lexicon names that drive event extraction (status, roles, time)."""

    status: dict[
        Literal["cancelled", "postponed", "proposed", "announced", "held"], str
    ] = Field(default_factory=dict)
    travel: str | None = None
    """Lexicon of travel cues: the actor before it is the visitor."""
    host: str | None = None
    """Lexicon of hosting cues: the actor before it is the host."""
    place_prefix: str | None = None
    """Lexicon of words that introduce a location ("in", "at")."""
    time: str | None = None
    """Lexicon of time expressions ("next week", "on Sunday")."""


class RuleFile(_Spec):
    """What one YAML file may hold."""

    lexicon: dict[str, list[str]] = Field(default_factory=dict)
    masks: list[str] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)
    countries: dict[str, CountrySpec] = Field(default_factory=dict)
    people: list[PersonSpec] = Field(default_factory=list)
    titles: dict[str, list[str]] = Field(default_factory=dict)
    """Generic office words by office ("prime minister" -> head_of_government)."""
    groups: dict[str, list[str]] = Field(default_factory=dict)
    official_offices: list[str] | None = None
    event: EventSpec | None = None


@dataclass
class RuleSource:
    """All files of a rules directory, validated and merged, with lines for errors."""

    root: Path
    files: dict[Path, RuleFile] = field(default_factory=dict)
    lines: dict[Path, dict[tuple[str | int, ...], int]] = field(default_factory=dict)
    lexicon: dict[str, list[str]] = field(default_factory=dict)
    masks: list[str] = field(default_factory=list)
    rules: list[RuleSpec] = field(default_factory=list)
    rule_files: dict[str, Path] = field(default_factory=dict)
    countries: dict[str, CountrySpec] = field(default_factory=dict)
    people: list[PersonSpec] = field(default_factory=list)
    titles: dict[str, list[str]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    official_offices: list[str] = field(default_factory=list)
    event: EventSpec = field(default_factory=EventSpec)

    def line_of(self, path: Path, key: tuple[str | int, ...]) -> int | None:
        """The line of ``key`` in ``path``, or of its nearest recorded parent."""
        lines = self.lines.get(path, {})
        for n in range(len(key), -1, -1):
            if key[:n] in lines:
                return lines[key[:n]]
        return None


def _walk(
    node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]
) -> None:
    import yaml

    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                raise _DupKey(name, key.start_mark.line + 1, (*path, name))
            seen[name] = key.start_mark.line + 1
            out[(*path, name)] = key.start_mark.line + 1
            _walk(value, (*path, name), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _walk(value, (*path, i), out)


class _DupKey(Exception):
    def __init__(self, name: str, line: int, path: tuple[str | int, ...]) -> None:
        self.name, self.line, self.path = name, line, path


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path)


def _parse_file(path: Path) -> tuple[RuleFile, dict[tuple[str | int, ...], int]]:
    """Parse and validate one file, mapping every error to its line."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RuleError(shown, None, None, f"cannot read: {e}") from e
    import yaml

    lines: dict[tuple[str | int, ...], int] = {}
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return RuleFile(), lines
            _walk(node, (), lines)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except _DupKey as e:
        raise RuleError(shown, e.line, _dotted(e.path), "duplicate key") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        raise RuleError(shown, line, None, f"YAML syntax: {e.problem}") from e
    except yaml.YAMLError as e:
        raise RuleError(shown, None, None, f"YAML: {e}") from e
    if not isinstance(data, dict):
        raise RuleError(shown, 1, None, "expected a mapping of sections at top level")
    try:
        return RuleFile.model_validate(data), lines
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        # Union members add their type name to loc; keep the keys that exist.
        key: tuple[str | int, ...] = ()
        for p in loc:
            if (*key, p) in lines:
                key = (*key, p)
            elif p in {"from_"} and (*key, "from") in lines:
                key = (*key, "from")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}"
        line = lines.get(key) or _nearest(lines, key)
        raise RuleError(shown, line, _dotted(loc) or None, msg) from None


def _nearest(
    lines: dict[tuple[str | int, ...], int], key: tuple[str | int, ...]
) -> int:
    for n in range(len(key), -1, -1):
        if key[:n] in lines:
            return lines[key[:n]]
    return 1


def _iter_conds(
    cond: Cond, path: tuple[str | int, ...]
) -> Iterator[tuple[Cond, tuple[str | int, ...]]]:
    yield cond, path
    for group in ("all", "any", "none"):
        children = getattr(cond, group)
        if children:
            for i, child in enumerate(children):
                yield from _iter_conds(child, (*path, group, i))
    if cond.near is not None:
        yield from _iter_conds(cond.near.a, (*path, "near", "a"))
        yield from _iter_conds(cond.near.b, (*path, "near", "b"))


def rule_files(base: Path) -> list[Path]:
    """The rule files of a directory, in the order they are merged."""
    return sorted([*base.glob("*.yaml"), *base.glob("*.yml")])


def load_rule_source(root: str | os.PathLike[str]) -> RuleSource:
    """Read every ``*.yaml``/``*.yml`` file of ``root`` and check cross-references."""
    base = Path(root)
    if not base.is_dir():
        raise RuleError(str(base), None, None, "rules directory not found")
    src = RuleSource(root=base)
    paths = rule_files(base)
    if not paths:
        raise RuleError(str(base), None, None, "no *.yaml rule files in directory")
    origin: dict[tuple[str, str], Path] = {}

    def claim(section: str, name: str, path: Path, key: tuple[str | int, ...]) -> None:
        if (section, name) in origin:
            raise RuleError(
                str(path),
                _nearest(src.lines[path], key),
                _dotted(key),
                f"duplicate {section} {name!r} (also in {origin[section, name]})",
            )
        origin[section, name] = path

    for path in paths:
        spec, lines = _parse_file(path)
        src.files[path] = spec
        src.lines[path] = lines
        for name, phrases in spec.lexicon.items():
            claim("lexicon", name, path, ("lexicon", name))
            src.lexicon[name] = phrases
        src.masks.extend(spec.masks)
        for i, rule in enumerate(spec.rules):
            claim("rule id", rule.id, path, ("rules", i, "id"))
            src.rules.append(rule)
            src.rule_files[rule.id] = path
        for code, country in spec.countries.items():
            claim("country", code, path, ("countries", code))
            src.countries[code] = country
        for i, person in enumerate(spec.people):
            claim("person", person.name, path, ("people", i, "name"))
            src.people.append(person)
        for office, words in spec.titles.items():
            claim("title office", office, path, ("titles", office))
            src.titles[office] = words
        for name, codes in spec.groups.items():
            claim("group", name, path, ("groups", name))
            src.groups[name] = codes
        if spec.official_offices is not None:
            claim("section", "official_offices", path, ("official_offices",))
            src.official_offices = spec.official_offices
        if spec.event is not None:
            claim("section", "event", path, ("event",))
            src.event = spec.event
    _check_references(src)
    return src


def _check_references(src: RuleSource) -> None:
    """Unknown lexicons, countries, groups or offices are errors with their line."""
    codes = set(src.countries)
    known_offices = set(OFFICES)

    def fail(path: Path, key: tuple[str | int, ...], problem: str) -> None:
        raise RuleError(
            str(path), _nearest(src.lines[path], key), _dotted(key), problem
        )

    def check_codes(path: Path, key: tuple[str | int, ...], values: list[str]) -> None:
        for i, code in enumerate(values):
            if code not in codes and code not in src.groups:
                fail(path, (*key, i), f"unknown country or group {code!r}")

    for path, spec in src.files.items():
        for name, members in spec.groups.items():
            for i, code in enumerate(members):
                if code not in codes:
                    fail(path, ("groups", name, i), f"unknown country {code!r}")
        for i, person in enumerate(spec.people):
            if person.country not in codes:
                fail(
                    path,
                    ("people", i, "country"),
                    f"unknown country {person.country!r}",
                )
            for j, term in enumerate(person.terms):
                if term.office not in known_offices:
                    fail(
                        path,
                        ("people", i, "terms", j, "office"),
                        f"unknown office {term.office!r}",
                    )
            for j, alias in enumerate(person.ambiguous):
                if alias not in person.aliases:
                    fail(
                        path,
                        ("people", i, "ambiguous", j),
                        f"{alias!r} is not one of the aliases",
                    )
        for office in spec.titles:
            if office not in known_offices:
                fail(path, ("titles", office), f"unknown office {office!r}")
        for i, office in enumerate(spec.official_offices or []):
            if office not in known_offices:
                fail(path, ("official_offices", i), f"unknown office {office!r}")
        if spec.event is not None:
            ev = spec.event
            refs: list[tuple[tuple[str | int, ...], str | None]] = [
                (("event", "status", k), v) for k, v in ev.status.items()
            ]
            refs += [
                (("event", k), getattr(ev, k))
                for k in ("travel", "host", "place_prefix", "time")
            ]
            for key, lex in refs:
                if lex is not None and lex not in src.lexicon:
                    fail(path, key, f"unknown lexicon {lex!r}")
        for i, rule in enumerate(spec.rules):
            conds = list(_iter_conds(rule.when, ("rules", i, "when")))
            for j, boost in enumerate(rule.boost):
                conds += list(_iter_conds(boost.when, ("rules", i, "boost", j, "when")))
            for cond, key in conds:
                if isinstance(cond.phrase, str) and cond.phrase not in src.lexicon:
                    fail(path, (*key, "phrase"), f"unknown lexicon {cond.phrase!r}")
                if cond.actor is not None:
                    if cond.actor.country:
                        check_codes(
                            path, (*key, "actor", "country"), cond.actor.country
                        )
                    for j, office in enumerate(cond.actor.office or []):
                        if office.removeprefix("former_") not in known_offices:
                            fail(
                                path,
                                (*key, "actor", "office", j),
                                f"unknown office {office!r}",
                            )
                if cond.countries is not None and cond.countries.any_of:
                    check_codes(
                        path, (*key, "countries", "any_of"), cond.countries.any_of
                    )
