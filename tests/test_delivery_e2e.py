"""Proof that no alert is lost, with real servers: an SMTP server that refuses
connections for a while, an HTTP receiver that answers 500, then times out, then
200, and a daemon killed with SIGKILL while deliveries are in flight.

The first two drive ``drain_outbox`` over a real SQLite outbox with a test clock
(backoff waits are skipped by moving the clock, not by sleeping); the crash test
runs ``feedwatch run`` as a subprocess against a real feed server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from channels.samples import sample_alert
from conftest import publish_demo_feeds, write_config
from feedserver import FeedServer
from receivers import Reply, SmtpReceiver, WebhookReceiver

from worker.alerts import alert_id
from worker.channels.base import Channel
from worker.channels.email import EmailChannel
from worker.channels.webhook import WebhookChannel, verify_signature
from worker.config import DeliverySettings
from worker.deliver import DrainResult, drain_outbox
from worker.models import Alert, DeliveryStatus, Feed
from worker.store import open_store
from worker.store.base import AlertRecord, PollIntent, StoryLink
from worker.store.sql import SqlStore

T0 = datetime(2025, 1, 3, 12, 0, tzinfo=UTC)
SECRET = "whsec_ZmVlZHdhdGNoLXByb29mLXNlY3JldA=="
SETTINGS = DeliverySettings(
    max_attempts=8, backoff_base=10, backoff_max=600, batch=20, send_timeout=5
)


class Clock:
    """The drain's notion of now, moved by the test."""

    def __init__(self) -> None:
        self.current = T0

    def __call__(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    sql = open_store(f"sqlite:///{tmp_path / 'fw.db'}")
    assert isinstance(sql, SqlStore)
    sql.migrate()
    try:
        yield sql
    finally:
        sql.close()


def raise_alerts(store: SqlStore, n: int, channels: list[str]) -> list[Alert]:
    """``n`` alerts of ``n`` stories, written the way a poll writes them."""
    feed = store.add_feed(Feed(url="https://news.example/feed.xml"))
    assert feed.id is not None
    base = sample_alert()
    assert base.story is not None
    out = []
    for i in range(n):
        item = base.item.model_copy(update={"id": f"guid:item-{i}"})
        story = base.story.model_copy(update={"id": f"st_{i}", "sources": ()})
        alert = base.model_copy(
            update={
                "id": alert_id(story.id, "story"),
                "story_id": story.id,
                "item": item,
                "decision": base.decision.model_copy(update={"id": item.id}),
                "story": story,
                "created_at": T0,
            }
        )
        store.record_poll(
            PollIntent(
                feed=feed,
                items=[item],
                decisions=[alert.decision],
                story_links=[StoryLink(story, item.id, feed.id)],
                alerts=[AlertRecord(alert, channels)],
            )
        )
        out.append(alert)
    return out


def drain(store: SqlStore, channels: dict[str, Channel], clock: Clock) -> DrainResult:
    return asyncio.run(
        drain_outbox(store, channels, SETTINGS, worker_id="w1", now=clock)
    )


def statuses(store: SqlStore, alerts: list[Alert]) -> list[DeliveryStatus]:
    return [d.status for a in alerts for d in store.get_alert(a.id).deliveries]


def test_smtp_outage_then_every_alert_arrives_once(
    store: SqlStore, smtp: SmtpReceiver, clock: Clock
) -> None:
    alerts = raise_alerts(store, 4, ["mail"])
    mail = EmailChannel(
        "mail",
        to=["desk@example.org"],
        sender="feedwatch@example.org",
        host=smtp.host,
        port=smtp.port,
        timeout=5,
    )
    smtp.stop()  # connections are refused from now on
    for _ in range(3):
        result = drain(store, {"mail": mail}, clock)
        assert result == DrainResult(retried=4)
        clock.advance(SETTINGS.backoff_max)
    assert all(s is DeliveryStatus.PENDING for s in statuses(store, alerts))
    smtp.start()  # back, on the same port
    assert drain(store, {"mail": mail}, clock) == DrainResult(delivered=4)
    got = smtp.wait_for(4)
    ids = sorted(m.message["Message-ID"] for m in got)
    assert ids == sorted(f"<{a.id}@feedwatch>" for a in alerts)
    clock.advance(SETTINGS.backoff_max)
    assert drain(store, {"mail": mail}, clock) == DrainResult()
    assert len(smtp.messages) == 4
    assert all(s is DeliveryStatus.DELIVERED for s in statuses(store, alerts))


def test_500_then_timeout_then_200_is_delivered_once_with_one_id(
    store: SqlStore, webhook: WebhookReceiver, clock: Clock
) -> None:
    [alert] = raise_alerts(store, 1, ["hook"])
    # The stalled answer never comes (it is abandoned when the receiver stops).
    webhook.enqueue(Reply(500), Reply(200, delay=60), Reply(200))
    hook = WebhookChannel("hook", webhook.url(), secret=SECRET, timeout=0.5)
    channels: dict[str, Channel] = {"hook": hook}
    try:
        assert drain(store, channels, clock) == DrainResult(retried=1)
        clock.advance(SETTINGS.backoff_max)
        assert drain(store, channels, clock) == DrainResult(retried=1)
        clock.advance(SETTINGS.backoff_max)
        assert drain(store, channels, clock) == DrainResult(delivered=1)
        clock.advance(SETTINGS.backoff_max)
        assert drain(store, channels, clock) == DrainResult()
    finally:
        asyncio.run(hook.aclose())
    requests = webhook.wait_for(3)
    assert len(requests) == 3
    assert {r.headers["webhook-id"] for r in requests} == {alert.id}
    assert len(webhook.delivered()) == 1
    for r in requests:
        assert r.json()["id"] == alert.id
        assert verify_signature(
            SECRET,
            r.headers["webhook-id"],
            r.headers["webhook-timestamp"],
            r.body,
            r.headers["webhook-signature"],
        )
    [delivery] = store.get_alert(alert.id).deliveries
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 3


# ------------------------------------------------------------------ crash test


def _alert_count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM alerts").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not created yet


def _undelivered(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM deliveries WHERE status != 'delivered'"
            ).fetchone()[0]
        )


def _wait_until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _start(cfg: Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "run", "--config", str(cfg)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


@pytest.mark.slow
def test_kill_9_during_deliveries_then_restart_every_alert_arrives(
    tmp_path: Path,
    feed_server: FeedServer,
    webhook: WebhookReceiver,
    demo_expected: dict[str, Any],
) -> None:
    urls = publish_demo_feeds(feed_server)
    n_expected = int(demo_expected["alert_count"])
    db = tmp_path / "fw.db"
    cfg = write_config(
        tmp_path / "feedwatch.yaml",
        {
            "database": f"sqlite:///{db}",
            "feeds": [{"url": u, "interval": "1h"} for u in urls.values()],
            "fetch": {"allow_private_addresses": True, "timeout": "10s"},
            "poll": {"tick": "1s"},
            "delivery": {
                "interval": "0.5s",
                "backoff_base": "0.5s",
                "backoff_max": "1s",
                "lease": "3s",
                "send_timeout": "2s",
            },
            "channels": [
                {
                    "name": "hook",
                    "type": "webhook",
                    "url": webhook.url("/alerts"),
                    "secret_env": "PROOF_WEBHOOK_SECRET",
                    "timeout": "2s",
                }
            ],
        },
    )
    env = {**os.environ, "PROOF_WEBHOOK_SECRET": SECRET}
    env.pop("FEEDWATCH_CONFIG", None)

    # Phase 1: the receiver takes requests but does not answer them yet.
    webhook.default = Reply(200, delay=60)
    first = _start(cfg, tmp_path, env)
    try:
        try:
            _wait_until(
                lambda: _alert_count(db) >= n_expected and len(webhook.requests) >= 1,
                25,
                "alerts recorded and deliveries in flight",
            )
        except TimeoutError as e:
            err = _stop(first, signal.SIGKILL)
            raise AssertionError(
                f"{e}: {_alert_count(db)} alerts, {len(webhook.requests)} requests; "
                f"daemon log:\n{err[-4000:]}"
            ) from e
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        _stop(first, signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    in_flight = len(webhook.requests)
    assert in_flight >= 1 and not webhook.delivered()

    # Phase 2: the receiver answers at once; a new daemon on the same database
    # takes the dead worker's deliveries back when their lease runs out.
    # (A request of the dead worker still in the receiver's hands may be answered
    # 200 now: that is the at-least-once duplicate receivers drop by webhook-id.)
    webhook.default = Reply(200)
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM alerts")}
    assert len(stored) == n_expected
    second = _start(cfg, tmp_path, env)
    try:
        _wait_until(
            lambda: {r.headers["webhook-id"] for r in webhook.delivered()} >= stored,
            30,
            "every alert answered 2xx",
        )
        _wait_until(
            lambda: _undelivered(db) == 0, 10, "every delivery recorded delivered"
        )
    finally:
        err = _stop(second)
    assert second.returncode == 0, err

    ids = [r.headers["webhook-id"] for r in webhook.delivered()]
    assert set(ids) == stored
    # Repeats are allowed (at least once; a slow send under load may be retried);
    # what receivers rely on is below: every copy carries its alert's id.
    # Every request, the abandoned ones included, carries its alert's id.
    by_id: dict[str, list[str]] = {}
    for r in webhook.requests:
        assert r.headers["webhook-id"] == r.json()["id"]
        assert verify_signature(
            SECRET,
            r.headers["webhook-id"],
            r.headers["webhook-timestamp"],
            r.body,
            r.headers["webhook-signature"],
        )
        by_id.setdefault(r.json()["id"], []).append(r.headers["webhook-id"])
    repeated = {k: v for k, v in by_id.items() if len(v) > 1}
    assert repeated, "the kill left deliveries in flight that were sent again"
    assert all(len(set(v)) == 1 for v in repeated.values())
