"""A small, real data set for the API tests: two outlets, two stories, two alerts.

Story "summit" is told by Kyodo and Yonhap (one alert, two deliveries: one delivered,
one dead); story "visit" by Kyodo alone (one alert, its delivery still pending); a
third item matched nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from worker.models import (
    ActorRef,
    Alert,
    Decision,
    Event,
    EventKind,
    EventStatus,
    Evidence,
    Feed,
    Item,
    Story,
    utcnow,
)
from worker.store.base import AlertRecord, DeliveryOutcome, PollIntent, StoryLink
from worker.store.sql import SqlStore

KYODO_URL = "http://127.0.0.1:9/kyodo.xml"
YONHAP_URL = "http://127.0.0.1:9/yonhap.xml"

SUMMIT_TITLE = "Japan, China and South Korea agree to revive trilateral summit"
SUMMIT_TITLE_2 = "Seoul, Tokyo and Beijing to hold three-way leaders' meeting"
VISIT_TITLE = "Xi to host South Korean president on state visit"
SUMMIT_EVIDENCE = "trilateral summit"
VISIT_EVIDENCE = "state visit"
SUMMARY_WORD = "Busan"
"""Appears only in the summary of the first summit report."""


@dataclass(frozen=True)
class Dataset:
    """Ids and times of what ``populate`` stored."""

    now: datetime
    summit_alert: str
    visit_alert: str
    summit_story: str
    visit_story: str


def _decision(
    item: Item, rule: str, topic: str, event: Event, evidence: str
) -> Decision:
    start = item.title.index(evidence)
    return Decision(
        id=item.id,
        alert=True,
        topics=(topic,),
        rules=(rule,),
        score=0.9,
        evidence=(
            Evidence(
                rule=rule,
                field="title",
                start=start,
                end=start + len(evidence),
                text=evidence,
            ),
        ),
        event=event,
    )


def populate(store: SqlStore, now: datetime | None = None) -> Dataset:
    """Store the data set through ``record_poll`` and the outbox calls."""
    now = now or utcnow()
    kyodo = store.add_feed(Feed(url=KYODO_URL, title="Kyodo News"))
    yonhap = store.add_feed(Feed(url=YONHAP_URL, title="Yonhap"))
    assert kyodo.id is not None and yonhap.id is not None

    def at(hours: float) -> datetime:
        return now - timedelta(hours=hours)

    summit_1 = Item(
        id="guid:kyodo-1",
        title=SUMMIT_TITLE,
        summary=(
            f"Foreign ministers meeting in {SUMMARY_WORD} agreed to push for a "
            "leaders' summit at the earliest convenient time."
        ),
        url="https://kyodo.example/summit",
        published=at(3),
        source="Kyodo News",
        feed_url=KYODO_URL,
    )
    visit = Item(
        id="guid:kyodo-2",
        title=VISIT_TITLE,
        summary="Xi Jinping will welcome Lee Jae-myung in Beijing next week.",
        url="https://kyodo.example/visit",
        published=at(1),
        source="Kyodo News",
        feed_url=KYODO_URL,
    )
    summit_2 = Item(
        id="guid:yonhap-1",
        title=SUMMIT_TITLE_2,
        summary="Deputy foreign ministers prepared the agenda of the trilateral summit.",
        url="https://yonhap.example/summit",
        published=at(2),
        source="Yonhap",
        feed_url=YONHAP_URL,
    )
    weather = Item(
        id="guid:yonhap-2",
        title="Typhoon nears Okinawa",
        summary="Heavy rain is expected across the Ryukyu islands.",
        published=at(2),
        source="Yonhap",
        feed_url=YONHAP_URL,
    )
    summit_event = Event(
        kinds=(EventKind.SUMMIT,),
        status=EventStatus.ANNOUNCED,
        actors=(
            ActorRef(name="China", country="CN", role="participant"),
            ActorRef(name="Japan", country="JP", role="participant"),
            ActorRef(name="South Korea", country="KR", role="participant"),
        ),
        countries=("CN", "JP", "KR"),
    )
    visit_event = Event(
        kinds=(EventKind.VISIT,),
        status=EventStatus.ANNOUNCED,
        actors=(
            ActorRef(
                name="Xi Jinping",
                country="CN",
                kind="person",
                office="head_of_state",
                role="host",
            ),
            ActorRef(
                name="Lee Jae-myung",
                country="KR",
                kind="person",
                office="head_of_state",
                role="visitor",
            ),
        ),
        countries=("CN", "KR"),
        location="Beijing",
    )
    summit_story = Story(
        id="st_summit",
        title=SUMMIT_TITLE,
        first_seen=at(3),
        last_seen=at(3),
        event=summit_event,
    )
    visit_story = Story(
        id="st_visit",
        title=VISIT_TITLE,
        first_seen=at(1),
        last_seen=at(1),
        event=visit_event,
    )
    d_summit = _decision(
        summit_1, "summit.trilateral", "summit", summit_event, SUMMIT_EVIDENCE
    )
    d_visit = _decision(visit, "visit.leader", "visit", visit_event, VISIT_EVIDENCE)
    summit_alert = Alert(
        id="al_summit",
        story_id=summit_story.id,
        rule="summit.trilateral",
        topics=("summit",),
        score=0.9,
        created_at=at(3),
        item=summit_1,
        decision=d_summit,
        story=summit_story,
    )
    visit_alert = Alert(
        id="al_visit",
        story_id=visit_story.id,
        rule="visit.leader",
        topics=("visit",),
        score=0.9,
        created_at=at(1),
        item=visit,
        decision=d_visit,
        story=visit_story,
    )
    store.record_poll(
        PollIntent(
            feed=kyodo,
            items=[summit_1, visit],
            decisions=[d_summit, d_visit],
            story_links=[
                StoryLink(story=summit_story, item_id=summit_1.id, feed_id=kyodo.id),
                StoryLink(story=visit_story, item_id=visit.id, feed_id=kyodo.id),
            ],
            alerts=[
                AlertRecord(alert=summit_alert, channels=("console", "webhook")),
                AlertRecord(alert=visit_alert, channels=("console",)),
            ],
        )
    )
    # The second outlet's report joins the summit story: no second alert.
    summit_story_2 = summit_story.model_copy(update={"last_seen": at(2)})
    store.record_poll(
        PollIntent(
            feed=yonhap,
            items=[summit_2, weather],
            decisions=[
                _decision(
                    summit_2,
                    "summit.trilateral",
                    "summit",
                    summit_event,
                    "leaders' meeting",
                )
            ],
            story_links=[
                StoryLink(story=summit_story_2, item_id=summit_2.id, feed_id=yonhap.id)
            ],
        )
    )
    claimed = store.claim_deliveries("api-tests", now, 10, 60)
    for c in claimed:
        assert c.delivery.id is not None
        if c.alert.id != summit_alert.id:
            continue  # the visit alert's delivery stays pending
        ok = c.delivery.channel == "console"
        store.record_delivery(
            DeliveryOutcome(
                delivery_id=c.delivery.id,
                ok=ok,
                attempted_at=now,
                error=None if ok else "HTTP 410 Gone",
            )
        )
    return Dataset(
        now=now,
        summit_alert=summit_alert.id,
        visit_alert=visit_alert.id,
        summit_story=summit_story.id,
        visit_story=visit_story.id,
    )


HOSTILE_TITLE = '<script>document.title="pwned"</script> Xi & Kishida <b>meet</b>'


def add_hostile_story(store: SqlStore, now: datetime | None = None) -> None:
    """A story whose outlet sent markup and a javascript: link (must stay inert)."""
    now = now or utcnow()
    feed = store.add_feed(Feed(url="http://127.0.0.1:9/hostile.xml", title="Hostile"))
    assert feed.id is not None
    item = Item(
        id="guid:hostile",
        title=HOSTILE_TITLE,
        summary="<img src=x onerror=alert(1)>",
        url="javascript:alert(1)",
        published=now,
        source='Evil "Outlet" <i>',
        feed_url=feed.url,
    )
    story = Story(id="st_hostile", title=HOSTILE_TITLE, first_seen=now, last_seen=now)
    store.record_poll(
        PollIntent(
            feed=feed,
            items=[item],
            story_links=[StoryLink(story=story, item_id=item.id, feed_id=feed.id)],
        )
    )
