"""A poll that outlives its lease, end to end: two workers on one database poll a
real feed server; the slow first poll records last and must not undo the newer one."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from feedserver import FeedServer
from pg import PgDatabases

from worker.config import FeedSettings, FetchSettings, FileChannelSettings, Settings
from worker.core import Feedwatch, make_feedwatch
from worker.models import utcnow
from worker.poll import poll_once

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>
<link>https://wire.example/</link><description>d</description>{items}</channel></rss>"""
ITEM = """<item><guid>{guid}</guid><title>Heavy rain expected in Busan ({guid})</title>
<link>https://wire.example/{guid}</link><description>Rain.</description></item>"""


def rss(*guids: str) -> bytes:
    return RSS.format(items="".join(ITEM.format(guid=g) for g in guids)).encode()


@pytest.fixture(scope="module")
def stale_pg_url(pg_databases: PgDatabases) -> str:
    """A throwaway PostgreSQL database for this module."""
    return pg_databases.create()


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)]
)
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database both workers share."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("stale_pg_url"))


def _worker(tmp_path: Path, database: str, url: str, worker_id: str) -> Feedwatch:
    settings = Settings(
        database=database,
        feeds=(FeedSettings(url=url, interval=3600.0),),
        fetch=FetchSettings(allow_private_addresses=True, timeout=10.0),
        channels=(
            FileChannelSettings(
                type="file", name="all", path=str(tmp_path / f"{worker_id}.jsonl")
            ),
        ),
    )
    fw = make_feedwatch(settings)
    fw.worker_id = worker_id
    return fw


async def _first_request(server: FeedServer, path: str) -> None:
    for _ in range(1000):
        if server.requests_for(path):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no request for {path} in 10 s")


async def test_a_slow_poll_recorded_after_a_newer_one_keeps_the_newer_state(
    tmp_path: Path,
    feed_server: FeedServer,
    shared_db: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed_server.set("/f.xml", rss("old"))
    feed_server.slow("/f.xml", 2.0)
    url = feed_server.url("/f.xml")
    a = _worker(tmp_path, shared_db, url, "worker-a")
    b = _worker(tmp_path, shared_db, url, "worker-b")
    try:
        a.sync_config_feeds()
        # a's pass started an hour ago, so its lease (two minutes) has run out
        # while its fetch is still on the wire.
        slow = asyncio.create_task(
            poll_once(a, all_feeds=True, now=utcnow() - timedelta(hours=1))
        )
        await _first_request(feed_server, "/f.xml")
        # The feed changes; b claims it, polls and records while a waits.
        feed_server.slow("/f.xml", 0)
        feed_server.set("/f.xml", rss("new"))
        newer = await poll_once(b, all_feeds=True)
        assert (newer.polled, newer.new_items) == (1, 1)
        after_b = b.store.get_feed(url)

        with caplog.at_level(logging.WARNING):
            late = await slow
        assert (late.polled, late.new_items) == (1, 1), "a's item is kept"
        stored = b.store.get_feed(url)
        assert stored == after_b, "a's late record changed the feed"
        assert stored.body_hash == hashlib.sha256(rss("new")).hexdigest()
        assert stored.next_check_at is not None and stored.next_check_at > utcnow()
        assert b.store.count_items() == 2
        assert any("outlived its lease" in r.getMessage() for r in caplog.records)

        # b's validators stayed: the next poll is answered 304.
        again = await poll_once(b, all_feeds=True)
        assert (again.polled, again.not_modified) == (1, 1)
    finally:
        a.close()
        b.close()
