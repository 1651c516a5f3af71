"""Tests of the HTTP transports under the fetch stage: feedwatch's own aiohttp
transport used directly, and both transports through ``Fetcher`` against real
loopback servers that misbehave (no answer, garbage, a connect that never completes,
TLS with an untrusted certificate)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import http.server
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from feedserver import FeedServer
from receivers import (
    WebhookReceiver,
    client_tls_context,
    closed_port,
    make_self_signed_cert,
    server_tls_context,
)

from worker.config import FetchSettings
from worker.errors import FetchError
from worker.fetch import AiohttpTransport, Fetched, Fetcher, NotModified

T = TypeVar("T")

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Test</title>
<item><title>Xi meets Yoon</title><guid>a1</guid></item>
</channel></rss>
"""
TRANSPORTS = pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
TIMEOUTS = {"timeout": httpx.Timeout(5.0, connect=2.0).as_dict()}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def settings(transport: str, **kw: Any) -> FetchSettings:
    base: dict[str, Any] = {
        "allow_private_addresses": True,
        "timeout": 5,
        "connect_timeout": 2,
        "transport": transport,
    }
    base.update(kw)
    return FetchSettings(**base)


async def fetch_all(s: FetchSettings, *urls: str) -> list[Fetched | NotModified]:
    async with Fetcher(s, version="1") as f:
        return [await f.fetch(u) for u in urls]


def fetch_error(s: FetchSettings, url: str) -> FetchError:
    with pytest.raises(FetchError) as info:
        run(fetch_all(s, url))
    return info.value


class RawServer:
    """A loopback TCP server that reads one request per connection, writes
    ``reply`` (possibly nothing) and hangs up: HTTP a real server would not send."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def url(self, path: str = "/feed.xml", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


# -- through Fetcher, both transports --------------------------------------------------


@TRANSPORTS
def test_cookies_are_not_carried_between_feeds(
    server: FeedServer, transport: str
) -> None:
    server.set("/a.xml", RSS, headers={"Set-Cookie": "sid=feed-a; Path=/"})
    server.set("/b.xml", RSS)
    run(fetch_all(settings(transport), server.url("/a.xml"), server.url("/b.xml")))
    [b] = server.requests_for("/b.xml")
    assert "cookie" not in b.headers


@TRANSPORTS
def test_credentials_in_the_url_are_sent_as_basic_auth(
    server: FeedServer, transport: str
) -> None:
    server.set("/private.xml", RSS)
    url = server.url("/private.xml").replace("http://", "http://us%20er:p%40ss@")
    [got] = run(fetch_all(settings(transport), url))
    assert isinstance(got, Fetched) and got.body == RSS
    [sent] = server.requests_for("/private.xml")
    assert sent.headers["authorization"] == "Basic " + base64.b64encode(
        b"us er:p@ss"
    ).decode("ascii")
    assert sent.headers["host"] == f"127.0.0.1:{server.port}"


@TRANSPORTS
def test_connect_timeout_is_a_timeout(transport: str) -> None:
    # A listener with a full backlog: the kernel drops further SYNs, so the
    # connect hangs (on loopback) until the client gives up.
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        try:
            for s in fillers:
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
            err = fetch_error(
                settings(transport, connect_timeout=0.3, timeout=5),
                f"http://127.0.0.1:{port}/feed.xml",
            )
        finally:
            for s in fillers:
                s.close()
    assert err.stage == "timeout"
    assert "connect timed out after 0.3s" in str(err)


@TRANSPORTS
def test_hang_up_without_an_answer_is_a_protocol_error(transport: str) -> None:
    with RawServer(b"") as raw:
        err = fetch_error(settings(transport), raw.url())
    assert (err.stage, err.url) == ("protocol", raw.url())
    assert "disconnected" in str(err)


@TRANSPORTS
@pytest.mark.parametrize(
    "reply",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc",
    ],
    ids=["status-line", "chunk-size"],
)
def test_malformed_response_is_a_protocol_error(transport: str, reply: bytes) -> None:
    with RawServer(reply) as raw:
        err = fetch_error(settings(transport), raw.url())
    assert (err.stage, err.url) == ("protocol", raw.url())


@TRANSPORTS
def test_truncated_body_is_an_error_naming_the_feed(transport: str) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n<rss>"
    with RawServer(reply) as raw:
        err = fetch_error(settings(transport), raw.url())
    # aiohttp calls it an incomplete payload, httpx a protocol violation.
    assert err.stage == {"aiohttp": "network", "httpx": "protocol"}[transport]
    assert err.url == raw.url()


@TRANSPORTS
@pytest.mark.parametrize("guard", [True, False], ids=["guarded", "private-allowed"])
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http:///feed.xml", "the URL has no host"),
        ("http://127.0.0.1:99999/feed.xml", "Port out of range 0-65535"),
    ],
)
def test_unusable_url_is_a_url_error(
    transport: str, guard: bool, url: str, expected: str
) -> None:
    """The same answer whether or not the address check looked at the URL first."""
    err = fetch_error(settings(transport, allow_private_addresses=not guard), url)
    assert (err.stage, err.url) == ("url", url)
    assert expected in str(err)


@TRANSPORTS
def test_redirect_to_an_impossible_port_is_a_url_error(
    server: FeedServer, transport: str
) -> None:
    server.redirect("/feed.xml", "http://127.0.0.1:70000/feed.xml", status=301)
    err = fetch_error(settings(transport), server.url("/feed.xml"))
    assert (err.stage, err.url) == ("url", server.url("/feed.xml"))
    assert "after redirect to http://127.0.0.1:70000/feed.xml" in str(err)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    made = make_self_signed_cert(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("openssl is not installed")
    return made


class _Feed(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(RSS)))
        self.end_headers()
        self.wfile.write(RSS)


@pytest.fixture
def tls_url(certificate: tuple[Path, Path]) -> Iterator[str]:
    """An https feed on 127.0.0.1 with a self-signed certificate."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Feed)
    httpd.daemon_threads = True
    httpd.socket = server_tls_context(*certificate).wrap_socket(
        httpd.socket, server_side=True
    )
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}/feed.xml"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@TRANSPORTS
def test_untrusted_certificate_is_a_connect_error(tls_url: str, transport: str) -> None:
    err = fetch_error(settings(transport), tls_url)
    assert (err.stage, err.url) == ("connect", tls_url)
    assert "certificate verify failed" in str(err)
    assert "SSLContext object" not in str(err)


# -- AiohttpTransport on its own -------------------------------------------------------


def test_transport_sends_the_request_headers_only(server: FeedServer) -> None:
    server.set("/feed.xml", RSS)

    async def go() -> httpx.Response:
        transport = AiohttpTransport()
        try:
            request = httpx.Request("GET", server.url("/feed.xml"))
            response = await transport.handle_async_request(request)
            await response.aread()
            await response.aclose()
            return response
        finally:
            await transport.aclose()

    response = run(go())
    assert response.status_code == 200 and response.content == RSS
    assert response.reason_phrase == "OK"
    assert response.http_version == "HTTP/1.1"
    [sent] = server.requests
    # No Accept, Accept-Encoding or User-Agent of aiohttp's own.
    assert set(sent.headers) == {"host"}


def test_transport_does_not_decompress(server: FeedServer) -> None:
    server.set("/feed.xml", RSS * 50)

    async def go() -> tuple[httpx.Response, bytes]:
        async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
            headers = {"Accept-Encoding": "gzip"}
            async with client.stream(
                "GET", server.url("/feed.xml"), headers=headers
            ) as r:
                raw = b"".join([chunk async for chunk in r.aiter_raw()])
            return r, raw

    response, raw = run(go())
    assert response.headers["content-encoding"] == "gzip"
    assert raw[:2] == b"\x1f\x8b"
    assert gzip.decompress(raw) == RSS * 50


def test_transport_streams_in_bounded_chunks(server: FeedServer) -> None:
    size = 1_000_000
    server.set_stream("/big.xml", size, content_length=False)

    async def go() -> list[int]:
        transport = AiohttpTransport()
        try:
            request = httpx.Request("GET", server.url("/big.xml"))
            response = await transport.handle_async_request(request)
            try:
                return [len(chunk) async for chunk in response.aiter_raw()]
            finally:
                await response.aclose()
        finally:
            await transport.aclose()

    sizes = run(go())
    assert sum(sizes) == size
    assert max(sizes) <= 64 * 1024


def test_transport_posts_a_body_through_an_httpx_client() -> None:
    with WebhookReceiver() as hook:

        async def go() -> int:
            async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
                r = await client.post(hook.url(), json={"feed": 1})
                return r.status_code

        assert run(go()) == 200
        [received] = hook.wait_for(1)
    assert received.method == "POST"
    assert received.json() == {"feed": 1}
    assert received.headers["content-type"] == "application/json"


def test_transport_read_timeout(server: FeedServer) -> None:
    server.set("/slow.xml", RSS)
    server.slow("/slow.xml", 3)

    async def go() -> None:
        transport = AiohttpTransport()
        try:
            timeout = httpx.Timeout(5.0, read=0.2).as_dict()
            request = httpx.Request(
                "GET", server.url("/slow.xml"), extensions={"timeout": timeout}
            )
            await transport.handle_async_request(request)
        finally:
            await transport.aclose()

    with pytest.raises(httpx.ReadTimeout):
        run(go())


def test_transport_connection_refused() -> None:
    port = closed_port()

    async def go() -> None:
        transport = AiohttpTransport()
        try:
            url = f"http://127.0.0.1:{port}/feed.xml"
            request = httpx.Request("GET", url, extensions=TIMEOUTS)
            await transport.handle_async_request(request)
        finally:
            await transport.aclose()

    with pytest.raises(httpx.ConnectError, match=f"127.0.0.1:{port}"):
        run(go())


def test_transport_tls_context_only_when_https_needs_one(
    server: FeedServer, tls_url: str, certificate: tuple[Path, Path]
) -> None:
    """White-box: the CA bundle is loaded on the first https request, not before;
    a given context is used as is."""
    server.set("/feed.xml", RSS)

    async def plain_then_https() -> tuple[object, object]:
        transport = AiohttpTransport()
        try:
            await get(transport, server.url("/feed.xml"))
            before = transport._ssl
            with pytest.raises(httpx.ConnectError):
                await get(transport, tls_url)
            return before, transport._ssl
        finally:
            await transport.aclose()

    async def trusted() -> bytes:
        transport = AiohttpTransport(verify=client_tls_context(certificate[0]))
        try:
            return await get(transport, tls_url)
        finally:
            await transport.aclose()

    before, after = run(plain_then_https())
    assert before is None
    assert isinstance(after, ssl.SSLContext)
    assert run(trusted()) == RSS


async def get(transport: httpx.AsyncBaseTransport, url: str) -> bytes:
    request = httpx.Request("GET", url, extensions=TIMEOUTS)
    response = await transport.handle_async_request(request)
    try:
        return await response.aread()
    finally:
        await response.aclose()


def test_transport_close_before_use_and_twice() -> None:
    """A transport never used has nothing to close; closing twice is harmless."""

    async def go() -> None:
        t = AiohttpTransport()
        await t.aclose()
        await t.aclose()

    run(go())


DEFAULT_CONTEXT_GET = """\
import asyncio, os, ssl, sys
from worker.fetch import AiohttpTransport

AiohttpTransport()  # imports aiohttp
import aiohttp
import aiohttp.connector

assert "set_default_verify_paths" not in ssl.SSLContext.__dict__  # restored
assert type(ssl.create_default_context()) is ssl.SSLContext
verified = aiohttp.connector._SSL_CONTEXT_VERIFIED
assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname
# OpenSSL reads SSL_CERT_FILE when the store is loaded: this one counts only if
# nothing was loaded at import.
os.environ["SSL_CERT_FILE"] = sys.argv[3]


async def main() -> None:
    async with aiohttp.ClientSession() as session:  # aiohttp's default context
        try:
            async with session.get(sys.argv[1]) as r:
                print(r.status, await r.read() == sys.argv[2].encode())
        except aiohttp.ClientConnectorCertificateError as e:
            print("refused", "certificate verify failed" in str(e))


asyncio.run(main())
"""


def test_aiohttp_default_contexts_load_the_ca_store_on_first_use(
    tls_url: str, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    """aiohttp's own default contexts, whose CA loading the transport defers from
    the import to the first handshake, trust the default CA store (SSL_CERT_FILE)
    as it is then, and only it."""

    (tmp_path / "other").mkdir()
    other = make_self_signed_cert(tmp_path / "other")
    assert other is not None

    def get(ca_file: Path) -> str:
        # At import, the store would be the other certificate.
        env = {**os.environ, "SSL_CERT_FILE": str(other[0])}
        env["SSL_CERT_DIR"] = str(tmp_path)  # no hashed certificates: the file alone
        args = [tls_url, RSS.decode(), str(ca_file)]
        res = subprocess.run(
            [sys.executable, "-c", DEFAULT_CONTEXT_GET, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    assert get(certificate[0]) == "200 True"
    assert get(other[0]) == "refused True"
