"""Story clustering: reports of one event join; different events stay apart."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from worker.classify import Ruleset, load_ruleset
from worker.models import ActorRef, Decision, Event, EventKind, Item
from worker.stories import (
    StoryIndex,
    clean_lede,
    clean_title,
    conflict,
    profile,
    report_tokens,
    title_tokens,
)

NOW = datetime(2026, 9, 26, 12, tzinfo=UTC)


def _item(n: int, title: str, feed: str, published: datetime | None = NOW) -> Item:
    return Item(id=f"guid:{n}", title=title, feed_url=feed, published=published)


def _decision(
    item: Item,
    countries: tuple[str, ...],
    kinds: tuple[EventKind, ...] = (EventKind.SUMMIT,),
) -> Decision:
    return Decision(
        id=item.id,
        alert=True,
        rules=("r",),
        event=Event(kinds=kinds, countries=countries),
    )


def _index() -> StoryIndex:
    return StoryIndex([], window=timedelta(days=3), threshold=0.3)


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


def _people(decision: Decision, *people: tuple[str, str]) -> Decision:
    assert decision.event is not None
    actors = tuple(ActorRef(name=n, country=c, kind="person") for n, c in people)
    return decision.model_copy(
        update={"event": decision.event.model_copy(update={"actors": actors})}
    )


def test_different_events_stay_apart() -> None:
    idx = _index()
    a = _item(1, "China's Xi to host South Korea's Lee on state visit", "f1")
    b = _item(
        2, "Japan's prime minister to visit Washington for talks with Trump", "f2"
    )
    c = _item(3, "South Korean PM heads to Hangzhou for Asian Games, may meet Xi", "f3")
    visit = (EventKind.VISIT,)
    xi, lee, han = ("Xi Jinping", "CN"), ("Lee Jae-myung", "KR"), ("Han Duck-soo", "KR")
    ids = {
        idx.assign(a, _people(_decision(a, ("CN", "KR"), visit), xi, lee), NOW).id,
        idx.assign(b, _decision(b, ("JP", "US"), visit), NOW).id,
        # Xi and Korea again, but another Korean: another meeting.
        idx.assign(c, _people(_decision(c, ("CN", "KR"), visit), xi, han), NOW).id,
    }
    assert len(ids) == 3


def test_the_same_people_in_other_words_are_one_story() -> None:
    idx = _index()
    a = _item(1, "Japanese foreign minister to visit China on Saturday", "f1")
    b = _item(2, "Japan FM Hayashi to visit China first time in 3 years", "f2")
    visit = (EventKind.VISIT,)
    hayashi = ("Yoshimasa Hayashi", "JP")
    sa = idx.assign(a, _people(_decision(a, ("CN", "JP"), visit), hayashi), NOW)
    sb = idx.assign(b, _people(_decision(b, ("CN", "JP"), visit), hayashi), NOW)
    assert sa.id == sb.id


def test_report_tokens_drop_datelines_outlet_suffixes_and_repeated_titles() -> None:
    assert clean_title("Xi to visit Seoul - Reuters") == "Xi to visit Seoul"
    lede = "SEOUL, Jan 13 (Reuters) - South Korea's special prosecutor asked"
    assert clean_lede("t", lede).startswith("South Korea's special")
    assert clean_lede("Xi to visit Seoul - Reuters", "Xi to visit Seoul Reuters") == ""
    assert "reuter" not in report_tokens("Xi to visit Seoul - Reuters", "")


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
    resumed = StoryIndex([story], window=timedelta(days=3), threshold=0.3)
    b = _item(
        2, "South Korea hosts Japan, China as US allies try to reassure Beijing", "f2"
    )
    assert resumed.assign(b, _decision(b, ("CN", "JP", "KR")), NOW).id == story.id


def test_title_tokens_fold_place_names_and_inflections() -> None:
    assert title_tokens("Seoul hosts talks") == title_tokens(
        "South Korean host meeting"
    ) - {"south"}


# ---------------------------------------------------------------- conflicting events
# A wrong merge is a missed alert (the second event joins the first story quietly),
# so two events that cannot be one must stay apart however many words they share.


def _actor(
    name: str,
    country: str,
    role: str | None,
    mention: str | None = None,
    office: str | None = "head_of_state",
) -> ActorRef:
    kind = "country" if office is None else "person"
    return ActorRef.model_validate(
        {
            "name": name,
            "country": country,
            "kind": kind,
            "office": office,
            "role": role,
            "mention": mention,
        }
    )


def _report(
    n: int,
    title: str,
    *actors: ActorRef,
    kinds: tuple[EventKind, ...] = (EventKind.SUMMIT,),
    summary: str = "",
    published: datetime = NOW,
) -> tuple[Item, Decision]:
    item = Item(
        id=f"guid:{n}",
        title=title,
        summary=summary,
        feed_url=f"f{n}",
        published=published,
    )
    event = Event(
        kinds=kinds, actors=actors, countries=tuple(sorted({a.country for a in actors}))
    )
    return item, Decision(id=item.id, alert=True, rules=("r",), event=event)


TRUMP = _actor("Donald Trump", "US", "visitor", "Trump")
XI_HOST = _actor("Xi Jinping", "CN", "host", "Xi")


def test_a_leader_visiting_the_same_host_days_later_is_another_story() -> None:
    idx = _index()
    first = _report(1, "Trump in Beijing for two days of talks with Xi", TRUMP, XI_HOST)
    later = _report(
        2,
        "Kremlin says Putin will fly to Beijing to see Xi, days after Trump's talks",
        _actor("Vladimir Putin", "RU", "visitor", "Putin"),
        XI_HOST,
        _actor("Donald Trump", "US", "participant", "Trump"),
        published=NOW + timedelta(days=2),
    )
    s1 = idx.assign(*first, NOW)
    s2 = idx.assign(*later, NOW + timedelta(days=2))
    assert s1.id != s2.id
    # Trump is only the background of the second headline: not one of its parties.
    assert profile(later[0].title, later[1].event).subjects == {
        "Vladimir Putin",
        "Xi Jinping",
    }
    assert conflict(
        profile(later[0].title, later[1].event), profile(first[0].title, first[1].event)
    ) == ("the headlines are about other people")


def test_a_side_meeting_of_other_leaders_on_the_same_trip_is_another_story() -> None:
    idx = _index()
    trip = _report(
        1,
        "Moon to visit China for summit with Xi and trilateral talks in Chengdu",
        _actor("Moon Jae-in", "KR", "visitor", "Moon"),
        _actor("Xi Jinping", "CN", "host", "Xi"),
        _actor("Japan", "JP", None, None, office=None),
        kinds=(EventKind.SUMMIT, EventKind.VISIT),
    )
    side = _report(
        2,
        "Abe to hold summit with Moon in Chengdu during trilateral talks",
        _actor("Shinzo Abe", "JP", "participant", "Abe", "head_of_government"),
        _actor("Moon Jae-in", "KR", "participant", "Moon"),
    )
    assert idx.assign(*trip, NOW).id != idx.assign(*side, NOW).id


def test_arriving_for_a_multilateral_summit_is_not_the_bilateral_meeting() -> None:
    # Xi's arrival at a G20 host and a Xi-Yoon meeting there: other parties.
    idx = _index()
    arrival = _report(
        1,
        "Xi lands in Bali for G20 summit",
        _actor("Xi Jinping", "CN", "visitor", "Xi"),
        _actor("Indonesia", "ID", "host", "Bali", office=None),
        kinds=(EventKind.SUMMIT, EventKind.VISIT),
    )
    meeting = _report(
        2,
        "Chinese and South Korean presidents to hold first summit in Bali",
        _actor("Xi Jinping", "CN", "participant"),
        _actor("Yoon Suk Yeol", "KR", "participant"),
    )
    assert idx.assign(*arrival, NOW).id != idx.assign(*meeting, NOW).id


def test_a_headline_that_only_mentions_the_event_is_its_own_story() -> None:
    idx = _index()
    trump = _actor("Donald Trump", "US", "participant", "Trump")
    xi = _actor("Xi Jinping", "CN", "participant", "Xi")
    summit = _report(1, "Trump and Xi hold summit in Beijing on trade", trump, xi)
    markets = _report(2, "Asian shares drift higher as Trump and Xi meet", trump, xi)
    war = _report(3, "Drone strikes hit Kyiv overnight while Trump meets Xi", trump, xi)
    ids = {idx.assign(*r, NOW).id for r in (summit, markets, war)}
    assert len(ids) == 3
    assert profile(markets[0].title, markets[1].event).mention
    # The subject names the leaders before "as": about the event itself.
    assert not profile(
        "Trump and Xi meet in Beijing as trade tensions ease", summit[1].event
    ).mention
    # Too short to be about something else ("Watch live as ...").
    assert not profile("Watch live as Trump meets Xi", summit[1].event).mention


def test_follow_ups_naming_fewer_parties_join_the_story() -> None:
    idx = _index()
    arrival = _report(
        1,
        "Trump arrives in Beijing for summit talks with Xi",
        TRUMP,
        XI_HOST,
        kinds=(EventKind.SUMMIT, EventKind.VISIT),
    )
    wrap = _report(
        2,
        "Trump says Beijing summit talks with Xi went well as visit ends",
        _actor("Donald Trump", "US", "participant", "Trump"),
        _actor("China", "CN", None, None, office=None),
        published=NOW + timedelta(days=1),
    )
    s1 = idx.assign(*arrival, NOW)
    s2 = idx.assign(*wrap, NOW + timedelta(days=1))
    assert s1.id == s2.id


def test_a_person_named_only_as_background_is_no_party() -> None:
    # The classifier gives Trump a part in the second report, but its headline names
    # him only after "amid": the visit's parties are still China and Korea.
    idx = _index()
    wang = "Wang Yi"
    announced = _report(
        1,
        "Chinese foreign minister Wang Yi to visit Seoul for talks next week",
        _actor(wang, "CN", "visitor", wang, "foreign_minister"),
        _actor("South Korea", "KR", "host", "Seoul", office=None),
        kinds=(EventKind.VISIT,),
    )
    arrived = _report(
        2,
        "Wang Yi in Seoul for talks amid Trump push for North Korea diplomacy",
        _actor(wang, "CN", "participant", wang, "foreign_minister"),
        _actor("Donald Trump", "US", "participant", "Trump"),
        _actor("South Korea", "KR", None, "Seoul", office=None),
        kinds=(EventKind.VISIT,),
        published=NOW + timedelta(days=1),
    )
    s1 = idx.assign(*announced, NOW)
    assert idx.assign(*arrived, NOW + timedelta(days=1)).id == s1.id
    assert profile(arrived[0].title, arrived[1].event).parties == {"CN"}


def test_unnamed_people_do_not_speak_for_a_country() -> None:
    # "leaders" of Korea in one report and the Korean president in the other.
    leaders = Event(
        actors=(ActorRef(name="leaders", country="KR", kind="person", role="host"),),
        countries=("KR",),
    )
    yoon = Event(
        actors=(_actor("Yoon Suk Yeol", "KR", "host", "Yoon"),), countries=("KR",)
    )
    assert conflict(profile("a", leaders), profile("b", yoon)) is None


def test_conflicts_hold_after_the_index_is_reloaded_from_the_store() -> None:
    # Each poll pass rebuilds the index from stored stories: the same verdicts.
    idx = _index()
    story = idx.assign(
        *_report(1, "Trump in Beijing for two days of talks with Xi", TRUMP, XI_HOST),
        NOW,
    )
    resumed = StoryIndex([story], window=timedelta(days=3), threshold=0.3)
    other = _report(
        2,
        "Putin to fly to Beijing for talks with Xi",
        _actor("Vladimir Putin", "RU", "visitor", "Putin"),
        XI_HOST,
    )
    again = _report(
        3, "Trump holds talks with Xi in Beijing on second day", TRUMP, XI_HOST
    )
    assert resumed.assign(*other, NOW).id != story.id
    assert resumed.assign(*again, NOW).id == story.id


# ------------------------------------------------- with the bundled classifier


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    """The bundled rules, as poll.py classifies with them."""
    return load_ruleset(None)


def _classified(
    ruleset: Ruleset, n: int, title: str, summary: str
) -> tuple[Item, Decision]:
    item = Item(
        id=f"guid:{n}", title=title, summary=summary, feed_url=f"f{n}", published=NOW
    )
    decision = ruleset.classify(item)
    assert decision.alert, title
    return item, decision


def test_classified_reports_of_two_visits_to_one_host_stay_apart(
    ruleset: Ruleset,
) -> None:
    idx = _index()
    first = _classified(
        ruleset,
        1,
        "Trump and Xi hold summit in Beijing",
        "The US president met Chinese leader Xi Jinping for talks on trade.",
    )
    second = _classified(
        ruleset,
        2,
        "Putin to travel to China for talks with Xi, days after Trump's summit",
        "The Russian president will meet Xi Jinping in Beijing, the Kremlin said.",
    )
    third = _classified(
        ruleset,
        3,
        "Trump, Xi end Beijing summit with pledge to steady ties",
        "Donald Trump and Xi Jinping wrapped up two days of talks in Beijing.",
    )
    s1, s2, s3 = (idx.assign(*r, NOW) for r in (first, second, third))
    assert s1.id != s2.id
    assert s3.id == s1.id


# --------------------------------------------------------------- the benchmark


def _benchmark() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "stories.py"
    spec = importlib.util.spec_from_file_location("bench_stories", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_alert_counts_credit_each_cluster_to_the_story_that_started_it() -> None:
    bench = _benchmark()
    reports = [
        bench.Report(i, story, Item(id=i, title=i), Decision(id=i, alert=True))
        for i, story in (("a1", "A"), ("b1", "B"), ("a2", "A"), ("c1", "C"))
    ]
    # B's only report joined A's cluster (missed); C started two... none: C has one
    # report but A's second report started its own cluster (a duplicate for A).
    predicted = {"a1": "k1", "b1": "k1", "a2": "k2", "c1": "k3"}
    counts, missed, duplicated = bench.alert_counts(reports, predicted, {"A", "B", "C"})
    assert (counts.stories, counts.missed, counts.duplicates) == (3, 1, 1)
    assert missed == ["B"] and duplicated == ["A"]


def test_the_labelled_set_misses_at_most_one_alert() -> None:
    # The figures of docs/BENCHMARKS.md (story clustering), as poll.py assigns: only alerting
    # reports. Loose bounds: the classifier's rules may move them a little.
    bench = _benchmark()
    reports = bench.classify(bench.load(bench.DATA))
    alerting, _ = bench.cluster(reports, 0.3, 3 * 86400.0, alerting_only=True)
    gold = {r.id: r.story for r in reports}
    score = bench.pairwise({i: gold[i] for i in alerting}, alerting)
    counts, _, _ = bench.alert_counts(reports, alerting, set(gold.values()))
    assert counts.missed <= 1
    assert score.precision >= 0.95
    assert score.recall >= 0.8


def test_overlap_with_cached_totals_equals_the_plain_formula() -> None:
    import random

    from worker import stories as st

    def plain(a: frozenset[str], b: frozenset[str]) -> float:
        if not a or not b:
            return 0.0
        shared = sum(st._weight(t) for t in a & b)
        return shared / min(sum(map(st._weight, a)), sum(map(st._weight, b)))

    rng = random.Random(5)
    vocab = ["summit", "visit", "@xi jinping", "@lee jae-myung", "seoul", "tokyo"]
    vocab += sorted(st._GENERIC)[:6] + [f"w{n}" for n in range(30)]
    for _ in range(3000):
        a = frozenset(rng.sample(vocab, rng.randint(0, 12)))
        # Equal sets built in another order: the cache must not care.
        b = frozenset(reversed(rng.sample(vocab, rng.randint(0, 12))))
        assert st._overlap(a, b) == plain(a, b)
        assert st._overlap(frozenset(sorted(b)), a) == plain(b, a)
