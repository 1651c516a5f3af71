"""Tests of worker/deliver.py: the backoff policy (hypothesis) and drain_outbox with
real channels (loopback webhook receiver, file, console) over an outbox.

The outbox is the ``outbox`` fixture, run twice: over an in-memory fake of the
outbox half of the Store (claim_deliveries / record_delivery) and over the real
SQLite store, each behind the same three members: ``store``,
``enqueue(alert, channels)`` and ``deliveries(alert_id)``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, cast

import pytest
from channels.samples import sample_alert
from hypothesis import given
from hypothesis import strategies as st
from receivers import Reply, WebhookReceiver

from worker.alerts import alert_id
from worker.channels.base import NO_POLICY, Channel, ChannelPolicy
from worker.channels.console import ConsoleChannel
from worker.channels.file import FileChannel
from worker.channels.webhook import WebhookChannel
from worker.config import DeliverySettings, QuietHours, RateLimit
from worker.deliver import (
    MAX_RETRY_AFTER,
    DrainResult,
    backoff,
    drain_outbox,
    quiet_until,
    rate_limited_until,
)
from worker.errors import StoreError
from worker.models import Alert, Delivery, DeliveryStatus, Envelope, Feed
from worker.store import open_store
from worker.store.base import (
    AlertRecord,
    ClaimedDelivery,
    DeliveryOutcome,
    PollIntent,
    Store,
    StoryLink,
)

T0 = datetime(2025, 1, 3, 12, 0, tzinfo=UTC)
SETTINGS = DeliverySettings(max_attempts=3, backoff_base=10, backoff_max=600, batch=10)


# ------------------------------------------------------------------ backoff


@given(
    st.integers(min_value=0, max_value=2000),
    st.floats(min_value=0.001, max_value=1000),
    st.floats(min_value=0.001, max_value=1e6),
    st.floats(min_value=0, max_value=0.999999),
)
def test_backoff_stays_in_its_envelope(
    attempt: int, base: float, cap: float, r: float
) -> None:
    delay = backoff(attempt, base=base, cap=cap, rand=lambda: r)
    assert 0 <= delay <= cap
    low = min(base * 2.0 ** min(attempt, 1000), cap)
    assert delay >= low * (1 - 1e-9)
    # Monotone: with the same jitter, a later attempt never waits less.
    assert backoff(attempt + 1, base=base, cap=cap, rand=lambda: r) >= delay


@given(
    st.integers(min_value=0, max_value=60),
    st.floats(min_value=0, max_value=1e7),
    st.floats(min_value=0, max_value=0.999999),
)
def test_backoff_honours_retry_after_up_to_a_day(
    attempt: int, retry_after: float, r: float
) -> None:
    delay = backoff(attempt, base=5, cap=3600, retry_after=retry_after, rand=lambda: r)
    assert delay >= min(retry_after, MAX_RETRY_AFTER)
    assert delay <= max(3600, MAX_RETRY_AFTER)
    assert delay >= backoff(attempt, base=5, cap=3600, rand=lambda: r)


def test_backoff_examples() -> None:
    assert backoff(0, base=5, cap=3600, rand=lambda: 0.0) == 5
    assert backoff(0, base=5, cap=3600, rand=lambda: 0.5) == 7.5
    assert backoff(3, base=5, cap=3600, rand=lambda: 0.0) == 40
    assert backoff(30, base=5, cap=3600, rand=lambda: 0.0) == 3600
    assert backoff(10**9, base=5, cap=3600) == 3600  # no overflow
    assert backoff(-1, base=5, cap=3600, rand=lambda: 0.0) == 5
    assert backoff(0, base=5, cap=3600, retry_after=7200, rand=lambda: 0.0) == 7200
    assert backoff(0, base=5, cap=60, retry_after=10**9) == MAX_RETRY_AFTER


# ------------------------------------------------------------------ outbox


class Outbox(Protocol):
    """What the drain tests need from an outbox, fake or real."""

    store: Store

    def enqueue(self, alert: Alert, channels: Sequence[str]) -> None: ...

    def deliveries(self, alert_id: str) -> dict[str, Delivery]: ...


@dataclass
class _Row:
    delivery: Delivery
    alert: Alert
    leased_until: datetime | None = None


class FakeOutboxStore:
    """In-memory outbox: the claim/lease and record semantics of the Store contract,
    nothing else."""

    url = "memory://"

    def __init__(self) -> None:
        self.rows: dict[int, _Row] = {}
        self.claims = 0

    def claim_deliveries(
        self, worker_id: str, now: datetime, limit: int, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        self.claims += 1
        out: list[ClaimedDelivery] = []
        for row in sorted(self.rows.values(), key=lambda r: r.delivery.id or 0):
            d = row.delivery
            due = d.next_attempt_at is None or d.next_attempt_at <= now
            free = row.leased_until is None or row.leased_until <= now
            if d.status == DeliveryStatus.PENDING and due and free and len(out) < limit:
                row.leased_until = now + timedelta(seconds=lease_seconds)
                out.append(ClaimedDelivery(d, row.alert))
        return out

    def record_delivery(self, outcome: DeliveryOutcome) -> None:
        row = self.rows[outcome.delivery_id]
        d = row.delivery
        if outcome.ok:
            status, delivered_at = DeliveryStatus.DELIVERED, outcome.attempted_at
        else:
            dead = outcome.retry_at is None
            status = DeliveryStatus.DEAD if dead else DeliveryStatus.PENDING
            delivered_at = None
        row.delivery = d.model_copy(
            update={
                "status": status,
                "attempts": d.attempts + 1,
                "next_attempt_at": outcome.retry_at,
                "last_error": outcome.error,
                "delivered_at": delivered_at,
            }
        )
        row.leased_until = None


class FakeOutbox:
    def __init__(self) -> None:
        self.fake = FakeOutboxStore()
        self.store = cast(Store, self.fake)

    def enqueue(self, alert: Alert, channels: Sequence[str]) -> None:
        for name in channels:
            row_id = len(self.fake.rows) + 1
            self.fake.rows[row_id] = _Row(
                Delivery(id=row_id, alert_id=alert.id, channel=name, created_at=T0),
                alert,
            )

    def deliveries(self, alert_id: str) -> dict[str, Delivery]:
        return {
            r.delivery.channel: r.delivery
            for r in self.fake.rows.values()
            if r.delivery.alert_id == alert_id
        }


class SQLiteOutbox:
    """The real SQLite store, filled the way the poll stage fills it."""

    def __init__(self, path: Path) -> None:
        self.sql = open_store(f"sqlite:///{path}")
        self.sql.migrate()
        self.store = cast(Store, self.sql)
        self.feed = self.sql.add_feed(Feed(url="https://news.example/feed.xml"))

    def enqueue(self, alert: Alert, channels: Sequence[str]) -> None:
        assert self.feed.id is not None and alert.story is not None
        self.sql.record_poll(
            PollIntent(
                feed=self.feed,
                items=[alert.item],
                decisions=[alert.decision],
                story_links=[StoryLink(alert.story, alert.item.id, self.feed.id)],
                alerts=[AlertRecord(alert, channels)],
            )
        )

    def deliveries(self, alert_id: str) -> dict[str, Delivery]:
        return {d.channel: d for d in self.sql.get_alert(alert_id).deliveries}


@pytest.fixture(params=["memory", "sqlite"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outbox]:
    """The outbox under test: the in-memory fake and the real SQLite store."""
    if request.param == "memory":
        yield FakeOutbox()
        return
    box = SQLiteOutbox(tmp_path / "feedwatch.db")
    try:
        yield box
    finally:
        box.sql.close()


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
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def replace_settings(**changes: Any) -> DeliverySettings:
    return DeliverySettings(**{**SETTINGS.model_dump(), **changes})


def alerts(n: int) -> list[Alert]:
    """``n`` alerts of ``n`` different stories, each raised by its own item."""
    base = sample_alert()
    assert base.story is not None
    out = []
    for i in range(n):
        item = base.item.model_copy(update={"id": f"guid:item-{i}"})
        story = base.story.model_copy(
            update={
                "id": f"st_{i}",
                "sources": tuple(
                    s.model_copy(update={"item_id": item.id}) if j == 0 else s
                    for j, s in enumerate(base.story.sources)
                ),
            }
        )
        out.append(
            base.model_copy(
                update={
                    "id": alert_id(story.id, base.rule),
                    "story_id": story.id,
                    "item": item,
                    "decision": base.decision.model_copy(update={"id": item.id}),
                    "story": story,
                }
            )
        )
    return out


def drain(
    outbox: Outbox,
    channels: dict[str, Channel],
    clock: Clock,
    settings: DeliverySettings = SETTINGS,
    **kwargs: Any,
) -> DrainResult:
    async def go() -> DrainResult:
        try:
            return await drain_outbox(
                outbox.store, channels, settings, worker_id="w1", now=clock, **kwargs
            )
        finally:
            for ch in channels.values():
                await ch.aclose()

    return asyncio.run(go())


# ------------------------------------------------------------ test channels


class RecordingChannel:
    """Records envelopes and how many sends overlap; yields to the loop mid-send."""

    supports_html = False
    policy: ChannelPolicy = NO_POLICY

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[Envelope] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def send(self, envelope: Envelope) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        for _ in range(5):
            await asyncio.sleep(0)
        self.sent.append(envelope)
        self.in_flight -= 1

    async def aclose(self) -> None:
        pass


class BuggyChannel(RecordingChannel):
    async def send(self, envelope: Envelope) -> None:
        raise RuntimeError("boom")


class HangingChannel(RecordingChannel):
    async def send(self, envelope: Envelope) -> None:
        await asyncio.Event().wait()


# ------------------------------------------------------------------ drain


def test_delivers_to_every_routed_channel(
    outbox: Outbox, clock: Clock, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    a, b = alerts(2)
    for alert in (a, b):
        outbox.enqueue(alert, ["hook", "log", "con"])
    console = io.StringIO()
    channels: dict[str, Channel] = {
        "hook": WebhookChannel("hook", receiver.url(), secret="s"),
        "log": FileChannel("log", tmp_path / "alerts.jsonl"),
        "con": ConsoleChannel("con", stream=console),
    }
    assert drain(outbox, channels, clock) == DrainResult(delivered=6, retried=0, dead=0)
    got = sorted(r.headers["webhook-id"] for r in receiver.wait_for(2))
    assert got == sorted([a.id, b.id])
    lines = (tmp_path / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == sorted([a.id, b.id])
    assert console.getvalue().count("[feedwatch] ") == 2
    for alert in (a, b):
        rows = outbox.deliveries(alert.id)
        assert {d.status for d in rows.values()} == {DeliveryStatus.DELIVERED}
        assert all(d.attempts == 1 and d.delivered_at == T0 for d in rows.values())
    # Nothing left: a second drain does nothing.
    assert drain(outbox, {}, clock) == DrainResult(0, 0, 0)


def test_retry_then_success(
    outbox: Outbox, clock: Clock, receiver: WebhookReceiver
) -> None:
    [alert] = alerts(1)
    outbox.enqueue(alert, ["hook"])
    receiver.enqueue(Reply(503, body=b"maintenance"))

    def channels() -> dict[str, Channel]:
        return {"hook": WebhookChannel("hook", receiver.url())}

    assert drain(outbox, channels(), clock) == DrainResult(0, 1, 0)
    row = outbox.deliveries(alert.id)["hook"]
    assert row.status == DeliveryStatus.PENDING and row.attempts == 1
    assert row.last_error is not None and "HTTP 503" in row.last_error
    assert row.next_attempt_at is not None
    assert (
        T0 + timedelta(seconds=10) <= row.next_attempt_at <= T0 + timedelta(seconds=20)
    )
    # Not due yet: nothing is sent.
    assert drain(outbox, channels(), clock) == DrainResult(0, 0, 0)
    assert len(receiver.requests) == 1
    clock.advance(20)
    assert drain(outbox, channels(), clock) == DrainResult(1, 0, 0)
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == alert.id
    row = outbox.deliveries(alert.id)["hook"]
    assert row.status == DeliveryStatus.DELIVERED and row.attempts == 2


def test_retry_after_is_honoured(
    outbox: Outbox, clock: Clock, receiver: WebhookReceiver
) -> None:
    [alert] = alerts(1)
    outbox.enqueue(alert, ["hook"])
    receiver.enqueue(Reply(429, {"Retry-After": "900"}))
    channels: dict[str, Channel] = {"hook": WebhookChannel("hook", receiver.url())}
    assert drain(outbox, channels, clock) == DrainResult(0, 1, 0)
    assert outbox.deliveries(alert.id)["hook"].next_attempt_at == T0 + timedelta(
        seconds=900
    )


def test_dead_after_max_attempts(
    outbox: Outbox, clock: Clock, receiver: WebhookReceiver
) -> None:
    [alert] = alerts(1)
    outbox.enqueue(alert, ["hook"])
    receiver.default = Reply(500)
    results = []
    for _ in range(SETTINGS.max_attempts + 1):
        channels: dict[str, Channel] = {"hook": WebhookChannel("hook", receiver.url())}
        results.append(drain(outbox, channels, clock))
        clock.advance(SETTINGS.backoff_max)
    assert results == [
        DrainResult(0, 1, 0),
        DrainResult(0, 1, 0),
        DrainResult(0, 0, 1),
        DrainResult(0, 0, 0),
    ]
    row = outbox.deliveries(alert.id)["hook"]
    assert row.status == DeliveryStatus.DEAD and row.attempts == SETTINGS.max_attempts
    assert row.last_error is not None
    assert "HTTP 500" in row.last_error and "gave up after 3 attempts" in row.last_error
    assert len(receiver.requests) == SETTINGS.max_attempts


def test_permanent_failure_is_dead_at_once(
    outbox: Outbox, clock: Clock, receiver: WebhookReceiver
) -> None:
    [alert] = alerts(1)
    outbox.enqueue(alert, ["hook"])
    receiver.enqueue(Reply(410, body=b"endpoint removed"))
    channels: dict[str, Channel] = {"hook": WebhookChannel("hook", receiver.url())}
    assert drain(outbox, channels, clock) == DrainResult(0, 0, 1)
    row = outbox.deliveries(alert.id)["hook"]
    assert row.status == DeliveryStatus.DEAD and row.attempts == 1
    assert row.last_error is not None and "HTTP 410" in row.last_error


def test_unknown_channel_is_dead_with_a_clear_error(
    outbox: Outbox, clock: Clock
) -> None:
    [alert] = alerts(1)
    outbox.enqueue(alert, ["gone", "here"])
    here = RecordingChannel("here")
    assert drain(outbox, {"here": here}, clock) == DrainResult(1, 0, 1)
    row = outbox.deliveries(alert.id)["gone"]
    assert row.status == DeliveryStatus.DEAD
    assert row.last_error is not None
    assert "'gone' is not configured" in row.last_error
    assert "configured: here" in row.last_error
    assert f"feedwatch alerts redeliver {alert.id}" in row.last_error


def test_channel_bug_is_retried_and_logged_with_traceback(
    outbox: Outbox, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    [alert] = alerts(1)
    outbox.enqueue(alert, ["buggy"])
    with caplog.at_level(logging.ERROR, logger="worker.deliver"):
        assert drain(outbox, {"buggy": BuggyChannel("buggy")}, clock) == DrainResult(
            0, 1, 0
        )
    row = outbox.deliveries(alert.id)["buggy"]
    assert row.last_error == "unexpected error: RuntimeError('boom')"
    [record] = [r for r in caplog.records if "a bug" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


def test_a_hanging_send_times_out_and_is_retried(outbox: Outbox, clock: Clock) -> None:
    [alert] = alerts(1)
    outbox.enqueue(alert, ["slow"])
    result = drain(outbox, {"slow": HangingChannel("slow")}, clock, send_timeout=0.2)
    assert result == DrainResult(0, 1, 0)
    row = outbox.deliveries(alert.id)["slow"]
    assert row.last_error is not None and "did not finish within 0.2s" in row.last_error


def test_renders_once_and_bounds_concurrency(outbox: Outbox, clock: Clock) -> None:
    batch = alerts(5)
    for alert in batch:
        outbox.enqueue(alert, ["a", "b"])
    a, b = RecordingChannel("a"), RecordingChannel("b")
    assert drain(outbox, {"a": a, "b": b}, clock, concurrency=3) == DrainResult(
        10, 0, 0
    )
    assert len(a.sent) == len(b.sent) == 5
    by_id = {e.id: e for e in a.sent}
    for env in b.sent:
        assert env is by_id[env.id]  # one rendering, shared by both channels
    assert sorted(by_id) == sorted(al.id for al in batch)


def test_concurrency_limit_is_respected(outbox: Outbox, clock: Clock) -> None:
    for alert in alerts(6):
        outbox.enqueue(alert, ["a"])
    a = RecordingChannel("a")
    assert drain(outbox, {"a": a}, clock, concurrency=2) == DrainResult(6, 0, 0)
    assert a.max_in_flight == 2


def test_max_rounds_bounds_one_drain(outbox: Outbox, clock: Clock) -> None:
    for alert in alerts(3):
        outbox.enqueue(alert, ["a"])
    small = replace_settings(batch=1)
    a = RecordingChannel("a")
    assert drain(outbox, {"a": a}, clock, small, max_rounds=2) == DrainResult(2, 0, 0)
    assert drain(outbox, {"a": a}, clock, small, max_rounds=2) == DrainResult(1, 0, 0)


def test_immediate_retries_are_bounded_by_max_rounds(clock: Clock) -> None:
    box = FakeOutbox()
    [alert] = alerts(1)
    box.enqueue(alert, ["buggy"])
    # backoff_base 0 makes the row due again at once; max_rounds still ends the drain.
    settings = replace_settings(backoff_base=0, max_attempts=100)
    result = drain(box, {"buggy": BuggyChannel("buggy")}, clock, settings, max_rounds=4)
    assert result == DrainResult(0, 4, 0)
    assert box.fake.claims == 4


def test_store_failure_surfaces_after_the_batch(clock: Clock) -> None:
    class FailingStore(FakeOutboxStore):
        def record_delivery(self, outcome: DeliveryOutcome) -> None:
            if outcome.delivery_id == 1:
                raise StoreError("database is locked")
            super().record_delivery(outcome)

    box = FakeOutbox()
    box.fake = FailingStore()
    box.store = cast(Store, box.fake)
    first, second = alerts(2)
    box.enqueue(first, ["a"])
    box.enqueue(second, ["a"])
    a = RecordingChannel("a")
    with pytest.raises(StoreError, match="database is locked"):
        drain(box, {"a": a}, clock)
    assert len(a.sent) == 2  # the other send was not abandoned
    assert box.deliveries(second.id)["a"].status == DeliveryStatus.DELIVERED
    assert box.deliveries(first.id)["a"].status == DeliveryStatus.PENDING


# ------------------------------------------------------- quiet hours, rate limits


def test_quiet_until_across_midnight_in_a_time_zone() -> None:
    seoul = QuietHours(start="22:00", end="07:00", timezone="Asia/Seoul")
    # 12:00 UTC = 21:00 KST: not quiet; 13:00 UTC = 22:00 KST: quiet until 07:00 KST
    assert quiet_until(seoul, datetime(2025, 1, 3, 12, 59, tzinfo=UTC)) is None
    end = datetime(2025, 1, 3, 22, 0, tzinfo=UTC)  # 07:00 KST on the 4th
    assert quiet_until(seoul, datetime(2025, 1, 3, 13, 0, tzinfo=UTC)) == end
    assert quiet_until(seoul, datetime(2025, 1, 3, 21, 59, tzinfo=UTC)) == end
    assert quiet_until(seoul, end) is None
    day = QuietHours(start="09:00", end="17:30")
    assert quiet_until(day, datetime(2025, 1, 3, 8, 59, tzinfo=UTC)) is None
    assert quiet_until(day, datetime(2025, 1, 3, 9, 0, tzinfo=UTC)) == datetime(
        2025, 1, 3, 17, 30, tzinfo=UTC
    )
    never = QuietHours(start="10:00", end="10:00")
    assert quiet_until(never, datetime(2025, 1, 3, 10, 0, tzinfo=UTC)) is None


@given(st.integers(min_value=0, max_value=7 * 24 * 60))
def test_quiet_until_ends_in_the_future_within_a_day(minutes: int) -> None:
    now = T0 + timedelta(minutes=minutes)
    quiet = QuietHours(start="23:15", end="06:45", timezone="America/New_York")
    ends = quiet_until(quiet, now)
    if ends is not None:
        assert now < ends <= now + timedelta(days=1)
        assert quiet_until(quiet, ends) is None


def test_rate_limited_until_opens_when_the_oldest_send_leaves_the_window() -> None:
    sent = [T0, T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)]
    now = T0 + timedelta(seconds=30)
    assert rate_limited_until(sent, 4, 60, now) is None
    assert rate_limited_until(sent, 3, 60, now) == T0 + timedelta(seconds=60)
    assert rate_limited_until(sent, 2, 60, now) == T0 + timedelta(seconds=70)
    # sends older than the window do not count
    assert rate_limited_until(sent, 3, 25, now) is None


def test_rate_limit_puts_deliveries_off_without_dropping_them(
    tmp_path: Path, clock: Clock
) -> None:
    box = SQLiteOutbox(tmp_path / "fw.db")
    try:
        batch = alerts(5)
        for alert in batch:
            box.enqueue(alert, ["slow"])
        channel = RecordingChannel("slow")
        channel.policy = ChannelPolicy(rate_limit=RateLimit(count=2, per=60))
        result = drain(box, {"slow": channel}, clock)
        assert result == DrainResult(delivered=2, deferred=3)
        assert len(channel.sent) == 2
        waiting = [box.deliveries(a.id)["slow"] for a in batch]
        assert sorted(d.status for d in waiting).count(DeliveryStatus.PENDING) == 3
        assert all(
            d.attempts == 0 and d.next_attempt_at == T0 + timedelta(seconds=60)
            for d in waiting
            if d.status is DeliveryStatus.PENDING
        )
        clock.advance(30)
        assert drain(box, {"slow": channel}, clock) == DrainResult()
        clock.advance(30)
        assert drain(box, {"slow": channel}, clock) == DrainResult(
            delivered=2, deferred=1
        )
        clock.advance(60)
        assert drain(box, {"slow": channel}, clock) == DrainResult(delivered=1)
        assert sorted(e.id for e in channel.sent) == sorted(a.id for a in batch)
    finally:
        box.sql.close()


def test_quiet_hours_hold_alerts_for_the_digest_or_put_them_off(
    tmp_path: Path, clock: Clock
) -> None:
    box = SQLiteOutbox(tmp_path / "fw.db")
    try:
        a, b = alerts(2)
        for alert in (a, b):
            box.enqueue(alert, ["desk", "night", "open"])
        # T0 is 12:00 UTC
        desk = RecordingChannel("desk")
        desk.policy = ChannelPolicy(quiet_hours=QuietHours(start="11:00", end="13:00"))
        night = RecordingChannel("night")
        night.policy = ChannelPolicy(
            quiet_hours=QuietHours(start="11:00", end="12:30", then="deliver")
        )
        open_ = RecordingChannel("open")
        channels: dict[str, Channel] = {"desk": desk, "night": night, "open": open_}
        assert drain(box, channels, clock) == DrainResult(
            delivered=2, held=2, deferred=2
        )
        assert len(open_.sent) == 2 and not desk.sent and not night.sent
        assert {x.id for x in box.sql.held_alerts("desk")} == {a.id, b.id}
        assert box.deliveries(a.id)["desk"].status is DeliveryStatus.HELD
        night_row = box.deliveries(a.id)["night"]
        assert night_row.next_attempt_at == T0 + timedelta(minutes=30)
        clock.advance(30 * 60)
        assert drain(box, channels, clock) == DrainResult(delivered=2)
        assert len(night.sent) == 2 and not desk.sent
        # the digest carries the held ones and releases them
        assert box.sql.release_held("desk", [a.id, b.id], "dg_x", clock()) == 2
        assert box.deliveries(b.id)["desk"].status is DeliveryStatus.DELIVERED
        assert box.sql.held_alerts("desk") == []
    finally:
        box.sql.close()


def test_lease_comes_from_the_settings(tmp_path: Path, clock: Clock) -> None:
    box = SQLiteOutbox(tmp_path / "fw.db")
    try:
        [alert] = alerts(1)
        box.enqueue(alert, ["hang"])
        settings = replace_settings(lease=5, send_timeout=0.2, max_attempts=5)
        # a worker that claimed it and died: the row comes back after the lease
        claimed = box.sql.claim_deliveries("dead-worker", clock(), 10, settings.lease)
        assert [c.alert.id for c in claimed] == [alert.id]
        channel = RecordingChannel("hang")
        assert drain(box, {"hang": channel}, clock, settings) == DrainResult()
        clock.advance(5)
        assert drain(box, {"hang": channel}, clock, settings) == DrainResult(
            delivered=1
        )
    finally:
        box.sql.close()


class GatedChannel(RecordingChannel):
    """Each send waits until the test opens the gate; ``waiting`` counts sends begun."""

    def __init__(self, name: str, sent: list[str]) -> None:
        super().__init__(name)
        self.ids = sent
        self.gate = asyncio.Event()
        self.waiting = 0

    async def send(self, envelope: Envelope) -> None:
        self.waiting += 1
        await self.gate.wait()
        self.ids.append(envelope.id)


def test_a_send_that_cannot_finish_within_its_lease_is_left_to_the_next_claimer(
    tmp_path: Path, clock: Clock
) -> None:
    # Worker A claims a batch it sends one at a time; its queued rows must not be
    # sent once their lease may have run out, or worker B (which claims them when
    # the lease ends) and A both deliver them.
    box = SQLiteOutbox(tmp_path / "fw.db")
    settings = replace_settings(lease=100, send_timeout=60)
    sent: list[str] = []
    batch = alerts(3)
    for alert in batch:
        box.enqueue(alert, ["c"])

    async def until(condition: Any) -> None:
        deadline = asyncio.get_running_loop().time() + 10
        while not condition():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.005)

    async def go() -> None:
        a = GatedChannel("c", sent)
        worker_a = asyncio.create_task(
            drain_outbox(
                box.store, {"c": a}, settings, worker_id="A", now=clock, concurrency=1
            )
        )
        await until(lambda: a.waiting == 1)
        clock.advance(55)  # A's first send took 55 s
        waiting = a.waiting
        a.gate.set()
        a.gate = asyncio.Event()
        await until(lambda: a.waiting > waiting or worker_a.done())
        clock.advance(45)  # A's lease ends; B finds the rows free
        b = GatedChannel("c", sent)
        b.gate.set()
        await drain_outbox(box.store, {"c": b}, settings, worker_id="B", now=clock)
        a.gate.set()
        await worker_a

    try:
        asyncio.run(go())
        assert sorted(sent) == sorted(a.id for a in batch)
        for alert in batch:
            assert box.deliveries(alert.id)["c"].status is DeliveryStatus.DELIVERED
    finally:
        box.sql.close()
