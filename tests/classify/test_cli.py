"""CLI plumbing of ``rules lint|test|explain|suggest`` and ``eval`` via CliRunner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from worker.classify import bundled_rules_dir
from worker.classify.cli import eval_command, rules
from worker.errors import RuleError

from .helpers import DATA, SHARED


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _rules_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "rules"
    shutil.copytree(bundled_rules_dir(), dest)
    return dest


def test_lint_bundled_ok(runner: CliRunner) -> None:
    res = runner.invoke(rules, ["lint", "--rules", str(bundled_rules_dir())])
    assert res.exit_code == 0, res.output
    assert "ok" in res.output and "rules" in res.output


def test_lint_broken_exits_1_and_names_line(runner: CliRunner, tmp_path: Path) -> None:
    shutil.copy(DATA / "broken" / "unknown_key.yaml", tmp_path / "r.yaml")
    res = runner.invoke(rules, ["lint", "--rules", str(tmp_path)])
    assert res.exit_code == 1
    assert "r.yaml:8: rules.0.severty: unknown key" in res.output


def test_test_passes_on_bundled_rules(runner: CliRunner) -> None:
    res = runner.invoke(rules, ["test", "--rules", str(bundled_rules_dir())])
    assert res.exit_code == 0, res.output
    assert " 0 failed" in res.output


def test_test_exits_1_on_failing_example(runner: CliRunner, tmp_path: Path) -> None:
    d = _rules_copy(tmp_path)
    text = (d / "visit.yaml").read_text()
    text = text.replace(
        '        - "Chinese tourists visit Japan in record numbers"',
        '        - "Chinese tourists visit Japan in record numbers"\n'
        '        - "Japanese foreign minister to visit China on Saturday"',
    )
    (d / "visit.yaml").write_text(text)
    res = runner.invoke(rules, ["test", "--rules", str(d), "visit-official-travel"])
    assert res.exit_code == 1
    assert (
        "FAIL visit-official-travel negative: Japanese foreign minister" in res.output
    )


def test_test_load_error_is_raised(runner: CliRunner, tmp_path: Path) -> None:
    shutil.copy(DATA / "broken" / "wrong_type.yaml", tmp_path / "r.yaml")
    res = runner.invoke(rules, ["test", "--rules", str(tmp_path)])
    assert isinstance(res.exception, RuleError)


def test_explain_text_shows_fired_and_failed_conditions(runner: CliRunner) -> None:
    res = runner.invoke(
        rules,
        [
            "explain",
            "--rules",
            str(bundled_rules_dir()),
            "Kishida to meet Xi in Bangkok",
            "--published",
            "2022-11-15",
        ],
    )
    assert res.exit_code == 0, res.output
    out = res.output
    assert "rule summit-officials-meet: FIRED" in out
    assert "rule visit-official-travel: did not fire" in out
    assert "FAIL phrase travel: no match" in out
    assert "'Kishida' -> Fumio Kishida [JP]" in out
    assert "decision: ALERT; topics: summit" in out
    assert "event: kinds=summit status=announced" in out


def test_explain_item_from_jsonl(runner: CliRunner, tmp_path: Path) -> None:
    f = tmp_path / "items.jsonl"
    rows = [
        {
            "id": "a",
            "title": "Everest sees 807 climbers",
            "summary": "Climbers reached the summit.",
        },
        {
            "id": "b",
            "title": "Yoon arrives in Japan for summit with Kishida",
            "published": "2023-03-16",
        },
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = runner.invoke(
        rules,
        [
            "explain",
            "--rules",
            str(bundled_rules_dir()),
            "--item",
            str(f),
            "--line",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "topics: summit, visit" in res.output
    res = runner.invoke(
        rules, ["explain", "--rules", str(bundled_rules_dir()), "--item", str(f)]
    )
    assert "decision: no alert" in res.output


def test_explain_needs_text_or_item(runner: CliRunner) -> None:
    res = runner.invoke(rules, ["explain", "--rules", str(bundled_rules_dir())])
    assert res.exit_code == 2


def test_suggest_drafts_a_loadable_rule(runner: CliRunner, tmp_path: Path) -> None:
    art = tmp_path / "a.txt"
    art.write_text(
        "Japan's Ishiba to visit Seoul for talks with Lee\n"
        "Japanese Prime Minister Shigeru Ishiba will travel to Seoul next week to hold a summit.\n"
    )
    res = runner.invoke(
        rules,
        [
            "suggest",
            "--rules",
            str(bundled_rules_dir()),
            str(art),
            "--id",
            "ishiba-seoul",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Shigeru Ishiba" in res.output
    d = _rules_copy(tmp_path)
    (d / "draft.yaml").write_text(res.output)
    lint = runner.invoke(rules, ["test", "--rules", str(d), "ishiba-seoul"])
    assert lint.exit_code == 0, lint.output


def test_eval_prints_scores_and_misclassified(
    runner: CliRunner, tmp_path: Path
) -> None:
    f = tmp_path / "labels.jsonl"
    rows = [
        {
            "id": "p",
            "title": "Kishida to meet Xi in Bangkok",
            "published": "2022-11-15",
            "labels": ["summit"],
        },
        {"id": "n", "title": "Everest sees 807 climbers", "labels": []},
        {"id": "m", "title": "Nothing to see here", "labels": ["visit"]},
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows))
    res = runner.invoke(eval_command, ["--rules", str(bundled_rules_dir()), str(f)])
    assert res.exit_code == 0, res.output
    assert "alert" in res.output and "summit" in res.output and "visit" in res.output
    assert "m: expected visit, got none: Nothing to see here" in res.output
    res = runner.invoke(
        eval_command, ["--rules", str(bundled_rules_dir()), str(f), "--json"]
    )
    data = json.loads(res.output)
    assert data["alert"]["tp"] == 1 and data["alert"]["fn"] == 1
    assert [m["id"] for m in data["misclassified"]] == ["m"]


def test_eval_bad_labels_name_file_and_line(runner: CliRunner, tmp_path: Path) -> None:
    f = tmp_path / "labels.jsonl"
    f.write_text(
        '{"id": "a", "title": "x", "labels": []}\n{"id": "b", "labels": ["meeting"]}\n'
    )
    res = runner.invoke(eval_command, ["--rules", str(bundled_rules_dir()), str(f)])
    assert res.exception is not None
    assert f"{f}:2: unknown labels" in str(res.exception)


def test_eval_dev_set(runner: CliRunner) -> None:
    dev = SHARED / "eval" / "dev.jsonl"
    if not dev.is_file():
        pytest.skip("dev set not present")
    res = runner.invoke(
        eval_command, ["--rules", str(bundled_rules_dir()), str(dev), "--json"]
    )
    assert json.loads(res.output)["total"] == 121
