"""Fetching through a forward HTTP proxy, with both transports, against a real proxy
and real origins on 127.0.0.1: absolute-form requests for http, CONNECT tunnels for
https, proxy credentials, no_proxy, the proxy environment variables, the SSRF guard
with a proxy, and proxy failures that say they were the proxy's and never show its
password.

The test proxy maps every host name to 127.0.0.1 (it resolves, feedwatch does not),
so feed URLs name hosts such as feeds.example: loopback URLs never use a proxy.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import ipaddress
import json
import logging
import os
import shutil
import ssl
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from conftest import write_config
from feedserver import FeedServer
from receivers import client_tls_context, closed_port, server_tls_context

from worker.config import FetchSettings, load_settings
from worker.errors import ConfigError, FetchError
from worker.fetch import (
    Fetched,
    Fetcher,
    NotModified,
    Proxy,
    ProxyRoutes,
    Resolve,
    guarded_transport,
    proxy_routes,
)

T = TypeVar("T")

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Proxied</title>
<item><title>Foreign ministers agree to prepare a trilateral summit</title>
<guid>p1</guid></item>
</channel></rss>
"""
TRANSPORTS = pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
USER = "analyst"
PASSWORD = "s3cret:p@ss/wörd"
"""Has the characters a proxy URL must percent-encode, and one outside ASCII."""
PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUEST_METHOD",
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the proxy variables it means to use, and no other."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# -- a real forward proxy --------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request the proxy received (header names lower-cased)."""

    method: str
    target: str
    headers: dict[str, str]
    forwarded: bool
    """False if refused for want of credentials."""


class ForwardProxy:
    """A forward HTTP proxy on 127.0.0.1 in its own thread and event loop.

    Absolute-form requests are sent on in origin form, without the proxy's own
    headers; CONNECT opens a tunnel. Every host name is taken to be 127.0.0.1 (the
    port is the URL's). With ``credentials`` it answers 407 unless the request
    carries them as Basic Proxy-Authorization. One request per client connection.
    """

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self._credentials = credentials
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        ).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str, host: str = "127.0.0.1") -> str:
        """The proxy's URL with credentials, percent-encoded as a user must."""
        auth = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
        return f"http://{auth}@{host}:{self.port}"

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    @property
    def forwarded(self) -> list[Seen]:
        return [s for s in self.seen if s.forwarded]

    @property
    def connections(self) -> int:
        """Client connections accepted, whether or not a request followed."""
        with self._lock:
            return self._connections

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._lock:
            self._connections += 1
        opened = [writer]
        try:
            async with asyncio.timeout(30):
                await self._serve(reader, writer, opened)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            for w in opened:
                w.close()
            for w in opened:
                try:
                    await w.wait_closed()
                except OSError:
                    pass

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        opened: list[asyncio.StreamWriter],
    ) -> None:
        method, target, headers = await read_head(reader)
        allowed = self._authorized(headers)
        with self._lock:
            self._seen.append(Seen(method, target, headers, allowed))
        if not allowed:
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\n'
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
            return
        if method == "CONNECT":
            port = int(target.rpartition(":")[2])
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            opened.append(up_writer)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return
        url = urllib.parse.urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", url.port or 80
        )
        opened.append(up_writer)
        hop = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}
        path = url.path or "/"
        if url.query:
            path += f"?{url.query}"
        out = [f"{method} {path} HTTP/1.1"]
        out += [f"{k}: {v}" for k, v in headers.items() if k not in hop]
        out += ["Connection: close", "", ""]
        up_writer.write("\r\n".join(out).encode("latin-1"))
        await up_writer.drain()
        # The answer's head, its connection header replaced: this proxy closes.
        answer = await up_reader.readuntil(b"\r\n\r\n")
        kept = [
            line
            for line in answer.split(b"\r\n")
            if line and not line.lower().startswith((b"connection:", b"keep-alive:"))
        ]
        writer.write(b"\r\n".join([*kept, b"Connection: close", b"", b""]))
        await _pipe(up_reader, writer)

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self._credentials is None:
            return True
        token = base64.b64encode(":".join(self._credentials).encode()).decode()
        return headers.get("proxy-authorization") == f"Basic {token}"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass
    finally:
        if writer.can_write_eof():
            try:
                writer.write_eof()
            except OSError:
                pass


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as p:
        yield p


@pytest.fixture
def auth_proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy(credentials=(USER, PASSWORD)) as p:
        yield p


@pytest.fixture
def origin() -> Iterator[FeedServer]:
    with FeedServer() as server:
        server.set("/feed.xml", RSS)
        yield server


# -- helpers ---------------------------------------------------------------------------


def settings(transport: str, **kw: Any) -> FetchSettings:
    base: dict[str, Any] = {
        "allow_private_addresses": True,
        "timeout": 5,
        "connect_timeout": 2,
        "transport": transport,
    }
    base.update(kw)
    return FetchSettings(**base)


def table(**names: str) -> Resolve:
    """A resolver for names the system cannot resolve (``feeds_example`` is
    feeds.example); addresses resolve to themselves, other names not at all."""
    known = {k.replace("_", "."): v for k, v in names.items()}

    async def resolve(host: str, port: int) -> Sequence[str]:
        if host in known:
            return [known[host]]
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            raise OSError(f"{host}: unknown to this test") from None

    return resolve


def on(server: FeedServer, path: str = "/feed.xml", host: str = "feeds.example") -> str:
    """The URL of ``path`` on ``server`` named by ``host``, as the proxy reaches it."""
    return f"http://{host}:{server.port}{path}"


async def fetch_all(
    s: FetchSettings, *urls: str, resolve: Resolve | None = None, **kw: Any
) -> list[Fetched | NotModified]:
    async with Fetcher(s, version="1", resolve=resolve) as f:
        return [await f.fetch(u, **kw) for u in urls]


def fetch_error(
    s: FetchSettings, url: str, resolve: Resolve | None = None
) -> FetchError:
    with pytest.raises(FetchError) as info:
        run(fetch_all(s, url, resolve=resolve))
    return info.value


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert urllib.parse.quote(PASSWORD, safe="") not in text


# -- through the proxy -----------------------------------------------------------------


@TRANSPORTS
def test_http_feed_goes_through_the_proxy_in_absolute_form(
    proxy: ForwardProxy, origin: FeedServer, transport: str
) -> None:
    url = on(origin)
    [got] = run(fetch_all(settings(transport, proxy=proxy.url), url))
    assert isinstance(got, Fetched) and got.body == RSS and got.url == url
    [seen] = proxy.forwarded
    assert (seen.method, seen.target) == ("GET", url)
    [arrived] = origin.requests
    # The proxy, not feedwatch, found the host: it reached the origin by name.
    assert arrived.path == "/feed.xml"
    assert arrived.headers["host"] == f"feeds.example:{origin.port}"
    assert arrived.headers["user-agent"].startswith("feedwatch/1")


@TRANSPORTS
def test_conditional_get_compression_and_caps_work_through_the_proxy(
    proxy: ForwardProxy, origin: FeedServer, transport: str
) -> None:
    big = RSS.replace(b"</channel>", b"<!--" + b"x" * 50_000 + b"--></channel>")
    origin.set("/big.xml", big)
    s = settings(transport, proxy=proxy.url)

    async def go() -> tuple[Fetched | NotModified, Fetched | NotModified]:
        async with Fetcher(s, version="1") as f:
            first = await f.fetch(on(origin, "/big.xml"))
            assert isinstance(first, Fetched)
            again = await f.fetch(on(origin, "/big.xml"), etag=first.etag)
            return first, again

    first, again = run(go())
    assert isinstance(first, Fetched) and first.body == big  # sent gzipped
    assert isinstance(again, NotModified) and again.etag == first.etag
    sent = origin.requests
    assert sent[0].headers["accept-encoding"] == "gzip, deflate"
    assert sent[1].headers["if-none-match"] == first.etag
    assert [s.target for s in proxy.forwarded] == [on(origin, "/big.xml")] * 2

    capped = settings(transport, proxy=proxy.url, max_body_bytes=2048)
    err = fetch_error(capped, on(origin, "/big.xml"))
    assert err.stage == "size" and "decompressed body exceeds" in str(err)


@TRANSPORTS
def test_proxy_credentials_are_sent_to_the_proxy_only(
    auth_proxy: ForwardProxy, origin: FeedServer, transport: str
) -> None:
    s = settings(transport, proxy=auth_proxy.url_with(USER, PASSWORD))
    [got] = run(fetch_all(s, on(origin)))
    assert isinstance(got, Fetched) and got.body == RSS
    [seen] = auth_proxy.seen
    assert seen.forwarded and seen.target == on(origin)
    [arrived] = origin.requests
    assert "proxy-authorization" not in arrived.headers
    assert "authorization" not in arrived.headers


@TRANSPORTS
def test_a_redirect_is_followed_through_the_proxy_hop_by_hop(
    proxy: ForwardProxy, origin: FeedServer, transport: str
) -> None:
    origin.redirect("/old.xml", on(origin, "/feed.xml", host="moved.example"), 301)
    [got] = run(fetch_all(settings(transport, proxy=proxy.url), on(origin, "/old.xml")))
    assert isinstance(got, Fetched) and got.body == RSS
    assert got.permanent_redirect == on(origin, "/feed.xml", host="moved.example")
    assert [s.target for s in proxy.forwarded] == [
        on(origin, "/old.xml"),
        on(origin, "/feed.xml", host="moved.example"),
    ]


# -- what goes directly ----------------------------------------------------------------


@TRANSPORTS
def test_no_proxy_hosts_and_loopback_go_directly(
    proxy: ForwardProxy, origin: FeedServer, transport: str
) -> None:
    s = settings(transport, proxy=proxy.url, no_proxy=["intranet.example"])
    resolve = table(wire_intranet_example="127.0.0.1", localhost="127.0.0.1")
    direct = [
        on(origin, host="wire.intranet.example"),  # a subdomain of an entry
        origin.url("/feed.xml"),  # 127.0.0.1: never through a proxy
        on(origin, host="localhost"),
    ]
    got = run(fetch_all(s, *direct, on(origin), resolve=resolve))
    assert all(isinstance(g, Fetched) and g.body == RSS for g in got)
    # Only the last one, not listed, went through the proxy.
    assert [s.target for s in proxy.forwarded] == [on(origin)]
    assert len(origin.requests) == 4


@TRANSPORTS
def test_environment_proxy_is_used_unless_trust_env_is_off(
    proxy: ForwardProxy,
    origin: FeedServer,
    transport: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    resolve = table(feeds_example="127.0.0.1")
    run(fetch_all(settings(transport), on(origin), resolve=resolve))
    assert [s.target for s in proxy.forwarded] == [on(origin)]

    run(fetch_all(settings(transport, trust_env=False), on(origin), resolve=resolve))
    assert len(proxy.forwarded) == 1  # directly this time
    monkeypatch.setenv("NO_PROXY", "localhost,.feeds.example")
    run(fetch_all(settings(transport), on(origin), resolve=resolve))
    assert len(proxy.forwarded) == 1
    assert len(origin.requests) == 3


def test_proxy_routes_read_the_environment_as_curl_does() -> None:
    none = FetchSettings()
    assert proxy_routes(none, {}) is None
    env = {
        "http_proxy": "http://lower.example:3128",
        "HTTP_PROXY": "http://upper.example:3128",
        "ALL_PROXY": "proxy.example:8080",
        "NO_PROXY": "internal.example, 10.0.0.0/8",
    }
    routes = proxy_routes(none, env)
    assert routes is not None
    assert routes.http == Proxy("http://lower.example:3128", "http_proxy")
    # No https_proxy: ALL_PROXY, http:// when it has no scheme.
    assert routes.https == Proxy("http://proxy.example:8080", "ALL_PROXY")
    assert routes.no_proxy == ("internal.example", "10.0.0.0/8")
    # An empty lower-case variable unsets the upper-case one.
    assert proxy_routes(none, {**env, "http_proxy": "", "ALL_PROXY": ""}) is None

    own = FetchSettings(proxy="http://own.example:3128", no_proxy=["a.example"])
    routes = proxy_routes(own, env)
    assert routes is not None and routes.http == routes.https
    assert routes.https == Proxy("http://own.example:3128", "fetch.proxy")
    # NO_PROXY still adds to fetch.no_proxy, as with curl --proxy.
    assert routes.no_proxy == ("a.example", "internal.example", "10.0.0.0/8")

    off = FetchSettings(proxy="http://own.example:3128", trust_env=False)
    routes = proxy_routes(off, env)
    assert routes is not None and routes.no_proxy == ()
    assert proxy_routes(FetchSettings(trust_env=False), env) is None


def test_unusable_environment_proxy_is_a_config_error_naming_the_variable() -> None:
    env = {"ALL_PROXY": f"socks5://{USER}:{urllib.parse.quote(PASSWORD)}@h:1080"}
    with pytest.raises(ConfigError) as info:
        proxy_routes(FetchSettings(), env)
    assert info.value.key_path == "ALL_PROXY"
    assert "SOCKS is not supported" in str(info.value)
    assert "fetch.trust_env: false" in str(info.value)
    assert_no_secret(str(info.value))
    # Not used, so not read: https and http have their own.
    env |= {"HTTP_PROXY": "http://p.example:1", "HTTPS_PROXY": "http://p.example:1"}
    assert proxy_routes(FetchSettings(), env) is not None
    with pytest.raises(ConfigError) as info:
        proxy_routes(FetchSettings(), {**env, "no_proxy": "10.0.0.0/40"})
    assert info.value.key_path == "no_proxy"


@pytest.mark.parametrize(
    ("url", "direct"),
    [
        ("http://example.org/", True),
        ("http://news.example.org/", True),
        ("http://example.org.evil.test/", False),
        ("http://notexample.org/", False),
        ("https://wire.corp.example/", True),  # *.corp.example
        ("http://10.1.2.3/", True),  # 10.0.0.0/8
        ("http://192.0.2.7:8080/", True),  # listed with a port: any port
        ("http://[2001:db8::5]/", True),
        ("http://11.0.0.1/", False),
        ("http://bücher.example/", True),  # listed as xn--bcher-kva.example
        ("http://localhost:8080/", True),
        ("http://a.localhost/", True),
        ("http://127.0.0.2/", True),
        ("http://[::1]/", True),
        ("http://[::ffff:127.0.0.1]/", True),
        ("http://other.example/", False),
    ],
)
def test_no_proxy_matching(url: str, direct: bool) -> None:
    entries = FetchSettings.split_no_proxy(
        "Example.org *.corp.example 10.0.0.0/8,192.0.2.7:8080 [2001:db8::5] "
        "xn--bcher-kva.example"
    )
    proxy = Proxy("http://proxy.example:3128", "fetch.proxy")
    routes = ProxyRoutes(proxy, proxy, entries)
    assert (routes.select(httpx.URL(url)) is None) is direct
    assert ProxyRoutes(proxy, proxy, ("*",)).select(httpx.URL(url)) is None


# -- the SSRF guard with a proxy -------------------------------------------------------


@TRANSPORTS
def test_guard_refuses_private_targets_before_the_proxy_sees_them(
    proxy: ForwardProxy, origin: FeedServer, transport: str
) -> None:
    # The proxy is named, so the aiohttp transport's guarded resolver meets it.
    s = settings(
        transport,
        allow_private_addresses=False,
        proxy=proxy.url.replace("127.0.0.1", "proxy.example"),
    )
    resolve = table(
        proxy_example="127.0.0.1",
        intranet_example="10.0.0.7",
        feeds_example="93.184.216.34",  # public: allowed, and reached via the proxy
    )
    metadata = "http://169.254.169.254/latest/meta-data/"
    err = fetch_error(s, metadata, resolve)
    assert err.stage == "address" and "cloud metadata" in str(err)
    err = fetch_error(s, on(origin, host="intranet.example"), resolve)
    assert err.stage == "address" and "10.0.0.7" in str(err)
    assert proxy.connections == 0

    # A public name goes through the proxy, whose own address is loopback; a
    # name that does not resolve here is left to the proxy.
    got = run(
        fetch_all(s, on(origin), on(origin, host="elsewhere.example"), resolve=resolve)
    )
    assert all(isinstance(g, Fetched) for g in got)
    assert [s.target for s in proxy.forwarded] == [
        on(origin),
        on(origin, host="elsewhere.example"),
    ]

    # Each hop is checked: a redirect to a private address is refused.
    origin.redirect("/feed.xml", "http://10.9.8.7/feed.xml", 302)
    err = fetch_error(s, on(origin), resolve)
    assert err.stage == "address" and "after redirect to http://10.9.8.7/" in str(err)
    assert len(proxy.forwarded) == 3


@TRANSPORTS
def test_guard_still_refuses_unresolvable_names_without_a_proxy(
    origin: FeedServer, transport: str
) -> None:
    s = settings(transport, allow_private_addresses=False)
    err = fetch_error(s, on(origin, host="elsewhere.example"), table())
    assert err.stage == "connect" and "cannot resolve host" in str(err)


# -- proxy failures --------------------------------------------------------------------


@TRANSPORTS
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_wrong_proxy_password_is_a_407_naming_the_proxy_not_the_password(
    auth_proxy: ForwardProxy,
    origin: FeedServer,
    transport: str,
    scheme: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = PASSWORD[::-1]
    s = settings(transport, proxy=auth_proxy.url_with(USER, wrong))
    url = on(origin).replace("http:", f"{scheme}:")
    err = fetch_error(s, url)
    assert (err.stage, err.status, err.url) == ("status", 407, url)
    assert f"the proxy {auth_proxy.url} answered HTTP 407" in str(err)
    assert "check the user name and password given in fetch.proxy" in str(err)
    for text in (str(err), caplog.text, repr(s)):
        assert wrong not in text and urllib.parse.quote(wrong, safe="") not in text
    [seen] = auth_proxy.seen
    assert seen.method == ("CONNECT" if scheme == "https" else "GET")
    assert not origin.requests


@TRANSPORTS
def test_proxy_without_credentials_says_it_wants_them(
    auth_proxy: ForwardProxy,
    origin: FeedServer,
    transport: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("https_proxy", auth_proxy.url)
    err = fetch_error(settings(transport), on(origin).replace("http:", "https:"))
    assert err.status == 407
    assert "it wants a user name and password: give them in https_proxy" in str(err)


@TRANSPORTS
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_unreachable_proxy_is_a_connect_error_naming_it(
    origin: FeedServer, transport: str, scheme: str
) -> None:
    port = closed_port()
    s = settings(
        transport,
        proxy=f"http://{USER}:{urllib.parse.quote(PASSWORD)}@127.0.0.1:{port}",
    )
    err = fetch_error(s, on(origin).replace("http:", f"{scheme}:"))
    assert err.stage == "connect"
    assert f"cannot connect to the proxy http://127.0.0.1:{port}:" in str(err)
    assert_no_secret(str(err))
    assert not origin.requests


@TRANSPORTS
def test_proxy_that_does_not_resolve_is_a_connect_error_naming_it(
    origin: FeedServer, transport: str
) -> None:
    s = settings(transport, proxy="http://proxy.example:3128")
    err = fetch_error(s, on(origin), table())
    assert err.stage == "connect"
    assert "cannot connect to the proxy http://proxy.example:3128:" in str(err)


# -- https through a CONNECT tunnel ----------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for feeds.example (made with the openssl command)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed; cannot make a certificate")
    directory = tmp_path_factory.mktemp("proxy-tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=feeds.example",
            "-addext", "subjectAltName=DNS:feeds.example",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


class _TlsFeed(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(RSS)))
        self.end_headers()
        self.wfile.write(RSS)


async def read_head(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    """A request's method, target and headers (names in lower case)."""
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


@dataclass
class TlsOrigin:
    port: int
    seen: list[dict[str, str]]

    @property
    def url(self) -> str:
        return f"https://feeds.example:{self.port}/feed.xml"


def serve_tls_origin(
    handler: type[_TlsFeed], cert: Path, key: Path
) -> Iterator[TlsOrigin]:
    """Serve ``handler`` over TLS (``cert``, ``key``) on 127.0.0.1 until closed;
    the requests it records go to the origin's ``seen``."""
    seen: list[dict[str, str]] = []
    bound = type("Handler", (handler,), {"seen": seen})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), bound)
    httpd.daemon_threads = True
    httpd.socket = server_tls_context(cert, key).wrap_socket(
        httpd.socket, server_side=True
    )
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield TlsOrigin(int(httpd.server_address[1]), seen)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def tls_origin(certificate: tuple[Path, Path]) -> Iterator[TlsOrigin]:
    """An https feed on 127.0.0.1 whose certificate names feeds.example."""
    yield from serve_tls_origin(_TlsFeed, *certificate)


@TRANSPORTS
def test_https_goes_through_a_connect_tunnel(
    auth_proxy: ForwardProxy,
    tls_origin: TlsOrigin,
    certificate: tuple[Path, Path],
    transport: str,
) -> None:
    routes = proxy_routes(
        FetchSettings(proxy=auth_proxy.url_with(USER, PASSWORD), trust_env=False)
    )
    assert routes is not None
    trusted: ssl.SSLContext = client_tls_context(certificate[0])

    async def go() -> httpx.Response:
        http = guarded_transport(
            transport, allowed=None, proxies=routes, verify=trusted
        )
        async with httpx.AsyncClient(transport=http, trust_env=False) as client:
            return await client.get(tls_origin.url)

    response = run(go())
    assert response.status_code == 200 and response.content == RSS
    [seen] = auth_proxy.seen
    assert (seen.method, seen.target) == ("CONNECT", f"feeds.example:{tls_origin.port}")
    assert seen.forwarded
    # TLS ran end to end with the origin, which saw its own name and no proxy header.
    [headers] = tls_origin.seen
    assert headers["host"] == f"feeds.example:{tls_origin.port}"
    assert "proxy-authorization" not in headers


@TRANSPORTS
def test_untrusted_certificate_behind_the_proxy_names_the_proxy(
    proxy: ForwardProxy, tls_origin: TlsOrigin, transport: str
) -> None:
    """The handshake with the origin ran through the tunnel (and failed on its
    certificate, as behind a TLS-intercepting proxy whose CA is not trusted)."""
    err = fetch_error(settings(transport, proxy=proxy.url), tls_origin.url)
    assert err.stage == "connect"
    assert "certificate verify failed" in str(err)
    assert f"(via the proxy {proxy.url})" in str(err)
    assert [s.method for s in proxy.forwarded] == ["CONNECT"]


# -- configuration ---------------------------------------------------------------------


def test_proxy_settings_are_checked_without_showing_the_password(
    tmp_path: Path,
) -> None:
    secret = urllib.parse.quote(PASSWORD, safe="")
    for proxy, expected in [
        (f"socks5://{USER}:{secret}@proxy.example:1080", "SOCKS is not supported"),
        (f"http://{USER}:{secret}@proxy.example:3128/path", "without a path"),
        (f"http://{USER}:{secret}@proxy.example:99999", "Port out of range"),
    ]:
        cfg = write_config(tmp_path / "c.json", {"fetch": {"proxy": proxy}})
        with pytest.raises(ConfigError) as info:
            load_settings(cfg)
        message = str(info.value)
        assert "fetch: proxy: " in message and expected in message
        assert f"{USER}:" not in message
        assert_no_secret(message)


def test_proxy_from_a_file_no_proxy_as_a_string(tmp_path: Path) -> None:
    secret = tmp_path / "proxy-url"
    secret.write_text(
        f"http://{USER}:{urllib.parse.quote(PASSWORD, safe='')}@10.0.0.5:3128\n"
    )
    cfg = write_config(
        tmp_path / "c.json",
        {
            "fetch": {
                "proxy_file": str(secret),
                "no_proxy": "localhost, .Corp.example 10.0.0.0/8",
            }
        },
    )
    fetch = load_settings(cfg).fetch
    assert fetch.no_proxy == ("localhost", ".corp.example", "10.0.0.0/8")
    assert_no_secret(repr(fetch), str(fetch.model_dump()))
    routes = proxy_routes(fetch, {})
    assert routes is not None and routes.http is not None
    assert routes.http.url == "http://10.0.0.5:3128"
    assert (routes.http.username, routes.http.password) == (USER, PASSWORD)
    assert_no_secret(repr(routes))


def test_feeds_list_and_logs_show_the_proxy_without_its_password(
    tmp_path: Path, auth_proxy: ForwardProxy, origin: FeedServer
) -> None:
    """End to end through the CLI: a poll through a proxy that refuses the
    credentials records an error naming the proxy, and nothing shows the password."""
    wrong = PASSWORD.upper()
    cfg = write_config(
        tmp_path / "c.json",
        {
            "database": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "feeds": [{"url": on(origin)}],
            "fetch": {
                "allow_private_addresses": True,
                "proxy": auth_proxy.url_with(USER, wrong),
            },
            "poll": {"processes": 1},
            "channels": [
                {"name": "f", "type": "file", "path": str(tmp_path / "a.jsonl")}
            ],
        },
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FEEDWATCH_") and k not in PROXY_VARIABLES
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker", "--log-level", "DEBUG", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    c = ("--config", str(cfg))
    polled = cli("poll", "--once", "--all", "--json", *c)
    listed = cli("feeds", "list", *c)
    as_json = cli("feeds", "list", "--json", *c)
    assert listed.returncode == 0, listed.stderr
    assert f"the proxy {auth_proxy.url} answered HTTP 407" in listed.stdout
    [feed] = json.loads(as_json.stdout)
    assert f"the proxy {auth_proxy.url} answered HTTP 407" in feed["last_error"]
    assert [s.forwarded for s in auth_proxy.seen] == [False]
    for res in (polled, listed, as_json):
        for text in (res.stdout, res.stderr):
            assert wrong not in text
            assert urllib.parse.quote(wrong, safe="") not in text


@pytest.mark.parametrize("command", [("poll", "--once", "--all"), ("run",)])
def test_an_unusable_proxy_variable_stops_poll_and_run_at_start(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """The environment's proxy is checked once, before anything is polled: exit 2
    naming the variable, without its password (the daemon would otherwise fail the
    same way on every tick)."""
    cfg = write_config(
        tmp_path / "c.json",
        {
            "database": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "feeds": [{"url": "http://feeds.example/never"}],
            "channels": [
                {"name": "f", "type": "file", "path": str(tmp_path / "a.jsonl")}
            ],
        },
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FEEDWATCH_") and k not in PROXY_VARIABLES
    }
    env["ALL_PROXY"] = f"socks5://{USER}:{urllib.parse.quote(PASSWORD)}@h:1080"
    res = subprocess.run(
        [sys.executable, "-m", "worker", *command, "--config", str(cfg)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2, res.stderr
    assert "ALL_PROXY" in res.stderr
    assert "SOCKS is not supported" in res.stderr
    assert PASSWORD not in res.stderr + res.stdout
    assert not (tmp_path / "db.sqlite").exists()
