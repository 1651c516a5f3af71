"""Benchmark of the classify stage: realistic items -> Decisions, items per second.

Generates N items (default 100,000) from a deterministic template mix of headlines
and ledes (positives, hard negatives, general news), then classifies them all with the
bundled rule set and event extraction, several times; prints the median rate.

    .venv/bin/python benchmarks/classify.py [--items 100000] [--runs 5] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.classify import classify, load_ruleset
from worker.models import Item

LEADERS = [
    ("Japanese Prime Minister", "Fumio Kishida", "Kishida", "Tokyo"),
    ("South Korean President", "Yoon Suk Yeol", "Yoon", "Seoul"),
    ("Chinese President", "Xi Jinping", "Xi", "Beijing"),
    ("Chinese Premier", "Li Qiang", "Li", "Beijing"),
    ("U.S. President", "Joe Biden", "Biden", "Washington"),
    ("Russian President", "Vladimir Putin", "Putin", "Moscow"),
    ("French President", "Emmanuel Macron", "Macron", "Paris"),
    ("Japanese Foreign Minister", "Yoko Kamikawa", "Kamikawa", "Tokyo"),
    ("South Korean Foreign Minister", "Park Jin", "Park Jin", "Seoul"),
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
POSITIVE = [
    (
        "{s} to visit {hc} next week",
        "{tf} {nf} will travel to {hc} for talks with {th} {nh}, officials said on {d}.",
    ),
    (
        "{s} arrives in {hc} for summit with {sh}",
        "{tf} {nf} arrived in {hc} on {d} for a two-day visit.",
    ),
    (
        "{s}, {sh} agree to hold trilateral summit",
        "The leaders agreed on {d} to hold a trilateral summit at the earliest convenient time.",
    ),
    (
        "{s} meets {sh} on sidelines of G20",
        "{tf} {nf} and {th} {nh} met on {d} on the sidelines of the G20 summit in New Delhi.",
    ),
    (
        "{hc} to host {s} on state visit",
        "{th} {nh} will host {tf} {nf} on a state visit beginning {d}.",
    ),
    (
        "{s} postpones trip to {hc}",
        "{tf} {nf} postponed a planned visit to {hc}, the foreign ministry said on {d}.",
    ),
]
NEGATIVE = [
    (
        "Climbers reach summit of Mount Fuji as season opens",
        "Thousands of hikers reached the summit on {d} as the climbing season began.",
    ),
    (
        "Chinese tourists return to {hc} in record numbers",
        "Tour groups and visitors flocked to {hc} on {d}, officials said.",
    ),
    (
        "{s} holds phone call with {sh}",
        "{tf} {nf} spoke by telephone with {th} {nh} on {d}.",
    ),
    (
        "Korea wins gold at Asian Games",
        "South Korea claimed its fifth gold medal in taekwondo on {d}.",
    ),
    (
        "{s} inspects flood-hit areas at home",
        "{tf} {nf} visited disaster areas on {d}, state media reported.",
    ),
    (
        "Samsung chief visits {hc} to meet suppliers",
        "The CEO met executives on {d} during a business trip.",
    ),
    (
        "Tech summit in {hc} draws startups",
        "The annual business summit opened on {d} with 5,000 attendees.",
    ),
    (
        "South Korea summons Japanese ambassador",
        "Seoul's foreign ministry summoned the envoy on {d} over remarks.",
    ),
]
GENERAL = [
    (
        "Stocks rise as chip demand lifts exports",
        "Shares climbed on {d} as semiconductor exports rose 11 percent from a year earlier.",
    ),
    (
        "Typhoon leaves thousands without power",
        "Heavy rain and strong winds battered the coast on {d}, officials said.",
    ),
    (
        "Central bank keeps interest rates steady",
        "The bank held its policy rate on {d} and kept its view that growth is on track.",
    ),
    (
        "Election results delayed after recount",
        "Officials said on {d} that the count would resume after a court order.",
    ),
    (
        "New smartphone breaks preorder record",
        "Preorders hit 1.35 million units by {d}, the company said.",
    ),
]


def make_items(
    n: int, seed: int, positives: float = 0.1, traps: float = 0.2
) -> list[Item]:
    """n items: ``positives`` summit/visit items, ``traps`` hard negatives, the rest
    general news (default 10% / 20% / 70%)."""
    rng = random.Random(seed)
    base = datetime(2023, 1, 1, tzinfo=UTC)
    items = []
    for i in range(n):
        r = rng.random()
        pool = (
            POSITIVE
            if r < positives
            else NEGATIVE
            if r < positives + traps
            else GENERAL
        )
        title, summary = rng.choice(pool)
        a, b = rng.sample(LEADERS, 2)
        fields = {
            "s": a[2],
            "sh": b[2],
            "tf": a[0],
            "nf": a[1],
            "th": b[0],
            "nh": b[1],
            "hc": b[3],
            "d": rng.choice(DAYS),
        }
        items.append(
            Item(
                id=f"bench-{i}",
                title=title.format(**fields),
                summary=summary.format(**fields),
                published=base + timedelta(days=rng.randrange(365)),
                source="bench",
            )
        )
    return items


def main() -> None:
    """Run the benchmark and print the median items/s."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--positives", type=float, default=0.1, help="share of positives")
    ap.add_argument("--traps", type=float, default=0.2, help="share of hard negatives")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ruleset = load_ruleset()
    print(
        f"load+compile rules: {time.perf_counter() - t0:.3f} s ({len(ruleset.rules)} rules)"
    )
    items = make_items(args.items, args.seed, args.positives, args.traps)
    rates = []
    alerts = 0
    for run in range(args.runs):
        t = time.perf_counter()
        decisions = list(classify(items, ruleset))
        dt = time.perf_counter() - t
        alerts = sum(d.alert for d in decisions)
        rates.append(len(items) / dt)
        print(
            f"run {run + 1}: {len(items)} items in {dt:.2f} s = {rates[-1]:,.0f} items/s"
        )
    print(
        f"median {statistics.median(rates):,.0f} items/s "
        f"[min {min(rates):,.0f}, max {max(rates):,.0f}] over {args.runs} runs; "
        f"{alerts} alerts ({alerts / len(items):.0%})"
    )


if __name__ == "__main__":
    main()
