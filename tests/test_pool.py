"""Poll processes (worker/pool.py, poll.start_pool): a pooled pass stores exactly what
one process stores, stories and alerts included; a killed process loses nothing.

Forking is only done from a process without threads, so every pooled pass here runs
in a ``feedwatch`` subprocess (the feed server's threads live in the test process).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import publish_demo_feeds, write_config
from feedserver import FeedServer

from worker.config import Settings
from worker.metrics import Metrics
from worker.poll import _share, pool_size

REPO = Path(__file__).resolve().parent.parent


def _feedwatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _config(path: Path, db: Path, urls: list[str], processes: int) -> Path:
    return write_config(
        path,
        {
            "database": f"sqlite:///{db}",
            "log_level": "INFO",
            "fetch": {"allow_private_addresses": True, "timeout": "20s"},
            # One feed per chunk: the feeds spread over the processes, and the two
            # outlets of one story reach the main process from different ones.
            "poll": {"processes": processes, "batch": 1},
            "channels": [{"name": "f", "type": "file", "path": str(db) + ".jsonl"}],
        },
    )


def _subscribe(cfg: Path, urls: list[str], cwd: Path) -> None:
    listing = cwd / f"{cfg.stem}-feeds.txt"
    listing.write_text("".join(u + "\n" for u in urls))
    res = _feedwatch("feeds", "import", str(listing), "--config", str(cfg), cwd=cwd)
    assert res.returncode == 0, res.stderr


def _stored(db: Path) -> dict[str, Any]:
    """What a pass left in the database, without ids and times a run picks itself."""
    conn = sqlite3.connect(db)
    try:
        feeds = sorted(
            conn.execute(
                "SELECT url, title, status, etag, last_modified, body_hash, "
                "error_count, last_error, lease_owner FROM feeds"
            )
        )
        items = sorted(
            conn.execute(
                "SELECT f.url, i.item_id, i.title, i.url, i.published, i.summary "
                "FROM items i JOIN feeds f ON f.id = i.feed_id"
            )
        )
        stories: dict[str, set[str]] = {}
        for story, item in conn.execute(
            "SELECT s.story_id, i.item_id FROM story_items s "
            "JOIN items i ON i.id = s.item_row_id"
        ):
            stories.setdefault(story, set()).add(item)
        # Which report of a story alerts (and titles it) depends on which one is
        # recorded first, as it does between two passes of one process: an alert
        # is its rule and the reports of its story.
        alerts = sorted(
            (a["rule"], sorted(stories[a["story_id"]]))
            for (payload,) in conn.execute("SELECT payload FROM alerts")
            for a in [json.loads(payload)]
        )
        decisions = conn.execute("SELECT count(*) FROM matches").fetchone()[0]
    finally:
        conn.close()
    return {
        "feeds": feeds,
        "items": items,
        "stories": sorted(sorted(s) for s in stories.values()),
        "alerts": alerts,
        "decisions": decisions,
    }


def _summary(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert res.returncode == 0, res.stderr
    out: dict[str, Any] = json.loads(res.stdout)
    out.pop("seconds")
    return out


def _pids(stderr: str) -> set[str]:
    return set(re.findall(r"poll process pid=(\d+) ", stderr))


def test_pooled_pass_stores_what_one_process_stores(
    tmp_path: Path, feed_server: FeedServer, demo_expected: dict[str, Any]
) -> None:
    urls = sorted(publish_demo_feeds(feed_server).values())
    one = _config(tmp_path / "one.yaml", tmp_path / "one.db", urls, 1)
    # Three processes: this one and two forked ones.
    two = _config(tmp_path / "two.yaml", tmp_path / "two.db", urls, 3)
    for cfg in (one, two):
        _subscribe(cfg, urls, tmp_path)

    args = ("poll", "--once", "--all", "--json", "--config")
    solo = _feedwatch(*args, str(one), cwd=tmp_path)
    pooled = _feedwatch(*args, str(two), cwd=tmp_path)

    assert not _pids(solo.stderr), "processes: 1 must not fork"
    assert len(_pids(pooled.stderr)) == 2, pooled.stderr  # both forked ones polled
    assert _summary(pooled) == _summary(solo)
    assert _summary(pooled)["alerts"] == demo_expected["alert_count"]
    a, b = _stored(tmp_path / "one.db"), _stored(tmp_path / "two.db")
    assert b == a
    assert len(b["alerts"]) == demo_expected["alert_count"]
    # The story two outlets carry is one story, with both reports in it.
    (pair,) = demo_expected["same_story"]
    joined = [s for s in b["stories"] if any(p in i for p in pair for i in s)]
    assert len(joined) == 1 and len(joined[0]) >= 2
    # The alerts each run delivered to its file channel: the same, once each.
    lines = [
        (tmp_path / f"{n}.db.jsonl").read_text().splitlines() for n in ("one", "two")
    ]
    assert len(lines[1]) == len(lines[0]) == demo_expected["alert_count"]

    # Second pass: everything not modified, in both.
    again = _summary(_feedwatch(*args, str(two), cwd=tmp_path))
    assert again["not_modified"] == len(urls) and again["new_items"] == 0
    assert again["alerts"] == 0
    assert _stored(tmp_path / "two.db")["items"] == b["items"]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():
        pytest.skip("no /proc/<pid>/task/<pid>/children on this kernel")
    return [int(x) for x in path.read_text().split()]


def test_killed_poll_processes_leave_their_feeds_to_the_main_process(
    tmp_path: Path, feed_server: FeedServer, demo_expected: dict[str, Any]
) -> None:
    urls = sorted(publish_demo_feeds(feed_server).values())
    for u in urls:
        feed_server.slow(u.rsplit("/", 1)[1], 1.5)
    cfg = _config(tmp_path / "fw.yaml", tmp_path / "fw.db", urls, 3)
    _subscribe(cfg, urls, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "worker",
            "poll",
            "--once",
            "--all",
            "--json",
            "--config",
            str(cfg),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # All three processes are inside a slow request: kill the forked ones
        # mid-chunk.
        deadline = time.monotonic() + 30
        while len(feed_server.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        children = _children(proc.pid)
        assert len(children) == 2, children
        for child in children:
            os.kill(child, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "died" in err and "polling its feeds in the main process" in err
    summary = json.loads(out)
    assert summary["polled"] == len(urls) and summary["failed"] == 0
    assert summary["alerts"] == demo_expected["alert_count"]
    stored = _stored(tmp_path / "fw.db")
    assert len(stored["alerts"]) == demo_expected["alert_count"]
    assert all(f[-1] is None for f in stored["feeds"]), "every lease released"
    assert {f[0] for f in stored["feeds"]} == set(urls)


# -- the pool itself, in a fresh interpreter (forking needs a thread-free process) --

_POOL_SCRIPT = r"""
import asyncio, json, os, sys, threading
from worker.pool import PoolError, ProcessPool

class Echo:
    async def handle(self, job):
        if job == "boom":
            raise ValueError("bad job")
        if job == "exit":
            os._exit(3)
        if job == "unpicklable":
            return lambda: None
        return {"pid": os.getpid(), "job": job}
    async def aclose(self):
        pass

out = {}
pool = ProcessPool.fork(2, Echo)
pids = {w.pid for w in pool._workers}

async def main():
    got = await asyncio.gather(*(pool.call(i, f"job{i}", limit=30) for i in pool.live()))
    out["answers"] = sorted(g["job"] for g in got)
    out["distinct_pids"] = len({g["pid"] for g in got})
    out["children"] = sorted({g["pid"] for g in got}) == sorted(pids)
    for job in ("boom", "unpicklable"):
        try:
            await pool.call(0, job, limit=30)
        except PoolError as e:
            out[job] = str(e)
    out["after_errors"] = (await pool.call(0, "again", limit=30))["job"]
    # Jobs queued two deep come back in order.
    await pool.submit(0, "first")
    await pool.submit(0, "second")
    out["queued"] = [(await pool.result(0, limit=30))["job"] for _ in range(2)]
    try:
        await pool.result(0, limit=30)
    except PoolError as e:
        out["nothing_queued"] = str(e)
    try:
        await pool.call(1, "exit", limit=30)
    except PoolError as e:
        out["exit"] = str(e)
    out["size_after_exit"] = pool.size
    try:
        await pool.call(1, "x", limit=30)
    except PoolError as e:
        out["dead_call"] = str(e)

asyncio.run(main())
pool.close()
out["reaped"] = []
for pid in pids:
    try:
        os.waitpid(pid, os.WNOHANG)
        out["reaped"].append(False)
    except ChildProcessError:
        out["reaped"].append(True)

stop = threading.Event()
t = threading.Thread(target=stop.wait)
t.start()
try:
    ProcessPool.fork(1, Echo)
except PoolError as e:
    out["threads"] = str(e)
stop.set()
t.join()
print(json.dumps(out))
"""


def test_process_pool_runs_jobs_reports_failures_and_reaps() -> None:
    res = subprocess.run(
        [sys.executable, "-c", _POOL_SCRIPT],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["answers"] == ["job0", "job1"]
    assert out["distinct_pids"] == 2 and out["children"]
    assert "failed: ValueError: bad job" in out["boom"]
    assert "cannot send the result" in out["unpicklable"]
    assert out["after_errors"] == "again", "a failed job leaves the process usable"
    assert out["queued"] == ["first", "second"]
    assert "no job to answer" in out["nothing_queued"]
    assert "died" in out["exit"]
    assert out["size_after_exit"] == 1
    assert "is gone" in out["dead_call"]
    assert out["reaped"] == [True, True], "close() leaves no zombie"
    assert "already runs threads" in out["threads"]


# -- settings ---------------------------------------------------------------------


def test_pool_size_follows_the_setting_and_the_database() -> None:
    file_db = "sqlite:////tmp/x.db"
    cpus = len(os.sched_getaffinity(0))
    assert pool_size(Settings(database=file_db)) == min(cpus, 4)
    assert pool_size(Settings(database=file_db, poll={"processes": 3})) == 3
    assert pool_size(Settings(database=file_db, poll={"processes": 1})) == 1
    pg = "postgresql://u@127.0.0.1/db"
    assert pool_size(Settings(database=pg, poll={"processes": 2})) == 2
    # Only this process can open an in-memory database.
    for memory in ("sqlite://", "sqlite:///:memory:"):
        assert pool_size(Settings(database=memory, poll={"processes": 4})) == 1


def test_processes_must_be_auto_or_a_positive_count() -> None:
    from pydantic import ValidationError

    for bad in (0, -1, "many", 65):
        with pytest.raises(ValidationError, match="processes"):
            Settings(poll={"processes": bad})


def test_poll_processes_split_the_request_limits() -> None:
    s = Settings(
        poll={"concurrency": 5, "processes": 2}, fetch={"per_host_concurrency": 3}
    )
    shared = _share(s, 2)
    assert shared.poll.concurrency == 3 and shared.fetch.per_host_concurrency == 2
    assert s.poll.concurrency == 5, "the main process keeps its own limits"
    one = _share(Settings(fetch={"per_host_concurrency": 1}), 4)
    assert one.fetch.per_host_concurrency == 1


def test_metrics_kept_in_a_poll_process_replay_in_the_main_one() -> None:
    child = Metrics(keep=True)
    child.observe_matches(["summit"] * 12_000)  # past the unkept cap
    child.observe_alerts(["summit"])
    taken = child.take()
    assert len(taken) == 12_001 and child.take() == []
    main = Metrics()
    main.replay(taken)
    text = main.render().decode()
    assert 'feedwatch_matches_total{rule="summit"} 12000.0' in text
    assert 'feedwatch_alerts_total{rule="summit"} 1.0' in text


# -- replacing dead poll processes (a fresh interpreter: the daemon has threads) ----

_PROCS = r"""
def children():
    # (pid, state) of every process whose parent is this one, zombies included.
    out = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except (OSError, ValueError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if d.isdigit() and int(fields[1]) == os.getpid():
            out.append((int(d), fields[0]))
    return sorted(out)

def gone(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not os.path.exists(f"/proc/{pid}")
    return False

class Count(logging.Handler):
    def __init__(self):
        super().__init__()
        self.seen = []
    def emit(self, record):
        self.seen.append(record.getMessage())
    def count(self, text):
        return sum(text in m for m in self.seen)
"""

_RESPAWN_SCRIPT = (
    r"""
import asyncio, json, logging, os, signal, sys, threading, time
from worker.config import load_settings
from worker.core import make_feedwatch
from worker.models import Feed
from worker.poll import poll_once, start_pool
"""
    + _PROCS
    + r"""
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(levelname)s %(name)s: %(message)s")
settings = load_settings(sys.argv[1])
later = json.loads(sys.argv[2])
pool = start_pool(settings)
first = pool._workers[0].pid
out = {"first": first}

async def main():
    fw = make_feedwatch(settings)
    fw.pool = pool
    try:
        out["pass1"] = (await poll_once(fw)).as_dict()
        # A daemon has threads by the time a poll process dies.
        await asyncio.to_thread(lambda: None)
        out["threads"] = threading.active_count()
        os.kill(first, signal.SIGKILL)
        # Dead before the next pass, as between two ticks: waitable (its threads
        # gone too), left for the pool to reap.
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        deadline = time.monotonic() + 10
        while os.waitid(os.P_PID, first, flags) is None:
            assert time.monotonic() < deadline, "SIGKILL took more than 10 s"
            time.sleep(0.01)
        out["before_pass2"] = children()
        for url in later:
            fw.store.add_feed(Feed(url=url))
        out["pass2"] = (await poll_once(fw)).as_dict()
        out["after_pass2"] = [w.pid for w in pool._workers if not w.dead]
        out["first_gone"] = gone(first)
    finally:
        await fw.aclose()

asyncio.run(main())
new = out["after_pass2"][0]
with open(f"/proc/{new}/cmdline", "rb") as f:
    out["cmdline"] = f.read().split(b"\0")[-4:-2] == [b"-m", b"worker.pool"]
# Stop signals reach it (a terminal's or a service manager's): it stays.
os.kill(new, signal.SIGINT)
os.kill(new, signal.SIGTERM)
time.sleep(0.3)
out["after_signals"] = children()
started = time.monotonic()
pool.close()
out["close_seconds"] = time.monotonic() - started
out["reaped"] = [gone(first), gone(new)]
out["children"] = children()
print(json.dumps(out))
"""
)


def test_a_killed_poll_process_is_replaced_at_the_next_pass_and_does_work(
    tmp_path: Path, feed_server: FeedServer, demo_expected: dict[str, Any]
) -> None:
    by_name = publish_demo_feeds(feed_server)
    urls = sorted(by_name.values())
    db = tmp_path / "fw.db"
    cfg = _config(tmp_path / "fw.yaml", db, urls, 2)
    _subscribe(cfg, urls[:2], tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")}
    res = subprocess.run(
        [sys.executable, "-c", _RESPAWN_SCRIPT, str(cfg), json.dumps(urls[2:])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["threads"] > 1
    assert [out["first"], "Z"] in out["before_pass2"], out
    assert out["pass1"]["polled"] == 2
    assert out["pass2"]["polled"] == 3 and out["pass2"]["failed"] == 0
    assert out["first_gone"], (out, res.stderr)
    (new,) = out["after_pass2"]
    assert new != out["first"] and out["cmdline"], "a fresh interpreter, not a fork"
    assert f"poll process pid={new} replaces pid={out['first']}" in res.stderr
    # The replacement polled feeds of the second pass itself.
    done = re.findall(rf"poll process pid={new} feeds=(\d+) ", res.stderr)
    assert done and sum(map(int, done)) >= 1, res.stderr
    alive = [pid for pid, state in out["after_signals"] if state != "Z"]
    assert alive == [new], "a poll process ignores SIGINT and SIGTERM"
    assert out["close_seconds"] < 4, "it left on EOF, without being killed"
    assert out["reaped"] == [True, True] and out["children"] == []

    stored = _stored(db)
    counts = dict.fromkeys(urls, 0)
    for item in stored["items"]:
        counts[item[0]] += 1
    expected = {
        by_name[name]: feed["item_count"]
        for name, feed in demo_expected["feeds"].items()
    }
    assert counts == expected
    assert len(stored["alerts"]) == demo_expected["alert_count"]
    assert all(f[2] == "active" and f[-1] is None for f in stored["feeds"])


_FACTORIES = """
import os
from worker.poll import _PollProcess

def fragile(settings, n):
    # Fine in the forked processes; a replacement started after the parent set
    # this raises before it serves anything.
    if os.environ.get("FWTEST_BREAK_AT_START"):
        raise RuntimeError("broken at start (test)")
    return _PollProcess(settings, n)
"""

_BROKEN_SCRIPT = (
    r"""
import asyncio, functools, json, logging, os, signal, sys, time
import fwtest_factories
from worker.config import load_settings
from worker.core import make_feedwatch
from worker.pool import ProcessPool
from worker.poll import poll_once
"""
    + _PROCS
    + r"""
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(levelname)s %(name)s: %(message)s")
count = Count()
logging.getLogger("worker.pool").addHandler(count)
settings = load_settings(sys.argv[1])
pool = ProcessPool.fork(1, functools.partial(fwtest_factories.fragile, settings, 2))
first = pool._workers[0].pid
os.environ["FWTEST_BREAK_AT_START"] = "1"
out = {}

def attempts():
    return count.count("cannot replace poll process")

async def main():
    fw = make_feedwatch(settings)
    fw.pool = pool
    try:
        os.kill(first, signal.SIGKILL)
        started = time.monotonic()
        out["pass"] = (await poll_once(fw, all_feeds=True)).as_dict()
        out["pass_seconds"] = time.monotonic() - started
        out["after_pass"] = attempts()
        out["children_after_pass"] = children()
        t0 = time.monotonic()
        steps = {}
        # Passes come back to back: no new attempt within the minute.
        for k in range(5):
            steps[f"soon{k}"] = (await pool.revive(), attempts())
        steps["minute"] = (await pool.revive(now=t0 + 61), attempts())
        steps["minute+1"] = (await pool.revive(now=t0 + 62), attempts())
        steps["doubled"] = (await pool.revive(now=t0 + 182), attempts())
        steps["later"] = (await pool.revive(now=t0 + 10**6), attempts())
        out["steps"] = steps
        out["given_up"] = count.count("not replacing it again")
        out["size"] = pool.size
        out["children"] = children()
    finally:
        await fw.aclose()

asyncio.run(main())
pool.close()
out["reaped"] = gone(first)
print(json.dumps(out))
"""
)


def test_a_replacement_dying_at_start_is_retried_with_backoff_then_given_up(
    tmp_path: Path, feed_server: FeedServer, demo_expected: dict[str, Any]
) -> None:
    urls = sorted(publish_demo_feeds(feed_server).values())
    db = tmp_path / "fw.db"
    cfg = _config(tmp_path / "fw.yaml", db, urls, 2)
    _subscribe(cfg, urls, tmp_path)
    (tmp_path / "fwtest_factories.py").write_text(_FACTORIES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")}
    env["PYTHONPATH"] = str(tmp_path)
    res = subprocess.run(
        [sys.executable, "-c", _BROKEN_SCRIPT, str(cfg)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    # The pass tried once, saw it die, and polled everything itself.
    assert out["after_pass"] == 1, res.stderr
    assert "broken at start (test)" in res.stderr
    assert out["pass"]["polled"] == len(urls) and out["pass"]["failed"] == 0
    assert out["pass"]["alerts"] == demo_expected["alert_count"]
    assert out["children_after_pass"] == [], "the failed start is reaped"
    steps = out["steps"]
    assert [steps[f"soon{k}"] for k in range(5)] == [[[], 1]] * 5
    assert steps["minute"] == [[], 2]
    assert steps["minute+1"] == [[], 2], "the next wait is doubled"
    assert steps["doubled"] == [[], 3]
    assert steps["later"] == [[], 3], "three in a row: the slot stays empty"
    assert out["given_up"] == 1 and out["size"] == 0
    assert out["children"] == [] and out["reaped"]

    stored = _stored(db)
    assert {f[0] for f in stored["feeds"]} == set(urls)
    assert all(f[2] == "active" and f[-1] is None for f in stored["feeds"])
    assert len(stored["alerts"]) == demo_expected["alert_count"]


_FLAGS_SERVED = """
import os, sys

class Flags:
    async def handle(self, job):
        return {"pid": os.getpid(), "dev_mode": sys.flags.dev_mode,
                "optimize": sys.flags.optimize, "warnoptions": sys.warnoptions}
    async def aclose(self):
        pass
"""

_FLAGS_SCRIPT = (
    r"""
import asyncio, json, logging, os, signal, sys, time
import fwtest_flags
from worker.pool import ProcessPool
"""
    + _PROCS
    + r"""
pool = ProcessPool.fork(1, fwtest_flags.Flags)
first = pool._workers[0].pid
os.kill(first, signal.SIGKILL)
deadline = time.monotonic() + 10
while os.waitid(os.P_PID, first, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
    assert time.monotonic() < deadline, "SIGKILL took more than 10 s"
    time.sleep(0.01)
out = {}

async def main():
    out["revived"] = await pool.revive()
    out["answer"] = await pool.call(0, "flags", limit=30)
    out["parent"] = await fwtest_flags.Flags().handle("flags")
    with open(f"/proc/{out['revived'][0]}/cmdline", "rb") as f:
        out["cmdline"] = [a.decode() for a in f.read().split(b"\0") if a]

asyncio.run(main())
pool.close()
out["children"] = children()
print(json.dumps(out))
"""
)


def test_a_replacement_starts_with_the_parents_interpreter_flags(
    tmp_path: Path,
) -> None:
    (tmp_path / "fwtest_flags.py").write_text(_FLAGS_SERVED)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")}
    env["PYTHONPATH"] = str(tmp_path)
    flags = ["-X", "dev", "-W", "error::DeprecationWarning", "-O"]
    res = subprocess.run(
        [sys.executable, *flags, "-c", _FLAGS_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    (new,) = out["revived"]
    answer = out["answer"]
    assert answer["pid"] == new
    assert (answer["dev_mode"], answer["optimize"]) == (True, 1)
    assert "error::DeprecationWarning" in answer["warnoptions"]
    assert {**answer, "pid": 0} == {**out["parent"], "pid": 0}
    cmdline = out["cmdline"]
    assert cmdline[0] == sys.executable and cmdline[-3:-1] == ["-m", "worker.pool"]
    given = cmdline[1:-3]
    assert given[given.index("-X") + 1] == "dev", cmdline
    assert "-Werror::DeprecationWarning" in given and "-O" in given, cmdline
    assert out["children"] == [], "close() reaped the replacement"
