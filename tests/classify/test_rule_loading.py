"""Rule files: every mistake is a RuleError naming the file, the line and the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from worker.classify import bundled_rules_dir, load_ruleset
from worker.errors import FeedwatchError, RuleError

from .helpers import DATA

BROKEN = DATA / "broken"


@pytest.mark.parametrize(
    ("name", "line", "field", "words"),
    [
        ("yaml_syntax.yaml", 3, None, "YAML syntax"),
        ("unknown_key.yaml", 8, "rules.0.severty", "unknown key"),
        ("wrong_type.yaml", 6, "rules.0.weight", "valid number"),
        ("unknown_country.yaml", 11, "rules.0.when.all.1.countries.any_of.1", "'XX'"),
        (
            "unknown_lexicon.yaml",
            11,
            "rules.0.when.all.1.near.b.phrase",
            "no_such_lexicon",
        ),
        ("unknown_person_country.yaml", 8, "people.1.country", "'ZZ'"),
        ("two_predicates.yaml", 6, "rules.0.when", "one predicate"),
        ("duplicate_key.yaml", 3, "lexicon.cues", "duplicate key"),
    ],
)
def test_broken_file_names_file_line_and_field(
    tmp_path: Path, name: str, line: int, field: str | None, words: str
) -> None:
    shutil.copy(BROKEN / name, tmp_path / name)
    with pytest.raises(RuleError) as info:
        load_ruleset(tmp_path)
    err = info.value
    assert isinstance(err, FeedwatchError)
    assert err.path == str(tmp_path / name)
    assert err.line == line
    assert err.field == field
    assert words in str(err)
    assert f"{name}:{line}" in str(err)


def test_duplicate_rule_id_across_files_names_both() -> None:
    with pytest.raises(RuleError) as info:
        load_ruleset(BROKEN / "dup_rule")
    err = info.value
    assert err.path.endswith("b.yaml")
    assert err.line == 5
    assert "duplicate rule id 'same'" in str(err)
    assert "a.yaml" in str(err)


def test_missing_directory_is_a_rule_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="not found"):
        load_ruleset(tmp_path / "nope")


def test_empty_directory_is_a_rule_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=r"no \*\.yaml"):
        load_ruleset(tmp_path)


def test_bundled_rules_dir_is_the_checkout_rules() -> None:
    d = bundled_rules_dir()
    assert (d / "actors.yaml").is_file()
    assert (d / "summit.yaml").is_file()
    assert load_ruleset(None).rules


def test_every_seeded_rule_alerts() -> None:
    rs = load_ruleset()
    assert {r.spec.severity for r in rs.rules} == {"alert"}
    assert {t for r in rs.rules for t in r.spec.topics} == {"summit", "visit"}
