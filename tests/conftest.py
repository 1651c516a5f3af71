"""Shared fixtures: real loopback servers (feeds, webhook receiver, SMTP) and configs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from feedserver import FeedServer
from pg import PgDatabases, connect_admin
from receivers import SmtpReceiver, WebhookReceiver

from worker.demo.server import CONTENT_TYPES, feed_files, load_expected

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def _private_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Compiled-rules caches of the run (and its subprocesses) stay in a temp dir."""
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = saved


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A real HTTP feed server on 127.0.0.1 with ETag/Last-Modified and 304s."""
    with FeedServer() as server:
        yield server


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A real HTTP receiver on 127.0.0.1 recording every request."""
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 recording every message."""
    with SmtpReceiver() as server:
        yield server


def publish_demo_feeds(server: FeedServer) -> dict[str, str]:
    """Serve the bundled demo feeds; returns file name -> URL."""
    urls: dict[str, str] = {}
    for path in feed_files():
        server.set(
            f"/{path.name}", path.read_bytes(), CONTENT_TYPES[path.suffix.lower()]
        )
        urls[path.name] = server.url(f"/{path.name}")
    return urls


@pytest.fixture
def demo_expected() -> dict[str, Any]:
    """What the demo feeds must produce (worker/demo/feeds/expected.json)."""
    return load_expected()


def write_config(path: Path, data: dict[str, Any]) -> Path:
    """Write a YAML config (JSON is YAML) and return its path."""
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    """Fresh PostgreSQL databases on demand (skips, or fails under CI, without one)."""
    with connect_admin() as admin:
        databases = PgDatabases(admin)
        try:
            yield databases
        finally:
            databases.drop_all()
