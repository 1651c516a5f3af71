"""Explanations: why each rule fired or did not, for ``rules explain`` and digests.

Input: a ``Ruleset`` and an ``Item``; output: plain text lines (rules with their
condition trees marked ok/FAIL, the evidence, the actors found and the event).
"""

from __future__ import annotations

from worker.classify.matcher import Trace
from worker.classify.ruleset import Ruleset
from worker.models import Decision, Item

__all__ = ["describe_decision", "explain"]


def describe_decision(decision: Decision) -> list[str]:
    """The decision in a few lines: verdict, topics, rules, evidence and event."""
    verdict = "ALERT" if decision.alert else "no alert"
    out = [
        f"decision: {verdict}; topics: {', '.join(decision.topics) or '-'}; "
        f"rules: {', '.join(decision.rules) or '-'}; score: {decision.score}"
    ]
    for ev in decision.evidence:
        who = f" -> {ev.actor}" if ev.actor else ""
        out.append(
            f"  evidence [{ev.rule}] {ev.field}[{ev.start}:{ev.end}] {ev.kind} {ev.text!r}{who}"
        )
    e = decision.event
    if e is not None:
        out.append(
            f"event: kinds={','.join(e.kinds) or '-'} status={e.status} "
            f"countries={','.join(e.countries) or '-'} location={e.location or '-'} "
            f"when={e.when or '-'}"
        )
        for a in e.actors:
            office = f" ({a.office})" if a.office else ""
            out.append(
                f"  actor {a.name} [{a.country}]{office} role={a.role or '-'} mention={a.mention!r}"
            )
    return out


def explain(ruleset: Ruleset, item: Item) -> list[str]:
    """Every rule's condition tree on this item, then the decision."""
    an = ruleset.analyse(item)
    lines = ["actors found:"]
    for m in an.mentions:
        tag = "official" if m.official else (m.office or m.kind)
        lines.append(
            f"  {m.field}: {m.text!r} -> {m.name} [{m.country or '?'}] {m.kind}, {tag}"
        )
    if not an.mentions:
        lines.append("  (none)")
    for rule in ruleset.rules:
        trace: Trace = []
        fired, score, _ = rule.evaluate(an, trace)
        state = "FIRED" if fired else "did not fire"
        lines.append(
            f"rule {rule.spec.id}: {state} (score {score:g}, threshold {rule.spec.threshold:g})"
        )
        for depth, label, ok, detail in trace:
            mark = "ok  " if ok else "FAIL"
            extra = f": {detail}" if detail else ""
            lines.append(f"  {'  ' * depth}{mark} {label}{extra}")
    lines += describe_decision(ruleset.classify(item))
    return lines
