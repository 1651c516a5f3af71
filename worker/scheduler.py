"""The daemon: an APScheduler AsyncIOScheduler driving poll passes and outbox drains.

The database is the source of truth (leases, next checks, the outbox), so the
scheduler keeps its jobs in memory and two replicas can run side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from worker.deliver import DrainResult, drain_outbox
from worker.digest import Digest, retry_unsent_digests, send_scheduled_digest
from worker.errors import DeliveryError, StoreError
from worker.models import utcnow
from worker.poll import PollSummary, poll_once
from worker.websub import callback_base, sync_subscriptions

if TYPE_CHECKING:
    from worker.config import DigestSchedule
    from worker.core import Feedwatch

__all__ = ["Daemon"]

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 60.0
WEBSUB_SYNC_SECONDS = 300
DIGEST_RETRY_SECONDS = 300
"""How often unsent scheduled digests (their claimer died) are looked for; also
once at start."""


class Daemon:
    """Runs until stopped; SIGTERM/SIGINT let the jobs in hand finish first."""

    def __init__(self, fw: Feedwatch) -> None:
        self.fw = fw
        self.stop_event = asyncio.Event()
        self._inflight: set[asyncio.Task[Any]] = set()
        self.polls = 0
        self.drains = 0
        self.last_poll: PollSummary | None = None
        self.last_poll_at: datetime | None = None
        self.running = False

    def _track(
        self, name: str, fn: Callable[[], Awaitable[Any]]
    ) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            if self.stop_event.is_set():
                return
            task = asyncio.current_task()
            assert task is not None
            self._inflight.add(task)
            try:
                await fn()
            except (StoreError, DeliveryError):
                log.exception("%s failed; will try again at the next run", name)
            except Exception:
                log.exception("%s failed with an unexpected error (a bug)", name)
            finally:
                self._inflight.discard(task)

        return job

    async def poll(self) -> PollSummary:
        """One poll pass (the job), then a drain so alerts go out at once."""
        summary = await poll_once(self.fw)
        self.polls += 1
        self.last_poll = summary
        self.last_poll_at = utcnow()
        if summary.alerts:
            await self.drain()
        return summary

    async def drain(self) -> DrainResult:
        """Deliver what the outbox holds (the job)."""
        result = await drain_outbox(
            self.fw.store,
            self.fw.channels,
            self.fw.settings.delivery,
            worker_id=self.fw.worker_id,
            metrics=self.fw.metrics,
        )
        self.drains += 1
        return result

    async def digest(self, schedule: DigestSchedule) -> None:
        """Send one scheduled digest (the cron job)."""
        channel = self.fw.channels[schedule.channel]
        d = await send_scheduled_digest(
            self.fw.store, channel, schedule, worker_id=self.fw.worker_id
        )
        if d is None:
            return
        log.info(
            "digest %s sent to %s: %d stories",
            schedule.name,
            schedule.channel,
            len(d.stories),
        )

    async def retry_digests(self) -> list[Digest]:
        """Send the scheduled digests a dead replica claimed and never sent (the
        job): the next cron fire names a new period, so nothing else would."""
        sent = await retry_unsent_digests(
            self.fw.store,
            self.fw.channels,
            self.fw.settings.digests,
            worker_id=self.fw.worker_id,
        )
        for d in sent:
            log.info(
                "digest of %s to %s sent late: %d stories",
                d.since.isoformat(),
                d.until.isoformat(),
                len(d.stories),
            )
        return sent

    def stop(self) -> None:
        """Ask the daemon to stop after the work in hand."""
        self.stop_event.set()

    async def run(self, *, duration: float | None = None) -> None:
        """Run the jobs until stop() or a signal, or for ``duration`` seconds."""
        settings = self.fw.settings
        await asyncio.to_thread(self.fw.sync_config_feeds)
        self.fw.ruleset  # noqa: B018 - a broken rule file stops start-up, not a job
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
                installed.append(sig)
        scheduler = AsyncIOScheduler(
            event_loop=loop,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(max(settings.poll.tick, 60)),
            },
            timezone="UTC",
        )
        start = utcnow()
        scheduler.add_job(
            self._track("poll", self.poll),
            "interval",
            seconds=settings.poll.tick,
            next_run_time=start,
            id="poll",
        )
        scheduler.add_job(
            self._track("drain", self.drain),
            "interval",
            seconds=settings.delivery.interval,
            next_run_time=start + timedelta(seconds=settings.delivery.interval),
            id="drain",
        )
        websub_base = callback_base(settings)
        if websub_base is not None:
            if not settings.api.enabled:
                log.warning(
                    "api.public_url is set but the API is off here: WebSub callbacks "
                    "reach this worker only if `feedwatch serve` runs beside it"
                )

            async def websub_sync() -> None:
                await sync_subscriptions(
                    self.fw, callback_base=websub_base, now=utcnow()
                )

            scheduler.add_job(
                self._track("websub", websub_sync),
                "interval",
                seconds=WEBSUB_SYNC_SECONDS,
                next_run_time=start + timedelta(seconds=30),
                id="websub",
            )
        for sched in settings.digests:
            scheduler.add_job(
                self._track(f"digest {sched.name}", _bind(self.digest, sched)),
                CronTrigger.from_crontab(sched.cron, timezone=sched.timezone),
                id=f"digest:{sched.name}",
            )
        if settings.digests:
            scheduler.add_job(
                self._track("digest retry", self.retry_digests),
                "interval",
                seconds=DIGEST_RETRY_SECONDS,
                next_run_time=start,
                id="digest-retry",
            )
        scheduler.start()
        self.running = True
        log.info(
            "feedwatch running: %d channel(s), poll tick %ss, database %s",
            len(settings.channels),
            settings.poll.tick,
            _mask_url(settings.database),
        )
        try:
            if duration is None:
                await self.stop_event.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), duration)
        finally:
            self.stop_event.set()
            self.running = False
            # Pause first: APScheduler's asyncio executor cancels running jobs on
            # shutdown, and the jobs in hand must finish (nothing half-written).
            scheduler.pause()
            if self._inflight:
                log.info("stopping: finishing %d job(s) in hand", len(self._inflight))
                _, pending = await asyncio.wait(
                    set(self._inflight), timeout=STOP_GRACE_SECONDS
                )
                for task in pending:
                    task.cancel()
            scheduler.shutdown(wait=False)
            for sig in installed:
                loop.remove_signal_handler(sig)
            log.info("feedwatch stopped")


def _bind(
    fn: Callable[[DigestSchedule], Awaitable[None]], arg: DigestSchedule
) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        await fn(arg)

    return call


def _mask_url(url: str) -> str:
    """The database URL without its password, for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        user = cred.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in cred else url
    return url
