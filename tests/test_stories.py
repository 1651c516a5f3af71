"""Story clustering: reports of one event join; different events stay apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.models import Decision, Event, EventKind, Item
from worker.stories import StoryIndex, title_tokens

NOW = datetime(2026, 9, 26, 12, tzinfo=UTC)


def _item(n: int, title: str, feed: str, published: datetime | None = NOW) -> Item:
    return Item(id=f"guid:{n}", title=title, feed_url=feed, published=published)


def _decision(
    item: Item, countries: tuple[str, ...], kinds=(EventKind.SUMMIT,)
) -> Decision:
    return Decision(
        id=item.id,
        alert=True,
        rules=("r",),
        event=Event(kinds=kinds, countries=countries),
    )


def _index() -> StoryIndex:
    return StoryIndex([], window=timedelta(days=3), threshold=0.5)


def test_two_outlets_one_story() -> None:
    # The headlines of the two seed reports of one meeting (seeds 002 and 003).
    idx = _index()
    a = _item(
        1,
        "Japan, S.Korea meeting with China in Seoul aimed at reassuring Beijing",
        "f1",
    )
    b = _item(
        2, "South Korea hosts Japan, China as US allies try to reassure Beijing", "f2"
    )
    sa = idx.assign(a, _decision(a, ("CN", "JP", "KR")), NOW)
    sb = idx.assign(b, _decision(b, ("CN", "JP", "KR")), NOW)
    assert sa.id == sb.id
    assert [s.item_id for s in sb.sources] == ["guid:1", "guid:2"]
    assert len(idx) == 1


def test_different_events_stay_apart() -> None:
    idx = _index()
    a = _item(1, "China's Xi to host South Korea's Lee on state visit", "f1")
    b = _item(
        2, "Japan's prime minister to visit Washington for talks with Trump", "f2"
    )
    c = _item(3, "South Korean PM heads to Hangzhou for Asian Games, may meet Xi", "f3")
    ids = {
        idx.assign(a, _decision(a, ("CN", "KR"), (EventKind.VISIT,)), NOW).id,
        idx.assign(b, _decision(b, ("JP", "US"), (EventKind.VISIT,)), NOW).id,
        idx.assign(c, _decision(c, ("CN", "KR"), (EventKind.VISIT,)), NOW).id,
    }
    assert len(ids) == 3


def test_same_words_far_apart_in_time_are_two_stories() -> None:
    idx = _index()
    a = _item(1, "China, Japan, South Korea hold trilateral summit", "f1", NOW)
    b = _item(
        2,
        "China, Japan, South Korea hold trilateral summit",
        "f2",
        NOW + timedelta(days=200),
    )
    s1 = idx.assign(a, _decision(a, ("CN", "JP", "KR")), NOW)
    s2 = idx.assign(b, _decision(b, ("CN", "JP", "KR")), NOW)
    assert s1.id != s2.id


def test_assigning_the_same_report_twice_is_idempotent() -> None:
    idx = _index()
    a = _item(1, "Xi to visit Seoul", "f1")
    s1 = idx.assign(a, _decision(a, ("CN", "KR")), NOW)
    s2 = idx.assign(a, _decision(a, ("CN", "KR")), NOW)
    assert s1 == s2 and len(s2.sources) == 1


def test_index_resumes_from_stored_stories() -> None:
    idx = _index()
    a = _item(
        1,
        "Japan, S.Korea meeting with China in Seoul aimed at reassuring Beijing",
        "f1",
    )
    story = idx.assign(a, _decision(a, ("CN", "JP", "KR")), NOW)
    resumed = StoryIndex([story], window=timedelta(days=3), threshold=0.5)
    b = _item(
        2, "South Korea hosts Japan, China as US allies try to reassure Beijing", "f2"
    )
    assert resumed.assign(b, _decision(b, ("CN", "JP", "KR")), NOW).id == story.id


def test_title_tokens_fold_place_names_and_inflections() -> None:
    assert title_tokens("Seoul hosts talks") == title_tokens(
        "South Korean host meeting"
    ) - {"south"}
