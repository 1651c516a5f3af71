"""Outbox dispatcher: claimed outbox rows (``ClaimedDelivery``) -> channel sends ->
``DeliveryOutcome`` records (delivered, retry later with backoff, dead, or put off
by the channel's quiet hours and rate limit).

Owns the retry and routing-time policy; the scheduler only decides when to drain.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from time import perf_counter
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from worker.alerts import render_alert
from worker.channels.base import Channel, ChannelPolicy, policy_of
from worker.config import DeliverySettings, QuietHours
from worker.errors import DeliveryError
from worker.models import Envelope, utcnow
from worker.store.base import ClaimedDelivery, DeliveryOutcome, Store

if TYPE_CHECKING:
    from worker.metrics import Metrics

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_SEND_TIMEOUT",
    "MAX_RETRY_AFTER",
    "DrainResult",
    "backoff",
    "drain_outbox",
    "quiet_until",
    "rate_limited_until",
]

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 86400.0
"""A receiver's Retry-After is honoured up to a day."""
DEFAULT_LEASE_SECONDS = 300.0
DEFAULT_CONCURRENCY = 16
DEFAULT_SEND_TIMEOUT = 120.0
_MAX_EXPONENT = 1000  # 2**1000 is still a finite float; the cap applies long before.


def backoff(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds before retry ``attempt`` (0 = after the first failure):
    ``base * 2**attempt * U(1, 2)`` capped at ``cap``, and never sooner than the
    receiver's ``retry_after`` (itself capped at a day, not at ``cap``)."""
    exponent = min(max(attempt, 0), _MAX_EXPONENT)
    delay = min(base * math.ldexp(1.0, exponent) * (1.0 + rand()), cap)
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, MAX_RETRY_AFTER)
    return max(delay, 0.0)


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def quiet_until(quiet: QuietHours, now: datetime) -> datetime | None:
    """When the quiet period ``now`` falls in ends (UTC), or None outside it.

    The period is [start, end) in local time, running past midnight when
    ``end`` is before ``start``; start == end means never quiet."""
    zone = ZoneInfo(quiet.timezone)
    local = now.astimezone(zone)
    start, end = _clock(quiet.start), _clock(quiet.end)
    t = local.time().replace(second=0, microsecond=0, tzinfo=None)
    day = local.date()
    if start == end:
        return None
    if start < end:
        inside = start <= t < end
        end_day = day
    else:
        inside = t >= start or t < end
        end_day = day + timedelta(days=1) if t >= start else day
    if not inside:
        return None
    ends = datetime.combine(end_day, end, tzinfo=zone)
    return ends.astimezone(now.tzinfo)


def rate_limited_until(
    sent: list[datetime], count: int, per: float, now: datetime
) -> datetime | None:
    """When a channel that sent at ``sent`` (ascending) may send again under
    ``count`` per ``per`` seconds, or None if it may send now."""
    window = [t for t in sent if t > now - timedelta(seconds=per)]
    if len(window) < count:
        return None
    return window[len(window) - count] + timedelta(seconds=per)


@dataclass
class DrainResult:
    """What one drain did: delivered, scheduled for retry, given up (dead), held
    for a digest (quiet hours), put off (rate limit, quiet hours ending)."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    held: int = 0
    deferred: int = 0


class _Dispatcher:
    """One drain: renders each alert once, sends with bounded concurrency, and
    turns every result into exactly one recorded outcome."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        settings: DeliverySettings,
        now: Callable[[], datetime],
        concurrency: int,
        send_timeout: float | None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.channels = channels
        self.settings = settings
        self.now = now
        self.send_timeout = send_timeout
        self.semaphore = asyncio.Semaphore(max(concurrency, 1))
        self.rendered: dict[str, Envelope] = {}
        self.sent: dict[str, list[datetime]] = {}
        """Per rate-limited channel: send times in its window (stored + this drain)."""

    def policy(self, channel_name: str) -> ChannelPolicy | None:
        channel = self.channels.get(channel_name)
        return None if channel is None else policy_of(channel)

    def gate(self, claimed: ClaimedDelivery) -> DeliveryOutcome | None:
        """Quiet hours and rate limit, before any send: an outcome that puts the
        delivery off, or None to send it now (its rate-limit slot is taken).
        Runs in a worker thread (it may read the store)."""
        delivery = claimed.delivery
        assert delivery.id is not None
        policy = self.policy(delivery.channel)
        if policy is None:
            return None
        now = self.now()
        if policy.quiet_hours is not None:
            ends = quiet_until(policy.quiet_hours, now)
            if ends is not None:
                if policy.quiet_hours.then == "digest":
                    return DeliveryOutcome(
                        delivery_id=delivery.id, ok=False, attempted_at=now, held=True
                    )
                return DeliveryOutcome(
                    delivery_id=delivery.id,
                    ok=False,
                    attempted_at=now,
                    defer_until=ends,
                )
        limit = policy.rate_limit
        if limit is not None:
            sent = self.sent.get(delivery.channel)
            if sent is None:
                since = now - timedelta(seconds=limit.per)
                sent = self.sent[delivery.channel] = self.store.delivered_times(
                    delivery.channel, since
                )
            later = rate_limited_until(sent, limit.count, limit.per, now)
            if later is not None:
                return DeliveryOutcome(
                    delivery_id=delivery.id,
                    ok=False,
                    attempted_at=now,
                    defer_until=later,
                )
            sent.append(now)
        return None

    def gate_all(
        self, batch: list[ClaimedDelivery]
    ) -> tuple[list[ClaimedDelivery], list[DeliveryOutcome]]:
        """Split a batch into what is sent now and the outcomes of what is not;
        the latter are recorded here."""
        send: list[ClaimedDelivery] = []
        put_off: list[DeliveryOutcome] = []
        for claimed in batch:
            outcome = self.gate(claimed)
            if outcome is None:
                send.append(claimed)
                continue
            self.store.record_delivery(outcome)
            put_off.append(outcome)
            log.info(
                "delivery %s alert=%s channel=%s%s",
                "held for digest" if outcome.held else "put off",
                claimed.alert.id,
                claimed.delivery.channel,
                ""
                if outcome.defer_until is None
                else f" until={outcome.defer_until.isoformat()}",
            )
        return send, put_off

    def render(self, claimed: ClaimedDelivery) -> Envelope:
        envelope = self.rendered.get(claimed.alert.id)
        if envelope is None:
            html = any(ch.supports_html for ch in self.channels.values())
            envelope = render_alert(claimed.alert, html=html)
            self.rendered[claimed.alert.id] = envelope
        return envelope

    async def attempt(
        self, claimed: ClaimedDelivery, start_by: datetime
    ) -> DeliveryOutcome | None:
        """Send one claimed delivery and decide its outcome (never raises but
        for cancellation); None, sending nothing, if it cannot start by
        ``start_by`` (the send could outlast the lease, and the row be reclaimed)."""
        delivery, alert = claimed.delivery, claimed.alert.id
        assert delivery.id is not None, "claimed deliveries have ids"
        channel = self.channels.get(delivery.channel)
        if channel is None:
            known = ", ".join(sorted(self.channels)) or "none"
            return DeliveryOutcome(
                delivery_id=delivery.id,
                ok=False,
                attempted_at=self.now(),
                error=(
                    f"channel {delivery.channel!r} is not configured any more "
                    f"(configured: {known}); add it back and run "
                    f"`feedwatch alerts redeliver {claimed.alert.id}`"
                ),
            )
        async with self.semaphore:
            attempted_at = self.now()
            # Queued behind other sends: once the lease may end mid-send, another
            # worker may claim the row too, and both would deliver it.
            if attempted_at > start_by:
                log.warning(
                    "delivery alert=%s channel=%s not sent: queued past %s, it could "
                    "outlast its lease; it goes out once reclaimed",
                    alert,
                    delivery.channel,
                    start_by.isoformat(),
                )
                return None
            deadline: asyncio.Timeout | None = None
            try:
                envelope = self.render(claimed)
                async with asyncio.timeout(self.send_timeout) as deadline:
                    await channel.send(envelope)
            except DeliveryError as e:
                return self.failed(
                    claimed, attempted_at, str(e), e.retryable, e.retry_after
                )
            except Exception as e:
                if (
                    isinstance(e, TimeoutError)
                    and deadline is not None
                    and deadline.expired()
                ):
                    message = f"send did not finish within {self.send_timeout:g}s"
                    log.error(
                        "channel %s, alert %s: %s", delivery.channel, alert, message
                    )
                    error = str(
                        DeliveryError(delivery.channel, alert, message, retryable=True)
                    )
                    return self.failed(claimed, attempted_at, error, True, None)
                # Outside the DeliveryError contract: a bug. Keep the daemon alive and
                # the alert retryable, and make the traceback visible.
                log.exception(
                    "channel %s, alert %s: unexpected error (a bug)",
                    delivery.channel,
                    alert,
                )
                return self.failed(
                    claimed, attempted_at, f"unexpected error: {e!r}", True, None
                )
        return DeliveryOutcome(
            delivery_id=delivery.id, ok=True, attempted_at=attempted_at
        )

    def failed(
        self,
        claimed: ClaimedDelivery,
        attempted_at: datetime,
        error: str,
        retryable: bool,
        retry_after: float | None,
    ) -> DeliveryOutcome:
        delivery = claimed.delivery
        assert delivery.id is not None
        attempts = delivery.attempts + 1
        if not retryable or attempts >= self.settings.max_attempts:
            if retryable:
                error = f"{error} (gave up after {attempts} attempts)"
            return DeliveryOutcome(
                delivery_id=delivery.id,
                ok=False,
                attempted_at=attempted_at,
                error=error,
            )
        delay = backoff(
            delivery.attempts,
            base=self.settings.backoff_base,
            cap=self.settings.backoff_max,
            retry_after=retry_after,
        )
        return DeliveryOutcome(
            delivery_id=delivery.id,
            ok=False,
            attempted_at=attempted_at,
            error=error,
            retry_at=self.now() + timedelta(seconds=delay),
        )

    async def deliver(
        self, claimed: ClaimedDelivery, start_by: datetime
    ) -> DeliveryOutcome | None:
        started = perf_counter()
        outcome = await self.attempt(claimed, start_by)
        if outcome is None:
            return None
        elapsed = perf_counter() - started
        await asyncio.to_thread(self.store.record_delivery, outcome)
        alert_id, channel = claimed.alert.id, claimed.delivery.channel
        if self.metrics is not None:
            kind = (
                "delivered"
                if outcome.ok
                else "retry"
                if outcome.retry_at is not None
                else "dead"
            )
            self.metrics.observe_delivery(channel, kind, elapsed)
        if outcome.ok:
            log.info("delivered alert=%s channel=%s", alert_id, channel)
        elif outcome.retry_at is not None:
            log.warning(
                "delivery failed alert=%s channel=%s retry_at=%s: %s",
                alert_id,
                channel,
                outcome.retry_at.isoformat(),
                outcome.error,
            )
        else:
            log.error(
                "delivery dead alert=%s channel=%s: %s",
                alert_id,
                channel,
                outcome.error,
            )
        return outcome


async def drain_outbox(
    store: Store,
    channels: Mapping[str, Channel],
    settings: DeliverySettings,
    *,
    worker_id: str,
    now: Callable[[], datetime] = utcnow,
    max_rounds: int = 10,
    lease_seconds: float | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    send_timeout: float | None = None,
    metrics: Metrics | None = None,
) -> DrainResult:
    """Deliver due outbox rows until none are left or ``max_rounds`` batches are done.

    Every claimed row gets exactly one ``record_delivery``: delivered; failed and
    retryable -> ``retry_at`` by :func:`backoff` (dead once ``max_attempts`` is
    reached); permanent failure or unknown channel -> dead. A ``StoreError`` while
    recording is raised once the batch's other sends have finished; a row whose
    outcome was not recorded keeps its lease until ``lease_seconds`` pass and is
    then sent again (delivery is at least once, with a stable id); a row still
    queued when a send begun then could outlast the lease is left unsent for the
    same reason. ``lease_seconds``
    must exceed the time a batch takes (``send_timeout`` bounds each send); both
    default to ``settings.lease`` and ``settings.send_timeout``.

    Before sending, a channel's quiet hours hold the row for a digest (or put it
    off to their end) and its rate limit puts it off until the window has room;
    neither counts as an attempt.
    """
    lease = settings.lease if lease_seconds is None else lease_seconds
    timeout = settings.send_timeout if send_timeout is None else send_timeout
    dispatcher = _Dispatcher(
        store, channels, settings, now, concurrency, timeout, metrics
    )
    total = DrainResult()
    for _ in range(max(max_rounds, 0)):
        claimed_at = now()
        batch = await asyncio.to_thread(
            store.claim_deliveries, worker_id, claimed_at, settings.batch, lease
        )
        if not batch:
            break
        # Sends start early enough to end within the lease (half of it at least,
        # should the lease be set shorter than the send timeout).
        start_by = claimed_at + timedelta(seconds=lease - min(timeout, lease / 2))
        claimed, put_off = await asyncio.to_thread(dispatcher.gate_all, batch)
        for outcome in put_off:
            if outcome.held:
                total.held += 1
            else:
                total.deferred += 1
            if metrics is not None:
                channel = next(
                    c.delivery.channel
                    for c in batch
                    if c.delivery.id == outcome.delivery_id
                )
                metrics.observe_delivery(
                    channel, "held" if outcome.held else "deferred", 0.0
                )
        results = await asyncio.gather(
            *(dispatcher.deliver(c, start_by) for c in claimed),
            return_exceptions=True,
        )
        failure: BaseException | None = None
        for result in results:
            if isinstance(result, BaseException):
                failure = failure or result
            elif result is None:
                continue
            elif result.ok:
                total.delivered += 1
            elif result.retry_at is not None:
                total.retried += 1
            else:
                total.dead += 1
        if failure is not None:
            raise failure
    if total.delivered or total.retried or total.dead or total.held or total.deferred:
        log.info(
            "drain worker=%s delivered=%d retried=%d dead=%d held=%d deferred=%d",
            worker_id,
            total.delivered,
            total.retried,
            total.dead,
            total.held,
            total.deferred,
        )
    return total
