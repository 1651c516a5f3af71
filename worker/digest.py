"""Digests: what matched in a period, grouped by story (store -> Digest -> text/md/html/json)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import jinja2

from worker.alerts import event_line
from worker.errors import DeliveryError
from worker.models import Envelope, utcnow
from worker.store.base import Store, StoryRow

if TYPE_CHECKING:
    from worker.channels.base import Channel
    from worker.config import DigestSchedule

__all__ = [
    "Digest",
    "build_digest",
    "digest_envelope",
    "digest_payload",
    "render_digest",
    "retry_unsent_digests",
]

log = logging.getLogger(__name__)

DIGEST_RUN_LEASE_SECONDS = 600.0
"""How long a claimed, unsent scheduled digest stays its claimer's; longer than any
send (the claimer is then taken for dead)."""
DIGEST_RETRY_HORIZON = 86400.0
"""Seconds after its period ended that an unsent scheduled digest is still sent
again: a day-old digest is news no more, and as each try claims the run anew, one
whose channel keeps failing is tried once a lease for a day at most."""

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("worker", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

# Feed text in Markdown: every character with a Markdown or HTML meaning is
# backslash-escaped, so a hostile title cannot make a link, an image or raw HTML.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&])")


def _md(value: object) -> str:
    text = " ".join(str(value).split())
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_url(value: object) -> str:
    out = str(value)
    for ch, code in (
        ("(", "%28"),
        (")", "%29"),
        (" ", "%20"),
        ("<", "%3C"),
        (">", "%3E"),
    ):
        out = out.replace(ch, code)
    return out


_env.filters["md"] = _md
_env.filters["md_url"] = _md_url


@dataclass(frozen=True, slots=True)
class Digest:
    """Stories seen in [since, until), newest first."""

    since: datetime
    until: datetime
    generated_at: datetime
    stories: tuple[StoryRow, ...]

    @property
    def id(self) -> str:
        """Stable per period, so a re-sent digest is recognisable."""
        key = f"{self.since.isoformat()}|{self.until.isoformat()}".encode()
        return "dg_" + hashlib.sha256(key).hexdigest()[:20]


def build_digest(
    store: Store,
    since: datetime,
    until: datetime | None = None,
    *,
    rules: Sequence[str] = (),
    topics: Sequence[str] = (),
) -> Digest:
    """Read the stories of the period from the store; ``rules``/``topics`` keep the
    stories where any of them matched (empty: all)."""
    end = until or utcnow()
    rows = [
        r
        for r in store.stories(since, end)
        if (not rules or set(r.rules) & set(rules))
        and (not topics or set(r.topics) & set(topics))
    ]
    return Digest(since=since, until=end, generated_at=utcnow(), stories=tuple(rows))


def _fmt(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "undated"


def _story_view(row: StoryRow) -> dict[str, Any]:
    story = row.story
    evidence: list[str] = []
    for alert in row.alerts:
        for ev in alert.decision.evidence:
            quote = ev.text.strip()
            if quote and quote not in evidence:
                evidence.append(quote)
    return {
        "id": story.id,
        "title": story.title,
        "event": event_line(story.event),
        "topics": list(row.topics),
        "rules": list(row.rules),
        "first_seen": _fmt(story.first_seen),
        "last_seen": _fmt(story.last_seen),
        "sources": [
            {
                "source": s.source or "unknown outlet",
                "title": s.title,
                # Only web links become hrefs (no javascript: or data: URLs).
                "url": s.url
                if s.url and s.url.startswith(("http://", "https://"))
                else None,
                "published": _fmt(s.published),
            }
            for s in story.sources
        ],
        "evidence": evidence[:8],
        "alerts": [a.id for a in row.alerts],
    }


def digest_payload(d: Digest) -> dict[str, Any]:
    """The JSON form of a digest (``--format json``, webhook body)."""
    return {
        "type": "feedwatch.digest",
        "id": d.id,
        "since": d.since.isoformat(),
        "until": d.until.isoformat(),
        "generated_at": d.generated_at.isoformat(),
        "stories": [_story_view(r) for r in d.stories],
    }


def _subject(d: Digest) -> str:
    n = len(d.stories)
    return (
        f"[feedwatch] digest {d.since:%Y-%m-%d %H:%M} to {d.until:%Y-%m-%d %H:%M} UTC: "
        f"{n} stor{'y' if n == 1 else 'ies'}"
    )


def render_digest(d: Digest, fmt: str) -> str:
    """The digest as ``text``, ``md``, ``html`` or ``json``."""
    if fmt == "json":
        return json.dumps(digest_payload(d), indent=2, ensure_ascii=False)
    template = {"text": "digest.txt", "md": "digest.md", "html": "digest.html"}[fmt]
    view = digest_payload(d)
    return _env.get_template(template).render(
        subject=_subject(d),
        since=_fmt(d.since),
        until=_fmt(d.until),
        stories=view["stories"],
    )


def digest_envelope(d: Digest) -> Envelope:
    """The digest rendered once for any channel."""
    return Envelope(
        id=d.id,
        kind="digest",
        subject=_subject(d),
        text=render_digest(d, "text"),
        html=render_digest(d, "html"),
        data=digest_payload(d),
    )


async def send_digest(
    store: Store,
    channel: Channel,
    since: datetime,
    until: datetime | None = None,
    *,
    rules: Sequence[str] = (),
    topics: Sequence[str] = (),
) -> Digest:
    """Send the digest of [since, until) through ``channel``, with the alerts that
    quiet hours held on that channel, then mark those it carried as delivered."""
    now = utcnow()
    held = await asyncio.to_thread(store.held_alerts, channel.name)
    if held:
        # Held alerts go out here even when older than the period asked for.
        since = min(since, *(a.created_at for a in held))
    d = await asyncio.to_thread(
        build_digest, store, since, until or now, rules=rules, topics=topics
    )
    await channel.send(digest_envelope(d))
    carried = {r.story.id for r in d.stories}
    released = [a.id for a in held if a.story_id in carried]
    if released:
        await asyncio.to_thread(
            store.release_held, channel.name, released, d.id, utcnow()
        )
    return d


async def send_scheduled_digest(
    store: Store,
    channel: Channel,
    schedule: DigestSchedule,
    *,
    worker_id: str,
    fired_at: datetime | None = None,
    now: datetime | None = None,
    lease_seconds: float = DIGEST_RUN_LEASE_SECONDS,
) -> Digest | None:
    """Send the schedule's digest for the period ending when the cron job fired,
    unless another worker has claimed that run (then None, nothing sent).

    The period ends on the whole minute of ``fired_at`` (default ``now``, default
    the clock), so every replica running the job names the same period and claims
    the same run; the store lets one of them send it. A claim never marked sent
    (its sender died, or the send failed) is taken over ``lease_seconds`` after it
    was made by :func:`retry_unsent_digests`, as the next fire names another
    period. ``feedwatch digest --send`` calls :func:`send_digest` and claims
    nothing."""
    clock = now or utcnow()
    until = (fired_at or clock).replace(second=0, microsecond=0)
    since = until - timedelta(seconds=schedule.since)
    # The run is named by the period's digest id; the digest sent may start earlier
    # (held alerts) and so carry another id.
    run_id = Digest(since=since, until=until, generated_at=clock, stories=()).id
    claimed = await asyncio.to_thread(
        store.claim_digest_run,
        schedule.name,
        run_id,
        worker_id,
        clock,
        lease_seconds,
        since=since,
        until=until,
    )
    if not claimed:
        log.info(
            "digest %s of the period ending %s is claimed by another worker; "
            "not sending it",
            schedule.name,
            until.isoformat(),
        )
        return None
    d = await send_digest(store, channel, since, until)
    await asyncio.to_thread(store.finish_digest_run, schedule.name, run_id, utcnow())
    return d


async def retry_unsent_digests(
    store: Store,
    channels: Mapping[str, Channel],
    schedules: Sequence[DigestSchedule],
    *,
    worker_id: str,
    now: datetime | None = None,
    lease_seconds: float = DIGEST_RUN_LEASE_SECONDS,
    horizon: float = DIGEST_RETRY_HORIZON,
) -> list[Digest]:
    """Send the scheduled digests whose claimer died (or whose send failed): runs
    claimed ``lease_seconds`` ago or more, never marked sent, whose period ended
    within ``horizon``, of schedules still configured; returns those sent.

    Each is claimed anew first, so of several replicas retrying at once one sends
    it, for the run's own period, through its schedule's channel. A send that
    fails leaves the run claimed: it is tried again once that claim is stale.
    """
    clock = now or utcnow()
    runs = await asyncio.to_thread(
        store.unsent_digest_runs,
        clock - timedelta(seconds=lease_seconds),
        clock - timedelta(seconds=horizon),
    )
    configured = {s.name: s for s in schedules}
    sent: list[Digest] = []
    for run in runs:
        schedule = configured.get(run.schedule)
        if schedule is None or run.since is None or run.until is None:
            continue
        channel = channels.get(schedule.channel)
        if channel is None:
            continue  # the config check names every digest's channel
        claimed = await asyncio.to_thread(
            store.claim_digest_run,
            run.schedule,
            run.digest_id,
            worker_id,
            clock,
            lease_seconds,
        )
        if not claimed:
            continue  # another replica took it, or it was sent meanwhile
        log.warning(
            "digest %s of the period ending %s was claimed by %s at %s and never "
            "sent; sending it now",
            run.schedule,
            run.until.isoformat(),
            run.worker_id,
            run.claimed_at.isoformat(),
        )
        try:
            d = await send_digest(store, channel, run.since, run.until)
        except DeliveryError as e:
            log.error(
                "digest %s of the period ending %s failed again (%s); next try in "
                "%.0fs",
                run.schedule,
                run.until.isoformat(),
                e,
                lease_seconds,
            )
            continue
        await asyncio.to_thread(
            store.finish_digest_run, run.schedule, run.digest_id, utcnow()
        )
        sent.append(d)
    return sent
