"""Alerts to render and deliver in tests: a realistic one (two outlets, one story)
and a hostile one (markup, header injection, control characters, javascript: URL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from worker.alerts import alert_id
from worker.models import (
    ActorRef,
    Alert,
    Decision,
    Event,
    EventKind,
    EventStatus,
    Evidence,
    Item,
    Story,
    StorySource,
)

__all__ = ["HOSTILE_TITLE", "hostile_alert", "sample_alert"]

HOSTILE_TITLE = "<script>alert(1)</script>\r\nBcc: evil@x"
T0 = datetime(2025, 1, 3, 9, 30, tzinfo=UTC)


def sample_alert(**changes: Any) -> Alert:
    """Xi hosts Lee on a state visit, reported by two outlets (one story)."""
    item = Item(
        id="guid:voa-xi-lee",
        title="China's Xi to Host South Korea's Lee Amid Regional Tensions",
        summary=(
            "South Korea's president Lee Jae Myung heads to Beijing on Sunday for a "
            "state visit hosted by Xi Jinping."
        ),
        url="https://news.example/xi-lee",
        published=T0,
        source="Example News",
        feed_url="https://news.example/feed.xml",
    )
    event = Event(
        kinds=(EventKind.VISIT, EventKind.SUMMIT),
        status=EventStatus.ANNOUNCED,
        actors=(
            ActorRef(
                name="Lee Jae-myung",
                country="KR",
                kind="person",
                office="head_of_state",
                role="visitor",
                mention="Lee Jae Myung",
            ),
            ActorRef(
                name="Xi Jinping",
                country="CN",
                kind="person",
                office="head_of_state",
                role="host",
                mention="Xi Jinping",
            ),
        ),
        countries=("CN", "KR"),
        location="Beijing",
        when="beginning Sunday",
    )
    decision = Decision(
        id=item.id,
        alert=True,
        topics=("visit",),
        rules=("visit-official-travel",),
        score=0.92,
        severity="high",
        evidence=(
            Evidence(
                rule="visit-official-travel",
                field="title",
                start=11,
                end=15,
                text="Host",
                kind="phrase",
            ),
            Evidence(
                rule="visit-official-travel",
                field="summary",
                start=93,
                end=103,
                text="Xi Jinping",
                kind="actor",
                actor="Xi Jinping",
            ),
        ),
        event=event,
    )
    story = Story(
        id="st_xi_lee",
        title=item.title,
        first_seen=T0,
        last_seen=datetime(2025, 1, 3, 11, 0, tzinfo=UTC),
        event=event,
        sources=(
            StorySource(
                item_id=item.id,
                source=item.source,
                title=item.title,
                url=item.url,
                published=T0,
            ),
            StorySource(
                item_id="guid:other-lee-visit",
                source="Other Wire",
                title="Lee heads to Beijing for state visit with Xi",
                url="https://wire.example/lee-beijing",
                published=datetime(2025, 1, 3, 10, 45, tzinfo=UTC),
            ),
        ),
    )
    fields: dict[str, Any] = {
        "id": alert_id(story.id, "visit-official-travel"),
        "story_id": story.id,
        "rule": "visit-official-travel",
        "topics": decision.topics,
        "severity": decision.severity,
        "score": decision.score,
        "created_at": datetime(2025, 1, 3, 11, 5, tzinfo=UTC),
        "item": item,
        "decision": decision,
        "story": story,
    }
    fields.update(changes)
    return Alert(**fields)


def hostile_alert() -> Alert:
    """Feed-controlled strings trying markup, header and terminal injection."""
    base = sample_alert()
    item = base.item.model_copy(
        update={
            "title": HOSTILE_TITLE,
            "summary": "<img src=x onerror=alert(2)> \x1b[31mred\x1b[0m & more",
            "url": "javascript:alert(3)",
            "source": "Evil <b>Outlet</b>\nX-Injected: 1",
        }
    )
    assert base.story is not None
    other = base.story.sources[1].model_copy(
        update={"title": "<i>x</i>", "url": "javascript:alert(4)"}
    )
    story = base.story.model_copy(update={"sources": (base.story.sources[0], other)})
    return base.model_copy(update={"item": item, "story": story})
