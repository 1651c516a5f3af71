"""Poll benchmark on real outlet feeds: feedwatch against reader (and the floor),
side by side, one run.

Input: the captured feeds of ../shared/corpus/feeds (71 files of real outlets),
served round robin as ``--feeds`` feeds by ``benchmarks/feedserver.py --dir``;
output: median feeds/s per pass and the ratios to reader. Usage::

    .venv/bin/python benchmarks/poll_real.py [--feeds 710] [--reps 3]

Per repetition, on fresh databases: (1) first poll (everything new: the pass where
parsing counts, and real feeds are where the parser's fast path declines most), then
(2) unchanged (all 304). feedwatch runs ``feedwatch poll --once --all --json`` as a
subprocess, reader ``update_feeds(scheduled=False)`` in this process, the floor
``benchmarks/floor.py`` as a subprocess, as in ``benchmarks/poll.py`` (whose helpers
this uses). The real feeds have no ticks: there is no changed10 pass here.
"""

from __future__ import annotations

import argparse
import compileall
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import poll as bench

CORPUS = bench.REPO.parent / "shared" / "corpus" / "feeds"


def run(feeds: int, reps: int, corpus: Path) -> dict[str, Any]:
    times: dict[str, list[float]] = {}
    items: dict[str, int] = {}

    def note(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)

    with bench.feed_server(feeds, extra=("--dir", str(corpus))) as base:
        for _ in range(reps):
            fw_tmp, config = bench.fw_setup(base, feeds)
            rd_tmp, r = bench.reader_setup(base, feeds)
            fl_tmp, floor_db = bench.floor_setup(base, feeds)
            try:
                t, out, _ = bench.fw_poll(config)
                note("feedwatch first", t)
                note("pass feedwatch first", out.get("seconds", t))
                items["feedwatch"] = out.get("new_items", 0)
                note("reader first", bench.reader_update(r))
                items["reader"] = r.get_entry_counts().total
                t, out = bench.floor_poll(floor_db)
                note("floor first", t)
                items["floor"] = out["new_items"]
                t, out, _ = bench.fw_poll(config)
                note("feedwatch unchanged", t)
                note("pass feedwatch unchanged", out.get("seconds", t))
                note("reader unchanged", bench.reader_update(r))
                t, out = bench.floor_poll(floor_db)
                note("floor unchanged", t)
            finally:
                r.close()
                fw_tmp.cleanup()
                rd_tmp.cleanup()
                fl_tmp.cleanup()
    return {"feeds": feeds, "reps": reps, "seconds": times, "items": items}


def report(res: dict[str, Any]) -> str:
    n = res["feeds"]
    rows = [
        f"items stored on the first poll: {res['items']}",
        "",
        "| pass | feeds/s | reader feeds/s | ratio |",
        "|---|---:|---:|---:|",
    ]
    for step in ("first", "unchanged"):
        rd = res["seconds"][f"reader {step}"]
        for label, key in (
            ("CLI", f"feedwatch {step}"),
            ("pass", f"pass feedwatch {step}"),
            ("floor CLI", f"floor {step}"),
        ):
            mine = [n / s for s in res["seconds"][key]]
            theirs = [n / s for s in rd]
            ratio = statistics.median(mine) / statistics.median(theirs)
            rows.append(
                f"| {step} ({label}) | {statistics.median(mine):,.0f} "
                f"[{min(mine):,.0f}-{max(mine):,.0f}] | "
                f"{statistics.median(theirs):,.0f} | {ratio:.1f}x |"
            )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--feeds", type=int, default=710)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    compileall.compile_dir(bench.REPO / "worker", quiet=1)
    bench.warm_rules_cache()
    try:
        res = run(args.feeds, args.reps, args.corpus)
    finally:
        shutil.rmtree(bench.CACHE_DIR, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    print(report(res))


if __name__ == "__main__":
    main()
