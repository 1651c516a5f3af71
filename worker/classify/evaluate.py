"""Evaluation: labelled JSONL (format of ../shared/eval/dev.jsonl) -> precision,
recall and F1 for alert-vs-none and per topic, plus the misclassified items.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from worker.classify.ruleset import Ruleset
from worker.errors import FeedwatchError
from worker.models import Decision, Item

__all__ = [
    "EvalReport",
    "LabelledItem",
    "Score",
    "evaluate",
    "item_from_json",
    "read_labelled",
]

TOPICS = ("summit", "visit")


class LabelError(FeedwatchError, ValueError):
    """A labels file is malformed: names the file and line."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path, self.line = path, line
        super().__init__(f"{path}:{line}: {problem}")


@dataclass(frozen=True, slots=True)
class LabelledItem:
    """An item with its expected labels."""

    item: Item
    labels: frozenset[str]
    note: str = ""


@dataclass(slots=True)
class Score:
    """Counts and the figures derived from them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, expected: bool, got: bool) -> None:
        """Count one decision."""
        if expected and got:
            self.tp += 1
        elif got:
            self.fp += 1
        elif expected:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float:
        """tp / (tp + fp); 1.0 when nothing was predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """tp / (tp + fn); 1.0 when nothing was expected."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """JSON-ready figures."""
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
        }


@dataclass(slots=True)
class EvalReport:
    """Scores for alert-vs-none and per topic, and the items that were wrong."""

    total: int = 0
    alert: Score = field(default_factory=Score)
    topics: dict[str, Score] = field(
        default_factory=lambda: {t: Score() for t in TOPICS}
    )
    wrong: list[tuple[LabelledItem, Decision]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready report (``feedwatch eval --json``)."""
        return {
            "total": self.total,
            "alert": self.alert.as_dict(),
            "topics": {t: s.as_dict() for t, s in self.topics.items()},
            "misclassified": [
                {
                    "id": li.item.id,
                    "expected": sorted(li.labels),
                    "got": list(d.topics),
                    "title": li.item.title,
                    "rules": list(d.rules),
                }
                for li, d in self.wrong
            ],
        }


def _parse_date(value: object) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            if len(value) == 10:
                d = date.fromisoformat(value)
                return datetime(d.year, d.month, d.day, tzinfo=UTC)
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"'published' is not an ISO date: {value!r}") from None
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    raise ValueError(f"'published' must be a string, got {type(value).__name__}")


def item_from_json(data: dict[str, Any], fallback_id: str) -> Item:
    """An Item from a JSON object with title/summary/published/source/url."""
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    for key in ("title", "summary", "source", "url"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ValueError(f"{key!r} must be a string")
    return Item(
        id=str(data.get("id") or fallback_id),
        title=data.get("title") or "",
        summary=data.get("summary") or "",
        published=_parse_date(data.get("published")),
        source=data.get("source"),
        url=data.get("url"),
    )


def read_labelled(path: str | os.PathLike[str]) -> list[LabelledItem]:
    """Read a labels file; every bad line is a LabelError naming file and line."""
    shown = str(path)
    out: list[LabelledItem] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LabelError(shown, 0, f"cannot read: {e}") from e
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            item = item_from_json(data, f"line-{n}")
            labels = data.get("labels", [])
            if not isinstance(labels, list) or not all(
                isinstance(x, str) for x in labels
            ):
                raise ValueError("'labels' must be a list of strings")
            unknown = set(labels) - set(TOPICS)
            if unknown:
                raise ValueError(f"unknown labels {sorted(unknown)}")
        except (json.JSONDecodeError, ValueError) as e:
            raise LabelError(shown, n, str(e)) from None
        out.append(LabelledItem(item, frozenset(labels), str(data.get("note") or "")))
    return out


def evaluate(items: list[LabelledItem], ruleset: Ruleset) -> EvalReport:
    """Classify every labelled item and score the decisions."""
    report = EvalReport()
    for li in items:
        d = ruleset.classify(li.item)
        report.total += 1
        got = set(d.topics) & set(TOPICS)
        report.alert.add(bool(li.labels), d.alert)
        for t in TOPICS:
            report.topics[t].add(t in li.labels, t in got)
        if got != set(li.labels) or d.alert != bool(li.labels):
            report.wrong.append((li, d))
    return report
