"""The bundled demo feeds and DemoFeedServer, over a real loopback HTTP server."""

from __future__ import annotations

import calendar
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import feedparser
import httpx
import pytest

from worker.demo.server import (
    CONTENT_TYPES,
    EXPECTED_FILE,
    DemoFeedServer,
    bundled_feeds_dir,
    feed_files,
    load_expected,
)
from worker.errors import ConfigError, FeedwatchError

FEEDS_DIR = bundled_feeds_dir()
EXPECTED = load_expected()
FEED_NAMES = sorted(EXPECTED["feeds"])
TOPICS = {"summit", "visit"}


@dataclass(frozen=True)
class Entry:
    guid: str
    title: str
    link: str
    published: datetime


def parse_feed(name: str, body: bytes, content_type: str) -> tuple[str, list[Entry]]:
    """(format, entries) of one feed document, the way the poller will read it."""
    if name.endswith(".json"):
        # feedparser 6 does not read JSON Feed; the document is checked field by field.
        doc = json.loads(body)
        assert doc["version"] == "https://jsonfeed.org/version/1.1"
        return "jsonfeed11", [
            Entry(
                guid=item["id"],
                title=item["title"],
                link=item["url"],
                published=datetime.fromisoformat(item["date_published"]),
            )
            for item in doc["items"]
        ]
    parsed = feedparser.parse(body, response_headers={"content-type": content_type})
    assert not parsed.bozo, f"{name}: {parsed.get('bozo_exception')}"
    return parsed.version, [
        Entry(
            guid=e.id,
            title=e.title,
            link=e.link,
            published=datetime.fromtimestamp(calendar.timegm(e.published_parsed), UTC),
        )
        for e in parsed.entries
    ]


@pytest.fixture(scope="module")
def server() -> Iterator[DemoFeedServer]:
    with DemoFeedServer() as s:
        yield s


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


@pytest.fixture(scope="module")
def served(
    server: DemoFeedServer, client: httpx.Client
) -> dict[str, tuple[str, list[Entry]]]:
    """Every demo feed fetched from the server and parsed, by file name."""
    out = {}
    for url in server.urls():
        name = url.rsplit("/", 1)[1]
        r = client.get(url)
        assert r.status_code == 200, url
        out[name] = parse_feed(name, r.content, r.headers["content-type"])
    return out


@pytest.fixture
def feeds_copy(tmp_path: Path) -> Path:
    """A writable copy of the demo feeds directory."""
    dst = tmp_path / "feeds"
    shutil.copytree(FEEDS_DIR, dst)
    return dst


# --- the server -------------------------------------------------------------


def test_urls_list_every_feed_on_loopback_but_not_the_answer_key(
    server: DemoFeedServer,
) -> None:
    urls = server.urls()
    assert [u.rsplit("/", 1)[1] for u in urls] == FEED_NAMES
    assert all(u.startswith(f"http://127.0.0.1:{server.port}/") for u in urls)
    assert server.port > 0
    assert not any(u.endswith(EXPECTED_FILE) for u in urls)


@pytest.mark.parametrize("name", FEED_NAMES)
def test_serves_each_feed_with_type_etag_and_last_modified(
    server: DemoFeedServer, client: httpx.Client, name: str
) -> None:
    path = FEEDS_DIR / name
    r = client.get(server.url(name))
    assert r.status_code == 200
    assert r.content == path.read_bytes()
    assert r.headers["content-type"] == f"{CONTENT_TYPES[path.suffix]}; charset=utf-8"
    assert r.headers["content-length"] == str(path.stat().st_size)
    assert r.headers["etag"].startswith('"') and r.headers["etag"].endswith('"')
    assert r.headers["last-modified"] == formatdate(
        int(path.stat().st_mtime), usegmt=True
    )


def test_content_types_by_extension() -> None:
    assert CONTENT_TYPES == {
        ".xml": "application/rss+xml",
        ".rss": "application/rss+xml",
        ".atom": "application/atom+xml",
        ".json": "application/feed+json",
    }


def test_head_sends_the_headers_without_a_body(
    server: DemoFeedServer, client: httpx.Client
) -> None:
    get = client.get(server.urls()[0])
    head = client.head(server.urls()[0])
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-length"] == get.headers["content-length"]


@pytest.mark.parametrize("name", FEED_NAMES)
def test_if_none_match_with_the_etag_gets_304(
    server: DemoFeedServer, client: httpx.Client, name: str
) -> None:
    first = client.get(server.url(name))
    etag = first.headers["etag"]
    again = client.get(server.url(name), headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["last-modified"] == first.headers["last-modified"]


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        ('"someone-else"', 200),
        ('"someone-else", {etag}', 304),
        ("W/{etag}", 304),
        ("*", 304),
    ],
)
def test_if_none_match_forms(
    server: DemoFeedServer, client: httpx.Client, if_none_match: str, status: int
) -> None:
    url = server.urls()[0]
    etag = client.get(url).headers["etag"]
    r = client.get(url, headers={"If-None-Match": if_none_match.format(etag=etag)})
    assert r.status_code == status


def test_if_modified_since(server: DemoFeedServer, client: httpx.Client) -> None:
    url = server.urls()[0]
    last_modified = client.get(url).headers["last-modified"]
    older = formatdate(
        parsedate_to_datetime(last_modified).timestamp() - 3600, usegmt=True
    )

    assert (
        client.get(url, headers={"If-Modified-Since": last_modified}).status_code == 304
    )
    assert client.get(url, headers={"If-Modified-Since": older}).status_code == 200
    assert (
        client.get(url, headers={"If-Modified-Since": "yesterday"}).status_code == 200
    )
    # If-None-Match takes precedence: a stale ETag means 200 whatever the date says.
    both = {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    assert client.get(url, headers=both).status_code == 200


def test_a_changed_file_gets_a_new_etag_and_a_200(
    feeds_copy: Path, client: httpx.Client
) -> None:
    path = feeds_copy / "harbour-wire.xml"
    with DemoFeedServer(feeds_copy) as server:
        url = server.url(path.name)
        first = client.get(url)
        path.write_bytes(first.content.replace(b"<ttl>15</ttl>", b"<ttl>30</ttl>"))
        later = path.stat().st_mtime + 60
        os.utime(path, (later, later))

        r = client.get(
            url,
            headers={
                "If-None-Match": first.headers["etag"],
                "If-Modified-Since": first.headers["last-modified"],
            },
        )
        assert r.status_code == 200
        assert r.headers["etag"] != first.headers["etag"]
        assert b"<ttl>30</ttl>" in r.content
        again = client.get(url, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304


@pytest.mark.parametrize(
    "path", ["/", "/nope.xml", f"/{EXPECTED_FILE}", "/../server.py", "/feeds/"]
)
def test_anything_but_a_feed_is_404(
    server: DemoFeedServer, client: httpx.Client, path: str
) -> None:
    r = client.get(server.base_url + path)
    assert r.status_code == 404


def test_other_methods_are_refused(
    server: DemoFeedServer, client: httpx.Client
) -> None:
    assert client.post(server.urls()[0], content=b"x").status_code == 501


def test_requests_are_recorded_with_their_status(client: httpx.Client) -> None:
    with DemoFeedServer() as server:
        url = server.urls()[0]
        etag = client.get(url).headers["etag"]
        client.get(url, headers={"If-None-Match": etag})
        client.get(server.base_url + "/missing.xml")
        seen = [(r.method, r.path, r.status) for r in server.requests()]
    name = url.rsplit("/", 1)[1]
    assert seen == [
        ("GET", f"/{name}", 200),
        ("GET", f"/{name}", 304),
        ("GET", "/missing.xml", 404),
    ]


def test_serving_writes_nothing_to_stderr(
    capfd: pytest.CaptureFixture[str], client: httpx.Client
) -> None:
    with DemoFeedServer() as server:
        url = server.urls()[0]
        etag = client.get(url).headers["etag"]
        client.get(url, headers={"If-None-Match": etag})
        client.get(server.base_url + "/missing")
        client.post(url)
        # A client that hangs up without a complete request.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET /harb")
        client.get(url)  # the server is still answering after that
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_stop_releases_the_port_and_is_idempotent() -> None:
    server = DemoFeedServer().start()
    port = server.port
    assert server.running
    with pytest.raises(RuntimeError, match="already running"):
        server.start()
    server.stop()
    server.stop()
    assert not server.running
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_given_port_is_used_and_a_busy_one_is_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with DemoFeedServer(port=free) as server:
        assert server.port == free
        assert server.urls()[0].startswith(f"http://127.0.0.1:{free}/")
        with pytest.raises(FeedwatchError, match=f"127.0.0.1:{free}"):
            DemoFeedServer(port=free).start()


def test_a_missing_or_empty_directory_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match="does not exist") as e:
        DemoFeedServer(missing)
    assert str(missing) in str(e.value)
    (tmp_path / "notes.txt").write_text("not a feed", encoding="utf-8")
    (tmp_path / EXPECTED_FILE).write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match="no feed files") as e:
        DemoFeedServer(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_a_custom_directory_serves_only_its_feed_files(
    tmp_path: Path, client: httpx.Client
) -> None:
    (tmp_path / "one.atom").write_bytes(
        (FEEDS_DIR / "eastern-ledger.atom").read_bytes()
    )
    (tmp_path / "readme.txt").write_text("x", encoding="utf-8")
    with DemoFeedServer(tmp_path) as server:
        assert server.urls() == [f"{server.base_url}/one.atom"]
        r = client.get(server.urls()[0])
        assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"
        assert client.get(f"{server.base_url}/readme.txt").status_code == 404


def test_a_broken_answer_key_is_a_config_error_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / EXPECTED_FILE).write_text('{"feeds": {\n  "a": ,\n}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2") as e:
        load_expected(tmp_path)
    assert str(tmp_path / EXPECTED_FILE) in str(e.value)
    with pytest.raises(ConfigError, match="cannot read"):
        load_expected(tmp_path / "nowhere")


def test_the_command_serves_until_sigterm(client: httpx.Client) -> None:
    # Unbuffered, so select() and readline() agree on what has arrived.
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.demo.server", "--port", "0"],
        stderr=subprocess.PIPE,
        bufsize=0,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert proc.stderr is not None
        urls: list[str] = []
        deadline = time.monotonic() + 20
        while len(urls) < len(FEED_NAMES) and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if ready:
                line = proc.stderr.readline().decode()
                assert line, "the server exited early"
                if "serving http://" in line:
                    urls.append(line.split("serving ", 1)[1].strip())
        assert [u.rsplit("/", 1)[1] for u in urls] == FEED_NAMES
        assert all(u.startswith("http://127.0.0.1:") for u in urls)
        assert client.get(urls[0]).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


# --- the demo data ----------------------------------------------------------


def test_the_answer_key_names_exactly_the_bundled_feeds() -> None:
    assert [p.name for p in feed_files()] == FEED_NAMES
    assert 4 <= len(FEED_NAMES) <= 5


@pytest.mark.parametrize("name", FEED_NAMES)
def test_each_feed_parses_into_the_listed_items(
    served: dict[str, tuple[str, list[Entry]]], name: str
) -> None:
    spec = EXPECTED["feeds"][name]
    version, entries = served[name]
    assert version == spec["format"]
    assert len(entries) == spec["item_count"]
    assert 8 <= len(entries) <= 15
    guids = [e.guid for e in entries]
    assert len(set(guids)) == len(guids), f"{name}: duplicate guids"
    for e in entries:
        assert e.title.strip(), f"{name}: {e.guid} has no title"
        assert e.link.startswith("https://") and ".example/" in e.link
        assert e.published.tzinfo is not None


def test_guids_are_unique_across_all_feeds(
    served: dict[str, tuple[str, list[Entry]]],
) -> None:
    guids = [e.guid for _, entries in served.values() for e in entries]
    assert len(set(guids)) == len(guids)


def test_items_are_dated_within_one_month(
    served: dict[str, tuple[str, list[Entry]]],
) -> None:
    dates = [e.published for _, entries in served.values() for e in entries]
    assert max(dates) - min(dates) <= timedelta(days=31)
    assert {d.year for d in dates} == {2026}


def test_the_answer_key_is_consistent_with_the_feeds(
    served: dict[str, tuple[str, list[Entry]]],
) -> None:
    where: dict[str, str] = {}
    published: dict[str, datetime] = {}
    for name, (_, entries) in served.items():
        for e in entries:
            where[e.guid] = name
            published[e.guid] = e.published
    topics: dict[str, set[str]] = {}
    for name, spec in EXPECTED["feeds"].items():
        for guid, listed in spec["alerts"].items():
            assert where.get(guid) == name, f"{guid} is not an item of {name}"
            assert listed and set(listed) <= TOPICS, guid
            topics[guid] = set(listed)

    assert len(EXPECTED["same_story"]) >= 1
    merged = 0
    for group in EXPECTED["same_story"]:
        assert len(group) >= 2
        assert all(g in topics for g in group), "a same-story item must alert"
        assert len({where[g] for g in group}) == len(group), "one outlet per report"
        times = [published[g] for g in group]
        assert max(times) - min(times) <= timedelta(days=1)
        merged += len(group) - 1
    assert EXPECTED["alert_count"] == len(topics) - merged
    # The five seed stories: every topic appears, and most items must stay quiet.
    assert set().union(*topics.values()) == TOPICS
    total = sum(spec["item_count"] for spec in EXPECTED["feeds"].values())
    assert total - len(topics) >= 3 * len(topics)


def test_one_story_reports_differ_in_headline_and_lede(
    served: dict[str, tuple[str, list[Entry]]],
) -> None:
    by_guid = {e.guid: e for _, entries in served.values() for e in entries}
    for group in EXPECTED["same_story"]:
        titles = {by_guid[g].title for g in group}
        assert len(titles) == len(group)
