"""Fixtures for the classify tests: the bundled rule set, compiled once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from worker.classify import Ruleset, load_ruleset
from worker.models import Decision

from .helpers import make_item

Judge = Callable[..., Decision]


@pytest.fixture(scope="session")
def ruleset() -> Ruleset:
    return load_ruleset()


@pytest.fixture
def judge(ruleset: Ruleset) -> Judge:
    def run(
        title: str,
        summary: str = "",
        published: str | None = None,
        source: str | None = None,
    ) -> Decision:
        return ruleset.classify(make_item(title, summary, published, source))

    return run
