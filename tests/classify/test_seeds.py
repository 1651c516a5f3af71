"""The five seed articles fire the topics their records in seeds/ list."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import yaml

from worker.classify import Ruleset
from worker.models import Item

from .helpers import REPO, SHARED

SEEDS = sorted((REPO / "seeds").glob("*.yaml"))


def test_one_record_per_seed_article() -> None:
    if not (SHARED / "seeds").is_dir():
        pytest.skip("../shared/seeds not present")
    articles = sorted(p.name for p in (SHARED / "seeds").glob("*.txt"))
    records = sorted(yaml.safe_load(p.read_text())["article"] for p in SEEDS)
    assert records == articles


@pytest.mark.parametrize("record", SEEDS, ids=lambda p: p.stem)
def test_seed_fires_as_recorded(ruleset: Ruleset, record: object) -> None:
    rec = yaml.safe_load(record.read_text())  # type: ignore[attr-defined]
    assert set(rec) >= {"article", "outlet", "date", "headline", "facts", "topics"}
    article = SHARED / "seeds" / rec["article"]
    if not article.is_file():
        pytest.skip(f"{article} not present")
    d: date = rec["date"]
    item = Item(
        id=rec["article"],
        title=rec["headline"],
        summary=article.read_text(encoding="utf-8"),
        published=datetime(d.year, d.month, d.day, tzinfo=UTC),
    )
    decision = ruleset.classify(item)
    assert decision.alert
    assert set(rec["topics"]) <= set(decision.topics)
    assert decision.evidence
    assert decision.event is not None
    assert set(decision.event.countries) & {"CN", "JP", "KR"}


def test_seed_article_body_alone_fires(ruleset: Ruleset) -> None:
    """Without our headline, the article text itself must carry the decision."""
    if not (SHARED / "seeds").is_dir():
        pytest.skip("../shared/seeds not present")
    for rec_path in SEEDS:
        rec = yaml.safe_load(rec_path.read_text())
        text = (SHARED / "seeds" / rec["article"]).read_text(encoding="utf-8")
        d = ruleset.classify(
            Item(
                id="s",
                summary=text,
                published=datetime(
                    rec["date"].year, rec["date"].month, rec["date"].day, tzinfo=UTC
                ),
            )
        )
        assert set(rec["topics"]) <= set(d.topics), rec["article"]
