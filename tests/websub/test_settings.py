"""The WebSub settings under ``api:`` and when they turn WebSub on."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import Settings, load_settings
from worker.errors import ConfigError
from worker.websub import callback_base


def _load(tmp_path: Path, api: str) -> object:
    path = tmp_path / "feedwatch.yaml"
    path.write_text(f"api:\n{api}\n", encoding="utf-8")
    return load_settings(path)


def test_public_url_turns_websub_on(tmp_path: Path) -> None:
    s = Settings()
    assert (s.api.public_url, s.api.websub, callback_base(s)) == (None, True, None)
    path = tmp_path / "on.yaml"
    path.write_text("api:\n  public_url: https://fw.example/base/\n", encoding="utf-8")
    on = load_settings(path)
    assert callback_base(on) == "https://fw.example/base"
    off = on.model_copy(update={"api": on.api.model_copy(update={"websub": False})})
    assert callback_base(off) is None


@pytest.mark.parametrize(
    "value", ["ftp://fw.example", "fw.example", "https://fw.example/?x=1", "https://"]
)
def test_a_bad_public_url_is_named(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"api\.public_url") as e:
        _load(tmp_path, f"  public_url: {value!r}")
    assert str(tmp_path) in str(e.value)
