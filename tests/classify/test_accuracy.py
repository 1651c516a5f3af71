"""Measured accuracy: the dev set targets, and the hand-labelled extra items."""

from __future__ import annotations

import pytest

from worker.classify import Ruleset
from worker.classify.evaluate import evaluate, read_labelled

from .helpers import DATA, SHARED

DEV = SHARED / "eval" / "dev.jsonl"


def test_dev_set_meets_targets(ruleset: Ruleset) -> None:
    if not DEV.is_file():
        pytest.skip(f"{DEV} not present")
    items = read_labelled(DEV)
    assert len(items) >= 100
    report = evaluate(items, ruleset)
    assert report.alert.f1 >= 0.95, report.as_dict()
    for topic, score in report.topics.items():
        assert score.f1 >= 0.90, (topic, report.as_dict())


def test_extra_labelled_items(ruleset: Ruleset) -> None:
    """Real headlines from other outlets and newer events (2025-2026), labelled by
    hand; not used to write the rules' first draft."""
    items = read_labelled(DATA / "extra_labelled.jsonl")
    assert len(items) >= 30
    assert all(li.note for li in items)
    report = evaluate(items, ruleset)
    assert report.alert.f1 >= 0.90, report.as_dict()
    for topic, score in report.topics.items():
        assert score.f1 >= 0.85, (topic, report.as_dict())
