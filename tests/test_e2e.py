"""End to end: a real feed server -> the daemon process -> a real webhook receiver and
a real SMTP server; then a second poll of the same feeds raises nothing new."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import publish_demo_feeds, write_config
from feedserver import FeedServer
from receivers import SmtpReceiver, WebhookReceiver

from worker.channels.webhook import verify_signature

SECRET = "e2e-signing-secret"
THIRD_OUTLET = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Third Outlet</title><link>https://third.example/</link>
<description>test</description>
<item><guid>third-1</guid><title>Diplomats of Seoul, Tokyo and Beijing meet to revive trilateral summit</title>
<link>https://third.example/a/1</link><pubDate>Tue, 22 Sep 2026 12:00:00 GMT</pubDate>
<description>Senior diplomats of South Korea, Japan and China met in Seoul on Tuesday to lay the
groundwork for a leaders' summit of the three countries.</description></item>
<item><guid>third-2</guid><title>Typhoon brings heavy rain to Okinawa</title>
<link>https://third.example/a/2</link><pubDate>Tue, 22 Sep 2026 13:00:00 GMT</pubDate>
<description>Flights were cancelled as the storm passed.</description></item>
</channel></rss>"""
pytestmark = pytest.mark.slow


def _feedwatch(
    *args: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _config(
    tmp_path: Path, urls: list[str], webhook: WebhookReceiver, smtp: SmtpReceiver
) -> Path:
    return write_config(
        tmp_path / "feedwatch.yaml",
        {
            "database": f"sqlite:///{tmp_path / 'fw.db'}",
            "feeds": [{"url": u, "interval": "1h"} for u in urls],
            "fetch": {"allow_private_addresses": True, "timeout": "10s"},
            "poll": {"tick": "1s"},
            "delivery": {"interval": "1s", "backoff_base": "1s"},
            "channels": [
                {
                    "name": "hook",
                    "type": "webhook",
                    "url": webhook.url("/alerts"),
                    "secret_env": "E2E_WEBHOOK_SECRET",
                },
                {
                    "name": "mail",
                    "type": "email",
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "from": "feedwatch@example.org",
                    "to": ["desk@example.org"],
                },
                {
                    "name": "file",
                    "type": "file",
                    "path": str(tmp_path / "alerts.jsonl"),
                },
            ],
        },
    )


def _strip_identity(item_id: str) -> str:
    return (
        item_id.split(":", 1)[1] if item_id.startswith(("guid:", "url:")) else item_id
    )


def test_daemon_alerts_once_per_story_then_nothing_new(
    tmp_path: Path,
    feed_server: FeedServer,
    webhook: WebhookReceiver,
    smtp: SmtpReceiver,
    demo_expected: dict[str, Any],
) -> None:
    urls = publish_demo_feeds(feed_server)
    cfg = _config(tmp_path, list(urls.values()), webhook, smtp)
    env = {**os.environ, "E2E_WEBHOOK_SECRET": SECRET}
    env.pop("FEEDWATCH_CONFIG", None)
    expected_alerts: dict[str, list[str]] = {}
    for feed in demo_expected["feeds"].values():
        expected_alerts.update(feed["alerts"])
    same_story = {g for group in demo_expected["same_story"] for g in group}
    n_expected = demo_expected["alert_count"]

    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "run", "--config", str(cfg)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        webhook.wait_for(n_expected, timeout=60)
        smtp.wait_for(n_expected, timeout=30)
        # Nothing more may arrive: every story has alerted once.
        with pytest.raises(TimeoutError):
            webhook.wait_for(n_expected + 1, timeout=3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "feedwatch stopped" in err

    hooks = webhook.requests
    assert len(hooks) == n_expected, [h.json()["item"]["title"] for h in hooks]
    payloads = [h.json() for h in hooks]
    got = {_strip_identity(p["item"]["id"]): p for p in payloads}
    story_hits = same_story & set(got)
    assert len(story_hits) == 1, "the story two outlets carry must alert exactly once"
    assert set(got) - same_story == set(expected_alerts) - same_story
    for guid, payload in got.items():
        assert sorted(payload["topics"]) == sorted(expected_alerts[guid]), payload[
            "item"
        ]["title"]
        assert payload["type"] == "feedwatch.alert"
        assert payload["evidence"], "every alert carries its evidence"
        assert payload["event"]["countries"]
    # the two-outlet story lists both outlets once the second report joined it
    ids = {h.headers["webhook-id"] for h in hooks}
    assert len(ids) == n_expected
    for h in hooks:
        assert h.headers["webhook-id"] == h.json()["id"]
        assert verify_signature(
            SECRET,
            h.headers["webhook-id"],
            h.headers["webhook-timestamp"],
            h.body,
            h.headers["webhook-signature"],
        )

    mails = smtp.messages
    assert len(mails) == n_expected
    subjects = sorted(m.message["Subject"] for m in mails)
    for p in payloads:
        assert any(p["item"]["title"][:40] in s for s in subjects), p["item"]["title"]
    for m in mails:
        msg = m.message
        assert (
            msg.get_body(("plain",)) is not None and msg.get_body(("html",)) is not None
        )

    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["id"] for x in lines) == sorted(ids)

    # A second poll of the same feeds: 304s, nothing new, nothing sent.
    second = _feedwatch(
        "poll", "--once", "--all", "--json", "--config", str(cfg), cwd=tmp_path, env=env
    )
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["feeds"] == len(urls)
    assert summary["failed"] == 0
    assert summary["new_items"] == 0 and summary["alerts"] == 0
    assert len(webhook.requests) == n_expected and len(smtp.messages) == n_expected

    # A third outlet reports the same story a day later: it joins the story, no alert.
    feed_server.set("/third.xml", THIRD_OUTLET.encode(), "application/rss+xml")
    added = _feedwatch(
        "feeds",
        "add",
        feed_server.url("/third.xml"),
        "--config",
        str(cfg),
        cwd=tmp_path,
        env=env,
    )
    assert added.returncode == 0, added.stderr
    third = _feedwatch(
        "poll", "--once", "--json", "--config", str(cfg), cwd=tmp_path, env=env
    )
    assert third.returncode == 0, third.stderr
    summary = json.loads(third.stdout)
    assert summary["new_items"] == 2
    assert summary["alerts"] == 0, "a later report of a known story must not alert"
    digest = _feedwatch(
        "digest",
        "--since",
        "1h",
        "--format",
        "json",
        "--config",
        str(cfg),
        cwd=tmp_path,
        env=env,
    )
    assert digest.returncode == 0, digest.stderr
    stories = json.loads(digest.stdout)["stories"]
    joined = [
        s
        for s in stories
        if any(src["source"] == "Third Outlet" for src in s["sources"])
    ]
    assert len(joined) == 1 and len(joined[0]["sources"]) == 3
