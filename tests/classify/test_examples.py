"""Every bundled rule's own positive and negative examples (``rules test``)."""

from __future__ import annotations

import pytest

from worker.classify import Ruleset, load_ruleset
from worker.classify.examples import run_examples

_RULES = load_ruleset()


@pytest.mark.parametrize("rule_id", [r.spec.id for r in _RULES.rules])
def test_rule_examples_pass(ruleset: Ruleset, rule_id: str) -> None:
    results = run_examples(ruleset, {rule_id})
    assert any(r.expected for r in results), "a rule needs positive examples"
    assert any(not r.expected for r in results), "a rule needs negative examples"
    failed = [(r.expected, r.item.title) for r in results if not r.passed]
    assert failed == []
