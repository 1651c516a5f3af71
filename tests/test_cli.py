"""The feedwatch command as a user runs it: exit statuses, messages, output formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED, write_config
from feedserver import FeedServer
from pg import PgDatabases

from worker import __version__


def run(
    *args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("FEEDWATCH_")}
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=cwd,
        env=e,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version(tmp_path: Path) -> None:
    res = run("--version", cwd=tmp_path)
    assert res.returncode == 0 and __version__ in res.stdout


def test_wrong_config_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("poll:\n  concurrency: lots\n")
    for args in (
        ("--config", str(cfg), "feeds", "list"),
        ("feeds", "list", "--config", str(cfg)),
    ):
        res = run(*args, cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        assert f"{cfg}: poll.concurrency:" in res.stderr
        assert "Traceback" not in res.stderr
    res = run("run", cwd=tmp_path, env={"FEEDWATCH_CONFIG": str(cfg)})
    assert res.returncode == 2 and "poll.concurrency" in res.stderr


def test_no_proxy_variable_as_curl_takes_it_or_exits_2_naming_it(
    tmp_path: Path,
) -> None:
    cfg = write_config(
        tmp_path / "c.yaml", {"database": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    )

    def feeds_list(no_proxy: str) -> subprocess.CompletedProcess[str]:
        env = {"FEEDWATCH_FETCH__NO_PROXY": no_proxy}
        return run("feeds", "list", "--config", str(cfg), cwd=tmp_path, env=env)

    ok = feeds_list("example.org, .internal")
    assert ok.returncode == 0, ok.stderr
    bad = feeds_list("http://proxy.example:3128")
    assert bad.returncode == 2
    assert bad.stderr.startswith(
        "feedwatch: environment: FEEDWATCH_FETCH__NO_PROXY (fetch.no_proxy): "
    ), bad.stderr
    assert "Traceback" not in bad.stderr


def test_feeds_add_list_remove_import_export(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.yaml", {"database": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    )
    c = ("--config", str(cfg))
    assert (
        run(
            "feeds", "add", "https://a.example/rss", "--tag", "x", *c, cwd=tmp_path
        ).returncode
        == 0
    )
    urls = tmp_path / "urls.txt"
    urls.write_text("https://b.example/atom\n")
    res = run("feeds", "import", str(urls), *c, cwd=tmp_path)
    assert res.returncode == 0 and "imported 1" in res.stdout
    listed = json.loads(run("feeds", "list", "--json", *c, cwd=tmp_path).stdout)
    assert [f["url"] for f in listed] == [
        "https://a.example/rss",
        "https://b.example/atom",
    ]
    opml = run("feeds", "export", *c, cwd=tmp_path).stdout
    assert 'xmlUrl="https://a.example/rss"' in opml and 'category="x"' in opml
    assert (
        run("feeds", "remove", "https://a.example/rss", *c, cwd=tmp_path).returncode
        == 0
    )
    gone = run("feeds", "remove", "https://a.example/rss", *c, cwd=tmp_path)
    assert gone.returncode == 1 and "https://a.example/rss" in gone.stderr
    bad = run("feeds", "add", "not-a-url", *c, cwd=tmp_path)
    assert bad.returncode == 2 and "not-a-url" in bad.stderr


RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>
<item><guid>w1</guid><title>Heavy rain expected in Busan</title></item>
</channel></rss>"""


@pytest.fixture(
    params=[
        "fastsqlite",
        "sqlalchemy-sqlite",
        pytest.param("postgres", marks=pytest.mark.external_service),
    ]
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database for each store: FastSQLiteStore (a plain file URL), the
    SQLAlchemy store (a URL with options) and PostgreSQL."""
    if request.param == "fastsqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    if request.param == "sqlalchemy-sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}?timeout=30"
    databases: PgDatabases = request.getfixturevalue("pg_databases")
    return databases.create()


@pytest.mark.parametrize("status", [301, 308])
def test_feeds_list_shows_the_configured_url_of_a_feed_that_moved(
    tmp_path: Path, feed_server: FeedServer, database: str, status: int
) -> None:
    feed_server.set("/new.xml", RSS)
    feed_server.set("/stays.xml", RSS)
    feed_server.redirect("/old.xml", "/new.xml", status)
    old, new = feed_server.url("/old.xml"), feed_server.url("/new.xml")
    stays = feed_server.url("/stays.xml")
    cfg = write_config(
        tmp_path / "c.yaml",
        {
            "database": database,
            "feeds": [{"url": old}, {"url": stays}],
            "fetch": {"allow_private_addresses": True},
            "poll": {"processes": 1},
            "channels": [
                {"name": "f", "type": "file", "path": str(tmp_path / "a.jsonl")}
            ],
        },
    )
    c = ("--config", str(cfg))
    polled = run("poll", "--once", "--all", "--no-deliver", *c, cwd=tmp_path)
    assert polled.returncode == 0, polled.stderr

    listed = run("feeds", "list", "--json", *c, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["url"], r["config_url"]) for r in rows] == [(new, old), (stays, None)]

    table = run("feeds", "list", *c, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    [at] = [i for i, line in enumerate(lines) if line.split()[-2:] == [new, "(Wire)"]]
    assert lines[at + 1] == f"         configured as {old}"
    assert sum("configured as" in line for line in lines) == 1
    # Listing again (config feeds are synced each time) adds no feed by the old URL.
    again = json.loads(run("feeds", "list", "--json", *c, cwd=tmp_path).stdout)
    assert again == rows


def test_classify_jsonl_keeps_ids_and_prints_one_decision_per_item(
    tmp_path: Path,
) -> None:
    items = [
        {
            "id": "a-1",
            "title": "Xi Jinping to pay state visit to South Korea next week",
            "summary": "",
            "published": "2026-11-01",
            "source": "X",
            "url": None,
        },
        {
            "id": "a-2",
            "title": "Hikers reach the summit of Mount Fuji",
            "summary": "",
            "published": None,
            "source": "X",
            "url": None,
        },
    ]
    text = "\n".join(json.dumps(i) for i in items) + "\n"
    res = run("classify", "-", cwd=tmp_path, stdin=text)
    assert res.returncode == 0, res.stderr
    out = [json.loads(line) for line in res.stdout.splitlines()]
    assert [o["id"] for o in out] == ["a-1", "a-2"]
    assert out[0]["alert"] is True and "visit" in out[0]["topics"]
    assert out[1]["alert"] is False and out[1]["topics"] == []
    for o in out:
        assert {"id", "alert", "topics", "rules", "score", "evidence", "event"} <= set(
            o
        )


@pytest.mark.skipif(
    not (SHARED / "eval" / "dev.jsonl").exists(), reason="needs ../shared"
)
def test_classify_dev_set(tmp_path: Path) -> None:
    dev = SHARED / "eval" / "dev.jsonl"
    res = run("classify", str(dev), "--format", "jsonl", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    ids = [json.loads(line)["id"] for line in res.stdout.splitlines()]
    expected = [
        json.loads(line)["id"] for line in dev.read_text().splitlines() if line.strip()
    ]
    assert ids == expected


def test_classify_feed_file_url_and_a_bad_file(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    rss = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>
<item><guid>g1</guid><title>Japan's prime minister arrives in Seoul for summit with Lee</title></item>
</channel></rss>"""
    good = tmp_path / "feed.xml"
    good.write_bytes(rss)
    bad = tmp_path / "broken.xml"
    bad.write_bytes(b"\x00\x01 definitely not a feed")
    feed_server.set("/f.xml", rss)
    res = run(
        "classify",
        str(good),
        str(bad),
        feed_server.url("/f.xml"),
        "--format",
        "table",
        cwd=tmp_path,
        env={"FEEDWATCH_FETCH__ALLOW_PRIVATE_ADDRESSES": "true"},
    )
    assert res.returncode == 1  # one source failed
    assert str(bad) in res.stderr
    rows = res.stdout.splitlines()
    assert len(rows) == 2 and all(r.startswith("ALERT") for r in rows)


def test_classify_bad_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "items.jsonl"
    p.write_text('{"id": "1", "title": "ok"}\n{"id": 2, "title": \n')
    res = run("classify", str(p), cwd=tmp_path)
    assert res.returncode == 1 and f"{p}:2: not valid JSON" in res.stderr


def test_alerts_list_and_redeliver_unknown(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.yaml", {"database": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    )
    res = run("alerts", "list", "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 0 and "no alerts" in res.stdout
    res = run("alerts", "redeliver", "al_nope", "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 1 and "al_nope" in res.stderr


def test_digest_of_an_empty_period_says_so(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.yaml", {"database": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    )
    for fmt in ("text", "md", "html"):
        res = run(
            "digest",
            "--since",
            "24h",
            "--format",
            fmt,
            "--config",
            str(cfg),
            cwd=tmp_path,
        )
        assert res.returncode == 0, res.stderr
        assert "Nothing matched" in res.stdout
    res = run("digest", "--since", "yesterday-ish", "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 2 and "--since" in res.stderr


def test_demo_json_prints_alerts_and_a_digest(tmp_path: Path) -> None:
    res = run("demo", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    alerts = [x for x in lines if x.get("type") == "feedwatch.alert"]
    digests = [x for x in lines if x.get("type") == "feedwatch.digest"]
    assert len(digests) == 1 and len(alerts) >= 1
    assert len(digests[0]["stories"]) == len(alerts)
    assert not (tmp_path / "data").exists()  # the demo's database is temporary


def test_digest_filters_by_rule_and_topic(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set(
        "/f.xml",
        b"""<?xml version="1.0"?><rss version="2.0"><channel><title>W</title>
<item><guid>1</guid><title>Xi Jinping to pay state visit to South Korea next week</title></item>
<item><guid>2</guid><title>China, Japan and South Korea agree to hold trilateral summit in Tokyo</title></item>
</channel></rss>""",
    )
    cfg = write_config(
        tmp_path / "c.yaml",
        {
            "database": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "feeds": [{"url": feed_server.url("/f.xml")}],
            "fetch": {"allow_private_addresses": True},
            "channels": [
                {"name": "f", "type": "file", "path": str(tmp_path / "a.jsonl")}
            ],
        },
    )
    c = ("--config", str(cfg))
    assert run("poll", "--once", *c, cwd=tmp_path).returncode == 0

    def stories(*args: str) -> list[dict]:
        res = run("digest", "--format", "json", *args, *c, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)["stories"]

    assert len(stories()) == 2
    visits = stories("--topic", "visit")
    assert any("state visit" in s["title"] for s in visits)
    assert all("visit" in s["topics"] for s in visits)
    assert stories("--rule", "no-such-rule") == []
