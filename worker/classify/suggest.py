"""Rule drafting: an example article -> a draft rule file (actors found, cue phrases).

Input: article text and a ``Ruleset`` (for its gazetteer and lexicons); output: YAML
text a user edits and saves into their rules directory.
"""

from __future__ import annotations

import re
from collections import Counter

import yaml

from worker.classify.ruleset import Ruleset
from worker.models import Item

__all__ = ["suggest_rule"]

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]{2,}")
_STOP = frozenset(
    "the and for with that this from have has had was were will would said says "
    "their they them its his her our into over after before about also been more "
    "than which while when where who whom what amid since under between".split()
)


def suggest_rule(ruleset: Ruleset, text: str, rule_id: str = "my-rule") -> str:
    """A draft rule file for an article: the first line is taken as its headline."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    title = lines[0] if lines else ""
    item = Item(id="suggest", title=title, summary=" ".join(lines[1:]))
    an = ruleset.analyse(item)
    countries = sorted({m.country for m in an.mentions if m.country})
    people = sorted({m.name for m in an.mentions if m.kind == "person"})
    cues: Counter[str] = Counter()
    for name, hits in an.hits.items():
        if name.startswith("@") or name in {"place_prefix", "time_expr"}:
            continue
        for f, s, e in hits:
            cues[an.span_text(f, s, e).lower()] += 1
    words = Counter(w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP)
    known = {m.text.lower() for m in an.mentions}
    extra = [w for w, _ in words.most_common(40) if w not in known and w not in cues][
        :10
    ]
    decision = ruleset.classify(item)
    cjk = ruleset.gazetteer.expand(["cjk"]) or frozenset()
    scope = [c for c in countries if c in cjk] or countries
    draft = {
        "lexicon": {f"{rule_id}-cues": sorted(cues)[:20] or extra[:5]},
        "rules": [
            {
                "id": rule_id,
                "description": f"Drafted from: {title[:80]}",
                "topics": list(decision.topics) or ["summit"],
                "severity": "alert",
                "when": {
                    "all": [
                        {"phrase": f"{rule_id}-cues"},
                        {"countries": {"min": 1, "any_of": scope or ["cjk"]}},
                    ]
                },
                "examples": {"positive": [title] if title else [], "negative": []},
            }
        ],
    }
    header = [
        f"# Draft rule from an example article. Actors found: {', '.join(people) or '-'}",
        f"# Countries named: {', '.join(countries) or '-'}",
        f"# Other frequent words (candidate cues): {', '.join(extra) or '-'}",
        f"# The current rules say: topics={list(decision.topics)} rules={list(decision.rules)}",
        "# Edit the cues, add negative examples, then run: feedwatch rules lint && feedwatch rules test",
    ]
    body = yaml.safe_dump(draft, sort_keys=False, allow_unicode=True, width=88)
    return "\n".join(header) + "\n" + body
