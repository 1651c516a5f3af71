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


def load_ruleset(
    path: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Ruleset:
    """Load, validate and compile a rules directory (None: the bundled rules).

    With a ``cache_dir`` (not None or empty), a ruleset compiled before from the
    same files is loaded from there instead (``worker.classify.cache``). Raises RuleError naming the
    file, line and key of any mistake.
    """
    root = bundled_rules_dir() if path is None else Path(path)
    if not cache_dir:
        return _compile(root)
    from worker.classify.cache import load_cached

    return load_cached(root, cache_dir, _compile)


def _compile(root: Path) -> Ruleset:
    return Ruleset(load_rule_source(root))


def classify(items: Iterable[Item], ruleset: Ruleset) -> Iterator[Decision]:
    """One Decision per item, in order; pure (no I/O)."""
    for item in items:
        yield ruleset.classify(item)
