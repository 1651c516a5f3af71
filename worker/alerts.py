"""Alert policy and rendering: stable alert ids, routing to channels, and
``Alert -> Envelope`` (subject, plain text, escaped HTML, the webhook JSON payload).

An alert is rendered once here; every channel carries the same words.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from worker.config import ChannelSettings
from worker.models import (
    ActorRef,
    Alert,
    Decision,
    Envelope,
    Event,
    EventStatus,
    Evidence,
    Item,
    Story,
)

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "PAYLOAD_TYPE",
    "STATUS_CHANGES",
    "STATUS_CHANGE_MIN_GAP",
    "STORY_KEY",
    "SUBJECT_MAX",
    "alert_id",
    "alert_marks",
    "alert_payload",
    "clean_line",
    "clean_text",
    "event_line",
    "iso_utc",
    "render_alert",
    "route",
    "safe_url",
    "story_alert",
    "story_alert_key",
    "story_marks",
    "template_env",
]

PAYLOAD_TYPE = "feedwatch.alert"
SUBJECT_MAX = 200
SUMMARY_MAX = 1000

# Bidirectional overrides and isolates can make a subject read differently from
# what it contains; line/paragraph separators break "one line".
_INVISIBLE = {
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
    "\u2028",
    "\u2029",
}
_SPACES = re.compile(r"[ \t]+")


def _escape_part(part: str) -> str:
    return part.replace("\\", "\\\\").replace("|", "\\|")


def alert_id(story_id: str, rule: str, status: str | None = None) -> str:
    """The alert's id: the same story and rule (and status) is one alert forever."""
    # Escaped so that no two (story, rule, status) triples share a key.
    key = "|".join(_escape_part(p) for p in (story_id, rule, status or ""))
    return "al_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def route(alert: Alert, channels: Sequence[ChannelSettings]) -> list[str]:
    """Names of the channels whose ``rules``/``topics``/``severities`` filters admit
    the alert (a rule filter matches any rule that fired on the report)."""
    names: list[str] = []
    fired = {alert.rule, *alert.decision.rules}
    severity = alert.severity or "none"
    for ch in channels:
        if ch.rules and not fired & set(ch.rules):
            continue
        if ch.topics and not set(alert.topics) & set(ch.topics):
            continue
        if ch.severities and severity not in ch.severities:
            continue
        names.append(ch.name)
    return names


STORY_KEY = "story"
"""Key of a story's first alert (``alert_id(story_id, STORY_KEY)``)."""
STATUS_CHANGES = frozenset(
    {EventStatus.HELD, EventStatus.CANCELLED, EventStatus.POSTPONED}
)
"""Statuses whose first report on a known story is news (a new alert)."""


def _status(decision: Decision | None) -> EventStatus:
    if decision is None or decision.event is None:
        return EventStatus.UNKNOWN
    return decision.event.status


def alert_marks(alert: Alert) -> set[str]:
    """What an alert already told about its story: its key (``story`` or the new
    status) and the status its report gave; :func:`story_alert_key` reads them."""
    marks = {STORY_KEY if alert.supersedes is None else _status(alert.decision)}
    status = _status(alert.decision)
    if status is not EventStatus.UNKNOWN:
        marks.add(status.value)
    return {str(m) for m in marks}


def story_marks(alerts: Iterable[Alert]) -> set[str]:
    """Union of :func:`alert_marks` over a story's alerts (empty: none raised)."""
    out: set[str] = set()
    for alert in alerts:
        out |= alert_marks(alert)
    return out


def story_alert_key(decision: Decision, seen: AbstractSet[str]) -> str | None:
    """Whether a report of a story alerts, and under which key.

    ``seen`` is what the story's alerts told (:func:`story_marks`). The first
    alerting report gives ``"story"``; a later one alerts again only when it brings
    a status change not yet told (held, cancelled, postponed), keyed by that status;
    otherwise None: it joins the story quietly.
    """
    if STORY_KEY not in seen:
        return STORY_KEY
    status = _status(decision)
    if status in STATUS_CHANGES and status.value not in seen:
        return status.value
    return None


STATUS_CHANGE_MIN_GAP = timedelta(hours=12)
"""A status that differs from the first report's within this time of it is taken
for outlets wording one moment differently ("to meet" / "met"), not for news."""


def _too_soon(item: Item, story: Story, now: datetime) -> bool:
    dates = [s.published for s in story.sources if s.published is not None]
    start = min(dates, default=story.first_seen)
    when = item.published or now
    return when - start < STATUS_CHANGE_MIN_GAP


def story_alert(
    item: Item,
    decision: Decision,
    story: Story,
    seen: AbstractSet[str],
    now: datetime,
) -> Alert | None:
    """The alert a report raises on its story, or None (pure: the poll shell routes
    it, records it, and adds :func:`alert_marks` of it to ``seen``).

    One alert per story whatever rules fired; a status change is a new alert whose
    ``supersedes`` is the story's first alert, unless it comes within
    :data:`STATUS_CHANGE_MIN_GAP` of the story's first report."""
    key = story_alert_key(decision, seen)
    if key is None or not decision.rules:
        return None
    if key != STORY_KEY and _too_soon(item, story, now):
        return None
    first = alert_id(story.id, STORY_KEY)
    return Alert(
        id=first if key == STORY_KEY else alert_id(story.id, STORY_KEY, key),
        story_id=story.id,
        rule=decision.rules[0],
        topics=decision.topics,
        severity=decision.severity,
        score=decision.score,
        created_at=now,
        item=item,
        decision=decision,
        story=story,
        supersedes=None if key == STORY_KEY else first,
    )


def clean_line(value: str | None, limit: int | None = None) -> str:
    """One line of untrusted text: control characters and line breaks become
    spaces, runs of spaces collapse, and ``limit`` caps the length (with "…")."""
    if not value:
        return ""
    out = "".join(
        " " if unicodedata.category(c) == "Cc" or c in _INVISIBLE else c for c in value
    )
    out = " ".join(out.split())
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 1, 0)].rstrip() + "…"
    return out


def clean_text(value: str | None, limit: int | None = None) -> str:
    """Multi-line untrusted text: keeps line breaks, drops other control characters
    (no terminal escapes reach a console), caps the length."""
    if not value:
        return ""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    out = "".join(
        c
        if c == "\n" or not (unicodedata.category(c) == "Cc" or c in _INVISIBLE)
        else " "
        for c in value
    )
    out = "\n".join(_SPACES.sub(" ", line).strip() for line in out.split("\n"))
    out = re.sub(r"\n{3,}", "\n\n", out).strip()
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 1, 0)].rstrip() + "…"
    return out


def safe_url(url: str | None) -> str | None:
    """The URL if it is http(s) and one line, else None (never a javascript: link)."""
    if not url or any(unicodedata.category(c) == "Cc" for c in url):
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url.strip()


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix (naive datetimes are taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _human_time(value: datetime | None) -> str:
    if value is None:
        return "unknown"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _actor_label(actor: ActorRef) -> str:
    name = clean_line(actor.name)
    if actor.kind == "person":
        return f"{name} ({clean_line(actor.country)})"
    return name


def _join(words: Iterable[str]) -> str:
    items = [w for w in dict.fromkeys(words) if w]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def event_line(event: Event | None) -> str:
    """One human line for an event: kind, status, who visits or hosts whom, where,
    when — e.g. ``visit (announced): Lee Jae-myung (KR) visiting Xi Jinping (CN);
    in Beijing; on Sunday``."""
    if event is None:
        return "no event details"
    kinds = "/".join(k.value for k in event.kinds) or "event"
    head = f"{kinds} ({event.status.value})"
    visitors = [_actor_label(a) for a in event.actors if a.role == "visitor"]
    hosts = [_actor_label(a) for a in event.actors if a.role == "host"]
    others = [
        _actor_label(a) for a in event.actors if a.role not in ("visitor", "host")
    ]
    if visitors and hosts:
        who = f"{_join(visitors)} visiting {_join(hosts)}"
    elif visitors:
        who = f"{_join(visitors)} visiting"
        if others:
            who += f" {_join(others)}"
    elif hosts:
        who = f"{_join(hosts)} hosting"
        if others:
            who += f" {_join(others)}"
    elif others:
        who = _join(others)
    else:
        who = _join(clean_line(c) for c in event.countries)
    parts = [f"{head}: {who}" if who else head]
    if event.location:
        parts.append(f"in {clean_line(event.location)}")
    if event.when:
        parts.append(clean_line(event.when))
    return "; ".join(parts)


def _event_of(alert: Alert) -> Event | None:
    # The report that raised the alert first; the story's merged view otherwise.
    if alert.decision.event is not None:
        return alert.decision.event
    return alert.story.event if alert.story is not None else None


def _label(alert: Alert, event: Event | None) -> str:
    if event is not None and event.kinds:
        return "/".join(k.value for k in event.kinds)
    if alert.topics:
        return "/".join(clean_line(t) for t in alert.topics)
    return clean_line(alert.rule)


def _subject(alert: Alert, event: Event | None) -> str:
    label = _label(alert, event)
    if alert.supersedes and event is not None and event.status.value != "unknown":
        label += f", now {event.status.value}"
    title = clean_line(alert.item.title) or "(untitled)"
    source = clean_line(alert.item.source)
    subject = f"[feedwatch] {label}: {title}"
    if source:
        subject += f" ({source})"
    return clean_line(subject, SUBJECT_MAX)


def _evidence_payload(ev: Evidence) -> dict[str, Any]:
    return {
        "rule": ev.rule,
        "field": ev.field,
        "start": ev.start,
        "end": ev.end,
        "text": ev.text,
        "kind": ev.kind,
        "actor": ev.actor,
    }


def _event_payload(event: Event | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {
        "kinds": [k.value for k in event.kinds],
        "status": event.status.value,
        "actors": [
            {
                "name": a.name,
                "country": a.country,
                "kind": a.kind,
                "office": a.office,
                "role": a.role,
                "mention": a.mention,
            }
            for a in event.actors
        ],
        "countries": list(event.countries),
        "location": event.location,
        "when": event.when,
    }


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The webhook JSON body (schema in docs/ALERT_PAYLOAD.md); JSON types only."""
    item = alert.item
    story = alert.story
    return {
        "type": PAYLOAD_TYPE,
        "id": alert.id,
        "created_at": iso_utc(alert.created_at),
        "rule": alert.rule,
        "topics": list(alert.topics),
        "severity": alert.severity,
        "score": alert.score,
        "supersedes": alert.supersedes,
        "item": {
            "id": item.id,
            "title": item.title,
            "summary": item.summary,
            "url": item.url,
            "published": iso_utc(item.published),
            "source": item.source,
            "feed_url": item.feed_url,
        },
        "event": _event_payload(_event_of(alert)),
        "story": None
        if story is None
        else {
            "id": story.id,
            "title": story.title,
            "first_seen": iso_utc(story.first_seen),
            "last_seen": iso_utc(story.last_seen),
            "status": _status(alert.decision).value
            if alert.supersedes
            else (story.event.status.value if story.event else "unknown"),
            "sources": [
                {
                    "source": s.source,
                    "title": s.title,
                    "url": s.url,
                    "published": iso_utc(s.published),
                }
                for s in story.sources
            ],
        },
        "evidence": [_evidence_payload(ev) for ev in alert.decision.evidence],
    }


def _evidence_line(ev: Evidence) -> str:
    line = f'[{clean_line(ev.rule)}] {ev.field}: "{clean_line(ev.text, 200)}"'
    if ev.actor:
        line += f" ({ev.kind}: {clean_line(ev.actor)})"
    elif ev.kind != "phrase":
        line += f" ({clean_line(ev.kind)})"
    return line


def _other_sources(alert: Alert) -> list[dict[str, Any]]:
    if alert.story is None:
        return []
    out = []
    for s in alert.story.sources:
        if s.item_id == alert.item.id:
            continue
        out.append(
            {
                "source": clean_line(s.source) or "unknown outlet",
                "title": clean_line(s.title, 300),
                "url": safe_url(s.url),
                "published": _human_time(s.published) if s.published else None,
            }
        )
    return out


def _text(alert: Alert, event: Event | None) -> str:
    item = alert.item
    lines = [clean_line(item.title) or "(untitled)", ""]
    lines.append(f"Source:    {clean_line(item.source) or 'unknown'}")
    lines.append(f"Link:      {safe_url(item.url) or '(none)'}")
    lines.append(f"Published: {_human_time(item.published)}")
    lines.append(f"Event:     {event_line(event)}")
    rule_bits = [f"topics: {', '.join(map(clean_line, alert.topics)) or 'none'}"]
    if alert.severity:
        rule_bits.append(f"severity: {clean_line(alert.severity)}")
    rule_bits.append(f"score: {alert.score:.2f}")
    rules = ", ".join(clean_line(r) for r in alert.decision.rules) or alert.rule
    lines.append(f"Rules:     {rules} ({'; '.join(rule_bits)})")
    summary = clean_text(item.summary, SUMMARY_MAX)
    if summary:
        lines += ["", summary]
    if alert.decision.evidence:
        lines += ["", "Evidence:"]
        lines += [f"  - {_evidence_line(ev)}" for ev in alert.decision.evidence]
    others = _other_sources(alert)
    if others:
        lines += ["", "Also reported by:"]
        for o in others:
            line = f"  - {o['source']}: {o['title']}"
            if o["url"]:
                line += f" <{o['url']}>"
            if o["published"]:
                line += f" ({o['published']})"
            lines.append(line)
    lines += ["", f"Alert {alert.id}, story {clean_line(alert.story_id)}"]
    if alert.supersedes:
        lines[-1] += f", updates alert {clean_line(alert.supersedes)}"
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=1)
def template_env() -> jinja2.Environment:
    """The jinja2 environment of ``worker/templates`` (autoescape for .html/.xml);
    jinja2 loads here, when an alert is first rendered, not on every poll."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("worker", "templates"),
        autoescape=jinja2.select_autoescape(["html", "htm", "xml"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _html(alert: Alert, event: Event | None, subject: str) -> str:
    item = alert.item
    evidence = [
        {
            "rule": clean_line(ev.rule),
            "field": ev.field,
            "text": clean_line(ev.text, 200),
            "kind": clean_line(ev.kind),
            "actor": clean_line(ev.actor) or None,
        }
        for ev in alert.decision.evidence
    ]
    return (
        template_env()
        .get_template("alert.html")
        .render(
            subject=subject,
            title=clean_line(item.title) or "(untitled)",
            source=clean_line(item.source) or "unknown",
            url=safe_url(item.url),
            published=_human_time(item.published),
            event=event_line(event),
            rules=[clean_line(r) for r in alert.decision.rules] or [alert.rule],
            topics=[clean_line(t) for t in alert.topics],
            severity=clean_line(alert.severity) or None,
            score=f"{alert.score:.2f}",
            summary=clean_text(item.summary, SUMMARY_MAX),
            evidence=evidence,
            others=_other_sources(alert),
            alert_id=alert.id,
            story_id=clean_line(alert.story_id),
            supersedes=clean_line(alert.supersedes) or None,
        )
    )


def render_alert(alert: Alert, *, html: bool = True) -> Envelope:
    """Render an alert once for every channel: subject, text, HTML and JSON data.

    ``html=False`` (no channel shows HTML) leaves ``html`` None and jinja2 unloaded.
    """
    event = _event_of(alert)
    subject = _subject(alert, event)
    return Envelope(
        id=alert.id,
        kind="alert",
        subject=subject,
        text=_text(alert, event),
        html=_html(alert, event, subject) if html else None,
        data=alert_payload(alert),
        thread_id=alert.story_id,
    )
