"""Classification stage: Items -> Decisions by declarative YAML rules and a gazetteer.

``load_ruleset(path)`` compiles a rules directory once; ``classify(items, ruleset)``
is the pure entry point (no I/O) that the daemon and ``feedwatch classify`` call.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import worker
from worker.classify.rules import load_rule_source
from worker.classify.ruleset import Ruleset
from worker.models import Decision, Item

__all__ = ["Ruleset", "bundled_rules_dir", "classify", "load_ruleset"]


def bundled_rules_dir() -> Path:
    """The rules shipped with feedwatch (wheel: worker/rules; checkout: ./rules)."""
    try:
        packaged = importlib.resources.files("worker") / "rules"
        if packaged.is_dir():
            return Path(str(packaged))
    except (ModuleNotFoundError, NotADirectoryError):
        pass
    return Path(worker.__file__).resolve().parent.parent / "rules"


def load_ruleset(path: str | os.PathLike[str] | None = None) -> Ruleset:
    """Load, validate and compile a rules directory (None: the bundled rules).

    Raises RuleError naming the file, line and key of any mistake.
    """
    return Ruleset(load_rule_source(bundled_rules_dir() if path is None else path))


def classify(items: Iterable[Item], ruleset: Ruleset) -> Iterator[Decision]:
    """One Decision per item, in order; pure (no I/O)."""
    for item in items:
        yield ruleset.classify(item)
