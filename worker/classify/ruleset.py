"""Compiled rule set: validated specs -> one automaton plus compiled rules.

Input: a ``RuleSource``; output: ``Ruleset.classify(item) -> Decision`` (pure, no I/O),
with evidence spans and the extracted ``Event``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.classify.events import build_unchecked as _build
from worker.classify.events import extract_event
from worker.classify.gazetteer import Gazetteer
from worker.classify.matcher import (
    ActorNode,
    Analysis,
    Compiler,
    CountriesNode,
    GroupNode,
    NearNode,
    Node,
    PhraseNode,
    Scanner,
    Span,
    Trace,
    scan,
    scan_more,
)
from worker.classify.rules import RuleSource, RuleSpec
from worker.classify.text import ascii_words, normalize, words
from worker.models import Decision, Evidence, Item

__all__ = ["CompiledRule", "Ruleset"]


def _lexicons(node: Node) -> set[str]:
    """Every lexicon a compiled condition reads."""
    if isinstance(node, PhraseNode):
        return {node.lexicon}
    if isinstance(node, NearNode):
        return _lexicons(node.a) | _lexicons(node.b)
    if isinstance(node, GroupNode):
        out: set[str] = set()
        for child in (*node.all, *node.any, *node.none):
            out |= _lexicons(child)
        return out
    return set()


def _required(node: Node) -> frozenset[str] | None:
    """Lexicons of which at least one must hit for ``node`` to hold (None: unknown)."""
    if isinstance(node, PhraseNode):
        return frozenset({node.lexicon})
    if isinstance(node, NearNode):
        return _required(node.a) or _required(node.b)
    if isinstance(node, GroupNode):
        for child in node.all:
            need = _required(child)
            if need is not None:
                return need
        if node.any:
            sets = [_required(c) for c in node.any]
            if all(x is not None for x in sets):
                return frozenset().union(*sets)  # type: ignore[arg-type]
    return None


Anchors = dict[str, tuple[frozenset[str], ...]]
"""One word of each key -> the words of the keys it was chosen for."""


def _anchors(auto: Scanner, wanted: Callable[[Any], bool]) -> Anchors | None:
    """The words of each ``wanted`` key (by its automaton value) that text without
    CJK, kana or hangul can hold, under its longest word. None when such a key has
    no word (no prefilter then)."""
    out: dict[str, set[frozenset[str]]] = {}
    for key, value in auto.exact.items():
        if not wanted(value):
            continue
        found = words(key)
        if found is None:
            continue  # a CJK key: only in text that is always scanned
        if not found:
            return None
        out.setdefault(max(found, key=len), set()).add(frozenset(found))
    return {w: tuple(sorted(v, key=sorted)) for w, v in out.items()}


def _may_hold(anchors: Anchors, found: set[str]) -> bool:
    """Whether every word of some key is among ``found``."""
    for w in anchors.keys() & found:  # in C, over the (few) words found
        for k in anchors[w]:
            if k <= found:
                return True
    return False


def _needs_actor(node: Node) -> bool:
    """Whether ``node`` can hold only if the item names some actor (a gazetteer
    alias hit: mentions are resolved from those alone)."""
    if isinstance(node, ActorNode):
        return node.min >= 1
    if isinstance(node, CountriesNode):
        return node.min >= 1 or node.any_of is not None
    if isinstance(node, NearNode):
        return _needs_actor(node.a) or _needs_actor(node.b)
    if isinstance(node, GroupNode):
        if any(_needs_actor(c) for c in node.all):
            return True
        return bool(node.any) and all(_needs_actor(c) for c in node.any)
    return False


def _no_alert(item_id: str) -> Decision:
    return _build(
        Decision,
        id=item_id,
        alert=False,
        topics=(),
        rules=(),
        score=0.0,
        severity=None,
        evidence=(),
        event=None,
    )


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to evaluate: its spec, gate condition and score boosts."""

    spec: RuleSpec
    when: Node
    boosts: tuple[tuple[Node, float], ...]

    def evaluate(
        self, an: Analysis, trace: Trace | None = None
    ) -> tuple[bool, float, list[Span]]:
        """(fired, score, evidence spans) for one analysed item."""
        ok, spans = self.when.eval(an, trace)
        if not ok:
            return False, 0.0, []
        score = self.spec.weight
        for node, weight in self.boosts:
            hit, extra = node.eval(an, trace, 1)
            if hit:
                score += weight
                if weight > 0:
                    spans = spans + extra
        return score >= self.spec.threshold, score, spans


class Ruleset:
    """The compiled rules and gazetteer; build with ``load_ruleset``."""

    def __init__(self, source: RuleSource) -> None:
        self.source = source
        self.gazetteer = Gazetteer(source)
        compiler = Compiler(source, self.gazetteer)
        self.rules: tuple[CompiledRule, ...] = tuple(
            CompiledRule(
                spec,
                compiler.cond(spec.when, spec.id),
                tuple((compiler.cond(b.when, spec.id), b.weight) for b in spec.boost),
            )
            for spec in source.rules
        )
        used = set().union(*(_lexicons(r.when) for r in self.rules))
        for r in self.rules:
            for node, _ in r.boosts:
                used |= _lexicons(node)
        ev = source.event
        event_only = {
            x
            for x in (*ev.status.values(), ev.travel, ev.host, ev.place_prefix, ev.time)
            if x is not None and x not in used
        }
        # Cues only event extraction reads ("in", "at", weekdays) are frequent and
        # matter only once a rule fired: a second automaton scans them then, with
        # word boundaries built into its keys ("in" would hit inside most words).
        self._automaton: Scanner = compiler.automaton(
            set(compiler.lexicons) - event_only
        )
        self._event_automaton: Scanner = compiler.automaton(
            event_only, gazetteer=False, padded=True
        )
        self.lexicons = compiler.lexicons
        # Every rule needs a hit of one of these lexicons; an item with none of them
        # cannot fire a rule. None: some rule can fire without a phrase.
        needs = [_required(r.when) for r in self.rules]
        self._needs: tuple[frozenset[str] | None, ...] = tuple(needs)
        self._triggers: frozenset[str] | None = (
            None if any(n is None for n in needs) else frozenset().union(*needs)  # type: ignore[arg-type]
        )
        # Every rule needs an actor too (an alias hit of the gazetteer), or not.
        self._needs_actor = all(_needs_actor(r.when) for r in self.rules)
        # Words of the keys of those lexicons (and of the aliases): text without CJK
        # that does not hold all words of one of them cannot fire a rule, and is not
        # scanned (``_may_fire``).
        self._anchors: tuple[Anchors, ...] | None = None
        triggers = self._triggers
        if triggers is not None:
            sets = [_anchors(self._automaton, lambda v: not triggers.isdisjoint(v[1]))]
            if self._needs_actor:
                sets.append(_anchors(self._automaton, lambda v: bool(v[3])))
            if all(x is not None for x in sets):
                self._anchors = tuple(x for x in sets if x is not None)

    def analyse(self, item: Item) -> Analysis:
        """Scan one item (phrase hits and actor mentions), for rules and explain."""
        an = scan(self._automaton, self.gazetteer, item)
        scan_more(self._event_automaton, an)
        return an

    def classify(self, item: Item) -> Decision:
        """The verdict on one item: rules fired, topics, score, evidence and event."""
        if not self._may_fire(item):
            return _no_alert(item.id)
        an = scan(self._automaton, self.gazetteer, item)
        if self._triggers is not None and self._triggers.isdisjoint(an.hits):
            return _no_alert(item.id)
        if self._needs_actor and not an.raw:
            return _no_alert(item.id)
        fired: list[tuple[RuleSpec, float, list[Span]]] = []
        hits = an.hits
        for rule, need in zip(self.rules, self._needs, strict=True):
            if need is not None and need.isdisjoint(hits):
                continue  # its gate cannot hold
            ok, score, spans = rule.evaluate(an)
            if ok:
                fired.append((rule.spec, score, spans))
        return self.decide(item, an, fired)

    def _may_fire(self, item: Item) -> bool:
        """False when no rule can fire on the item, which is then not scanned: the
        words of a key the scan finds (word-bounded) are whole words of the text, so
        text without CJK, kana or hangul that lacks a word of every trigger key
        (or of every alias, when each rule needs an actor) fires no rule."""
        anchors = self._anchors
        if anchors is None:
            return True
        found: set[str] = set()
        for text in (item.title, item.summary):
            if not text:
                continue
            ws = ascii_words(text) if text.isascii() else words(normalize(text))
            if ws is None:
                return True
            found.update(ws)
        return all(_may_hold(a, found) for a in anchors)

    def decide(
        self, item: Item, an: Analysis, fired: list[tuple[RuleSpec, float, list[Span]]]
    ) -> Decision:
        """Build the Decision from the rules that fired."""
        if not fired:
            return _no_alert(item.id)
        if self.source.event.status.get("held") not in an.hits:
            scan_more(self._event_automaton, an)
        topics: list[str] = []
        evidence: list[Evidence] = []
        seen: set[tuple[str, str, int, int]] = set()
        for spec, _, spans in fired:
            topics += [t for t in spec.topics if t not in topics]
            for fname, s, e, kind, actor in spans:
                key = (spec.id, fname, s, e)
                if key in seen:
                    continue
                seen.add(key)
                evidence.append(
                    _build(
                        Evidence,
                        rule=spec.id,
                        field=fname,
                        start=s,
                        end=e,
                        text=an.span_text(fname, s, e),
                        kind=kind,
                        actor=actor,
                    )
                )
        order = ("summit", "visit")
        topics.sort(key=lambda t: (order.index(t) if t in order else 9, t))
        alerting = [f for f in fired if f[0].severity == "alert"]
        best = max(fired, key=lambda f: f[1])
        return _build(
            Decision,
            id=item.id,
            alert=bool(alerting),
            topics=tuple(topics),
            rules=tuple(f[0].id for f in fired),
            score=round(best[1], 3),
            severity="alert" if alerting else best[0].severity,
            evidence=tuple(evidence),
            event=extract_event(an, tuple(topics), self.source.event),
        )
