"""Subscriptions: OPML and URL lists in, OPML out, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from feedserver import FeedServer
from pg import PgDatabases

from worker.config import FeedSettings, FetchSettings, FileChannelSettings, Settings
from worker.core import make_feedwatch
from worker.models import Feed
from worker.poll import poll_once
from worker.sources import SourceFileError, export_opml, read_feed_list

OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><head><title>mine</title></head><body>
  <outline text="Asia">
    <outline type="rss" text="Yonhap" xmlUrl="https://en.yna.co.kr/rss/news.xml" category="agency"/>
    <outline text="Japan">
      <outline type="rss" title="NHK &amp; co" xmlUrl="https://nhk.example/rss.xml"/>
    </outline>
  </outline>
  <outline type="rss" text="Top" xmlUrl="https://top.example/feed"/>
</body></opml>
"""


def test_opml_import_keeps_titles_and_folder_tags(tmp_path: Path) -> None:
    p = tmp_path / "subs.opml"
    p.write_text(OPML)
    feeds = read_feed_list(p, interval=600)
    assert [(f.url, f.title, f.tags) for f in feeds] == [
        ("https://en.yna.co.kr/rss/news.xml", "Yonhap", ("Asia", "agency")),
        ("https://nhk.example/rss.xml", "NHK & co", ("Asia", "Japan")),
        ("https://top.example/feed", "Top", ()),
    ]
    assert all(f.interval == 600 for f in feeds)


def test_opml_round_trip(tmp_path: Path) -> None:
    feeds = [
        Feed(
            url="https://a.example/rss?x=1&y=2",
            title='A "quoted" <feed>',
            tags=("k", "j"),
        ),
        Feed(url="https://b.example/atom"),
    ]
    p = tmp_path / "out.opml"
    p.write_text(export_opml(feeds))
    back = read_feed_list(p, interval=900)
    assert [(f.url, f.title, f.tags) for f in back] == [
        ("https://a.example/rss?x=1&y=2", 'A "quoted" <feed>', ("k", "j")),
        ("https://b.example/atom", "https://b.example/atom", ()),
    ]


def test_url_list_with_comments(tmp_path: Path) -> None:
    p = tmp_path / "urls.txt"
    p.write_text("# mine\nhttps://a.example/rss\n\n  file:///srv/x.xml  \n")
    assert [f.url for f in read_feed_list(p, interval=60)] == [
        "https://a.example/rss",
        "file:///srv/x.xml",
    ]


def test_url_list_error_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "urls.txt"
    p.write_text("https://a.example/rss\nnot a url\n")
    with pytest.raises(SourceFileError, match=rf"{p}:2: expected an http"):
        read_feed_list(p, interval=60)


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ('<?xml version="1.0"?><opml><body><outline', "not well-formed"),
        ('<?xml version="1.0"?><rss><channel/></rss>', "not an OPML"),
        (
            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><opml><body/></opml>',
            "DOCTYPE",
        ),
    ],
)
def test_bad_opml(tmp_path: Path, text: str, fault: str) -> None:
    p = tmp_path / "bad.opml"
    p.write_text(text)
    with pytest.raises(SourceFileError, match=fault) as info:
        read_feed_list(p, interval=60)
    assert str(p) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceFileError, match="cannot read"):
        read_feed_list(tmp_path / "nope", interval=60)


# -- config feeds that moved permanently ----------------------------------------------

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>
<link>https://wire.example/</link><description>d</description>
<item><guid>w1</guid><title>Heavy rain expected in Busan</title>
<description>Rain.</description></item></channel></rss>"""


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)]
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fw.db'}"
    databases: PgDatabases = request.getfixturevalue("pg_databases")
    return databases.create()


@pytest.mark.parametrize("status", [301, 308])
async def test_a_config_feed_that_moved_is_not_added_again_at_start(
    tmp_path: Path, feed_server: FeedServer, database: str, status: int
) -> None:
    feed_server.set("/new.xml", RSS.encode())
    feed_server.redirect("/old.xml", "/new.xml", status)
    old, new = feed_server.url("/old.xml"), feed_server.url("/new.xml")
    settings = Settings(
        database=database,
        feeds=(FeedSettings(url=old, name="Wire", interval=3600.0),),
        fetch=FetchSettings(allow_private_addresses=True, timeout=10.0),
        channels=(
            FileChannelSettings(
                type="file", name="all", path=str(tmp_path / "a.jsonl")
            ),
        ),
    )
    with make_feedwatch(settings) as fw:
        assert fw.sync_config_feeds() == 1
        first = await poll_once(fw, all_feeds=True)
        assert (first.polled, first.new_items) == (1, 1)
        [moved] = fw.store.list_feeds()
        assert moved.url == new

    # Two restarts: the config still lists the old URL.
    for _ in range(2):
        with make_feedwatch(settings) as fw:
            assert fw.sync_config_feeds() == 1
            [kept] = fw.store.list_feeds()
            assert (kept.id, kept.url, kept.title, kept.etag) == (
                moved.id,
                new,
                "Wire",
                moved.etag,
            )
            again = await poll_once(fw, all_feeds=True)
            assert (again.feeds, again.not_modified, again.new_items) == (1, 1, 0)
            assert fw.store.count_items() == 1
            # Its config entry (found by the old URL) still sets its interval.
            [polled] = fw.store.list_feeds()
            assert polled.last_checked_at is not None
            assert polled.next_check_at is not None
            wait = (polled.next_check_at - polled.last_checked_at).total_seconds()
            assert 0.8 * 3600 <= wait <= 1.2 * 3600
    assert len(feed_server.requests_for("/old.xml")) == 1
