"""Benchmark of the stories stage: a hand-labelled set of real reports -> StoryIndex
clusters, scored by pairwise precision, recall and F1 and by alert-level counts.

    .venv/bin/python benchmarks/stories.py [--data benchmarks/data/stories.jsonl]
        [--threshold 0.3] [--window 3d] [--resume] [--show-errors]
    .venv/bin/python benchmarks/stories.py --build   # rebuild the JSONL from ../shared

Items are classified with the bundled rules (for their events) and fed in published
order to a StoryIndex twice: once assigning every report (near misses count), once
assigning only the reports whose decision alerts, as poll.py does. For the second,
``missed`` counts labelled stories that get no alert (each of their alerting reports
joined a cluster another story started) and ``dup`` the alerts beyond one per story.
Each figure is given for all reports and for each half of a fixed split by story
(``tune``: used to choose; ``held-out``: not), so that overfitting shows.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worker.classify import load_ruleset  # noqa: E402
from worker.config import parse_duration  # noqa: E402
from worker.models import Decision, Item, Story  # noqa: E402
from worker.stories import DEFAULT_THRESHOLD, StoryIndex  # noqa: E402

DATA = REPO / "benchmarks" / "data" / "stories.jsonl"
SHARED = REPO.parent / "shared"


@dataclass(frozen=True)
class Score:
    """Pairwise clustering scores."""

    precision: float
    recall: float
    f1: float
    true_pairs: int
    predicted_pairs: int


def pairwise(gold: dict[str, str], predicted: dict[str, str]) -> Score:
    """Pairs of items put together by the clustering vs. by the labels."""
    ids = sorted(gold)
    tp = fp = fn = 0
    for a, b in itertools.combinations(ids, 2):
        same_gold = gold[a] == gold[b]
        same_pred = predicted[a] == predicted[b]
        tp += same_gold and same_pred
        fp += same_pred and not same_gold
        fn += same_gold and not same_pred
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return Score(p, r, f, tp + fn, tp + fp)


def half(story: str) -> str:
    """The fixed split: "tune" or "held-out", by a hash of the story label."""
    return "tune" if hashlib.sha256(story.encode()).digest()[0] % 2 == 0 else "held-out"


def load(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
    rows.sort(key=lambda r: (r["published"], r["id"]))
    return rows


@dataclass(frozen=True)
class Report:
    """One labelled row, classified once with the bundled rules."""

    id: str
    story: str
    item: Item
    decision: Decision


def classify(rows: list[dict[str, Any]]) -> list[Report]:
    """Items and decisions for the rows, in published order."""
    ruleset = load_ruleset(None)
    out = []
    for row in rows:
        item = Item(
            id=row["id"],
            title=row["title"],
            summary=row["summary"],
            url=row.get("url"),
            published=datetime.fromisoformat(row["published"]),
            source=row.get("source"),
            feed_url=row.get("origin"),
        )
        out.append(Report(row["id"], row["story"], item, ruleset.classify(item)))
    return out


def cluster(
    reports: list[Report],
    threshold: float,
    window: float,
    *,
    alerting_only: bool = False,
    resume: bool = False,
) -> tuple[dict[str, str], float]:
    """Story id per assigned item id, and the seconds StoryIndex.assign took in all.

    ``alerting_only`` assigns only the reports whose decision alerts, as poll.py
    does; ``resume`` rebuilds the index from its stories before every report, as
    each poll pass does (a story then keeps only what the store keeps of it).
    """
    span = timedelta(seconds=window)
    index = StoryIndex([], window=span, threshold=threshold)
    stories: dict[str, Story] = {}
    out: dict[str, str] = {}
    spent = 0.0
    for r in reports:
        if alerting_only and not r.decision.alert:
            continue
        if resume:
            index = StoryIndex(stories.values(), window=span, threshold=threshold)
        assert r.item.published is not None
        start = time.perf_counter()
        story = index.assign(r.item, r.decision, r.item.published)
        spent += time.perf_counter() - start
        stories[story.id] = story
        out[r.id] = story.id
    return out, spent


@dataclass(frozen=True)
class AlertCounts:
    """What the reader of the alerts sees, per labelled story."""

    stories: int
    """Labelled stories with at least one alerting report."""
    missed: int
    """Of those, stories none of whose reports started a cluster: no alert at all."""
    duplicates: int
    """Alerts beyond the first for stories whose reports started several clusters."""


def alert_counts(
    reports: list[Report], predicted: dict[str, str], subset: set[str]
) -> tuple[AlertCounts, list[str], list[str]]:
    """One alert per predicted cluster, credited to the story of the report that
    started it; with the missed and the duplicated story labels."""
    starter: dict[str, str] = {}
    for r in reports:  # published order: the first report in a cluster started it
        if r.id in predicted:
            starter.setdefault(predicted[r.id], r.story)
    alerts = Counter(starter.values())
    labels = sorted({r.story for r in reports if r.id in predicted} & subset)
    missed = [s for s in labels if alerts[s] == 0]
    duplicated = [s for s in labels if alerts[s] > 1]
    extra = sum(alerts[s] - 1 for s in duplicated)
    return AlertCounts(len(labels), len(missed), extra), missed, duplicated


SUBSETS = ("all", "tune", "held-out")


def _in(name: str, story: str) -> bool:
    return name == "all" or half(story) == name


def report(
    reports: list[Report],
    predicted: dict[str, str],
    alerting: dict[str, str],
    errors: bool,
) -> None:
    """Print the scores (and with ``errors`` the wrong merges and splits)."""
    gold = {r.id: r.story for r in reports}
    groups = Counter(gold.values())
    print(
        f"items {len(reports)} ({len(alerting)} alert), stories {len(groups)} "
        f"({sum(1 for n in groups.values() if n > 1)} with several reports), "
        f"predicted clusters {len(set(predicted.values()))} "
        f"(alerting only: {len(set(alerting.values()))})"
    )
    print(
        f"{'assigned':<9} {'subset':<9} {'items':>5} {'pairs':>5} "
        f"{'P':>6} {'R':>6} {'F1':>6}   {'stories':>7} {'missed':>6} {'dup':>4}"
    )
    for mode, pred in (("every", predicted), ("alerting", alerting)):
        for name in SUBSETS:
            ids = [i for i in pred if _in(name, gold[i])]
            score = pairwise({i: gold[i] for i in ids}, {i: pred[i] for i in ids})
            counts, _, _ = alert_counts(
                reports, pred, {g for g in groups if _in(name, g)}
            )
            print(
                f"{mode:<9} {name:<9} {len(ids):>5} {score.true_pairs:>5} "
                f"{score.precision:>6.3f} {score.recall:>6.3f} {score.f1:>6.3f}   "
                f"{counts.stories:>7} {counts.missed:>6} {counts.duplicates:>4}"
            )
    if not errors:
        return
    by_id = {r.id: r for r in reports}
    _, missed, duplicated = alert_counts(reports, alerting, set(groups))
    print("\nmissed alerts (alerting only; every alerting report joined another):")
    for g in missed:
        for i, s in alerting.items():
            if gold[i] == g:
                first = next(r for r in reports if alerting.get(r.id) == s)
                print(f"  [{g}] {by_id[i].item.title[:70]}")
                print(f"      -> joined [{first.story}] {first.item.title[:60]}")
    print("\nduplicate alerts (alerting only; one story, several clusters):")
    for g in duplicated:
        print(f"  -- {g}")
        for i, s in alerting.items():
            if gold[i] == g:
                print(f"    ({s[-6:]}) {by_id[i].item.title[:90]}")
    pred_groups: dict[str, list[str]] = defaultdict(list)
    for i, s in predicted.items():
        pred_groups[s].append(i)
    print("\nmerged wrongly (every report; one predicted cluster, several labels):")
    for members in pred_groups.values():
        labels = {gold[i] for i in members}
        if len(labels) > 1:
            print("  --")
            for i in members:
                alert = "A" if by_id[i].decision.alert else "-"
                print(f"    {alert} [{gold[i]}] {by_id[i].item.title[:86]}")
    print("\nsplit wrongly (every report; one label, several predicted clusters):")
    gold_groups: dict[str, list[str]] = defaultdict(list)
    for i, g in gold.items():
        gold_groups[g].append(i)
    for g, members in gold_groups.items():
        if len({predicted[i] for i in members}) > 1:
            print(f"  -- {g}")
            for i in members:
                print(f"    ({predicted[i][-6:]}) {by_id[i].item.title[:90]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--window", default="3d")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="rebuild the index from its stories before every report (as poll passes)",
    )
    parser.add_argument("--show-errors", action="store_true")
    parser.add_argument("--build", action="store_true", help="rebuild the data file")
    args = parser.parse_args()
    if args.build:
        build(args.data)
        return
    reports = classify(load(args.data))
    window = parse_duration(args.window)
    predicted, spent = cluster(reports, args.threshold, window, resume=args.resume)
    alerting, _ = cluster(
        reports, args.threshold, window, alerting_only=True, resume=args.resume
    )
    print(
        f"threshold {args.threshold}, window {args.window}"
        f"{', resumed every report' if args.resume else ''}; "
        f"assign: {spent * 1e3 / len(reports):.3f} ms per report"
    )
    report(reports, predicted, alerting, args.show_errors)


# --------------------------------------------------------------------- building

# Real reports, picked by title from the shared corpus feeds (file prefix, title
# start) and by id from ../shared/eval/dev.jsonl, with hand-given story labels. A
# story is one event (a visit, a summit, a trip) with its announcements and
# follow-ups; reports that only mention it (market wraps, side stories) are stories
# of their own: clustering must keep them apart.
GROUPS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "trump-beijing-2026-05",
        "Trump's May 2026 trip to Beijing and summit with Xi: previews, arrival, "
        "talks, Xi's Taiwan warning, wrap-up and takeaways (AP)",
        [
            ("ap__scraped-2026-05", "Trump downplays differences with China’s Xi"),
            ("ap__scraped-2026-05", "Trump set to meet with Xi in Beijing"),
            ("ap__scraped-2026-05", "‘Good things are gonna happen:'"),
            ("ap__scraped-2026-05", "Trump arrives in Beijing for talks"),
            ("ap__scraped-2026-05", "Photos of Trump in China for talks"),
            ("ap__scraped-2026-05", "Trump’s meeting with Xi comes with much fanfare"),
            ("ap__scraped-2026-05", "Trump arrives in Beijing to meet Xi"),
            ("ap__scraped-2026-05", "Trump offers platitudes while Xi warns"),
            ("ap__scraped-2026-05", "China’s Xi warns Trump that differences"),
            ("ap__scraped-2026-05", "What to know about Xi’s warning"),
            ("ap__scraped-2026-05", "Chinese President Xi welcomes visiting"),
            ("ap__scraped-2026-05", "Trump insists US-China relations"),
            ("ap__scraped-2026-05", "Trump, Xi wrap up summit"),
            ("ap__scraped-2026-05", "Trump and Xi wrap up summit"),
            ("ap__scraped-2026-05", "Takeaways from Trump’s trip to China"),
            ("ap__scraped-2026-05", "Trump weighs Taiwan arms package after summit"),
            ("ap__scraped-2026-05", "Trump said he didn’t ask China’s Xi"),
        ],
    ),
    (
        "trump-ceos-2026-05",
        "US executives invited on / flying with Trump to China (side story)",
        [
            ("ap__scraped-2026-05", "Musk, Cook and other prominent"),
            ("ap__scraped-2026-05", "Musk, Cook, Huang and other"),
            ("ap__scraped-2026-05", "Tesla CEO Elon Musk and Nvidia CEO"),
        ],
    ),
    (
        "boeing-china-2026-05",
        "China's Boeing order announced at the end of the trip (business story)",
        [
            ("ap__scraped-2026-05", "Trump says China will buy 200 planes"),
            ("ap__scraped-2026-05", "Trump says China agreed to buy 200 Boeing"),
            ("ap__scraped-2026-05", "Trump and Boeing say China agreed"),
        ],
    ),
    (
        "markets-2026-05-14",
        "One AP markets story, updated through the day, that mentions the summit",
        [
            ("ap__scraped-2026-05", "Asian stocks are mixed as investors watch"),
            ("ap__scraped-2026-05", "World shares mostly gain as investors watch"),
            ("ap__scraped-2026-05", "Wall Street heads for gains before the bell"),
        ],
    ),
    (
        "markets-2026-05-15",
        "Next day's AP markets story (Kospi records, Trump wraps up trip)",
        [
            ("ap__scraped-2026-05", "Asian stocks are lower after South Korea’s Kospi"),
            ("ap__scraped-2026-05", "World shares are lower after South Korea’s Kospi"),
        ],
    ),
    (
        "lee-takaichi-2026-01",
        "Lee Jae-myung's January 2026 visit to Japan and summit with Takaichi",
        [
            ("ap__scraped-2026-01", "South Korea's Lee to head for Japan summit"),
            ("ap__scraped-2026-01", "Japan's Takaichi, South Korea's Lee meet"),
            ("ap__scraped-2026-01", "Takaichi and Lee end first day of summit"),
        ],
    ),
    (
        "carney-china-2026-01",
        "Canadian PM Carney's visit to China to reset ties",
        [
            ("ap__scraped-2026-01", "Canadian prime minister visits China"),
            ("ap__scraped-2026-01", "Carney in Beijing to reset"),
            ("ap__scraped-2026-01", "China, Canada move to reset ties"),
        ],
    ),
    (
        "takaichi-election-2026-01",
        "Takaichi weighing a snap election (domestic politics)",
        [
            ("ap__scraped-2026-01", "Japan PM Takaichi mulls Feb 8 snap election"),
            ("ap__scraped-2026-01", "Explainer: Why Japan's Takaichi is gambling"),
        ],
    ),
    (
        "yoon-death-penalty-2026-01",
        "Prosecutors seek the death penalty for ex-president Yoon",
        [
            ("ap__scraped-2026-01", "South Korea prosecutor seeks death penalty"),
            ("ap__scraped-2026-01", "South Korean prosecutors demand death penalty"),
        ],
    ),
    (
        "xi-north-korea-2026-06",
        "Xi's June 2026 visit to North Korea: announced, arrival, Kim's posture",
        [
            ("reuters__direct-2026-06", "China's Xi to visit North Korea"),
            ("reuters__direct-2026-06", "China's Xi hails 'new start'"),
            ("reuters__direct-2026-06", "With China's Xi in North Korea"),
        ],
    ),
    (
        "wang-yi-seoul-2026-08",
        "Chinese FM Wang Yi's visit to South Korea, Aug 19-20 2026",
        [
            ("reuters__direct-2026-08", "China's Foreign Minister Wang Yi to visit"),
            ("reuters__direct-2026-08", "China's Wang Yi in South Korea for talks"),
        ],
    ),
    (
        "trump-kim-2026-08",
        "Trump's push for a meeting with Kim Jong Un",
        [
            ("reuters__direct-2026-08", "Trump says North Korea's Kim has responded"),
            ("reuters__direct-2026-08", "Trump pushes for Kim Jong Un meeting"),
            ("reuters__direct-2026-08", "Trump says he plans to meet with North Korea"),
        ],
    ),
    (
        "us-korea-drills-2026-08",
        "Trump orders cuts to US-South Korea military exercises",
        [
            ("reuters__direct-2026-08", "Trump instructs Pentagon to reduce military"),
            ("reuters__direct-2026-08", "Trump seeks cuts to US-South Korea drills"),
            ("reuters__direct-2026-08", "US-South Korea military drills to be cut"),
        ],
    ),
]

SINGLETONS: list[tuple[str, str, str]] = [
    (
        "ap__scraped-2026-05",
        "Russia hammers Ukraine with drones",
        "mentions the summit",
    ),
    ("ap__scraped-2026-05", "Putin to visit Chinese leader Xi", "a later, other visit"),
    ("ap__scraped-2026-05", "Wall Street mixed early and oil", "markets, other day"),
    ("ap__scraped-2026-05", "As Trump heads to China, past US", "analysis"),
    ("ap__scraped-2026-05", "Trump’s description of Taiwan", "after the trip"),
    ("ap__scraped-2026-05", "Nvidia CEO Jensen Huang tries", "colour piece"),
    ("ap__scraped-2026-01", "Two Canadian members of parliament", "side story"),
    ("ap__scraped-2026-01", "Taiwan thanks Canada for its support", "side story"),
    ("reuters__direct-2026-06", "North Korea to build 10,000-ton", "before Xi visit"),
    ("reuters__direct-2026-06", "North Korea reaffirms nuclear status", "before Xi"),
    ("reuters__direct-2026-08", "South Korea minister says Trump", "trade pressure"),
    ("reuters__direct-2026-08", "How has the US-South Korea", "explainer"),
    ("reuters__direct-2026-08", "South Korea's Lee urges talks with North", "speech"),
    ("reuters__direct-2026-08", "Russia protests to Japanese ambassador", "Takaichi"),
    ("reuters__scraped-fulltext", "Attack on Iran could buoy Trump", "analysis"),
    ("reuters__scraped-fulltext", "Chinese military flights around Taiwan", "Trump-Xi"),
    ("reuters__scraped-fulltext", "South Korea's Lee to hold summit with", "Lee-Wong"),
    ("reuters__scraped-fulltext", "China's Wang Yi says attacks on Iran", "Wang Yi"),
]

DEV_GROUPS: list[tuple[str, str, list[str]]] = [
    ("bali-yoon-xi-2022", "Yoon-Xi first summit, Bali G20", ["dev-007", "dev-061"]),
    ("kishida-xi-2022", "Kishida-Xi meeting at APEC Bangkok", ["dev-011", "dev-023"]),
    (
        "cjk-seoul-2024",
        "China-Japan-South Korea summit in Seoul, May 2024",
        ["dev-010", "dev-051", "dev-082"],
    ),
    (
        "kishida-seoul-2023",
        "Kishida's May 2023 visit to Seoul (shuttle diplomacy resumes)",
        ["dev-042", "dev-070", "dev-050"],
    ),
    ("yoon-tokyo-2023", "Yoon's March 2023 visit to Tokyo", ["dev-059", "dev-118"]),
    ("hayashi-china-2023", "Japanese FM Hayashi visits China", ["dev-046", "dev-057"]),
    ("macron-china-2023", "Macron's state visit to China", ["dev-029", "dev-105"]),
    ("blinken-china-2023", "Blinken's visit to Beijing", ["dev-049", "dev-121"]),
    ("xi-moscow-2023", "Xi's state visit to Russia", ["dev-037", "dev-100"]),
    (
        "biden-xi-apec-2023",
        "Biden-Xi meeting at APEC, Woodside",
        ["dev-024", "dev-106", "dev-019"],
    ),
    (
        "cjk-fm-busan-2023",
        "CJK foreign ministers' meeting, Nov 2023",
        ["dev-107", "dev-053", "dev-099"],
    ),
    ("kishida-korea-2024", "Kishida's last trip to Seoul", ["dev-072", "dev-073"]),
    ("hangzhou-han-xi-2023", "PM Han meets Xi at Asian Games", ["dev-098", "dev-068"]),
    ("moon-xi-2019", "Moon-Xi summit in Beijing, Dec 2019", ["dev-101", "dev-016"]),
    ("cjk-tokyo-2018", "CJK summit in Tokyo, May 2018", ["dev-076", "dev-093"]),
]
DEV_SINGLETONS = [
    "dev-002",
    "dev-003",
    "dev-018",
    "dev-021",
    "dev-025",
    "dev-031",
    "dev-048",
    "dev-052",
    "dev-055",
    "dev-056",
    "dev-110",
]
# The seed articles 002 and 003 and a third outlet's report of the same meeting of
# senior diplomats in Seoul (DESIGN.md: "the same story from two outlets").
SEED_GROUP = (
    "seoul-deputies-2023-09",
    "Senior diplomats of South Korea, Japan and China meet in Seoul, Sep 26 2023",
    ["002_3a75e340b2ad595d", "003_25db8dd212026fe5"],
    ["dev-084"],
)


def _corpus_items() -> list[tuple[str, Item]]:
    from worker.parse import parse_feed

    out: list[tuple[str, Item]] = []
    for path in sorted((SHARED / "corpus" / "feeds").iterdir()):
        if path.suffix in (".tsv", ".md"):
            continue
        try:
            parsed = parse_feed(path.read_bytes(), f"corpus:{path.name}")
        except Exception:
            continue
        out.extend((path.name, item) for item in parsed.items)
    return out


def build(target: Path) -> None:
    """Write the labelled set from ../shared (run once; the JSONL is committed)."""
    corpus = _corpus_items()
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()

    def pick(prefix: str, start: str) -> tuple[str, Item]:
        found = [
            (f, i)
            for f, i in corpus
            if f.startswith(prefix) and i.title.startswith(start)
        ]
        found = [(f, i) for f, i in found if (f, i.title) not in seen]
        if not found:
            raise SystemExit(f"no item {start!r} in {prefix}*")
        f, i = found[0]
        seen.add((f, i.title))
        return f, i

    def add(f: str, item: Item, story: str, note: str) -> None:
        assert item.published is not None, item.title
        rows.append(
            {
                "id": f"{f.split('__')[0]}:{len(rows):03d}",
                "story": story,
                "note": note,
                "title": item.title,
                "summary": item.summary[:600],
                "published": item.published.astimezone(UTC).isoformat(),
                "source": item.source or f.split("__")[0],
                "url": item.url,
                "origin": f"corpus/feeds/{f}",
            }
        )

    for story, note, members in GROUPS:
        for prefix, start in members:
            f, item = pick(prefix, start)
            add(f, item, story, note)
    for prefix, start, why in SINGLETONS:
        f, item = pick(prefix, start)
        add(f, item, f"single:{f.split('__')[0]}:{len(rows):03d}", f"alone: {why}")

    dev = {
        d["id"]: d
        for d in map(
            json.loads, (SHARED / "eval" / "dev.jsonl").read_text().splitlines()
        )
    }

    def add_dev(dev_id: str, story: str, note: str) -> None:
        d = dev[dev_id]
        rows.append(
            {
                "id": dev_id,
                "story": story,
                "note": note,
                "title": d["title"],
                "summary": d["summary"][:600],
                "published": datetime.fromisoformat(d["published"])
                .replace(tzinfo=UTC)
                .isoformat(),
                "source": d["source"],
                "url": d["url"],
                "origin": "eval/dev.jsonl",
            }
        )

    for story, note, ids in DEV_GROUPS:
        for dev_id in ids:
            add_dev(dev_id, story, note)
    story, note, seeds, dev_ids = SEED_GROUP
    for seed in seeds:
        lines = (SHARED / "seeds" / f"{seed}.txt").read_text("utf-8").splitlines()
        meta = (REPO / "seeds" / f"{seed}.yaml").read_text("utf-8")
        date = next(
            x.split(":", 1)[1].strip()
            for x in meta.splitlines()
            if x.startswith("date:")
        )
        rows.append(
            {
                "id": f"seed-{seed[:3]}",
                "story": story,
                "note": note,
                "title": lines[0].strip(),
                "summary": " ".join(x.strip() for x in lines[1:4])[:600],
                "published": datetime.fromisoformat(date)
                .replace(tzinfo=UTC)
                .isoformat(),
                "source": "seed",
                "url": None,
                "origin": f"seeds/{seed}.txt",
            }
        )
    for dev_id in dev_ids:
        add_dev(dev_id, story, note)
    for dev_id in DEV_SINGLETONS:
        add_dev(dev_id, f"single:{dev_id}", f"alone: {dev[dev_id]['note']}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} items to {target}")


if __name__ == "__main__":
    main()
