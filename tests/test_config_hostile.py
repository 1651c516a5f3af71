"""A wrong value in a secret field is reported by key, never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import load_settings
from worker.errors import ConfigError


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("api:\n  token: 31415926535\n", "api.token"),
        (
            "channels:\n  - name: mail\n    type: email\n    to: [a@b.example]\n"
            "    password: 31415926535\n",
            "channels.0.password",
        ),
        (
            "channels:\n  - name: hook\n    type: webhook\n"
            "    url: https://hooks.example/x\n    secret: 31415926535\n",
            "channels.0.secret",
        ),
        (
            "channels:\n  - name: app\n    type: apprise\n    urls: [31415926535]\n",
            "channels.0.urls.0",
        ),
    ],
)
def test_a_secret_of_the_wrong_type_is_not_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml_text: str, key: str
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    msg = str(info.value)
    assert key in msg
    assert "31415926535" not in msg
