"""Event extraction: an analysed item whose rules fired -> a typed ``Event``.

Input: an ``Analysis`` and the topics that fired; output: ``worker.models.Event`` with
kinds, status (PLOVER-style: announced = AGREE), actors with roles, location, time.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from worker.classify.matcher import Analysis, Mention
from worker.classify.rules import EventSpec
from worker.models import ActorRef, Event, EventKind, EventStatus

__all__ = ["build_unchecked", "extract_event"]

_M = TypeVar("_M", bound=BaseModel)


def build_unchecked(cls: type[_M], **values: Any) -> _M:
    """Construct a model from trusted, complete values without validation.

    Same result as ``model_construct`` when every field is given, at a fraction of
    its cost on the hot path (measured in benchmarks/classify.py).
    """
    obj = cls.__new__(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", set(values))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


_set = object.__setattr__

_STATUS_ORDER = ("cancelled", "postponed", "proposed", "announced", "held")
_ROLE_WINDOW = 40
"""Characters between an actor and the travel/host cue it is the subject of."""


def _cue_hits(an: Analysis, lexicon: str | None) -> list[tuple[str, int, int]]:
    if lexicon is None:
        return []
    return an.hits.get(lexicon, [])


def _status(an: Analysis, spec: EventSpec) -> EventStatus:
    found: dict[str, list[tuple[str, int, int]]] = {
        k: _cue_hits(an, v) for k, v in spec.status.items()
    }
    for terminal in ("cancelled", "postponed"):
        if found.get(terminal):
            return EventStatus(terminal)
    for fname in ("title", "summary"):
        best: tuple[int, str] | None = None
        for status in ("proposed", "announced", "held"):
            for f, s, _ in found.get(status, []):
                if f == fname and (best is None or s < best[0]):
                    best = (s, status)
        if best is not None:
            return EventStatus(best[1])
    return EventStatus.UNKNOWN


def _subject_before(
    ms: list[Mention], fname: str, pos: int, *, people_only: bool = False
) -> Mention | None:
    best = None
    for m in ms:
        if m.field != fname or m.end > pos or pos - m.end > _ROLE_WINDOW:
            continue
        if people_only and m.kind not in ("person", "title"):
            continue
        best = m
    return best


def _after(
    ms: list[Mention], fname: str, pos: int, kinds: tuple[str, ...]
) -> Mention | None:
    """The first mention of ``kinds`` after ``pos``, preferring people and titles."""
    if "person" in kinds and len(kinds) > 2:
        found = _after(ms, fname, pos, ("person", "title"))
        if found is not None:
            return found
        kinds = tuple(k for k in kinds if k not in ("person", "title"))
    for m in ms:
        if (
            m.field == fname
            and m.start >= pos
            and m.start - pos <= _ROLE_WINDOW
            and m.kind in kinds
        ):
            return m
    return None


def extract_event(an: Analysis, topics: tuple[str, ...], spec: EventSpec) -> Event:
    """The event the item reports, as far as its text tells."""
    kinds = tuple(EventKind(t) for t in ("summit", "visit") if t in topics)
    ms = an.mentions
    roles: dict[str, str] = {}
    host_countries: set[str] = set()
    destination: Mention | None = None
    for f, s, e in _cue_hits(an, spec.host):
        host = _subject_before(ms, f, s)
        guest = _after(ms, f, e, ("person", "title", "country"))
        if host is not None:
            roles.setdefault(host.identity(), "host")
            if host.country:
                host_countries.add(host.country)
        if guest is not None:
            roles.setdefault(guest.identity(), "visitor")
    for f, s, e in _cue_hits(an, spec.travel):
        visitor = _subject_before(ms, f, s, people_only=True)
        if visitor is not None:
            roles.setdefault(visitor.identity(), "visitor")
        dest = _after(ms, f, e, ("place", "country"))
        if (
            dest is not None
            and dest.country
            and (visitor is None or dest.country != visitor.country)
        ):
            host_countries.add(dest.country)
            if destination is None and dest.kind == "place":
                destination = dest
    visitor_countries = {
        m.country for m in ms if roles.get(m.identity()) == "visitor" and m.country
    }
    actors: list[ActorRef] = []
    seen: set[str] = set()
    for m in ms:
        if (
            m.kind not in ("person", "title")
            or not m.country
            or not (m.official or m.former)
        ):
            continue
        ident = m.identity()
        if ident in seen:
            continue
        seen.add(ident)
        role = roles.get(ident)
        if role is None:
            role = (
                "host"
                if m.country in host_countries and m.country not in visitor_countries
                else "participant"
            )
        actors.append(
            build_unchecked(
                ActorRef,
                name=m.name,
                country=m.country,
                kind="person",
                office=m.office,
                role=role,
                mention=m.text,
            )
        )
    person_countries = {a.country for a in actors}
    for m in ms:
        if m.kind != "country" or not m.country or m.country in person_countries:
            continue
        ident = m.identity()
        if ident in seen:
            continue
        seen.add(ident)
        role = roles.get(ident)
        if role is None and m.country in host_countries:
            role = "host"
        actors.append(
            build_unchecked(
                ActorRef,
                name=m.name,
                country=m.country,
                kind="country",
                office=None,
                role=role,
                mention=m.text,
            )
        )
    for code in sorted(host_countries - {a.country for a in actors}):
        name = an.gaz.countries[code].name if code in an.gaz.countries else code
        actors.append(
            build_unchecked(
                ActorRef,
                name=name,
                country=code,
                kind="country",
                office=None,
                role="host",
                mention=None,
            )
        )
    location = destination.name if destination is not None else None
    prefixes = _cue_hits(an, spec.place_prefix)
    for m in ms:
        if location is not None:
            break
        if m.kind != "place":
            continue
        if any(f == m.field and 0 <= m.start - e <= 1 for f, _, e in prefixes):
            location = m.name
            break
    when = None
    times = sorted(_cue_hits(an, spec.time), key=lambda h: (h[0] != "title", h[1]))
    if times:
        f, s, e = times[0]
        when = an.span_text(f, s, e)
    countries = tuple(sorted({a.country for a in actors}))
    return build_unchecked(
        Event,
        kinds=kinds,
        status=_status(an, spec),
        actors=tuple(actors),
        countries=countries,
        location=location,
        when=when,
    )
