"""A one-shot ``poll --once`` imports only what its pass uses: the libraries of the
exporter, the templates, the fallback parser and the HTTP API stay unloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import write_config
from feedserver import FeedServer

# Runs the CLI as ``python -m worker`` does, then lists sys.modules at exit.
LAUNCHER = """\
import atexit, os, sys

def _dump():
    with open(os.environ["MODULES_OUT"], "w") as f:
        f.write("\\n".join(sorted(sys.modules)))

atexit.register(_dump)
from worker.cli import main

main(sys.argv[1:])
"""

NEVER = (
    "prometheus_client",
    "jinja2",
    "starlette",
    "worker.deliver",
    "worker.api",
    "pydantic_settings",  # no FEEDWATCH_* variable is set
    "httpcore",  # the default transport is aiohttp's
    "xml.etree",  # OPML is read by feeds import only
    "xml.sax.saxutils",  # ... and written by feeds export
)
"""Not used by any poll --once pass that raises no alert."""
UNCHANGED_ALSO = ("feedparser", "worker.classify", "worker.stories", "lxml", "yaml")
"""(yaml: the config file is JSON; the rules are not read.)"""
SCHEMA_CURRENT = ("sqlalchemy", "alembic")
"""Not used by a pass on a SQLite file whose schema is current (not the first)."""
"""Not used by a pass in which every feed is not modified."""

RSS = """<?xml version="1.0"?><rss version="2.0"
xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>{name}</title>
<link>http://example.org/</link><description>d</description>{items}</channel></rss>"""
ITEM = (
    "<item><guid>{guid}</guid><title>{title}</title><description>{text}</description>"
    "<dc:creator>A reporter</dc:creator></item>"
)
PARSED_FAST = ("feedparser",)
"""Not used to read plain RSS items, dc:creator included (the fast path's own)."""


POLL = ("poll", "--once", "--all", "--json")


def _rss(name: str, *guids: str) -> bytes:
    items = "".join(
        ITEM.format(guid=g, title=f"Heavy rain expected in Busan ({g})", text="Rain.")
        for g in guids
    )
    return RSS.format(name=name, items=items).encode()


def _poll(cfg: Path, tmp_path: Path) -> tuple[dict[str, object], set[str]]:
    out = tmp_path / "modules.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")}
    env["MODULES_OUT"] = str(out)
    res = subprocess.run(
        [sys.executable, "-c", LAUNCHER, "--config", str(cfg), *POLL],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    modules = set(out.read_text().split())
    assert "worker.poll" in modules  # the launcher saw the real command
    return json.loads(res.stdout), modules


def _one_feed(tmp_path: Path, url: str) -> Path:
    """A config polling ``url`` in one process (parsed and classified in the process
    whose modules the launcher lists), alerts to a file."""
    return write_config(
        tmp_path / "fw.yaml",
        {
            "database": f"sqlite:///{tmp_path / 'fw.db'}",
            "cache_dir": str(tmp_path / "cache"),
            "log_level": "WARNING",
            "fetch": {"allow_private_addresses": True},
            "poll": {"processes": 1},
            "feeds": [{"url": url}],
            "channels": [
                {"type": "file", "name": "file", "path": str(tmp_path / "a.jsonl")}
            ],
        },
    )


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(
        m for m in modules if any(m == n or m.startswith(n + ".") for n in names)
    )


def test_poll_once_loads_only_what_the_pass_uses(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.set("/a.xml", _rss("A", "a1", "a2"))
    feed_server.set("/b.xml", _rss("B", "b1"))
    cfg = write_config(
        tmp_path / "fw.yaml",
        {
            "database": f"sqlite:///{tmp_path / 'fw.db'}",
            "cache_dir": str(tmp_path / "cache"),
            "log_level": "WARNING",
            "fetch": {"allow_private_addresses": True},
            "feeds": [
                {"url": feed_server.url("/a.xml")},
                {"url": feed_server.url("/b.xml")},
            ],
            "channels": [
                {"type": "file", "name": "file", "path": str(tmp_path / "a.jsonl")}
            ],
        },
    )

    first, modules = _poll(cfg, tmp_path)
    assert (first["new_items"], first["alerts"]) == (3, 0)
    assert _loaded(modules, NEVER + PARSED_FAST) == []

    unchanged, modules = _poll(cfg, tmp_path)
    assert (unchanged["not_modified"], unchanged["new_items"]) == (2, 0)
    assert _loaded(modules, NEVER + UNCHANGED_ALSO + SCHEMA_CURRENT) == []

    feed_server.set("/b.xml", _rss("B", "b1", "b2"))
    changed, modules = _poll(cfg, tmp_path)
    assert (changed["not_modified"], changed["new_items"]) == (1, 1)
    assert _loaded(modules, NEVER + SCHEMA_CURRENT + PARSED_FAST) == []


def test_stored_entries_of_a_changed_feed_are_not_read_again(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    """An entry only feedparser reads sends its feed to feedparser once; when the
    feed changes, the stored entry is skipped unread and the new one takes the
    fast path (feedparser is not even imported)."""
    # an element the fast path declines: feedparser takes <media:title> as a title
    odd = (
        "<m:group xmlns:m='http://search.yahoo.com/mrss/'>"
        "<m:title>t</m:title></m:group>"
    )
    old = ITEM.format(guid="old", title="Old", text="Rain.").replace(
        "</item>", odd + "</item>"
    )
    new = ITEM.format(guid="new", title="New", text="Rain.")
    feed_server.set("/a.xml", RSS.format(name="A", items=old).encode())
    cfg = _one_feed(tmp_path, feed_server.url("/a.xml"))
    first, modules = _poll(cfg, tmp_path)
    assert first["new_items"] == 1
    assert "feedparser" in modules
    feed_server.set("/a.xml", RSS.format(name="A", items=new + old).encode())
    changed, modules = _poll(cfg, tmp_path)
    assert changed["new_items"] == 1
    assert _loaded(modules, PARSED_FAST) == []


def test_rules_from_the_cache_need_no_yaml(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    """The first command compiles the rules (reading YAML); a later pass that
    classifies loads them from the cache without importing PyYAML."""
    feed_server.set("/a.xml", _rss("A", "a1"))
    cfg = _one_feed(tmp_path, feed_server.url("/a.xml"))
    first, modules = _poll(cfg, tmp_path)
    assert first["new_items"] == 1
    assert "yaml" in modules  # compiled from the rule files
    feed_server.set("/a.xml", _rss("A", "a1", "a2"))
    changed, modules = _poll(cfg, tmp_path)
    assert changed["new_items"] == 1
    assert "worker.classify" in modules
    assert _loaded(modules, ("yaml",)) == []


# The fast path (inline) and the feedparser fallback (in a thread) may both be the
# first to need feedparser; importing its modules from two threads at once fails on
# their import cycles unless one thread does it.
RACE = """\
import sys, threading
import worker.parse as wp

assert "feedparser" not in sys.modules
rss = b"<rss version='2.0'><channel><title>t</title></channel></rss>"
calls = [
    wp._fp_risky,
    lambda: wp._fp_name("http://purl.org/dc/elements/1.1/", "creator", "dc"),
    lambda: wp._text_looks_like_html("a <b>b</b> &amp;"),
    lambda: wp.parse_feed(rss, "http://h/", fast=False),
]
start = threading.Barrier(len(calls))
errors = []

def run(fn):
    start.wait()
    try:
        fn()
    except BaseException as e:
        errors.append(repr(e))

threads = [threading.Thread(target=run, args=(fn,)) for fn in calls]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(errors)
"""


def test_feedparser_loads_once_when_threads_need_it_at_once(tmp_path: Path) -> None:
    for _ in range(5):  # unguarded, about two runs in three fail
        res = subprocess.run(
            [sys.executable, "-c", RACE],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "[]"


def test_alerting_pass_to_a_plain_channel_renders_no_html(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    """No configured channel shows HTML: the alert is delivered without jinja2,
    and the outbox is drained without SQLAlchemy."""
    summit = (
        "<item><guid>s1</guid><title>Leaders of China, Japan and South Korea to hold "
        "trilateral summit in Tokyo</title><description>The three leaders will meet "
        "next month, the foreign ministry said.</description></item>"
    )
    feed_server.set("/s.xml", _rss("Wire", "w1"))
    sink = tmp_path / "alerts.jsonl"
    cfg = write_config(
        tmp_path / "fw.yaml",
        {
            "database": f"sqlite:///{tmp_path / 'fw.db'}",
            "cache_dir": str(tmp_path / "cache"),
            "log_level": "WARNING",
            "fetch": {"allow_private_addresses": True},
            "feeds": [{"url": feed_server.url("/s.xml")}],
            "channels": [{"type": "file", "name": "file", "path": str(sink)}],
        },
    )
    first, _ = _poll(cfg, tmp_path)  # creates the schema (Alembic)
    assert (first["new_items"], first["alerts"]) == (1, 0)
    feed_server.set("/s.xml", RSS.format(name="Wire", items=summit).encode())
    out, modules = _poll(cfg, tmp_path)
    assert (out["alerts"], out["delivered"]) == (1, 1)
    assert "trilateral summit" in sink.read_text()
    assert "worker.deliver" in modules
    unused = ("jinja2", "prometheus_client", "starlette", *SCHEMA_CURRENT)
    assert _loaded(modules, unused) == []
