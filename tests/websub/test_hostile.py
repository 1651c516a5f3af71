"""Hostile callback requests: a signature header with non-ASCII bytes and odd
``hub.lease_seconds`` values are answered like any other bad request, never 500."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable

import pytest
from feedserver import FeedServer

from worker.poll import poll_once
from worker.store.base import SubscriptionState
from worker.websub import (
    DEFAULT_LEASE,
    MAX_LEASE,
    check_signature,
    sync_subscriptions,
)

from .conftest import SUMMIT, WEATHER, Site, atom
from .hub import Hub

SiteFactory = Callable[..., contextlib.AbstractContextManager[Site]]
PATH = "/news.xml"


def test_non_ascii_signature_is_a_mismatch_not_a_crash() -> None:
    assert check_signature("s", b"body", "sha1=\u00e9\u00e9") == (
        "the sha1 signature does not match the body"
    )


async def test_push_with_a_non_ascii_signature_is_dropped_quietly(
    feed_server: FeedServer, hub: Hub, site_factory: SiteFactory
) -> None:
    url = feed_server.url(PATH)
    link = f'<{hub.url}>; rel="hub", <{PATH}>; rel="self"'
    feed_server.set(PATH, atom(WEATHER), "application/atom+xml", headers={"Link": link})
    with site_factory(url) as site, site.client() as client:
        await poll_once(site.fw, all_feeds=True)
        [fid] = (await sync_subscriptions(site.fw, callback_base=site.api)).requested
        assert site.fw.store.get_subscription(fid).state == SubscriptionState.VERIFIED
        r = client.post(
            f"/websub/{fid}",
            content=atom(SUMMIT, WEATHER),
            headers={"X-Hub-Signature": b"sha1=\xe9\xe9"},
        )
        assert r.status_code == 202  # like any wrong signature: no oracle
        assert site.callback.processed == 0
        assert site.fw.store.list_alerts() == []


@pytest.mark.parametrize(
    ("lease", "expected"),
    [
        ("\u00b2", DEFAULT_LEASE),  # a digit to str.isdigit, not to int()
        ("9" * 30, MAX_LEASE),  # past any date the store can hold
        ("9" * 5000, MAX_LEASE),  # past int()'s digit limit
        ("0", DEFAULT_LEASE),
        ("600", 600),
    ],
)
async def test_odd_lease_seconds_are_clamped_or_ignored(
    feed_server: FeedServer,
    hub: Hub,
    site_factory: SiteFactory,
    lease: str,
    expected: int,
) -> None:
    hub.configure(verify="never")
    url = feed_server.url(PATH)
    link = f'<{hub.url}>; rel="hub", <{PATH}>; rel="self"'
    feed_server.set(PATH, atom(WEATHER), "application/atom+xml", headers={"Link": link})
    with site_factory(url) as site, site.client() as client:
        await poll_once(site.fw, all_feeds=True)
        [fid] = (await sync_subscriptions(site.fw, callback_base=site.api)).requested
        query = {
            "hub.mode": "subscribe",
            "hub.topic": url,
            "hub.challenge": "c-1",
            "hub.lease_seconds": lease,
        }
        r = client.get(f"/websub/{fid}", params=query)
        assert (r.status_code, r.text) == (200, "c-1")
        sub = site.fw.store.get_subscription(fid)
        assert (sub.state, sub.lease_seconds) == (SubscriptionState.VERIFIED, expected)


class EndlessHub:
    """A hub on 127.0.0.1 that answers 500 with a body that never ends (until the
    client hangs up or ``LIMIT`` seconds pass)."""

    LIMIT = 20.0

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(self.LIMIT)
        self.sent = 0
        self.hung_up = threading.Event()
        """Set when the client closed the connection (before ``LIMIT``)."""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hub"

    def _serve(self) -> None:
        deadline = time.monotonic() + self.LIMIT
        with contextlib.suppress(OSError):
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(self.LIMIT)
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                chunk = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
                try:
                    while time.monotonic() < deadline:
                        conn.sendall(chunk)
                        self.sent += 0x4000
                except OSError:
                    self.hung_up.set()
                    raise

    def close(self) -> None:
        self.sock.close()
        self.thread.join(self.LIMIT + 5)


async def test_a_hub_answering_an_endless_body_is_cut_short(
    feed_server: FeedServer, site_factory: SiteFactory
) -> None:
    endless = EndlessHub()
    try:
        url = feed_server.url(PATH)
        link = f'<{endless.url}>; rel="hub", <{PATH}>; rel="self"'
        feed_server.set(
            PATH, atom(WEATHER), "application/atom+xml", headers={"Link": link}
        )
        with site_factory(url, timeout=3.0) as site:
            await poll_once(site.fw, all_feeds=True)
            started = time.monotonic()
            async with asyncio.timeout(15):
                report = await sync_subscriptions(site.fw, callback_base=site.api)
            assert time.monotonic() - started < 10
            [(fid, error)] = report.failed.items()
            assert "HTTP 500" in error and endless.url in error
            sub = site.fw.store.get_subscription(fid)
            assert sub.last_error is not None and "HTTP 500" in sub.last_error
            # The client read a snippet and hung up; it did not drain the stream.
            assert endless.hung_up.wait(5)
    finally:
        endless.close()
