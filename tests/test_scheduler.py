"""The daemon: signals finish the work in hand; scheduled digests go out."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import write_config
from feedserver import FeedServer

from worker.config import DigestSchedule, FileChannelSettings, Settings
from worker.core import make_feedwatch
from worker.models import utcnow
from worker.scheduler import Daemon

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Slow Wire</title>
<item><guid>s1</guid><title>Xi Jinping to pay state visit to South Korea next week</title></item>
<item><guid>s2</guid><title>Rain expected in Busan</title></item>
</channel></rss>"""


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_the_poll_in_hand(
    tmp_path: Path, feed_server: FeedServer, sig: signal.Signals
) -> None:
    feed_server.set("/slow.xml", RSS)
    feed_server.slow("/slow.xml", 1.5)
    db = tmp_path / "fw.db"
    cfg = write_config(
        tmp_path / "c.yaml",
        {
            "database": f"sqlite:///{db}",
            "feeds": [{"url": feed_server.url("/slow.xml")}],
            "fetch": {"allow_private_addresses": True},
            "channels": [
                {"name": "f", "type": "file", "path": str(tmp_path / "a.jsonl")}
            ],
        },
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "run", "--config", str(cfg)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The fetch is under way (the server is holding the answer): stop now.
        _wait(lambda: feed_server.requests_for("/slow.xml"), 30, "the daemon's fetch")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "finishing 1 job(s) in hand" in err
    with sqlite3.connect(db) as conn:
        (items,) = conn.execute("select count(*) from items").fetchone()
        (alerts,) = conn.execute("select count(*) from alerts").fetchone()
        (pending,) = conn.execute(
            "select count(*) from deliveries where status = 'pending'"
        ).fetchone()
    assert items == 2 and alerts == 1, err
    # the alert was recorded with its outbox row; delivered now or by the next run
    lines = (
        (tmp_path / "a.jsonl").read_text().splitlines()
        if (tmp_path / "a.jsonl").exists()
        else []
    )
    assert len(lines) + pending == 1


async def test_scheduled_digest_is_sent_through_its_channel(tmp_path: Path) -> None:
    out = tmp_path / "digests.jsonl"
    settings = Settings(
        database=f"sqlite:///{tmp_path / 'fw.db'}",
        channels=(FileChannelSettings(type="file", name="desk", path=str(out)),),
        digests=(
            DigestSchedule(
                name="morning", cron="0 8 * * *", timezone="Asia/Seoul", channel="desk"
            ),
        ),
    )
    fw = make_feedwatch(settings)
    try:
        await Daemon(fw).digest(settings.digests[0])
    finally:
        await fw.aclose()
    [line] = out.read_text().splitlines()
    payload = json.loads(line)
    assert payload["type"] == "feedwatch.digest" and payload["stories"] == []


async def test_a_dead_replicas_digest_is_sent_at_start(tmp_path: Path) -> None:
    out = tmp_path / "digests.jsonl"
    settings = Settings(
        database=f"sqlite:///{tmp_path / 'fw.db'}",
        channels=(FileChannelSettings(type="file", name="desk", path=str(out)),),
        digests=(
            # Fires once a year: only the retry can send anything in this test.
            DigestSchedule(name="morning", cron="0 8 1 1 *", channel="desk"),
        ),
    )
    fw = make_feedwatch(settings)
    ended = utcnow().replace(second=0, microsecond=0) - timedelta(hours=2)
    fresh = utcnow()
    try:
        # A replica claimed this morning's run two hours ago and died; another
        # claimed a later run a moment ago and is sending it.
        assert fw.store.claim_digest_run(
            "morning",
            "dg_dead",
            "dead",
            ended,
            since=ended - timedelta(days=1),
            until=ended,
        )
        assert fw.store.claim_digest_run(
            "morning", "dg_busy", "busy", fresh, since=ended, until=fresh
        )
        daemon = Daemon(fw)

        async def stop_once_sent() -> None:
            for _ in range(200):
                if out.exists() and out.read_text():
                    break
                await asyncio.sleep(0.05)
            daemon.stop()

        stopper = asyncio.create_task(stop_once_sent())
        await daemon.run(duration=20)
        await stopper
    finally:
        await fw.aclose()
    [line] = out.read_text().splitlines()
    payload = json.loads(line)
    assert payload["type"] == "feedwatch.digest"
    assert payload["until"] == ended.isoformat()
