"""Fixtures for the WebSub tests: a real hub and the real API on 127.0.0.1, a feed
server, and a store on SQLite (a file in tmp_path) or PostgreSQL (127.0.0.1:5432)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from apiserver import serving as serving_app
from pg import PgDatabases

from worker.api import create_app
from worker.config import (
    ApiSettings,
    FeedSettings,
    FetchSettings,
    FileChannelSettings,
    Settings,
)
from worker.core import Feedwatch, make_feedwatch
from worker.store import open_store
from worker.store.schema import metadata
from worker.store.sql import SqlStore
from worker.websub import WebSubCallback

from .hub import Hub

TOKEN = "websub-test-token"

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
<title>Wire</title><id>urn:wire</id><updated>2026-05-01T00:00:00Z</updated>
{links}{entries}</feed>"""
ENTRY = """<entry><id>urn:{guid}</id><title>{title}</title>
<link href="https://wire.example/{guid}"/><updated>2026-05-01T00:00:00Z</updated>
<summary>{summary}</summary></entry>"""

SUMMIT = (
    "s1",
    "Leaders of China, Japan and South Korea to hold trilateral summit in Tokyo",
    "The three leaders will meet next month, the foreign ministry said.",
)
WEATHER = ("w1", "Heavy rain expected in Busan", "Forecasters warned of flooding.")


def atom(*entries: tuple[str, str, str], links: str = "") -> bytes:
    """An Atom feed of ``entries`` (guid, title, summary) with extra ``links``."""
    body = "".join(ENTRY.format(guid=g, title=t, summary=s) for g, t, s in entries)
    return ATOM.format(links=links, entries=body).encode()


# -- the API, served -------------------------------------------------------------------


@contextlib.contextmanager
def serving(fw: Feedwatch) -> Iterator[tuple[str, WebSubCallback]]:
    """The API of ``fw`` on 127.0.0.1:0 (tests/apiserver.py); yields its base URL and
    its WebSub callback."""
    app = create_app(fw)
    callback = app.state.websub
    assert isinstance(callback, WebSubCallback)
    with serving_app(app) as url:
        yield url, callback


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``check`` until true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@dataclass
class Site:
    """One running feedwatch with its API, the hub, and the feed server."""

    fw: Feedwatch
    api: str
    callback: WebSubCallback
    hub: Hub
    feed_url: str

    def client(self) -> httpx.Client:
        """An httpx client on the API (no token: /websub/ needs none)."""
        return httpx.Client(base_url=self.api, timeout=10)

    def wait_processed(self, count: int) -> None:
        """Wait until ``count`` pushes were ingested by the API."""
        wait_until(lambda: self.callback.processed >= count)


def settings_for(
    url: str, tmp_path: Path, feeds: tuple[str, ...] = (), **fetch: Any
) -> Settings:
    """Feeds polled every 600 s, one file channel, WebSub on, a token on the API."""
    return Settings(
        database=url,
        feeds=tuple(FeedSettings(url=u, interval=600.0) for u in feeds),
        fetch=FetchSettings(
            **{"allow_private_addresses": True, "timeout": 10.0, **fetch}
        ),
        channels=(
            FileChannelSettings(
                type="file", name="all", path=str(tmp_path / "alerts.jsonl")
            ),
        ),
        api=ApiSettings(enabled=True, port=0, token=TOKEN),
    )


@pytest.fixture
def hub() -> Iterator[Hub]:
    """A real WebSub hub on 127.0.0.1."""
    with Hub() as h:
        yield h


# -- databases -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def websub_pg_url(pg_databases: PgDatabases) -> str:
    """A migrated PostgreSQL database for the session, dropped at the end."""
    url = pg_databases.create()
    with open_store(url) as store:
        store.migrate()
    return url


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.external_service)]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'feedwatch.db'}"
        with open_store(url) as store:
            store.migrate()
        return url
    url = str(request.getfixturevalue("websub_pg_url"))
    with open_store(url) as store:
        assert isinstance(store, SqlStore)
        names = ", ".join(t.name for t in metadata.sorted_tables)
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    """The store under test; checked for leaked connections."""
    s = open_store(store_url)
    assert isinstance(s, SqlStore)
    try:
        yield s
        assert s.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        s.close()


@pytest.fixture
def site_factory(
    tmp_path: Path, hub: Hub
) -> Iterator[Callable[..., contextlib.AbstractContextManager[Site]]]:
    """Build a Site on a database URL (default SQLite) for a feed URL."""
    opened: list[Feedwatch] = []

    @contextlib.contextmanager
    def make(feed_url: str, *, url: str | None = None, **fetch: Any) -> Iterator[Site]:
        db = url or f"sqlite:///{tmp_path / 'fw.db'}"
        fw = make_feedwatch(settings_for(db, tmp_path, (feed_url,), **fetch))
        opened.append(fw)
        fw.sync_config_feeds()
        with serving(fw) as (api, callback):
            yield Site(fw=fw, api=api, callback=callback, hub=hub, feed_url=feed_url)

    yield make
    for fw in opened:
        fw.close()
