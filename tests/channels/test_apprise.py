"""The apprise channel against a real local target (apprise's ``json://`` service
pointed at the loopback webhook receiver), its config, masking and failure mapping;
plus per-channel routing policy (rate limit, quiet hours) from the config."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from conftest import write_config
from receivers import Reply, WebhookReceiver

from channels.samples import sample_alert
from worker.alerts import render_alert
from worker.channels import make_channel, make_channels
from worker.channels.apprise import AppriseChannel
from worker.channels.base import NO_POLICY, Channel
from worker.config import AppriseChannelSettings, load_settings
from worker.errors import ConfigError, DeliveryError

pytest.importorskip("apprise")

TOKEN = "s3cr3t-t0ken-value"


def _channel(receiver: WebhookReceiver, *extra: str) -> AppriseChannel:
    url = f"json://user:{TOKEN}@127.0.0.1:{receiver.port}/notify"
    return AppriseChannel("ops", [url, *extra], timeout=10)


async def _send(channel: Channel) -> None:
    try:
        await channel.send(render_alert(sample_alert()))
    finally:
        await channel.aclose()


def test_sends_title_and_text_to_a_real_json_target(webhook: WebhookReceiver) -> None:
    channel = _channel(webhook)
    asyncio.run(_send(channel))
    [request] = webhook.wait_for(1)
    envelope = render_alert(sample_alert())
    body = request.json()
    assert request.path == "/notify"
    assert body["title"] == envelope.subject
    assert body["message"] == envelope.text.strip()  # json prefers text, not HTML
    assert "<" not in body["message"].split("\n", 1)[0]


def test_a_failed_url_is_a_retryable_delivery_error_naming_it_masked(
    webhook: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    webhook.enqueue(Reply(500))
    channel = _channel(webhook)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DeliveryError) as info:
        asyncio.run(_send(channel))
    assert info.value.retryable
    assert "127.0.0.1" in str(info.value)
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(channel)
    assert TOKEN not in caplog.text
    # the retry is sent and succeeds
    asyncio.run(_send(channel))
    assert len(webhook.wait_for(2)) == 2


def test_a_retry_skips_the_urls_that_already_took_it(
    webhook: WebhookReceiver,
) -> None:
    with WebhookReceiver() as second:
        second.enqueue(Reply(503))
        url2 = f"json://127.0.0.1:{second.port}/b"
        channel = _channel(webhook, url2)
        with pytest.raises(DeliveryError):
            asyncio.run(_send(channel))
        asyncio.run(_send(channel))
        assert len(second.wait_for(2)) == 2
    # the first target took it on the first try and is not sent it again
    assert len(webhook.requests) == 1


def test_unknown_url_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        AppriseChannel("ops", ["json://127.0.0.1/ok", "nosuchservice://x"])
    assert info.value.key_path == "channels.ops.urls.1"


def test_html_is_sent_where_the_service_prefers_it() -> None:
    channel = AppriseChannel(
        "mail", ["mailto://user:pw@example.org", "json://127.0.0.1/x"]
    )
    assert [html for _, _, html in channel._servers] == [True, False]
    assert "pw" not in repr(channel)


def test_config_builds_apprise_with_urls_from_env_and_policies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "OPS_APPRISE_URLS", f"json://u:{TOKEN}@127.0.0.1/a json://127.0.0.1/b"
    )
    cfg = write_config(
        tmp_path / "fw.yaml",
        {
            "channels": [
                {
                    "name": "ops",
                    "type": "apprise",
                    "urls_env": "OPS_APPRISE_URLS",
                    "severities": ["high"],
                    "rate_limit": {"count": 10, "per": "1h"},
                    "quiet_hours": {
                        "start": "22:00",
                        "end": "07:00",
                        "timezone": "Asia/Seoul",
                    },
                },
                {"name": "con", "type": "console"},
            ]
        },
    )
    settings = load_settings(cfg)
    ops = settings.channel("ops")
    assert isinstance(ops, AppriseChannelSettings)
    assert len(ops.urls) == 2 and TOKEN not in repr(ops)
    channels = make_channels(settings.channels)
    assert isinstance(channels["ops"], AppriseChannel)
    policy = channels["ops"].policy
    assert policy.rate_limit is not None and policy.rate_limit.per == 3600
    assert policy.quiet_hours is not None and policy.quiet_hours.then == "digest"
    assert channels["con"].policy is NO_POLICY
    assert make_channel(settings.channel("con")).policy is NO_POLICY


@pytest.mark.parametrize(
    ("section", "key", "words"),
    [
        (
            {"quiet_hours": {"start": "25:00", "end": "07:00"}},
            "quiet_hours.start",
            "HH:MM",
        ),
        (
            {
                "quiet_hours": {
                    "start": "22:00",
                    "end": "07:00",
                    "timezone": "Mars/Base",
                }
            },
            "quiet_hours.timezone",
            "IANA",
        ),
        ({"rate_limit": {"count": 0}}, "rate_limit.count", "greater than"),
        ({"urls": []}, "urls", "at least 1"),
    ],
)
def test_bad_routing_config_names_the_key(
    tmp_path: Path, section: dict[str, object], key: str, words: str
) -> None:
    channel = {"name": "ops", "type": "apprise", "urls": ["json://127.0.0.1/a"]}
    cfg = write_config(tmp_path / "fw.yaml", {"channels": [{**channel, **section}]})
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert info.value.key_path == f"channels.0.{key}"
    assert words in str(info.value)
