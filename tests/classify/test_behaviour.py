"""What the bundled rules decide on clear sentences: hard negatives, aliases, tenses,
terms of office, event status and roles."""

from __future__ import annotations

import pytest

from worker.classify import Ruleset, classify
from worker.models import EventStatus

from .conftest import Judge
from .helpers import make_item


@pytest.mark.parametrize(
    "title",
    [
        "Climbers reach summit of Mount Fuji as season opens",
        "Two Sherpa climbers set new summit records on Everest",
        "Japan hosts business summit for chip executives",
        "Chinese tourists visit Seoul in record numbers",
        "China tops medal table as Asian Games close in Hangzhou",
        "Xi, Yoon hold phone call on North Korea",
        "South Korea summons Japanese ambassador over textbook",
        "Apple CEO Tim Cook visits Beijing to meet Chinese suppliers",
        "Xi inspects Urumqi in China's Xinjiang, second visit in eight years",
        "South Korean lawmakers visit disputed islets amid Japanese protest",
        "Trump and Kim Jong Un meet for summit in Singapore",
        "Hong Kong leader to meet Xi on duty visit to Beijing",
        "China holds joint military drills with Russia near Japan",
    ],
)
def test_hard_negatives(judge: Judge, title: str) -> None:
    d = judge(title, published="2023-06-01")
    assert not d.alert, d.rules
    assert d.topics == ()


@pytest.mark.parametrize(
    ("title", "published", "topics"),
    [
        ("President Xi to visit Seoul next month", "2025-10-01", {"visit"}),
        (
            "Ishiba visits Washington for talks with Trump",
            "2025-02-07",
            {"summit", "visit"},
        ),
        ("ROK, Japan foreign ministers hold talks in Tokyo", "2024-03-01", {"summit"}),
        (
            "Beijing said it would host the Japanese prime minister next week",
            None,
            {"visit"},
        ),
        ("习近平会见日本首相石破茂", "2024-11-15", {"summit"}),
        ("尹錫悦大統領が訪日", "2023-03-16", {"visit"}),
        ("이재명 대통령, 시진핑 주석과 정상회담", "2025-11-01", {"summit"}),
        ("S.Korea, PRC leaders agree to hold summit", None, {"summit"}),
    ],
)
def test_aliases_and_native_script(
    judge: Judge, title: str, published: str | None, topics: set[str]
) -> None:
    assert set(judge(title, published=published).topics) == topics


@pytest.mark.parametrize(
    "title",
    [
        "Kishida visit Seoul",
        "Kishida visits Seoul",
        "Kishida visited Seoul",
        "Kishida visiting Seoul this week",
        "Kishida will travel to Seoul",
        "Kishida arrives in Seoul",
        "Kishida departs for Seoul",
    ],
)
def test_travel_tenses(judge: Judge, title: str) -> None:
    assert "visit" in judge(title, published="2023-05-07").topics


@pytest.mark.parametrize(
    "title",
    [
        "Kishida to hold talks with Yoon",
        "Kishida met Yoon",
        "Kishida meets Yoon",
        "Kishida and Yoon meeting on Sunday",
        "Kishida to meet Yoon on the sidelines of the G20 in New Delhi",
        "Chinese premier pays courtesy call on Japanese emperor in Tokyo",
    ],
)
def test_meeting_phrasings(judge: Judge, title: str) -> None:
    assert "summit" in judge(title, published="2023-05-07").topics


def test_sidelines_meeting_abroad_is_summit_only(judge: Judge) -> None:
    d = judge(
        "Ishiba and Xi met on the sidelines of the APEC summit in Lima",
        published="2024-11-15",
    )
    assert d.topics == ("summit",)
    assert d.event is not None
    assert d.event.location == "Lima"
    assert d.event.status is EventStatus.HELD


def test_former_president_by_term_of_office(ruleset: Ruleset) -> None:
    an = ruleset.analyse(make_item("President Yoon meets Xi", published="2026-03-01"))
    yoon = next(m for m in an.mentions if m.name == "Yoon Suk Yeol")
    assert not yoon.official and yoon.former and yoon.office == "former_head_of_state"
    an = ruleset.analyse(make_item("President Yoon meets Xi", published="2023-03-01"))
    yoon = next(m for m in an.mentions if m.name == "Yoon Suk Yeol")
    assert yoon.official and yoon.office == "head_of_state"
    assert not ruleset.classify(
        make_item("President Yoon meets Xi", published="2026-03-01")
    ).alert


def test_shared_surname_resolves_by_date(ruleset: Ruleset) -> None:
    def who(published: str) -> set[str]:
        an = ruleset.analyse(
            make_item("Premier Li arrives in Tokyo", published=published)
        )
        return {m.name for m in an.mentions if m.kind == "person"}

    assert who("2018-05-08") == {"Li Keqiang"}
    assert who("2024-05-26") == {"Li Qiang"}
    an = ruleset.analyse(
        make_item("Meet Li Chenggang, China's trade negotiator", published="2026-01-12")
    )
    assert not any(m.kind == "person" for m in an.mentions)


def test_bare_title_tied_to_country_by_context(ruleset: Ruleset) -> None:
    item = make_item(
        "The prime minister arrived in Beijing for talks with Xi Jinping",
        published="2023-09-22",
        source="Yonhap",
    )
    pm = next(m for m in ruleset.analyse(item).mentions if m.kind == "title")
    assert pm.country == "KR"
    item = make_item("Japan's prime minister to hold talks with South Korean president")
    titles = {
        m.office: m.country for m in ruleset.analyse(item).mentions if m.kind == "title"
    }
    assert titles == {"head_of_government": "JP", "head_of_state": "KR"}


def test_metonym_capital_counts_as_country(ruleset: Ruleset) -> None:
    an = ruleset.analyse(
        make_item("Beijing said it would host the Japanese prime minister")
    )
    beijing = next(m for m in an.mentions if m.text == "Beijing")
    assert beijing.country == "CN"


@pytest.mark.parametrize(
    ("title", "status"),
    [
        (
            "Japan cancels trilateral summit with China and South Korea",
            EventStatus.CANCELLED,
        ),
        ("China, Japan postpone foreign ministers' meeting", EventStatus.POSTPONED),
        ("Kishida to meet Xi in Bangkok on Thursday", EventStatus.ANNOUNCED),
        ("Kishida arrives in Seoul for summit with Yoon", EventStatus.HELD),
        (
            "Seoul proposes trilateral summit with Tokyo and Beijing",
            EventStatus.PROPOSED,
        ),
    ],
)
def test_event_status(judge: Judge, title: str, status: EventStatus) -> None:
    d = judge(title, published="2023-05-01")
    assert d.event is not None
    assert d.event.status is status


def test_event_roles_visitor_and_host(judge: Judge) -> None:
    d = judge("Xi Jinping hosts Vietnamese leader in Beijing", published="2024-08-19")
    assert d.event is not None
    roles = {a.country: a.role for a in d.event.actors}
    assert roles == {"CN": "host", "VN": "visitor"}
    assert d.event.location == "Beijing"
    d = judge(
        "Kishida will travel to Seoul for talks with Yoon", published="2023-05-01"
    )
    assert d.event is not None
    roles = {a.name: a.role for a in d.event.actors}
    assert roles == {"Fumio Kishida": "visitor", "Yoon Suk Yeol": "host"}
    assert d.event.countries == ("JP", "KR")
    assert d.event.location == "Seoul"


def test_decision_carries_evidence(judge: Judge) -> None:
    title = "Kishida to meet Xi in Bangkok on Thursday"
    d = judge(title, published="2022-11-15")
    assert d.alert and d.severity == "alert" and d.score >= 1.0
    assert d.rules == ("summit-officials-meet",)
    texts = {(e.kind, e.text) for e in d.evidence}
    assert ("phrase", "meet") in texts
    assert ("actor", "Kishida") in texts
    for e in d.evidence:
        assert title[e.start : e.end] == e.text
    assert d.event is not None and d.event.when == "on Thursday"


def test_classify_is_lazy_and_ordered(ruleset: Ruleset) -> None:
    items = [
        make_item(t, ident=str(i)) for i, t in enumerate(["a", "Kishida meets Xi", "b"])
    ]
    out = classify(iter(items), ruleset)
    assert next(out).id == "0"
    assert [d.id for d in out] == ["1", "2"]


@pytest.mark.parametrize(
    ("title", "summary", "published"),
    [
        # a cue inside another cue: "phone talks" holds "talks", 電話会談 holds 会談
        ("Japan PM Ishiba holds phone talks with Trump on tariffs", "", "2025-04-07"),
        ("石破首相、トランプ大統領と電話会談", "", "2025-04-07"),
        # 前/元/전 before a title make it a former holder
        ("岸田前首相が訪中、中国要人と会談", "", "2025-12-03"),
        ("문재인 전 대통령, 중국 방문", "", "2025-12-10"),
        # royals other than the monarch are not leaders
        ("Princess Aiko leaves for Laos on first official overseas trip", "", None),
        # a country named only as context is not the visit's party
        (
            "Modi's island tour aims to push back against China's influence",
            "Indian Prime Minister Narendra Modi began a visit to the Maldives on "
            "Friday, a trip analysts say is aimed at countering China's influence.",
            "2025-07-25",
        ),
        # a call to restart talks with a country is not a meeting
        (
            "South Korea's Lee vows efforts to restart talks with Pyongyang",
            "",
            "2026-03-01",
        ),
        # a summit as a time mark, with no official named
        (
            "N. Korea fires ballistic missiles ahead of APEC summit",
            "North Korea fired missiles days before world leaders gather in Gyeongju.",
            "2025-10-22",
        ),
        # a visit spoken of in a letter; a forum's "annual meeting"
        (
            "Xi replies to letter from American students",
            "Xi Jinping replied to a letter from U.S. students, encouraging them to "
            "visit China.",
            "2025-03-01",
        ),
        ("Li Qiang addresses Annual Meeting of the New Champions", "", "2025-06-24"),
        ("한중 관계 정상화 기대", "", "2025-11-01"),
    ],
)
def test_third_pass_negatives(
    judge: Judge, title: str, summary: str, published: str | None
) -> None:
    d = judge(title, summary, published=published)
    assert not d.alert, d.rules


@pytest.mark.parametrize(
    ("title", "published", "topics"),
    [
        ("한중 정상, 경주서 회담", "2025-11-01", {"summit"}),
        ("中日韩领导人会议推迟举行", "2025-11-20", {"summit"}),
        (
            "Premier Li leaves Beijing for SCO heads of government meeting in Moscow",
            "2025-11-16",
            {"summit", "visit"},
        ),
        ("China, Canada move to reset ties as Carney visits", "2026-01-15", {"visit"}),
        (
            "Brazil to announce bond issuance during China visit",
            "2026-06-05",
            {"visit"},
        ),
    ],
)
def test_third_pass_positives(
    judge: Judge, title: str, published: str, topics: set[str]
) -> None:
    d = judge(title, published=published)
    assert set(d.topics) == topics, d.rules
