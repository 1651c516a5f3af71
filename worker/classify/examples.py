"""Rule self-tests: each rule's own positive and negative examples (``rules test``).

Input: a ``Ruleset``; output: one ``ExampleResult`` per example, passed or failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from worker.classify.rules import Example
from worker.classify.ruleset import Ruleset
from worker.models import Item

__all__ = ["ExampleResult", "example_item", "run_examples"]


@dataclass(frozen=True, slots=True)
class ExampleResult:
    """How one example fared: ``expected`` is whether the rule should fire."""

    rule: str
    expected: bool
    fired: bool
    item: Item

    @property
    def passed(self) -> bool:
        """The rule fired exactly when the example says it should."""
        return self.expected == self.fired


def example_item(example: str | Example, ident: str) -> Item:
    """An Item from a rule example (a bare string is the title)."""
    if isinstance(example, str):
        return Item(id=ident, title=example)
    published = None
    if example.published is not None:
        d = example.published
        published = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return Item(
        id=ident, title=example.title, summary=example.summary, published=published
    )


def run_examples(
    ruleset: Ruleset, rule_ids: set[str] | None = None
) -> list[ExampleResult]:
    """Run every rule's examples through the whole rule set."""
    results: list[ExampleResult] = []
    for rule in ruleset.rules:
        spec = rule.spec
        if rule_ids is not None and spec.id not in rule_ids:
            continue
        cases = [(True, e) for e in spec.examples.positive]
        cases += [(False, e) for e in spec.examples.negative]
        for n, (expected, example) in enumerate(cases):
            item = example_item(example, f"{spec.id}#{n}")
            decision = ruleset.classify(item)
            results.append(
                ExampleResult(spec.id, expected, spec.id in decision.rules, item)
            )
    return results
