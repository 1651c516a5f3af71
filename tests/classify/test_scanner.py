"""The two automaton modes agree, datelines are not parties, and "former" titles
are not officials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.classify import Ruleset
from worker.classify.matcher import Analysis, dateline_end, scan_more
from worker.classify.text import FieldText

from .conftest import Judge
from .helpers import DATA, make_item

_TEXTS = [
    "Kishida to meet Xi in Bangkok on Thursday",
    "S. Korea, U.S. to hold '2+2' talks next week; 2.2 percent coupon",
    "Climbers reach the summit of Mt. Fuji in record numbers (U.S. team)",
    "Xi's visit: the leaders' meeting in Seoul_next to the Blue House",
    "In Beijing, Li met Lee; the premier's talks at 10 a.m. on Monday",
]


def _hits(ruleset: Ruleset, text: str, padded: bool) -> dict[str, list[object]]:
    an = Analysis(make_item(text), ruleset.gazetteer)
    an.fields["title"] = FieldText(text)
    auto = ruleset._event_automaton
    if not padded:
        auto = type(auto)(auto.exact, None)
    scan_more(auto, an)
    return {k: sorted(v) for k, v in an.hits.items()}


def _corpus_texts() -> list[str]:
    texts = list(_TEXTS)
    for name in ("holdout_real.jsonl", "extra_labelled.jsonl"):
        for line in Path(DATA / name).read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            texts += [d["title"], d["summary"]]
    return [t for t in texts if t]


def test_padded_automaton_finds_what_boundary_checks_find(ruleset: Ruleset) -> None:
    """Word boundaries built into the keys give the same hits as checking each hit."""
    texts = _corpus_texts()
    assert len(texts) > 200
    for text in texts:
        assert _hits(ruleset, text, True) == _hits(ruleset, text, False), text


@pytest.mark.parametrize(
    ("text", "end"),
    [
        ("SEOUL, March 2 (Reuters) - North Korean leader", 27),
        ("BEIJING/GENEVA/WASHINGTON, Jan 12 (Reuters) - When", 46),
        ("Jan 14 (Reuters) - White House envoy", 19),
        ("BEIJING, Aug. 19 (Xinhua) -- Chinese President", 29),
        ("TOKYO (AP) — Japan's prime minister", 13),
        ("Xi meets Biden - report says", 0),
        ("Seoul, Tokyo agree to talks (update) - officials", 0),
    ],
)
def test_dateline_end(text: str, end: int) -> None:
    assert dateline_end(text) == end


def test_dateline_place_is_not_a_party(judge: Judge) -> None:
    d = judge(
        "North Korea's Kim inspects cement plant after new goals",
        "SEOUL, March 2 (Reuters) - North Korean leader Kim Jong Un visited a cement "
        "factory on Sunday and called for production to meet new goals.",
        published="2026-03-02",
    )
    assert not d.alert, d.rules


def test_former_title_is_not_an_official(ruleset: Ruleset) -> None:
    an = ruleset.analyse(
        make_item("Former Japanese prime minister arrives in Beijing", "", "2025-04-28")
    )
    pm = [m for m in an.mentions if m.office and "head_of_government" in m.office]
    assert pm and all(not m.official and m.former for m in pm)
    assert not ruleset.classify(an.item).alert


def test_former_leader_visiting_is_not_a_visit(judge: Judge) -> None:
    d = judge("Former PM Kishida visits Beijing, meets Wang Yi", published="2025-04-28")
    assert "visit" not in d.topics, d.rules


def test_sideline_venue_counts_only_for_participants_of_that_sentence(
    judge: Judge,
) -> None:
    """dev-052: Abe and Moon meet in Chengdu; Xi (China) is named only in the lede,
    so China is not a participant of the headline's meeting: no visit."""
    d = judge(
        "Abe announces bilateral summit with Moon in Chengdu",
        "Japanese Prime Minister Shinzo Abe has announced that he will hold a "
        "one-on-one meeting with President Moon Jae-in on the sidelines of a "
        "trilateral summit with Chinese President Xi Jinping in China.",
        published="2019-12-20",
    )
    assert d.topics == ("summit",), d.rules


@pytest.mark.parametrize(
    ("title", "published", "topics"),
    [
        ("习近平会见越南国家主席梁强", "2025-04-15", ("summit",)),
        ("中日韩外长会在东京举行", "2025-03-22", ("summit",)),
        ("大家谈中国：德国总理默克尔访日期间", "2015-03-15", ("visit",)),
        (
            "Xi holds talks with Vietnamese leader To Lam in Beijing",
            "2024-11-30",
            ("summit",),
        ),
        ("Lee to skip NATO summit in The Hague", "2025-06-22", ("summit",)),
        ("Kishida to attend APEC meetings in Lima", "2022-11-10", ("summit",)),
    ],
)
def test_second_pass_phrasings(
    judge: Judge, title: str, published: str, topics: tuple[str, ...]
) -> None:
    d = judge(title, published=published)
    assert d.topics == topics, d.rules
