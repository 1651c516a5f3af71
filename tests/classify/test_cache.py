"""The compiled-ruleset cache: hits after the first load, misses on any edit, never
an error of its own, and compiled rules where rule files must be checked."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from worker.classify import bundled_rules_dir, load_ruleset
from worker.classify.cli import eval_command, rules
from worker.classify.examples import run_examples
from worker.config import load_settings
from worker.core import make_feedwatch
from worker.errors import RuleError

from .helpers import DATA, make_item

TINY = """\
lexicon:
  meeting: [meet~, talks]
rules:
  - id: talks
    topics: [summit]
    when: {phrase: meeting}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "r.yaml").write_text(TINY, encoding="utf-8")
    return d


def _pickles(cache: Path) -> list[Path]:
    return sorted(cache.glob("ruleset-*.pickle"))


def _load_logged(
    caplog: pytest.LogCaptureFixture, rules_dir: Path, cache: Path
) -> tuple[list[str], list[str]]:
    """Load with the cache; the rule ids and the cache's log messages."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="worker.classify.cache"):
        rs = load_ruleset(rules_dir, cache_dir=cache)
    return [r.spec.id for r in rs.rules], [r.getMessage() for r in caplog.records]


def test_second_load_comes_from_the_cache(
    tiny: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    ids, logged = _load_logged(caplog, tiny, cache)
    assert ids == ["talks"]
    assert any(m.startswith("rules cache: wrote") for m in logged)
    [stored] = _pickles(cache)
    assert stored.stat().st_mode & 0o777 == 0o600
    assert cache.stat().st_mode & 0o777 == 0o700
    assert not list(cache.glob(".ruleset-*"))  # no temp file left behind

    ids, logged = _load_logged(caplog, tiny, cache)
    assert ids == ["talks"]
    assert logged == [f"rules cache: loaded {stored}"]


def test_an_edited_rule_file_is_compiled_again(
    tiny: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    load_ruleset(tiny, cache_dir=cache)
    (tiny / "r.yaml").write_text(TINY.replace("id: talks", "id: talks-2"), "utf-8")
    ids, logged = _load_logged(caplog, tiny, cache)
    assert ids == ["talks-2"]
    assert any(m.startswith("rules cache: wrote") for m in logged)
    assert len(_pickles(cache)) == 2
    # A new file in the directory is an input too.
    (tiny / "more.yaml").write_text(
        "rules:\n  - id: extra\n    topics: [visit]\n    when: {phrase: [visit]}\n",
        "utf-8",
    )
    ids, _ = _load_logged(caplog, tiny, cache)
    assert ids == ["extra", "talks-2"]  # files merge in name order


def test_a_broken_edit_still_names_file_and_line(tiny: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load_ruleset(tiny, cache_dir=cache)
    (tiny / "r.yaml").write_text(TINY.replace("topics:", "topix:"), "utf-8")
    with pytest.raises(RuleError) as info:
        load_ruleset(tiny, cache_dir=cache)
    assert str(info.value) == f"{tiny / 'r.yaml'}:4: rules.0.topics: Field required"
    with pytest.raises(RuleError) as uncached:
        load_ruleset(tiny)
    assert str(uncached.value) == str(info.value)
    assert len(_pickles(cache)) == 1


@pytest.mark.parametrize(
    "damage",
    [b"", b"not a pickle at all", pickle.dumps({"a": "dict"})],
    ids=["empty", "garbage", "not-a-ruleset"],
)
def test_a_corrupt_cache_file_is_ignored_and_replaced(
    tiny: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: bytes
) -> None:
    cache = tmp_path / "cache"
    load_ruleset(tiny, cache_dir=cache)
    [stored] = _pickles(cache)
    stored.write_bytes(damage)
    ids, logged = _load_logged(caplog, tiny, cache)
    assert ids == ["talks"]
    assert any(m.startswith("rules cache: wrote") for m in logged)
    _, logged = _load_logged(caplog, tiny, cache)
    assert logged == [f"rules cache: loaded {stored}"]


def test_a_cache_file_others_can_write_is_not_loaded(
    tiny: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    load_ruleset(tiny, cache_dir=cache)
    [stored] = _pickles(cache)
    stored.chmod(0o666)
    _, logged = _load_logged(caplog, tiny, cache)
    assert any("not private" in m for m in logged)
    assert stored.stat().st_mode & 0o777 == 0o600  # replaced by a private copy


def test_an_unusable_cache_dir_only_costs_the_compile(
    tiny: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A path under a regular file cannot be created, even by root.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ids, logged = _load_logged(caplog, tiny, blocker / "cache")
    assert ids == ["talks"]
    assert any(m.startswith("rules cache: cannot write") for m in logged)
    ids, _ = _load_logged(caplog, tiny, blocker)  # the cache dir is a file
    assert ids == ["talks"]


def test_an_empty_cache_dir_means_no_cache(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert [r.spec.id for r in load_ruleset(tiny, cache_dir="").rules] == ["talks"]
    assert not list(tmp_path.rglob("ruleset-*"))


def test_missing_rules_are_still_the_compiler_s_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="not found"):
        load_ruleset(tmp_path / "nope", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_old_entries_are_pruned(tiny: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for i in range(10):
        (tiny / "r.yaml").write_text(TINY.replace("id: talks", f"id: t{i}"), "utf-8")
        load_ruleset(tiny, cache_dir=cache)
    assert len(_pickles(cache)) == 8


def test_the_cached_bundled_rules_decide_as_compiled(tmp_path: Path) -> None:
    compiled = load_ruleset(None)
    load_ruleset(None, cache_dir=tmp_path)
    cached = load_ruleset(None, cache_dir=tmp_path)
    assert cached is not compiled
    results = run_examples(cached)
    assert results and all(r.passed for r in results)
    items = [r.item for r in results]
    items.append(make_item("Kishida to meet Xi in Bangkok", published="2022-11-15"))
    for item in items:
        assert cached.classify(item) == compiled.classify(item)


def test_cache_dir_setting_defaults_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./feedwatch.yaml
    monkeypatch.delenv("FEEDWATCH_CONFIG", raising=False)
    monkeypatch.delenv("FEEDWATCH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert load_settings().cache_dir == str(tmp_path / "xdg" / "feedwatch")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_settings().cache_dir == str(tmp_path / "home/.cache/feedwatch")
    monkeypatch.setenv("FEEDWATCH_CACHE_DIR", str(tmp_path / "env"))
    assert load_settings().cache_dir == str(tmp_path / "env")


def test_feedwatch_loads_its_rules_through_the_cache(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        database=f"sqlite:///{tmp_path / 'fw.db'}",
        cache_dir=str(tmp_path / "cache"),
    )
    with make_feedwatch(settings) as fw:
        assert fw.ruleset.rules
    assert len(_pickles(tmp_path / "cache")) == 1


def test_rules_test_compiles_and_eval_uses_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEEDWATCH_CONFIG", raising=False)
    monkeypatch.setenv("FEEDWATCH_CACHE_DIR", str(cache))
    d = tmp_path / "rules"
    shutil.copytree(bundled_rules_dir(), d)
    runner = CliRunner()
    res = runner.invoke(rules, ["test", "--rules", str(d)])
    assert res.exit_code == 0, res.output
    assert not cache.exists()
    res = runner.invoke(eval_command, ["--rules", str(d), str(_labels(tmp_path))])
    assert res.exit_code == 0, res.output
    assert len(_pickles(cache)) == 1
    # A rule file broken since the eval: test still reports it from the file.
    shutil.copy(DATA / "broken" / "wrong_type.yaml", d / "zz.yaml")
    res = runner.invoke(rules, ["test", "--rules", str(d)])
    assert isinstance(res.exception, RuleError)
    assert f"{d / 'zz.yaml'}:6:" in str(res.exception)


def _labels(tmp_path: Path) -> Path:
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"id": "a", "title": "Kishida to meet Xi in Bangkok", '
        '"published": "2022-11-15T00:00:00Z", "labels": ["summit"]}\n',
        "utf-8",
    )
    return path


def test_key_changes_with_the_root_path(tiny: Path, tmp_path: Path) -> None:
    from worker.classify.cache import cache_key

    other = tmp_path / "other"
    shutil.copytree(tiny, other)
    assert cache_key(tiny) != cache_key(other)
    assert cache_key(tiny) == cache_key(Path(os.fspath(tiny)))
