"""Settings: YAML + env + *_FILE, and errors that name the file, key path and fault."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import REPO

from worker.config import (
    EmailChannelSettings,
    WebhookChannelSettings,
    find_config_file,
    load_settings,
    parse_duration,
)
from worker.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("FEEDWATCH_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_without_a_file() -> None:
    s = load_settings()
    assert s.database == "sqlite:///data/feedwatch.db"
    assert s.rules is None
    assert [c.name for c in s.channels] == ["console", "file"]
    assert s.fetch.allow_private_addresses is False


def test_file_is_found_from_env_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "feedwatch.yaml").write_text("log_level: DEBUG\n")
    assert find_config_file(None) == Path("feedwatch.yaml")
    assert load_settings().log_level == "DEBUG"
    other = _write(tmp_path, "log_level: ERROR\n")
    monkeypatch.setenv("FEEDWATCH_CONFIG", str(other))
    assert load_settings().log_level == "ERROR"
    assert load_settings(tmp_path / "feedwatch.yaml").log_level == "DEBUG"


def test_env_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _write(tmp_path, "fetch:\n  timeout: 30s\n  max_redirects: 3\n")
    monkeypatch.setenv("FEEDWATCH_FETCH__TIMEOUT", "5")
    monkeypatch.setenv("FEEDWATCH_DATABASE", "postgresql://u@127.0.0.1/db")
    s = load_settings(cfg)
    assert s.fetch.timeout == 5.0
    assert s.fetch.max_redirects == 3  # the file's other keys survive
    assert s.database == "postgresql://u@127.0.0.1/db"


def test_secret_from_file_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "db-url"
    secret.write_text("sqlite:///secret.db\n")
    monkeypatch.setenv("FEEDWATCH_DATABASE_FILE", str(secret))
    assert load_settings().database == "sqlite:///secret.db"


def test_channel_secrets_from_env_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pw = tmp_path / "pw"
    pw.write_text("hunter2\n")
    monkeypatch.setenv("HOOK_SECRET", "whsec_abc")
    cfg = _write(
        tmp_path,
        f"""
channels:
  - {{name: hook, type: webhook, url: "https://h.example/x", secret_env: HOOK_SECRET}}
  - name: mail
    type: email
    to: [a@example.org]
    password_file: {pw}
""",
    )
    s = load_settings(cfg)
    hook, mail = s.channels
    assert isinstance(hook, WebhookChannelSettings) and isinstance(
        mail, EmailChannelSettings
    )
    assert hook.secret is not None and hook.secret.get_secret_value() == "whsec_abc"
    assert mail.password is not None and mail.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s) and "whsec_abc" not in repr(s)


@pytest.mark.parametrize(
    ("text", "key", "fault"),
    [
        ("poll:\n  interval: soon\n", "poll.interval", "duration"),
        ("fetch:\n  max_redirects: 99\n", "fetch.max_redirects", "less than or equal"),
        ("database: mysql://x\n", "database", "SQLAlchemy URL"),
        ("feeds:\n  - url: ftp://x/feed\n", "feeds.0.url", "http"),
        ("feeds:\n  - interval: 5m\n", "feeds.0.url", "Field required"),
        ("channels:\n  - {name: a, type: pager}\n", "channels.0", "type"),
        (
            "channels:\n  - {name: a, type: webhook, url: 'gopher://x'}\n",
            "channels.0.url",
            "http",
        ),
        ("channels:\n  - {name: a, type: email}\n", "channels.0.to", "required"),
        (
            "channels:\n  - {name: a, type: console}\n  - {name: a, type: console}\n",
            "channels",
            "used twice",
        ),
        ("polll: {}\n", "polll", "unknown key"),
        ("delivery:\n  lease: 60s\n  send_timeout: 2m\n", "delivery", "must be longer"),
        (
            "channels:\n  - {name: h, type: webhook, url: 'http://x', secret_env: NOPE_NOT_SET}\n",
            "channels.0",
            "NOPE_NOT_SET",
        ),
        (
            "digests:\n  - {name: d, cron: '61 * * * *', channel: console}\n",
            "digests.0",
            "cron",
        ),
        (
            "digests:\n  - {name: d, cron: '0 8 * * *', timezone: Mars/Base, channel: console}\n",
            "digests.0",
            "time zone",
        ),
        (
            "digests:\n  - {name: d, cron: '0 8 * * *', channel: pager}\n",
            "digests.0.channel",
            "no channel named 'pager'",
        ),
    ],
)
def test_wrong_values_name_file_key_and_fault(
    tmp_path: Path, text: str, key: str, fault: str
) -> None:
    cfg = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    msg = str(info.value)
    assert msg.startswith(f"{cfg}: "), msg
    assert key in msg and fault in msg, msg


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "poll:\n  interval: 5m\n   tick: [1\n")
    with pytest.raises(ConfigError, match=r"line 3.*not valid YAML"):
        load_settings(cfg)


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(_write(tmp_path, "- a\n- b\n"))


def test_wrong_env_value_names_the_variable_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _write(tmp_path, "poll:\n  concurrency: 4\n")
    monkeypatch.setenv("FEEDWATCH_POLL__CONCURRENCY", "many")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert str(info.value).startswith(
        "environment: FEEDWATCH_POLL__CONCURRENCY (poll.concurrency): "
    ), info.value
    assert "'many'" in str(info.value)


def test_a_json_variable_is_named_only_for_the_keys_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _write(tmp_path, "poll:\n  concurrency: lots\n")
    monkeypatch.setenv("FEEDWATCH_POLL", '{"tick": 5}')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert str(info.value).startswith(f"{cfg}: poll.concurrency: "), info.value
    monkeypatch.setenv("FEEDWATCH_POLL", '{"concurrency": "many"}')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert str(info.value).startswith(
        "environment: FEEDWATCH_POLL (poll.concurrency): "
    ), info.value


def test_a_variable_that_is_not_json_names_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FEEDWATCH_FEEDS", "https://a.example/rss")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(
        "environment: FEEDWATCH_FEEDS (feeds): expected a JSON list or mapping: "
    ), info.value


@pytest.mark.parametrize(
    ("value", "entries"),
    [
        ("example.org, .internal", ("example.org", ".internal")),
        (
            "Example.ORG .internal,10.0.0.0/8",
            ("example.org", ".internal", "10.0.0.0/8"),
        ),
        ("*", ("*",)),
        (
            "[::1]:8080, 192.0.2.7:80 bücher.example",
            ("[::1]:8080", "192.0.2.7:80", "bücher.example"),
        ),
        ('["example.org", ".internal"]', ("example.org", ".internal")),
        (' [ "example.org" ] ', ("example.org",)),
        ("", ()),
    ],
)
def test_no_proxy_from_the_environment_as_curl_or_json(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    entries: tuple[str, ...],
) -> None:
    cfg = _write(tmp_path, "fetch:\n  no_proxy: [file.example]\n  timeout: 7\n")
    monkeypatch.setenv("FEEDWATCH_FETCH__NO_PROXY", value)
    fetch = load_settings(cfg).fetch
    assert fetch.no_proxy == entries
    assert fetch.timeout == 7.0  # the file's other keys survive


def test_no_proxy_inside_a_json_variable_and_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDWATCH_FETCH", '{"no_proxy": "a.example b.example"}')
    assert load_settings().fetch.no_proxy == ("a.example", "b.example")
    monkeypatch.delenv("FEEDWATCH_FETCH")
    cfg = _write(tmp_path, 'fetch:\n  no_proxy: \'["c.example", "d.example"]\'\n')
    assert load_settings(cfg).fetch.no_proxy == ("c.example", "d.example")


@pytest.mark.parametrize(
    ("value", "fault"),
    [
        ("http://proxy.example:3128", "expected a host name, IP address or network"),
        ("a.example, user@b.example", "expected a host name, IP address or network"),
        ("'a.example','b.example'", "expected a host name, IP address or network"),
        ("a.example;b.example", "expected a host name, IP address or network"),
        ("10.0.0.0/40", "not an IP network: '10.0.0.0/40'"),
        ('["a.example", "b.example"', "or a JSON list of them; not valid JSON"),
        ('{"a.example": true}', "or a JSON list of them, not a mapping"),
        ('["a.example", 5]', "Input should be a valid string"),
    ],
)
def test_bad_no_proxy_variable_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, fault: str
) -> None:
    cfg = _write(tmp_path, "fetch:\n  timeout: 7\n")
    monkeypatch.setenv("FEEDWATCH_FETCH__NO_PROXY", value)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    message = str(info.value)
    assert message.startswith(
        "environment: FEEDWATCH_FETCH__NO_PROXY (fetch.no_proxy"
    ), message
    assert fault in message, message
    assert str(cfg) not in message


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDWATCH_WEBHOOK_SECRET", "s")
    monkeypatch.setenv("FEEDWATCH_SMTP_PASSWORD", "p")
    s = load_settings(REPO / "feedwatch.example.yaml")
    assert {c.type for c in s.channels} == {"console", "file", "webhook", "email"}
    assert s.digests[0].timezone == "Asia/Seoul"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        ("30", 30.0),
        ("15m", 900.0),
        ("1.5h", 5400.0),
        ("2d", 172800.0),
        ("250ms", 0.25),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "-5", -1, True, "5 parsecs", None])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)
