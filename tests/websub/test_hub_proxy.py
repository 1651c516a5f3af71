"""WebSub hub requests and the forward proxy (fetch.proxy), with a real hub, a real
proxy and the real API on 127.0.0.1: a hub whose name does not resolve here is
reached through the proxy and the subscription is verified as without one; the
same name going directly (fetch.no_proxy, or no proxy) is refused before any
request; a hub at a private address is refused even with a proxy.

The proxy (tests/test_fetch_proxy.py) maps every host name to 127.0.0.1, so the hub
is named hub.example: loopback URLs never go through a proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_fetch_proxy import PROXY_VARIABLES, ForwardProxy, Seen, _pipe, read_head

from worker.config import ApiSettings
from worker.core import Feedwatch, make_feedwatch
from worker.models import Feed, utcnow
from worker.store.base import SubscriptionState
from worker.websub import DEFAULT_LEASE, SyncReport, callback_base, sync_subscriptions

from .conftest import TOKEN, serving, settings_for
from .hub import Hub
from .test_rebind import hub_named

S = SubscriptionState
TOPIC = "https://wire.example/feed.xml"
HUB_NAME = "hub.example"
HUB_HINT = (
    "hubs on private networks are refused unless fetch.allow_private_addresses is true"
)


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only fetch.proxy routes requests (the hub's own client honours these too)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


class FormProxy(ForwardProxy):
    """The forward proxy of tests/test_fetch_proxy.py, forwarding request bodies too
    (that one sends on the head of a feed's GET only; a subscribe request is a form
    POST). Absolute-form http requests only, as hub requests are here; each is
    counted in ``seen`` the same way."""

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        opened: list[asyncio.StreamWriter],
    ) -> None:
        method, target, headers = await read_head(reader)
        body = await reader.readexactly(int(headers.get("content-length") or 0))
        with self._lock:
            self._seen.append(Seen(method, target, headers, forwarded=True))
        url = urllib.parse.urlsplit(target)
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", url.port or 80
        )
        opened.append(up_writer)
        hop = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}
        out = [f"{method} {url.path or '/'} HTTP/1.1"]
        out += [f"{k}: {v}" for k, v in headers.items() if k not in hop]
        out += ["Connection: close", "", ""]
        up_writer.write("\r\n".join(out).encode("latin-1") + body)
        await up_writer.drain()
        # The hub closes after its answer (asked to), and so does this proxy.
        await _pipe(up_reader, writer)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with FormProxy() as p:
        yield p


@pytest.fixture
def unresolved() -> None:
    """The tests need hub.example to have no DNS entry here (RFC 2606 reserves it)."""
    try:
        socket.getaddrinfo(HUB_NAME, 80, type=socket.SOCK_STREAM)
    except OSError:
        return
    pytest.skip(f"{HUB_NAME} resolves on this machine; these tests need it not to")


@contextlib.contextmanager
def subscriber(
    tmp_path: Path, hub_url: str, **fetch: Any
) -> Iterator[tuple[Feedwatch, int]]:
    """A feedwatch whose api.public_url is its API served on 127.0.0.1 (where the hub
    verifies intent), holding one feed whose hub is ``hub_url``, not yet subscribed.

    The API must run before its URL is known: the feedwatch that subscribes shares
    the served one's store, with api.public_url set to that URL.
    """
    base = settings_for(f"sqlite:///{tmp_path / 'fw.db'}", tmp_path, **fetch)
    with make_feedwatch(base) as served, serving(served) as (api, _):
        public = ApiSettings(enabled=True, port=0, token=TOKEN, public_url=api)
        fw = Feedwatch(base.model_copy(update={"api": public}), served.store)
        fid = fw.store.add_feed(Feed(url=TOPIC)).id
        assert fid is not None
        fw.store.record_hubs({fid: (hub_url, TOPIC)}, utcnow())
        assert fw.store.get_subscription(fid).state == S.DISCOVERED
        yield fw, fid


async def sync(fw: Feedwatch) -> SyncReport:
    """One subscription run, with the callback base the scheduler would use."""
    base = callback_base(fw.settings)
    assert base is not None
    return await sync_subscriptions(fw, callback_base=base)


@pytest.mark.usefixtures("unresolved")
@pytest.mark.parametrize("route", ["proxy", "direct"])
async def test_hub_known_only_to_the_proxy_is_subscribed_through_it(
    route: str, tmp_path: Path, hub: Hub, proxy: ForwardProxy
) -> None:
    """Through the proxy with the guard on, the subscription ends as it does
    directly with private addresses allowed (the comparison: ``direct``)."""
    if route == "proxy":
        hub_url = hub_named(hub, HUB_NAME)
        fetch: dict[str, Any] = {"allow_private_addresses": False, "proxy": proxy.url}
    else:
        hub_url, fetch = hub.url, {}
    with subscriber(tmp_path, hub_url, **fetch) as (fw, fid):
        report = await sync(fw)
        assert (report.requested, report.failed) == ({fid: "subscribe"}, {})

        through = [(s.method, s.target) for s in proxy.forwarded]
        assert through == ([("POST", hub_url)] if route == "proxy" else [])
        assert proxy.connections == len(through)
        for seen in proxy.forwarded:
            assert seen.headers["user-agent"].startswith("feedwatch/")

        [form] = hub.requests
        callback = f"{fw.settings.api.public_url}/websub/{fid}"
        assert (form["hub.mode"], form["hub.topic"]) == ("subscribe", TOPIC)
        assert form["hub.callback"] == callback
        [(verified, status, _)] = hub.verifications
        assert (verified, status) == (callback, 200)

        sub = fw.store.get_subscription(fid)
        assert (sub.state, sub.secret) == (S.VERIFIED, form["hub.secret"])
        assert (sub.lease_seconds, sub.requested_at, sub.last_error) == (
            DEFAULT_LEASE,
            None,
            None,
        )


@pytest.mark.usefixtures("unresolved")
@pytest.mark.parametrize("route", ["no_proxy", "no proxy"])
async def test_hub_name_going_directly_must_resolve_here(
    route: str, tmp_path: Path, hub: Hub, proxy: ForwardProxy
) -> None:
    fetch: dict[str, Any] = {"allow_private_addresses": False}
    if route == "no_proxy":
        fetch |= {"proxy": proxy.url, "no_proxy": [HUB_NAME]}
    hub_url = hub_named(hub, HUB_NAME)
    with subscriber(tmp_path, hub_url, **fetch) as (fw, fid):
        report = await sync(fw)
        assert report.requested == {}
        error = report.failed[fid]
        # The guard's own lookup refused it (not a failed connection afterwards).
        assert error.startswith(
            f"{hub_url}: subscribing to {TOPIC}: "
            f"connect: cannot resolve host '{HUB_NAME}': "
        )
        assert proxy.connections == 0 and hub.requests == []
        sub = fw.store.get_subscription(fid)
        assert (sub.state, sub.last_error) == (S.PENDING, error)


@pytest.mark.parametrize(
    ("hub_url", "refused"),
    [
        ("http://10.255.255.1/", "10.255.255.1 (private address)"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 (cloud metadata address)",
        ),
    ],
)
async def test_hub_at_a_private_address_is_refused_even_with_a_proxy(
    hub_url: str, refused: str, tmp_path: Path, proxy: ForwardProxy
) -> None:
    s = {"allow_private_addresses": False, "proxy": proxy.url}
    with subscriber(tmp_path, hub_url, **s) as (fw, fid):
        report = await sync(fw)
        assert report.requested == {}
        assert report.failed[fid] == (
            f"{hub_url}: subscribing to {TOPIC}: "
            f"address: refusing the WebSub hub {hub_url} of feed {TOPIC}: "
            f"{refused}; {HUB_HINT}"
        )
        assert proxy.connections == 0
        assert fw.store.get_subscription(fid).last_error == report.failed[fid]
