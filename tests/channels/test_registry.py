"""make_channel / make_channels: one channel per config section, by type."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from worker.channels import (
    ConsoleChannel,
    EmailChannel,
    FileChannel,
    WebhookChannel,
    aclose_channels,
    make_channel,
    make_channels,
)
from worker.channels.base import Channel
from worker.config import (
    ChannelSettings,
    ConsoleChannelSettings,
    EmailChannelSettings,
    FileChannelSettings,
    WebhookChannelSettings,
    load_settings,
)
from worker.errors import ConfigError


def test_make_channels_builds_each_type(tmp_path: Path) -> None:
    settings: list[ChannelSettings] = [
        ConsoleChannelSettings(type="console", name="con", format="json"),
        FileChannelSettings(type="file", name="log", path=str(tmp_path / "a.jsonl")),
        WebhookChannelSettings(
            type="webhook",
            name="hook",
            url="http://127.0.0.1:9/x",
            secret=SecretStr("whsec_c2VjcmV0"),
            headers={"Authorization": "Bearer t0ken"},
        ),
        EmailChannelSettings(
            type="email",
            name="mail",
            host="127.0.0.1",
            port=2525,
            to=("ops@example.org",),
            password=SecretStr("hunter2"),
            username="ops",
        ),
    ]
    channels = make_channels(settings)
    assert list(channels) == ["con", "log", "hook", "mail"]
    assert (
        isinstance(channels["con"], ConsoleChannel) and channels["con"].format == "json"
    )
    assert isinstance(channels["log"], FileChannel)
    assert channels["log"].path == tmp_path / "a.jsonl"
    assert isinstance(channels["hook"], WebhookChannel)
    assert isinstance(channels["mail"], EmailChannel)
    assert channels["mail"].to == ("ops@example.org",)
    for name, ch in channels.items():
        assert isinstance(ch, Channel)
        assert ch.name == name
        # Secrets never show in reprs (logs, errors).
        assert "hunter2" not in repr(ch) and "c2VjcmV0" not in repr(ch)
    assert [n for n, c in channels.items() if c.supports_html] == ["mail"]
    asyncio.run(aclose_channels(channels))


def test_default_settings_give_console_and_file() -> None:
    channels = make_channels(load_settings(None).channels)
    assert {n: type(c) for n, c in channels.items()} == {
        "console": ConsoleChannel,
        "file": FileChannel,
    }


def test_bad_channel_config_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"channels\.hook\.secret: .*base64"):
        make_channel(
            WebhookChannelSettings(
                type="webhook",
                name="hook",
                url="http://127.0.0.1/",
                secret=SecretStr("whsec_!!"),
            )
        )
    with pytest.raises(ConfigError, match=r"channels\.hook\.headers\.X-A: .*CR"):
        make_channel(
            WebhookChannelSettings(
                type="webhook",
                name="hook",
                url="http://127.0.0.1/",
                headers={"X-A": "a\r\nB: c"},
            )
        )
    with pytest.raises(ConfigError, match=r"channels\.hook\.headers\.webhook-id"):
        make_channel(
            WebhookChannelSettings(
                type="webhook",
                name="hook",
                url="http://127.0.0.1/",
                headers={"webhook-id": "x"},
            )
        )
    with pytest.raises(ConfigError, match=r"channels\.mail\.to: not an email address"):
        make_channel(EmailChannelSettings(type="email", name="mail", to=("nobody",)))
    with pytest.raises(ConfigError, match=r"channels\.mail\.to: expected one email"):
        make_channel(
            EmailChannelSettings(
                type="email", name="mail", to=("a@b.example, c@d.example",)
            )
        )
    with pytest.raises(ConfigError, match=r"channels\.mail\.from: .*CR"):
        make_channel(
            EmailChannelSettings.model_validate(
                {
                    "type": "email",
                    "name": "mail",
                    "to": ["a@b.example"],
                    "from": "a@b\r\nBcc: c@d",
                }
            )
        )
