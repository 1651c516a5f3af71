"""Builders for the records the store tests write (plain functions, real models)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.models import (
    ActorRef,
    Alert,
    Decision,
    Event,
    EventKind,
    EventStatus,
    Feed,
    Item,
    Story,
)
from worker.store.base import AlertRecord, PollIntent, StoryLink

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def feed(n: int = 1, **kw: object) -> Feed:
    return Feed.model_validate({"url": f"http://127.0.0.1:8000/feed{n}.xml", **kw})


def item(n: int, **kw: object) -> Item:
    data: dict[str, object] = {
        "id": f"guid:{n}",
        "title": f"Leaders agree to hold summit {n}",
        "summary": f"Summary {n}",
        "url": f"http://127.0.0.1:8000/a/{n}",
        "published": at(n),
        "source": "Outlet",
    }
    data.update(kw)
    return Item.model_validate(data)


EVENT = Event(
    kinds=(EventKind.SUMMIT,),
    status=EventStatus.ANNOUNCED,
    actors=(
        ActorRef(name="China", country="CN"),
        ActorRef(name="Japan", country="JP"),
    ),
    countries=("CN", "JP"),
)


def decision(
    item_id: str,
    rules: tuple[str, ...] = ("summit.trilateral",),
    topics: tuple[str, ...] = ("summit",),
) -> Decision:
    return Decision(
        id=item_id, alert=True, rules=rules, topics=topics, score=0.9, event=EVENT
    )


def story(
    story_id: str = "story-1",
    title: str = "Leaders agree to hold summit",
    first: datetime = T0,
    last: datetime | None = None,
    event: Event | None = EVENT,
) -> Story:
    return Story(
        id=story_id, title=title, first_seen=first, last_seen=last or first, event=event
    )


def alert(
    alert_id: str,
    st: Story,
    it: Item,
    created_at: datetime = T0,
    rule: str = "summit.trilateral",
) -> Alert:
    return Alert(
        id=alert_id,
        story_id=st.id,
        rule=rule,
        topics=("summit",),
        score=0.9,
        created_at=created_at,
        item=it,
        decision=decision(it.id),
        story=st,
    )


def poll(
    fd: Feed,
    items: list[Item],
    *,
    st: Story | None = None,
    alert_id: str | None = None,
    channels: tuple[str, ...] = ("console", "webhook"),
    created_at: datetime = T0,
) -> PollIntent:
    """A poll of ``fd`` with ``items``, the first of them matching and raising an
    alert on ``st`` (if given)."""
    assert fd.id is not None
    decisions = [decision(items[0].id)] if items else []
    links = (
        [StoryLink(story=st, item_id=i.id, feed_id=fd.id) for i in items[:1]]
        if st
        else []
    )
    records = []
    if st is not None and alert_id is not None:
        records.append(
            AlertRecord(
                alert=alert(alert_id, st, items[0], created_at), channels=channels
            )
        )
    return PollIntent(
        feed=fd.model_copy(update={"etag": '"v2"', "last_checked_at": created_at}),
        items=items,
        decisions=decisions,
        story_links=links,
        alerts=records,
    )
