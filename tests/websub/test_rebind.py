"""The SSRF guard on hub requests holds against DNS rebinding: the address the
connection uses is filtered too, not only the one the URL check saw."""

from __future__ import annotations

import logging
import socket
import urllib.parse
from pathlib import Path

import pytest

from worker.core import make_feedwatch
from worker.models import Feed, utcnow
from worker.websub import sync_subscriptions

from .conftest import settings_for
from .hub import Hub

PUBLIC = "93.184.216.34"


class FakeDNS:
    """A scripted resolver: the n-th lookup of a name gets its n-th answer (the last
    repeats), like a hostile DNS server with TTL 0. A fake, because no real hostile
    DNS server can run on loopback; it replaces getaddrinfo for the hub URL check
    and for the connection (``sync_subscriptions(resolve=...)``)."""

    def __init__(self, script: dict[str, list[list[str]]]) -> None:
        self.script = script
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        answers = self.script.get(host)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not in the script")
        n = self.lookups.count(host)
        self.lookups.append(host)
        return answers[min(n, len(answers) - 1)]


def hub_named(hub: Hub, name: str) -> str:
    parts = urllib.parse.urlsplit(hub.url)
    return parts._replace(netloc=f"{name}:{parts.port}").geturl()


async def test_hub_rebinding_to_loopback_is_refused(
    tmp_path: Path, hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    topic = "https://wire.example/feed.xml"
    feed_url = "https://wire.example/news.rss"  # its rel=self is the topic
    dns = FakeDNS({"hub.test": [[PUBLIC], ["127.0.0.1"]]})
    url = f"sqlite:///{tmp_path / 'rebind.db'}"
    with make_feedwatch(
        settings_for(url, tmp_path, allow_private_addresses=False)
    ) as fw:
        fid = fw.store.add_feed(Feed(url=feed_url)).id
        assert fid is not None
        hub_url = hub_named(hub, "hub.test")
        fw.store.record_hubs({fid: (hub_url, topic)}, utcnow())
        with caplog.at_level(logging.WARNING, logger="worker.websub"):
            report = await sync_subscriptions(
                fw, callback_base="https://fw.example", resolve=dns
            )
        assert list(report.failed) == [fid]
        error = report.failed[fid]
        assert error == (
            f"{hub_url}: subscribing to {topic}: address: refusing the WebSub hub "
            f"{hub_url} of feed {feed_url}: hub.test (127.0.0.1: loopback address); "
            "hubs on private networks are refused unless "
            "fetch.allow_private_addresses is true"
        )
        assert [r.getMessage() for r in caplog.records] == [
            f"websub: feed {fid}: {error}"
        ]
        assert dns.lookups == ["hub.test", "hub.test"]  # the check, the connect
        assert hub.requests == []
        assert fw.store.get_subscription(fid).last_error == error


async def test_hub_by_name_reached_when_private_addresses_allowed(
    tmp_path: Path, hub: Hub
) -> None:
    # Only 127.0.0.1 in the script: unfiltered, a public answer would leave loopback;
    # and no verification, which would call the (non-loopback) callback.
    hub.configure(verify="never")
    topic = "https://wire.example/feed.xml"
    dns = FakeDNS({"hub.test": [["127.0.0.1"]]})
    url = f"sqlite:///{tmp_path / 'allowed.db'}"
    with make_feedwatch(settings_for(url, tmp_path)) as fw:
        fid = fw.store.add_feed(Feed(url=topic)).id
        assert fid is not None
        fw.store.record_hubs({fid: (hub_named(hub, "hub.test"), topic)}, utcnow())
        report = await sync_subscriptions(
            fw, callback_base="https://fw.example", resolve=dns
        )
        assert report.failed == {} and list(report.requested) == [fid]
        assert dns.lookups == ["hub.test"]
        assert [r["hub.topic"] for r in hub.requests] == [topic]
