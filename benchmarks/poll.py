"""Poll benchmark: feedwatch through its CLI against reader, side by side, one run.

Input: a feed count; output: median feeds/s per pass, ratios to reader, peak RSS.
Usage: ``.venv/bin/python benchmarks/poll.py --feeds 1000 --reps 3 [--memory-feeds
10000] [--json out.json]``. Needs ``reader>=3.26,<4`` (and ``sgmllib3k``) installed.

Per repetition, on fresh databases: (1) first poll, everything new; tick 10% of the
feeds (1-5 new items each); (2) changed10; (3) unchanged (all 304). feedwatch runs
``feedwatch poll --once --all --json`` as a subprocess (start-up included); reader runs
``update_feeds(scheduled=False)`` in this process. Then the same with a server that
sends no validators (never 304): first, then unchanged (timed). feedwatch runs with
its default ``poll.processes: auto`` (one poll process per CPU); ``--memory-feeds``
measures memory with it and with ``processes: 1``.

benchmarks/floor.py, the least a one-shot CLI poll on feedwatch's stack must do, runs
every pass too, as a subprocess, in one process and in two ("floor CLI" rows): what a
command on this stack cannot go below on this machine.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable

# Runs the CLI, then reports the process's own peak RSS (KiB) on stderr, and the
# largest peak of its poll processes (reaped by then).
_LAUNCH = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: sys.stderr.write("
    "'\\nPEAK_RSS_KB %d %d\\n' % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
    " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)))\n"
    "from worker.cli import main\n"
    "sys.argv = ['feedwatch', *sys.argv[1:]]\n"
    "main()\n"
)


class TreeMemory:
    """Samples the summed RSS and PSS (KiB) of a process and its children every
    20 ms from /proc: the resident memory of feedwatch as a whole, poll processes
    included (PSS counts a page shared by n processes as 1/n in each)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss = 0
        self.pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        pids = [self.pid]
        try:
            kids = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
            pids += [int(k) for k in kids.split()]
        except OSError:
            pass
        return pids

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            rss = pss = 0
            for pid in self._tree():
                try:
                    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
                except OSError:
                    continue
                for line in text.splitlines():
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            self.rss = max(self.rss, rss)
            self.pss = max(self.pss, pss)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(timeout=5)
        return {"tree_rss_kb": self.rss, "tree_pss_kb": self.pss}


@contextmanager
def feed_server(
    feeds: int, *, validators: bool = True, extra: tuple[str, ...] = ()
) -> Iterator[str]:
    """Start benchmarks/feedserver.py in its own process (``extra``: more of its
    options); yields its base URL."""
    cmd = [PYTHON, str(HERE / "feedserver.py"), "--feeds", str(feeds), *extra]
    if not validators:
        cmd.append("--no-validators")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError(f"feed server did not start: {line}")
        yield f"http://127.0.0.1:{line[1]}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def admin(base: str, path: str) -> dict[str, Any]:
    """Call the feed server's admin endpoint."""
    with urllib.request.urlopen(f"{base}/_admin/{path}", timeout=30) as r:
        data: dict[str, Any] = json.loads(r.read())
        return data


CACHE_DIR = Path(tempfile.mkdtemp(prefix="fwbench-cache-"))
"""The compiled-rules cache of the run, warmed once by ``main`` (as after a user's
first command): no timed pass pays for compiling the rules."""


def warm_rules_cache() -> None:
    """Compile the bundled rules into CACHE_DIR (not timed)."""
    code = (
        "from worker.classify import load_ruleset; "
        f"load_ruleset(None, cache_dir={str(CACHE_DIR)!r})"
    )
    subprocess.run([PYTHON, "-c", code], cwd=REPO, check=True)


def write_config(tmp: Path, feeds: int, processes: int | str = "auto") -> Path:
    """A feedwatch config for the run: fresh SQLite file, loopback allowed."""
    cfg: dict[str, Any] = {
        "database": f"sqlite:///{tmp / 'fw.db'}",
        "cache_dir": str(CACHE_DIR),
        "log_level": "WARNING",
        "fetch": {"allow_private_addresses": True, "per_host_concurrency": 64},
        "poll": {"concurrency": 64, "batch": 1000, "processes": processes},
        "channels": [
            {"type": "file", "name": "file", "path": str(tmp / "alerts.jsonl")}
        ],
    }
    path = tmp / "feedwatch.yaml"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


LAST_MEMORY: dict[str, int] = {}
"""Memory figures of the last ``feedwatch`` call (peak RSS of the main process, the
largest poll process, and the sampled whole-tree RSS/PSS)."""


def feedwatch(
    config: Path, *args: str, sample: bool = False
) -> tuple[float, dict[str, Any], int]:
    """Run one CLI command; returns wall seconds, its JSON output, peak RSS KiB of
    the main process (``LAST_MEMORY`` has the rest; the tree is sampled only with
    ``sample``, off for timed passes)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [PYTHON, "-c", _LAUNCH, *args[:2], "--config", str(config), *args[2:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    tree = TreeMemory(proc.pid) if sample else None
    stdout, stderr = proc.communicate()
    elapsed = time.perf_counter() - started
    sampled = tree.stop() if tree is not None else {}
    if proc.returncode != 0:
        raise RuntimeError(f"feedwatch {' '.join(args)} failed:\n{stderr[-3000:]}")
    rss = child = 0
    for line in stderr.splitlines():
        if line.startswith("PEAK_RSS_KB"):
            rss, child = (int(x) for x in line.split()[1:3])
    LAST_MEMORY.clear()
    LAST_MEMORY.update(main_rss_kb=rss, child_rss_kb=child, **sampled)
    out = stdout.strip().splitlines()
    data = json.loads(out[-1]) if out and out[-1].startswith("{") else {}
    return elapsed, data, rss


def fw_setup(
    base: str, feeds: int, processes: int | str = "auto"
) -> tuple[tempfile.TemporaryDirectory[str], Path]:
    """A fresh feedwatch directory subscribed to every feed (not timed)."""
    tmp = tempfile.TemporaryDirectory(prefix="fwbench-")
    path = Path(tmp.name)
    config = write_config(path, feeds, processes)
    urls = path / "feeds.txt"
    urls.write_text("".join(f"{base}/feed/{n}\n" for n in range(feeds)))
    feedwatch(config, "feeds", "import", str(urls))
    return tmp, config


def fw_poll(config: Path, *, sample: bool = False) -> tuple[float, dict[str, Any], int]:
    """One timed ``feedwatch poll --once --all --json``."""
    return feedwatch(config, "poll", "--once", "--all", "--json", sample=sample)


def floor_setup(base: str, feeds: int) -> tuple[tempfile.TemporaryDirectory[str], Path]:
    """A fresh database for benchmarks/floor.py subscribed to every feed (not timed)."""
    tmp = tempfile.TemporaryDirectory(prefix="floorbench-")
    db = Path(tmp.name) / "floor.sqlite"
    cmd = [PYTHON, str(HERE / "floor.py"), "--setup", str(db), base, str(feeds)]
    subprocess.run(cmd, check=True)
    return tmp, db


FLOORS = {"floor": (), "floor2": ("--processes=2",)}
"""The floor contenders: one process, and two as feedwatch runs here."""


def floor_poll(db: Path, *options: str) -> tuple[float, dict[str, Any]]:
    """One timed pass of benchmarks/floor.py as a subprocess (start-up included)."""
    started = time.perf_counter()
    res = subprocess.run(
        [PYTHON, str(HERE / "floor.py"), str(db), *options],
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    data: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return elapsed, data


def reader_setup(base: str, feeds: int) -> tuple[tempfile.TemporaryDirectory[str], Any]:
    """A fresh reader database subscribed to every feed (not timed)."""
    from reader import make_reader

    tmp = tempfile.TemporaryDirectory(prefix="readerbench-")
    r = make_reader(os.path.join(tmp.name, "reader.sqlite"))
    for n in range(feeds):
        r.add_feed(f"{base}/feed/{n}")
    return tmp, r


def reader_update(r: Any) -> float:
    """One timed ``update_feeds(scheduled=False)``."""
    started = time.perf_counter()
    r.update_feeds(scheduled=False)
    return time.perf_counter() - started


def run(feeds: int, reps: int) -> dict[str, Any]:
    """Every timed pass of both, interleaved; raw seconds per pass and repetition."""
    times: dict[str, list[float]] = {}
    rss: list[dict[str, int]] = []
    checks: list[str] = []

    def note(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)

    with feed_server(feeds) as base:
        for rep in range(reps):
            fw_tmp, config = fw_setup(base, feeds)
            rd_tmp, r = reader_setup(base, feeds)
            floors = {name: floor_setup(base, feeds) for name in FLOORS}
            try:
                expected = admin(base, "stats")["total_items"]
                t, out, _ = fw_poll(config)
                note("feedwatch first", t)
                note("pass feedwatch first", out.get("seconds", t))
                rss.append(dict(LAST_MEMORY))
                if out.get("new_items") != expected or out.get("failed"):
                    checks.append(f"rep {rep} first: feedwatch {out} vs {expected}")
                note("reader first", reader_update(r))
                got = r.get_entry_counts().total
                if got != expected:
                    checks.append(f"rep {rep} first: reader stored {got} vs {expected}")
                for name, (_, db) in floors.items():
                    t, out = floor_poll(db, *FLOORS[name])
                    note(f"{name} first", t)
                    if out["new_items"] != expected:
                        checks.append(f"rep {rep} first: {name} {out} vs {expected}")

                admin(base, "tick?fraction=0.1")
                t, out, _ = fw_poll(config)
                note("feedwatch changed10", t)
                note("pass feedwatch changed10", out.get("seconds", t))
                rss.append(dict(LAST_MEMORY))
                note("reader changed10", reader_update(r))
                total = admin(base, "stats")["total_items"]
                if r.get_entry_counts().total != total:
                    checks.append(f"rep {rep} changed10: reader count off")
                for name, (_, db) in floors.items():
                    t, out = floor_poll(db, *FLOORS[name])
                    note(f"{name} changed10", t)
                    if out["new_items"] != total - expected:
                        checks.append(f"rep {rep} changed10: {name} {out}")

                t, out, _ = fw_poll(config)
                note("feedwatch unchanged", t)
                note("pass feedwatch unchanged", out.get("seconds", t))
                rss.append(dict(LAST_MEMORY))
                if out.get("not_modified") != feeds:
                    checks.append(f"rep {rep} unchanged: feedwatch {out}")
                note("reader unchanged", reader_update(r))
                for name, (_, db) in floors.items():
                    t, out = floor_poll(db, *FLOORS[name])
                    note(f"{name} unchanged", t)
                    if out["not_modified"] != feeds:
                        checks.append(f"rep {rep} unchanged: {name} {out}")
            finally:
                r.close()
                fw_tmp.cleanup()
                rd_tmp.cleanup()
                for tmp, _ in floors.values():
                    tmp.cleanup()

    with feed_server(feeds, validators=False) as base:
        for rep in range(reps):
            fw_tmp, config = fw_setup(base, feeds)
            rd_tmp, r = reader_setup(base, feeds)
            floors = {name: floor_setup(base, feeds) for name in FLOORS}
            try:
                fw_poll(config)
                reader_update(r)
                for name, (_, db) in floors.items():
                    floor_poll(db, *FLOORS[name])
                t, out, _ = fw_poll(config)
                note("feedwatch unchanged-novalidators", t)
                note("pass feedwatch unchanged-novalidators", out.get("seconds", t))
                if out.get("not_modified") != feeds:
                    checks.append(f"rep {rep} novalidators: feedwatch {out}")
                note("reader unchanged-novalidators", reader_update(r))
                for name, (_, db) in floors.items():
                    t, out = floor_poll(db, *FLOORS[name])
                    note(f"{name} unchanged-novalidators", t)
                    if out["new_items"] != 0:
                        checks.append(f"rep {rep} novalidators: {name} {out}")
            finally:
                r.close()
                fw_tmp.cleanup()
                rd_tmp.cleanup()
                for tmp, _ in floors.values():
                    tmp.cleanup()
    return {
        "feeds": feeds,
        "reps": reps,
        "seconds": times,
        "memory_kb": rss,
        "checks": checks,
    }


def memory(feeds: int) -> dict[str, Any]:
    """Memory of ``poll --once --all`` (first and unchanged) with ``feeds`` feeds,
    with the default poll processes and with one process: the main process's peak
    RSS, the largest poll process's, and the sampled peak RSS/PSS of the tree."""
    res: dict[str, Any] = {"feeds": feeds}
    with feed_server(feeds) as base:
        for processes in ("auto", 1):
            fw_tmp, config = fw_setup(base, feeds, processes)
            try:
                t1, out1, _ = fw_poll(config, sample=True)
                first = dict(LAST_MEMORY)
                t2, out2, _ = fw_poll(config, sample=True)
                unchanged = dict(LAST_MEMORY)
            finally:
                fw_tmp.cleanup()
            res[f"processes={processes}"] = {
                "first_seconds": t1,
                "first_new_items": out1.get("new_items"),
                "first": first,
                "unchanged_seconds": t2,
                "unchanged_not_modified": out2.get("not_modified"),
                "unchanged": unchanged,
            }
    return res


def report(res: dict[str, Any]) -> str:
    """A Markdown table of medians [min-max] in feeds/s and the ratios."""
    n = res["feeds"]
    rows = [
        "| pass | feeds/s | reader feeds/s | ratio | target |",
        "|---|---:|---:|---:|---:|",
    ]
    targets = {
        "first": 10,
        "changed10": 8,
        "unchanged": 5,
        "unchanged-novalidators": 20,
    }
    for step, target in targets.items():
        for label, key in (
            ("CLI", f"feedwatch {step}"),
            ("pass", f"pass feedwatch {step}"),
            ("floor CLI", f"floor {step}"),
            ("2-process floor CLI", f"floor2 {step}"),
        ):
            fw = res["seconds"].get(key)
            rd = res["seconds"].get(f"reader {step}")
            if fw and rd:
                rows.append(_row(f"{step} ({label})", n, fw, rd, target))
    rows += ["", "| pass | feedwatch CLI s | floor CLI s | 2-process floor CLI s |"]
    rows.append("|---|---:|---:|---:|")
    for step in targets:
        times = [res["seconds"].get(f"{k} {step}") for k in ("feedwatch", *FLOORS)]
        if all(times):
            cells = " | ".join(f"{statistics.median(t):.2f}" for t in times if t)
            rows.append(f"| {step} | {cells} |")
    return "\n".join(rows)


def _row(step: str, n: int, fw: list[float], rd: list[float], target: int) -> str:
    fw_rate = [n / s for s in fw]
    rd_rate = [n / s for s in rd]
    ratio = statistics.median(fw_rate) / statistics.median(rd_rate)
    return (
        f"| {step} | {statistics.median(fw_rate):,.0f} [{min(fw_rate):,.0f}-"
        f"{max(fw_rate):,.0f}] | {statistics.median(rd_rate):,.0f} "
        f"[{min(rd_rate):,.0f}-{max(rd_rate):,.0f}] | {ratio:.1f}x | >= {target}x |"
    )


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--memory-feeds", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--memory-only", action="store_true", help="Skip the speed passes.")
    args = ap.parse_args()
    # An installed feedwatch has its bytecode; this checkout may not (with
    # PYTHONDONTWRITEBYTECODE set every CLI run would compile ~10k lines again).
    compileall.compile_dir(REPO / "worker", quiet=1)
    warm_rules_cache()
    try:
        res = {"seconds": {}} if args.memory_only else run(args.feeds, args.reps)
        res.setdefault("feeds", args.feeds)
        if args.memory_feeds:
            res["memory"] = memory(args.memory_feeds)
    finally:
        shutil.rmtree(CACHE_DIR, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    print(report(res))
    print(json.dumps({k: v for k, v in res.items() if k != "seconds"}, indent=2))


if __name__ == "__main__":
    main()
