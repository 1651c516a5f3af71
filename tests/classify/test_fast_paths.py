"""The fast paths of classification give what the general paths give: ASCII text
helpers against their general forms, and ``Ruleset.classify`` (which skips items no
rule can fire on without scanning them) against scanning and evaluating every rule.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from worker.classify import Ruleset, bundled_rules_dir, load_ruleset
from worker.classify.matcher import scan
from worker.classify.ruleset import _needs_actor
from worker.classify.text import (
    _NON_WORD,
    _normalize,
    ascii_words,
    normalize,
    word_map,
    words,
)
from worker.models import Decision, Item

from .helpers import DATA, SHARED, make_item

# Characters the fast paths treat specially, and some they must leave to the
# general path: accents, a two-character lower case, CJK, kana, hangul, fullwidth.
_ODD = "’‘`´“”-‐‑–—\n\t\r\xa0_'\".,;:!?()/&+é ÉßİİıΣ中国日本語한국어ｱＡ１²½№\u3000。、"
_ASCII = "".join(chr(c) for c in range(128))


def _is_cjk(c: str) -> bool:
    o = ord(c)
    return any(
        lo <= o <= hi
        for lo, hi in (
            (0x1100, 0x11FF),
            (0x3040, 0x30FF),
            (0x3130, 0x318F),
            (0x3400, 0x9FFF),
            (0xAC00, 0xD7AF),
            (0xF900, 0xFAFF),
        )
    )


def _random_texts(n: int, alphabet: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(alphabet, k=rng.randint(0, 40))) for _ in range(n)]


def _corpus_texts() -> list[str]:
    texts: list[str] = []
    paths = sorted(DATA.glob("*.jsonl"))
    dev = SHARED / "eval" / "dev.jsonl"
    if dev.is_file():
        paths.append(dev)
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            texts += [d.get("title") or "", d.get("summary") or ""]
    return [t for t in texts if t]


def _general_classify(ruleset: Ruleset, item: Item) -> Decision:
    """Scan the item and evaluate every rule: no shortcut."""
    an = scan(ruleset._automaton, ruleset.gazetteer, item)
    fired = []
    for rule in ruleset.rules:
        ok, score, spans = rule.evaluate(an)
        if ok:
            fired.append((rule.spec, score, spans))
    return ruleset.decide(item, an, fired)


def test_normalize_fast_path_is_the_general_one() -> None:
    texts = [chr(c) for c in range(0x3100)] + list(_ODD)
    texts += _random_texts(3000, _ASCII + _ODD, 1)
    texts += _random_texts(2000, "abcXYZ -’—\xa0`", 2)  # folds to ASCII
    texts += _corpus_texts()
    assert len(texts) > 15_000
    for text in texts:
        assert normalize(text) == _normalize(text), repr(text)
        assert len(normalize(text)) == len(text)


def test_word_map_fast_path_is_the_general_one() -> None:
    for text in [*_random_texts(3000, _ASCII, 3), _ASCII, *_corpus_texts()]:
        assert word_map(text) == _NON_WORD.sub(" ", text), repr(text)


def test_words_are_the_word_map_runs_unless_cjk() -> None:
    texts = _random_texts(3000, _ASCII + _ODD, 4) + _corpus_texts()
    cjk = 0
    for text in texts:
        norm = normalize(text)
        found = words(norm)
        if found is None:
            cjk += 1
            assert any(_is_cjk(c) for c in norm), repr(text)
            continue
        assert not any(_is_cjk(c) for c in norm), repr(text)
        assert found == word_map(norm).split(), repr(text)
        if text.isascii():
            assert ascii_words(text) == found, repr(text)
    assert 100 < cjk < len(texts)  # both kinds were seen


def _key_texts(ruleset: Ruleset, n: int, seed: int) -> list[str]:
    """Texts made of automaton keys (phrases, aliases, masks), in random case, glued
    by separators that are and are not word boundaries, so that keys hit, hit
    inside words, or are cut: the prefilter's hard cases."""
    rng = random.Random(seed)
    keys = sorted(k for k, _ in ruleset._automaton.exact.items())
    glue = [" ", "  ", "-", "—", "’", "'s ", ", ", ".", "_", "x", "é", "1", "中", "\n"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 6)):
            key = rng.choice(keys)
            parts.append(key.upper() if rng.random() < 0.3 else key.title())
            parts.append(rng.choice(glue))
        out.append("".join(parts))
    return out


@pytest.fixture(scope="module")
def items(ruleset: Ruleset) -> list[Item]:
    texts = _corpus_texts()
    made = _key_texts(ruleset, 4000, 5)
    rng = random.Random(6)
    out = [
        make_item(t, s, published="2024-03-01", source="Yonhap", ident=f"c{i}")
        for i, (t, s) in enumerate(zip(texts[::2], texts[1::2], strict=False))
    ]
    out += [
        make_item(t, rng.choice([*made, ""]), published="2023-05-20", ident=f"k{i}")
        for i, t in enumerate(made)
    ]
    out += [make_item(t, ident=f"t{i}") for i, t in enumerate(texts)]
    # word salad of the corpus: mostly items with a cue and no actor, or neither
    vocab = sorted({w for t in texts for w in t.split()})
    for i in range(3000):
        title, summary = (
            " ".join(rng.choices(vocab, k=rng.randint(3, n))) for n in (12, 40)
        )
        out.append(make_item(title, summary, published="2024-01-10", ident=f"w{i}"))
    return out


def test_classify_is_the_general_path(ruleset: Ruleset, items: list[Item]) -> None:
    fired = skipped = 0
    for item in items:
        fast = ruleset.classify(item)
        assert fast.model_dump() == _general_classify(ruleset, item).model_dump(), item
        fired += bool(fast.rules)
        skipped += not ruleset._may_fire(item)
    # the comparison covered items that fire and items the prefilter skips
    assert fired > 200, fired
    assert skipped > 800, skipped


def test_prefilter_skips_only_items_without_trigger_or_actor(
    ruleset: Ruleset, items: list[Item]
) -> None:
    """Stronger than equal decisions: a skipped item's scan finds no trigger
    phrase, or no gazetteer alias at all."""
    assert ruleset._anchors is not None
    assert ruleset._triggers is not None
    assert ruleset._needs_actor
    for item in items:
        if ruleset._may_fire(item):
            continue
        an = scan(ruleset._automaton, ruleset.gazetteer, item)
        assert ruleset._triggers.isdisjoint(an.hits) or not an.raw, item


def test_every_bundled_rule_needs_an_actor(ruleset: Ruleset) -> None:
    assert all(_needs_actor(r.when) for r in ruleset.rules)


def test_rule_without_actor_turns_the_actor_prefilter_off(tmp_path: Path) -> None:
    for path in bundled_rules_dir().glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "zz_phrase_only.yaml").write_text(
        "lexicon:\n"
        "  zz_cue: [zebra crossing~]\n"
        "rules:\n"
        "  - id: zz-phrase-only\n"
        "    topics: [summit]\n"
        "    when:\n"
        "      all:\n"
        "        - phrase: zz_cue\n",
        encoding="utf-8",
    )
    rs = load_ruleset(tmp_path)
    assert not rs._needs_actor
    item = make_item("Two new zebra crossings open downtown")
    assert rs._may_fire(item)
    decision = rs.classify(item)
    assert decision.rules == ("zz-phrase-only",)
    assert decision.model_dump() == _general_classify(rs, item).model_dump()
    assert not rs._may_fire(make_item("Weather: rain all week"))
