"""Tests of the fetch stage against a real loopback HTTP server (tests/feedserver.py)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import ipaddress
import socket
import time
import zlib
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from feedserver import FeedServer

from worker.config import FetchSettings
from worker.errors import FetchError
from worker.fetch import (
    AddressRefused,
    Fetched,
    Fetcher,
    IPAddress,
    NotModified,
    _Decoder,
    _TooLarge,
    allowed_addresses,
    build_user_agent,
    check_url_address,
    freshness_lifetime,
    is_public_address,
    parse_retry_after,
)

T = TypeVar("T")

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Test</title>
<item><title>Xi meets Yoon</title><guid>a1</guid></item>
</channel></rss>
"""
CAP = 10 * 1024


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def settings(**kw: Any) -> FetchSettings:
    base: dict[str, Any] = {
        "allow_private_addresses": True,
        "max_body_bytes": CAP,
        "timeout": 5,
        "connect_timeout": 2,
    }
    base.update(kw)
    return FetchSettings(**base)


async def fetch_once(
    url: str, s: FetchSettings | None = None, **kw: Any
) -> Fetched | NotModified:
    async with Fetcher(s or settings(), version="9.9") as f:
        return await f.fetch(url, **kw)


def fetch_error(url: str, s: FetchSettings | None = None, **kw: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        run(fetch_once(url, s, **kw))
    return info.value


def test_200_with_validators_then_304(server: FeedServer) -> None:
    server.set("/feed.xml", RSS, headers={"Cache-Control": "max-age=300"})
    url = server.url("/feed.xml")

    async def scenario() -> tuple[Fetched | NotModified, Fetched | NotModified]:
        async with Fetcher(settings(), version="9.9") as f:
            first = await f.fetch(url)
            assert isinstance(first, Fetched)
            second = await f.fetch(
                url, etag=first.etag, last_modified=first.last_modified
            )
            return first, second

    first, second = run(scenario())
    assert isinstance(first, Fetched)
    assert first.status == 200
    assert first.url == url
    assert first.body == RSS
    assert first.body_hash == hashlib.sha256(RSS).hexdigest()
    assert first.etag == f'"{hashlib.sha256(RSS).hexdigest()[:16]}"'
    assert first.last_modified is not None and first.last_modified.endswith("GMT")
    assert first.content_type == "application/rss+xml"
    assert first.permanent_redirect is None
    assert first.headers["cache-control"] == "max-age=300"
    assert isinstance(second, NotModified)
    assert second.url == url
    assert second.etag == first.etag
    assert second.last_modified == first.last_modified
    _, _, sent = server.requests[1]
    assert sent["if-none-match"] == first.etag
    assert sent["if-modified-since"] == first.last_modified


def test_if_modified_since_alone_gives_304(server: FeedServer) -> None:
    server.set("/feed.xml", RSS, etag=False)
    first = run(fetch_once(server.url("/feed.xml")))
    assert isinstance(first, Fetched) and first.etag is None
    again = run(fetch_once(server.url("/feed.xml"), last_modified=first.last_modified))
    assert isinstance(again, NotModified)
    changed = run(
        fetch_once(
            server.url("/feed.xml"), last_modified="Thu, 01 Jan 1998 00:00:00 GMT"
        )
    )
    assert isinstance(changed, Fetched) and changed.body == RSS


def test_changed_document_is_fetched_again(server: FeedServer) -> None:
    server.set("/feed.xml", RSS)
    first = run(fetch_once(server.url("/feed.xml")))
    assert isinstance(first, Fetched)
    server.set("/feed.xml", RSS.replace(b"Yoon", b"Lee"))
    second = run(fetch_once(server.url("/feed.xml"), etag=first.etag))
    assert isinstance(second, Fetched)
    assert second.body_hash != first.body_hash


def test_gzip_response_is_decoded(server: FeedServer) -> None:
    body = RSS + b"<!--" + b" padding " * 500 + b"-->"
    server.set("/feed.xml", body)
    got = run(fetch_once(server.url("/feed.xml")))
    assert isinstance(got, Fetched)
    assert got.body == body
    _, _, sent = server.requests[0]
    assert sent["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize("wbits", [15, -15], ids=["zlib", "raw"])
def test_deflate_response_is_decoded(server: FeedServer, wbits: int) -> None:
    c = zlib.compressobj(wbits=wbits)
    server.set("/feed.xml", c.compress(RSS) + c.flush(), encoding="deflate")
    got = run(fetch_once(server.url("/feed.xml")))
    assert isinstance(got, Fetched) and got.body == RSS


def test_corrupt_gzip_is_a_decode_error(server: FeedServer) -> None:
    server.set("/bad.xml", gzip.compress(RSS * 20)[:-30], encoding="gzip")
    err = fetch_error(server.url("/bad.xml"))
    assert err.stage == "decode"
    assert server.url("/bad.xml") in str(err)


def test_unsupported_content_encoding(server: FeedServer) -> None:
    server.set("/br.xml", b"\x0b\x02\x80", encoding="br")
    err = fetch_error(server.url("/br.xml"))
    assert err.stage == "decode" and "'br'" in str(err)


@pytest.mark.parametrize("status", [404, 410, 500])
def test_http_error_status(server: FeedServer, status: int) -> None:
    server.fail("/feed.xml", status)
    err = fetch_error(server.url("/feed.xml"))
    assert err.stage == "status"
    assert err.status == status
    assert err.retry_after is None
    assert str(err).startswith(server.url("/feed.xml"))
    assert f"HTTP {status}" in str(err)


def test_fault_is_temporary(server: FeedServer) -> None:
    server.set("/feed.xml", RSS)
    server.fail("/feed.xml", 503, times=1)
    assert fetch_error(server.url("/feed.xml")).status == 503
    assert isinstance(run(fetch_once(server.url("/feed.xml"))), Fetched)


def test_429_retry_after_seconds(server: FeedServer) -> None:
    server.fail("/feed.xml", 429, headers={"Retry-After": "120"})
    err = fetch_error(server.url("/feed.xml"))
    assert (err.stage, err.status, err.retry_after) == ("status", 429, 120.0)
    assert "retry after 120s" in str(err)


def test_503_retry_after_http_date(server: FeedServer) -> None:
    when = datetime.now(UTC) + timedelta(seconds=90)
    server.fail("/feed.xml", 503, headers={"Retry-After": format_datetime(when, True)})
    err = fetch_error(server.url("/feed.xml"))
    assert err.status == 503
    assert err.retry_after is not None and 80 <= err.retry_after <= 90


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:02:00 GMT", now=now) == 120.0
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_declared_length_over_cap_is_refused_unread(server: FeedServer) -> None:
    size = 50_000_000
    server.set_stream("/big.xml", size)
    err = fetch_error(server.url("/big.xml"))
    assert err.stage == "size"
    assert "Content-Length 50000000" in str(err)
    assert server.wait_stream_done("/big.xml")
    assert server.sent("/big.xml") < size // 2


def test_streamed_body_over_cap_is_aborted(server: FeedServer) -> None:
    size = 50_000_000
    server.set_stream("/big.xml", size, content_length=False)
    err = fetch_error(server.url("/big.xml"))
    assert err.stage == "size"
    assert f"limit of {CAP} bytes" in str(err)
    # The client hung up long before the end: the server could not write it all.
    assert server.wait_stream_done("/big.xml")
    assert server.sent("/big.xml") < size // 2


def test_gzip_bomb_over_decompression_cap(server: FeedServer) -> None:
    bomb = gzip.compress(b"\0" * 5_000_000, compresslevel=9)
    assert len(bomb) < CAP  # small on the wire, only the decoded size is over
    server.set("/bomb.xml", bomb, encoding="gzip")
    err = fetch_error(server.url("/bomb.xml"))
    assert err.stage == "size"
    assert "decompressed" in str(err)


def test_decoder_is_bounded_and_chunk_independent() -> None:
    data = RSS * 50
    gz = gzip.compress(data) + gzip.compress(b"second member")
    for size in (1, 7, 4096):
        d = _Decoder("gzip", 1_000_000)
        out = b"".join(d.feed(gz[i : i + size]) for i in range(0, len(gz), size))
        assert out + d.finish() == data + b"second member"
    d = _Decoder("gzip", 1000)
    with pytest.raises(_TooLarge):
        d.feed(gzip.compress(b"\0" * 10_000_000))


def test_redirect_chain_over_cap(server: FeedServer) -> None:
    for i in range(6):
        server.redirect(f"/r{i}", f"/r{i + 1}", status=302)
    server.set("/r6", RSS)
    err = fetch_error(server.url("/r0"), settings(max_redirects=3))
    assert err.stage == "redirect"
    assert "more than 3 redirects" in str(err)
    assert len(server.requests) == 4
    ok = run(fetch_once(server.url("/r0"), settings(max_redirects=6)))
    assert isinstance(ok, Fetched) and ok.url == server.url("/r6")
    assert ok.permanent_redirect is None


def test_301_sets_permanent_redirect(server: FeedServer) -> None:
    server.redirect("/old.xml", server.url("/new.xml"), status=301)
    server.set("/new.xml", RSS)
    got = run(fetch_once(server.url("/old.xml")))
    assert isinstance(got, Fetched)
    assert got.url == server.url("/new.xml")
    assert got.permanent_redirect == server.url("/new.xml")


def test_permanent_redirect_stops_at_first_temporary_hop(server: FeedServer) -> None:
    server.redirect("/a", "/b", status=308)
    server.redirect("/b", "/c", status=307)
    server.redirect("/c", "/d", status=301)
    server.set("/d", RSS)
    got = run(fetch_once(server.url("/a")))
    assert isinstance(got, Fetched)
    assert got.url == server.url("/d")
    assert got.permanent_redirect == server.url("/b")


def test_redirect_to_file_url_refused(server: FeedServer) -> None:
    server.redirect("/sneaky", "file:///etc/passwd", status=302)
    err = fetch_error(server.url("/sneaky"))
    assert err.stage == "redirect" and "non-HTTP" in str(err)


def test_error_after_redirect_names_feed_url_and_hop(server: FeedServer) -> None:
    server.redirect("/feed.xml", "/gone.xml", status=302)
    server.fail("/gone.xml", 410)
    err = fetch_error(server.url("/feed.xml"))
    assert (err.url, err.stage, err.status) == (server.url("/feed.xml"), "status", 410)
    assert str(err) == (
        f"{server.url('/feed.xml')}: status: after redirect to "
        f"{server.url('/gone.xml')}: HTTP 410 Gone"
    )


def test_timeout(server: FeedServer) -> None:
    server.set("/slow.xml", RSS)
    server.slow("/slow.xml", 5)
    started = time.monotonic()
    err = fetch_error(server.url("/slow.xml"), settings(timeout=0.3))
    assert err.stage == "timeout"
    assert time.monotonic() - started < 3


def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = fetch_error(f"http://127.0.0.1:{port}/feed.xml")
    assert err.stage == "connect"
    assert f"127.0.0.1:{port}" in str(err)


def test_private_address_refused_by_default(server: FeedServer) -> None:
    server.set("/feed.xml", RSS)
    err = fetch_error(server.url("/feed.xml"), FetchSettings())
    assert err.stage == "address"
    assert "127.0.0.1" in str(err) and "loopback" in str(err)
    assert "fetch.allow_private_addresses" in str(err)
    assert server.requests == []  # refused before any connection
    allowed = run(fetch_once(server.url("/feed.xml"), settings()))
    assert isinstance(allowed, Fetched)


def test_redirect_to_disallowed_address_refused(server: FeedServer) -> None:
    # The server is on 127.0.0.1, which this policy allows; 127.0.0.2 it does not,
    # so the first hop is fetched and the redirect hop is refused before connecting.
    only_server = ipaddress.ip_address("127.0.0.1")

    def policy(ip: IPAddress) -> bool:
        return ip == only_server

    server.redirect("/feed.xml", f"http://127.0.0.2:{server.port}/inner", status=302)

    async def scenario() -> None:
        s = settings(allow_private_addresses=False)
        async with Fetcher(s, version="1", allowed_address=policy) as f:
            await f.fetch(server.url("/feed.xml"))

    with pytest.raises(FetchError) as info:
        run(scenario())
    assert info.value.stage == "address"
    assert info.value.url == server.url("/feed.xml")
    assert f"after redirect to http://127.0.0.2:{server.port}/inner" in str(info.value)
    assert "refusing to fetch from 127.0.0.2" in str(info.value)
    assert [r.path for r in server.requests] == ["/feed.xml"]


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/feed",
        "http://127.0.0.1/feed",
        "http://127.1.2.3:8080/feed",
        "http://[::1]/feed",
        "http://10.1.2.3/feed",
        "http://172.16.0.1/feed",
        "http://192.168.1.10/feed",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/feed",
        "http://[fd00::1]/feed",
        "http://224.0.0.1/feed",
        "http://0.0.0.0/feed",
        "http://100.64.0.1/feed",
        "http://240.0.0.1/feed",
        "http://[::ffff:127.0.0.1]/feed",
        "http://[2002:7f00:1::]/feed",
    ],
)
def test_check_url_address_refuses_non_public(url: str) -> None:
    with pytest.raises(FetchError) as info:
        run(check_url_address(url))
    assert info.value.stage == "address"
    assert info.value.url == url
    assert "refusing to fetch" in str(info.value)


def test_metadata_address_named() -> None:
    with pytest.raises(FetchError, match="cloud metadata"):
        run(check_url_address("http://169.254.169.254/"))


@pytest.mark.parametrize(
    "url", ["http://93.184.216.34/feed", "https://[2606:4700:4700::1111]/feed"]
)
def test_check_url_address_allows_public(url: str) -> None:
    run(check_url_address(url))
    assert is_public_address(ipaddress.ip_address(url.split("/")[2].strip("[]")))


def test_check_url_address_without_host() -> None:
    with pytest.raises(FetchError) as info:
        run(check_url_address("http:///feed"))
    assert info.value.stage == "url"


def test_user_agent_sent(server: FeedServer) -> None:
    server.set("/feed.xml", RSS)
    s = settings(contact="ops@example.org")
    run(fetch_once(server.url("/feed.xml"), s))
    _, _, sent = server.requests[0]
    expected = (
        "feedwatch/9.9 (+https://github.com/feedwatch/feedwatch; +ops@example.org)"
    )
    assert sent["user-agent"] == expected
    assert build_user_agent(FetchSettings(user_agent="bot/{version}"), "2") == "bot/2"
    assert (
        build_user_agent(FetchSettings(user_agent="bot/{version}", contact="a@b"), "2")
        == "bot/2 (+a@b)"
    )
    sneaky = FetchSettings(user_agent="bot\r\nX-Evil: 1")
    assert "\n" not in build_user_agent(sneaky, "1")


def test_non_http_url_refused() -> None:
    err = fetch_error("ftp://example.org/feed.xml")
    assert err.stage == "url"


def test_file_urls(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(RSS)
    url = path.as_uri()
    refused = fetch_error(url)
    assert refused.stage == "url" and "file://" in str(refused)

    async def read(u: str, s: FetchSettings) -> Fetched | NotModified:
        async with Fetcher(s, version="1", allow_files=True) as f:
            return await f.fetch(u)

    got = run(read(url, settings()))
    assert isinstance(got, Fetched)
    assert (got.status, got.body, got.etag, got.url) == (200, RSS, None, url)
    assert got.body_hash == hashlib.sha256(RSS).hexdigest()

    big = tmp_path / "big.xml"
    big.write_bytes(b"x" * (CAP + 1))
    with pytest.raises(FetchError) as info:
        run(read(big.as_uri(), settings()))
    assert info.value.stage == "size"

    with pytest.raises(FetchError) as info:
        run(read((tmp_path / "missing.xml").as_uri(), settings()))
    assert info.value.stage == "file" and "missing.xml" in str(info.value)


def test_many_feeds_fetched_concurrently(server: FeedServer) -> None:
    for i in range(30):
        server.set(f"/f{i}.xml", RSS + f"<!-- {i} -->".encode())

    async def scenario() -> list[Fetched | NotModified]:
        async with Fetcher(settings(), version="1", max_connections=8) as f:
            return await asyncio.gather(
                *(f.fetch(server.url(f"/f{i}.xml")) for i in range(30))
            )

    results = run(scenario())
    assert all(isinstance(r, Fetched) and r.status == 200 for r in results)
    assert len({r.url for r in results}) == 30


def test_unsafe_validators_are_not_sent(server: FeedServer) -> None:
    server.set("/feed.xml", RSS)
    got = run(fetch_once(server.url("/feed.xml"), etag='"a"\r\nX-Evil: 1'))
    assert isinstance(got, Fetched)
    _, _, sent = server.requests[0]
    assert "if-none-match" not in sent and "x-evil" not in sent


# -- fetching at scale -----------------------------------------------------------------


def test_freshness_lifetime() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    assert freshness_lifetime({"cache-control": "public, max-age=600"}) == 600
    assert freshness_lifetime({"cache-control": "max-age=600", "age": "100"}) == 500
    assert freshness_lifetime({"cache-control": "no-store, max-age=600"}) is None
    assert freshness_lifetime({"cache-control": "private"}) is None
    assert freshness_lifetime({}) is None
    expires = format_datetime(now + timedelta(hours=2), usegmt=True)
    assert freshness_lifetime({"expires": expires}, now=now) == 7200
    dated = {"expires": expires, "date": format_datetime(now + timedelta(hours=1))}
    assert freshness_lifetime(dated, now=now) == 3600
    assert freshness_lifetime({"expires": "0"}, now=now) == 0.0
    # max-age wins over Expires (RFC 9111 5.3)
    assert freshness_lifetime({"cache-control": "max-age=5", "expires": expires}) == 5


def test_not_modified_carries_cache_headers(server: FeedServer) -> None:
    server.set("/a.xml", RSS, headers={"Cache-Control": "max-age=900"})
    first = run(fetch_once(server.url("/a.xml")))
    assert isinstance(first, Fetched)
    assert first.headers["cache-control"] == "max-age=900"
    server.set("/a.xml", RSS, headers={"Cache-Control": "max-age=900"})
    again = run(fetch_once(server.url("/a.xml"), etag=first.etag))
    assert isinstance(again, NotModified)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_both_transports_fetch_gzip_and_304(server: FeedServer, transport: str) -> None:
    server.set("/a.xml", RSS)
    s = settings(transport=transport)
    first = run(fetch_once(server.url("/a.xml"), s))
    assert isinstance(first, Fetched) and first.body == RSS
    assert (
        server.requests_for("/a.xml")[0].headers["accept-encoding"].startswith("gzip")
    )
    again = run(fetch_once(server.url("/a.xml"), s, etag=first.etag))
    assert isinstance(again, NotModified)
    server.fail("/b.xml", 503, headers={"Retry-After": "30"})
    err = fetch_error(server.url("/b.xml"), s)
    assert (err.stage, err.status, err.retry_after) == ("status", 503, 30.0)


def _elapsed_for_three_slow_feeds(server: FeedServer, per_host: int) -> float:
    for n in range(3):
        server.set(f"/s{n}.xml", RSS)
        server.slow(f"/s{n}.xml", 0.3)

    async def go() -> float:
        async with Fetcher(settings(per_host_concurrency=per_host), version="1") as f:
            started = time.monotonic()
            await asyncio.gather(*(f.fetch(server.url(f"/s{n}.xml")) for n in range(3)))
            return time.monotonic() - started

    return run(go())


def test_per_host_limit_serialises_requests_to_one_host(server: FeedServer) -> None:
    assert _elapsed_for_three_slow_feeds(server, per_host=1) >= 0.85
    assert _elapsed_for_three_slow_feeds(server, per_host=3) < 0.85


# -- DNS rebinding: the connection is filtered by the guard, not only the check --------

PUBLIC = "93.184.216.34"


class FakeDNS:
    """A name resolver that answers from a script: the n-th lookup of a name gets
    its n-th answer (the last one repeats), like a hostile DNS server with TTL 0.

    A fake, because no real hostile DNS server can run on loopback; it replaces
    getaddrinfo through ``Fetcher(resolve=...)`` for both the URL check and the
    transport's own lookup, and records every lookup it answers.
    """

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


async def fetch_with(
    url: str, s: FetchSettings, dns: FakeDNS, **kw: Any
) -> Fetched | NotModified:
    async with Fetcher(s, version="1", resolve=dns, **kw) as f:
        return await f.fetch(url)


TRANSPORTS = pytest.mark.parametrize("transport", ["aiohttp", "httpx"])


@TRANSPORTS
def test_rebinding_to_loopback_is_refused_at_connect(
    server: FeedServer, transport: str
) -> None:
    """The check sees a public address, the connection's lookup sees 127.0.0.1."""
    server.set("/feed.xml", RSS)
    dns = FakeDNS({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    url = f"http://rebind.test:{server.port}/feed.xml"
    s = settings(allow_private_addresses=False, transport=transport)
    with pytest.raises(FetchError) as info:
        run(fetch_with(url, s, dns))
    err = info.value
    assert (err.stage, err.url) == ("address", url)
    assert "refusing to connect to rebind.test (127.0.0.1: loopback" in str(err)
    assert "fetch.allow_private_addresses" in str(err)
    assert dns.lookups == ["rebind.test", "rebind.test"]  # the check, the connect
    assert server.requests == []


@TRANSPORTS
def test_private_addresses_allowed_connects_through_the_resolver(
    server: FeedServer, transport: str
) -> None:
    """With fetch.allow_private_addresses the same name fetches (no check, no
    filter). The script answers 127.0.0.1 only: an unfiltered public first answer
    would make the test connect off loopback."""
    server.set("/feed.xml", RSS)
    dns = FakeDNS({"rebind.test": [["127.0.0.1"]]})
    url = f"http://rebind.test:{server.port}/feed.xml"
    got = run(fetch_with(url, settings(transport=transport), dns))
    assert isinstance(got, Fetched) and got.body == RSS
    assert dns.lookups == ["rebind.test"]  # the connection's lookup only
    assert server.requests[0].headers["host"] == f"rebind.test:{server.port}"


@TRANSPORTS
def test_rebinding_on_a_redirect_hop_is_refused(
    server: FeedServer, transport: str
) -> None:
    """Every hop is checked and filtered: the second host rebinds to 127.0.0.2."""
    only_server = ipaddress.ip_address("127.0.0.1")

    def policy(ip: IPAddress) -> bool:
        return ip == only_server

    dns = FakeDNS(
        {"ok.test": [["127.0.0.1"]], "evil.test": [["127.0.0.1"], ["127.0.0.2"]]}
    )
    server.redirect("/feed.xml", f"http://evil.test:{server.port}/inner", status=302)
    server.set("/inner", RSS)
    url = f"http://ok.test:{server.port}/feed.xml"
    s = settings(allow_private_addresses=False, transport=transport)
    with pytest.raises(FetchError) as info:
        run(fetch_with(url, s, dns, allowed_address=policy))
    err = info.value
    assert (err.stage, err.url) == ("address", url)
    assert f"after redirect to http://evil.test:{server.port}/inner" in str(err)
    assert "evil.test (127.0.0.2: loopback" in str(err)
    assert [r.path for r in server.requests] == ["/feed.xml"]


@TRANSPORTS
def test_connect_uses_only_the_allowed_addresses(
    server: FeedServer, transport: str
) -> None:
    """A connect-time answer mixing refused and allowed addresses connects to an
    allowed one."""
    allowed = ipaddress.ip_address("127.0.0.1")
    dns = FakeDNS({"mixed.test": [["127.0.0.1"], ["127.0.0.2", "127.0.0.1"]]})
    server.set("/feed.xml", RSS)
    url = f"http://mixed.test:{server.port}/feed.xml"
    s = settings(allow_private_addresses=False, transport=transport)
    got = run(fetch_with(url, s, dns, allowed_address=lambda ip: ip == allowed))
    assert isinstance(got, Fetched) and got.body == RSS


def test_allowed_addresses_filters_in_order_and_names_refusals() -> None:
    dns = FakeDNS({"h.test": [["10.0.0.1", PUBLIC, "::1", "2606:4700::1111"]]})
    kept = run(allowed_addresses("h.test", 80, allowed=is_public_address, resolve=dns))
    assert kept == [PUBLIC, "2606:4700::1111"]
    dns = FakeDNS({"h.test": [["10.0.0.1", "::1", "169.254.169.254"]]})
    with pytest.raises(AddressRefused) as info:
        run(allowed_addresses("h.test", 80, allowed=is_public_address, resolve=dns))
    assert info.value.host == "h.test"
    assert info.value.refused == (
        ("10.0.0.1", "private"),
        ("::1", "loopback"),
        ("169.254.169.254", "cloud metadata"),
    )
    assert "refusing to connect to h.test (10.0.0.1: private" in str(info.value)


@TRANSPORTS
def test_unresolvable_name_at_connect_is_a_connect_error(transport: str) -> None:
    # The check resolves, the connection's lookup fails: a connect error, not a crash.
    dns = FakeDNS({"gone.test": [[PUBLIC]]})

    async def flaky(host: str, port: int) -> list[str]:
        if dns.lookups:
            raise socket.gaierror(socket.EAI_NONAME, "gone now")
        return await dns(host, port)

    s = settings(allow_private_addresses=False, transport=transport)

    async def go() -> None:
        async with Fetcher(s, version="1", resolve=flaky) as f:
            await f.fetch("http://gone.test:8/feed.xml")

    with pytest.raises(FetchError) as info:
        run(go())
    assert info.value.stage == "connect"
    assert "gone now" in str(info.value)
