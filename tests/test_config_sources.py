"""How settings are read without the heavy parsers: a JSON config file without
PyYAML, no FEEDWATCH_* variable without pydantic-settings; both give exactly what
PyYAML and pydantic-settings give."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from worker.config import Settings, _read_yaml, load_settings
from worker.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.upper().startswith("FEEDWATCH_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


# JSON documents, some of which PyYAML reads otherwise (or refuses).
DOCUMENTS = [
    '{"database": "sqlite:///x.db", "poll": {"jitter": 0.25, "batch": 10}}',
    '{"poll": {"jitter": 1e-1}}',  # PyYAML: the string "1e-1"
    '{"poll": {"jitter": 1.5E+2}}',
    '{"poll": {"jitter": NaN}}',
    '{"log_level":\t"INFO"}',  # PyYAML refuses the tab
    '{"rules": "\\ud83d\\ude00"}',  # PyYAML keeps the surrogates apart
    '{"rules": "a\\/b\\n\\"c\\""}',
    '{"rules": "x", "rules": "y"}',
    '{"a": {"b": [1, -0, 2.50, null, true, false]}, "c" :2}',
    '{"' + "k" * 1100 + '": 1}',  # PyYAML refuses a key this long
    "{}",
    "[1, 2]",
    '{"database": "sqlite:///x.db"} trailing',
    '\ufeff{"database": "sqlite:///x.db"}',
    '  \n{\n  "database": "sqlite:///x.db"\n}\n',
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_a_json_file_reads_as_pyyaml_reads_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        expected: object = yaml.safe_load(text)
    except yaml.YAMLError:
        expected = yaml.YAMLError
    try:
        got: object = _read_yaml(path)
    except ConfigError as e:
        got = yaml.YAMLError if "not valid YAML" in str(e) else e.expected
        if got != yaml.YAMLError:
            assert not isinstance(expected, dict)  # not a mapping: refused alike
            return
    if expected is None:
        expected = {}
    assert repr(got) == repr(expected)  # repr: NaN != NaN


def test_exponent_in_json_is_the_same_error_as_in_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    # json.loads would read 1000.0, a valid batch; PyYAML reads the string "1e3".
    path.write_text('{"poll": {"batch": 1e3}}', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.key_path == "poll.batch"
    assert "(got '1e3')" in str(err.value)


def test_a_value_by_another_name_goes_through_pydantic_settings() -> None:
    # pydantic-settings matches init names case-insensitively; so does Settings.
    s = Settings(DATABASE="sqlite:///upper.db")
    assert s.database == "sqlite:///upper.db"
    assert type(s) is Settings


def test_env_and_file_and_values_merge_nested_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        '{"fetch": {"timeout": 7, "max_redirects": 2}, "poll": {"batch": 5}}',
        encoding="utf-8",
    )
    plain = load_settings(path, poll={"concurrency": 3})
    assert (plain.fetch.timeout, plain.fetch.max_redirects) == (7.0, 2)
    assert (plain.poll.batch, plain.poll.concurrency) == (5, 3)
    monkeypatch.setenv("feedwatch_fetch__max_redirects", "4")  # any case
    env = load_settings(path, poll={"concurrency": 3})
    assert (env.fetch.timeout, env.fetch.max_redirects) == (7.0, 4)
    assert (env.poll.batch, env.poll.concurrency) == (5, 3)
    assert type(env) is Settings and env != plain


LOADS = """\
import sys
from worker.config import load_settings
s = load_settings(sys.argv[1])
print(s.database, "yaml" in sys.modules, "pydantic_settings" in sys.modules)
"""


def _load_in_fresh_process(path: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")}
    res = subprocess.run(
        [sys.executable, "-c", LOADS, str(path)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_heavy_parsers_are_imported_only_when_needed(tmp_path: Path) -> None:
    as_json = tmp_path / "c.json"
    as_json.write_text('{"database": "sqlite:///j.db"}', encoding="utf-8")
    as_yaml = tmp_path / "c.yaml"
    as_yaml.write_text("database: sqlite:///y.db\n", encoding="utf-8")
    assert _load_in_fresh_process(as_json) == "sqlite:///j.db False False"
    assert _load_in_fresh_process(as_yaml) == "sqlite:///y.db True False"
    assert (
        _load_in_fresh_process(as_json, FEEDWATCH_DATABASE="sqlite:///e.db")
        == "sqlite:///e.db False True"
    )
    # FEEDWATCH_CONFIG names the file; it is no setting.
    assert (
        _load_in_fresh_process(as_json, FEEDWATCH_CONFIG=str(as_yaml))
        == "sqlite:///j.db False False"
    )
