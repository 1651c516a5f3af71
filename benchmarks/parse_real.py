"""Parse benchmark on real outlet feeds: feedwatch's parser against feedparser.

Input: the captured feeds of ../shared/corpus/feeds (71 files of real outlets, 6.9 MB);
output: per-run median seconds for the whole set, the ratio, how many files the lxml
fast path reads (the rest fall back to feedparser), and a check that both find the
same number of entries. Usage::

    .venv/bin/python benchmarks/parse_real.py [--reps 5] [--corpus DIR]

Three readers of every file, each timed over the whole set per repetition (median
of ``--reps``):

- ``feedparser``: ``feedparser.parse(body)``, the parser reader runs (reader's vendored
  copy when reader is installed, else the feedparser package);
- ``feedwatch``: ``worker.parse.parse_feed(body, url)``, the fast path with its
  feedparser fallback, what a first poll of the feed does;
- ``feedwatch, changed``: ``parse.QuickParse`` with all but the first three guids
  known, what a poll of a changed feed does since the two-step read (files the fast
  path declines are read by feedparser in full, as in a poll).

The generated feeds of benchmarks/poll.py are cleaner than the wild; this says how
far the fast path's gain holds on real ones.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "shared" / "corpus" / "feeds"
SUFFIXES = (".xml", ".rss", ".atom", ".json", ".rdf")


def _feedparser() -> Callable[[bytes], Any]:
    try:
        from reader._vendor import feedparser  # type: ignore[import-untyped]
    except ImportError:
        import feedparser  # type: ignore[import-untyped,no-redef]
    parse: Callable[[bytes], Any] = feedparser.parse
    return parse


def load(corpus: Path) -> list[tuple[str, bytes]]:
    files = sorted(p for p in corpus.iterdir() if p.suffix in SUFFIXES)
    return [(f"https://feeds.example/{p.name}", p.read_bytes()) for p in files]


def run(docs: list[tuple[str, bytes]], reps: int) -> dict[str, Any]:
    from worker.errors import ParseError
    from worker.parse import QuickParse, parse_feed, parse_feed_quick

    fp_parse = _feedparser()

    def with_feedparser() -> int:
        return sum(len(fp_parse(body).entries) for _, body in docs)

    def with_feedwatch() -> int:
        n = 0
        for url, body in docs:
            try:
                n += len(parse_feed(body, url).items)
            except ParseError:
                pass
        return n

    known = {}
    for url, body in docs:
        try:
            known[url] = set(QuickParse(body, url).ids[3:])
        except ParseError:
            known[url] = set()

    def with_feedwatch_changed() -> int:
        n = 0
        for url, body in docs:
            try:
                parsed = QuickParse(body, url).result(known[url])
                if parsed is None:
                    parsed = parse_feed(body, url, fast=False)
            except ParseError:
                continue
            n += len(parsed.items)
        return n

    readers = {
        "feedparser": with_feedparser,
        "feedwatch": with_feedwatch,
        "feedwatch, changed": with_feedwatch_changed,
    }
    seconds: dict[str, list[float]] = {name: [] for name in readers}
    counts: dict[str, int] = {}
    for _ in range(reps + 1):  # the first repetition warms up (imports, caches)
        for name, fn in readers.items():
            started = time.perf_counter()
            counts[name] = fn()
            seconds[name].append(time.perf_counter() - started)
    fast = 0
    for url, body in docs:
        try:
            fast += parse_feed_quick(body, url) is not None
        except ParseError:
            pass
    return {
        "files": len(docs),
        "bytes": sum(len(b) for _, b in docs),
        "fast_path_files": fast,
        "entries": counts,
        "seconds": {k: v[1:] for k, v in seconds.items()},
    }


def report(res: dict[str, Any]) -> str:
    fp = statistics.median(res["seconds"]["feedparser"])
    rows = [
        f"{res['files']} files, {res['bytes'] / 1e6:.1f} MB; the fast path reads "
        f"{res['fast_path_files']} of them",
        "",
        "| reader | seconds, median [min-max] | entries | vs feedparser |",
        "|---|---:|---:|---:|",
    ]
    for name, times in res["seconds"].items():
        med = statistics.median(times)
        rows.append(
            f"| {name} | {med:.3f} [{min(times):.3f}-{max(times):.3f}] | "
            f"{res['entries'][name]:,} | {fp / med:.1f}x |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    args = ap.parse_args()
    print(report(run(load(args.corpus), args.reps)))


if __name__ == "__main__":
    main()
