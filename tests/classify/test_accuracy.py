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


@pytest.mark.parametrize(
    ("name", "alert_f1", "topic_f1"),
    [
        # Real items from ../shared/corpus/feeds (all outlets), labelled by hand and
        # NOT used to write the rules; only 9 are positive, so each miss costs a lot.
        ("holdout_real.jsonl", 0.75, 0.70),
        # Written probes of phrasings the dev set lacks (agency styles, CJK script,
        # former leaders, North Korea, Taiwan, Hong Kong, word traps).
        ("holdout_written.jsonl", 0.95, 0.90),
        # Written in the styles of outlets the other sets lack (Xinhua/CGTN, Kyodo/
        # NHK/Nikkei, Yonhap "(2nd LD)", native script) with hard negatives; first
        # run 0.912 / 0.945 / 0.918 before the third pass's general fixes.
        ("holdout3.jsonl", 0.95, 0.93),
    ],
)
def test_holdout_sets(
    ruleset: Ruleset, name: str, alert_f1: float, topic_f1: float
) -> None:
    """Floors at the second pass's figures minus a margin (docs/RULES.md has them);
    a rule change that loses held-out items fails here."""
    items = read_labelled(DATA / name)
    assert len(items) >= 70
    assert all(li.note for li in items)
    report = evaluate(items, ruleset)
    assert report.alert.f1 >= alert_f1, report.as_dict()
    for topic, score in report.topics.items():
        assert score.f1 >= topic_f1, (topic, report.as_dict())
