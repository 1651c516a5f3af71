"""fetch.ca_file: CAs trusted besides the default ones, against real TLS servers on
127.0.0.1 whose certificate a private CA (made with the openssl command) issued:
refused without it, fetched with it on both transports, directly and through a
CONNECT proxy, and by the WebSub hub client; a bad file stops the config load;
the default public CAs are still trusted.

feeds.example is resolved to 127.0.0.1 by the test's resolver, or by the proxy.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import write_config
from test_fetch_proxy import (
    PROXY_VARIABLES,
    RSS,
    TRANSPORTS,
    ForwardProxy,
    TlsOrigin,
    _TlsFeed,
    fetch_all,
    fetch_error,
    run,
    serve_tls_origin,
    settings,
    table,
)

from worker.config import FetchSettings, load_settings
from worker.core import make_feedwatch
from worker.errors import ConfigError
from worker.fetch import AiohttpTransport, Fetched, tls_context
from worker.models import Feed, utcnow
from worker.store.base import SubscriptionState
from worker.websub import sync_subscriptions

RESOLVE = table(feeds_example="127.0.0.1")


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as p:
        yield p


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key): a private root CA and a
    certificate for feeds.example it issued."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed; cannot make a certificate")
    d = tmp_path_factory.mktemp("private-ca")
    ca, ca_key = d / "ca.pem", d / "ca-key.pem"
    cert, key, csr, ext = d / "cert.pem", d / "key.pem", d / "req.csr", d / "ext.cnf"
    ext.write_text(
        "subjectAltName=DNS:feeds.example\n"
        "basicConstraints=critical,CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for args in (
        [
            "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca),
            "-days", "2", "-subj", "/CN=Feedwatch Test Private Root CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ],
        [
            "req", "-new", *ec, "-keyout", str(key), "-out", str(csr),
            "-subj", "/CN=feeds.example",
        ],
        [
            "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
        ],
    ):  # fmt: skip
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)
    return ca, cert, key


class _Hub(_TlsFeed):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def origin(private_ca: tuple[Path, Path, Path]) -> Iterator[TlsOrigin]:
    """An https feed (and hub, for POST) on 127.0.0.1 with the private CA's
    certificate for feeds.example."""
    _, cert, key = private_ca
    yield from serve_tls_origin(_Hub, cert, key)


# -- feeds -----------------------------------------------------------------------------


@TRANSPORTS
@pytest.mark.parametrize("route", ["direct", "proxy"])
def test_private_ca_feed_is_refused_without_ca_file(
    origin: TlsOrigin, proxy: ForwardProxy, transport: str, route: str
) -> None:
    extra = {"proxy": proxy.url} if route == "proxy" else {}
    err = fetch_error(settings(transport, **extra), origin.url, RESOLVE)
    assert err.stage == "connect"
    assert "certificate verify failed" in str(err)
    assert origin.seen == []


@TRANSPORTS
@pytest.mark.parametrize("route", ["direct", "proxy"])
def test_private_ca_feed_is_fetched_with_ca_file(
    origin: TlsOrigin,
    proxy: ForwardProxy,
    private_ca: tuple[Path, Path, Path],
    transport: str,
    route: str,
) -> None:
    """As behind a TLS-intercepting proxy whose CA is given (``proxy``), or from a
    feed under a private CA (``direct``)."""
    extra = {"proxy": proxy.url} if route == "proxy" else {}
    s = settings(transport, ca_file=str(private_ca[0]), **extra)
    [got] = run(fetch_all(s, origin.url, resolve=RESOLVE))
    assert isinstance(got, Fetched)
    assert (got.status, got.body) == (200, RSS)
    assert len(origin.seen) == 1
    tunnels = [x.method for x in proxy.forwarded]
    assert tunnels == (["CONNECT"] if route == "proxy" else [])


# -- the WebSub hub client -------------------------------------------------------------


@pytest.mark.parametrize("trusted", [False, True])
async def test_hub_under_a_private_ca_needs_ca_file(
    tmp_path: Path,
    origin: TlsOrigin,
    private_ca: tuple[Path, Path, Path],
    trusted: bool,
) -> None:
    hub = f"https://feeds.example:{origin.port}/hub"
    fetch = settings("httpx", ca_file=str(private_ca[0]) if trusted else None)
    from websub.conftest import settings_for

    base = settings_for(f"sqlite:///{tmp_path / 'fw.db'}", tmp_path)
    with make_feedwatch(base.model_copy(update={"fetch": fetch})) as fw:
        fid = fw.store.add_feed(Feed(url="https://wire.example/feed.xml")).id
        assert fid is not None
        fw.store.record_hubs({fid: (hub, "https://wire.example/feed.xml")}, utcnow())
        report = await sync_subscriptions(
            fw, callback_base="https://feedwatch.example/websub", resolve=RESOLVE
        )
        if trusted:
            assert (report.requested, report.failed) == ({fid: "subscribe"}, {})
            assert len(origin.seen) == 1
            state = fw.store.get_subscription(fid).state
            assert state == SubscriptionState.PENDING
        else:
            assert report.requested == {}
            assert "certificate verify failed" in report.failed[fid]
            assert origin.seen == []


# -- the default CAs stay ------------------------------------------------------------


def _subjects(ctx: object) -> list[str]:
    assert hasattr(ctx, "get_ca_certs")
    return [
        "/".join(f"{k}={v}" for rdn in c["subject"] for k, v in rdn)
        for c in ctx.get_ca_certs()
    ]


def test_ca_file_adds_to_the_default_cas(private_ca: tuple[Path, Path, Path]) -> None:
    default = _subjects(tls_context())
    added = _subjects(tls_context(str(private_ca[0])))
    assert len(default) > 1
    assert sorted(added) == sorted(
        [*default, "commonName=Feedwatch Test Private Root CA"]
    )


@pytest.mark.parametrize("ca", [False, True])
def test_both_transports_trust_the_default_cas_and_ca_file(
    private_ca: tuple[Path, Path, Path], ca: bool
) -> None:
    """The context each transport verifies with: the public CAs, plus ca_file's."""
    ca_file = str(private_ca[0]) if ca else None
    aio = AiohttpTransport(ca_file=ca_file)
    assert aio._ssl is None  # made on the first https request, not before
    aio_ctx = aio._ssl_for(httpx.URL("https://feeds.example/"))
    from worker.fetch import guarded_transport

    hx = guarded_transport("httpx", allowed=None, ca_file=ca_file)
    hx_ctx = hx._pool._ssl_context  # type: ignore[attr-defined]
    for ctx in (aio_ctx, hx_ctx):
        subjects = _subjects(ctx)
        assert len(subjects) > 1
        assert ("commonName=Feedwatch Test Private Root CA" in subjects) is ca


# -- configuration ---------------------------------------------------------------------


def test_ca_file_is_checked_at_config_load(
    tmp_path: Path, private_ca: tuple[Path, Path, Path]
) -> None:
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n")
    key_only = private_ca[2]
    missing = tmp_path / "missing.pem"
    for path, expected in [
        (missing, "does not exist"),
        (tmp_path, "is a directory"),
        (not_pem, "holds no PEM CA certificate"),
        (key_only, "holds no PEM CA certificate"),
    ]:
        cfg = write_config(tmp_path / "c.json", {"fetch": {"ca_file": str(path)}})
        with pytest.raises(ConfigError) as info:
            load_settings(cfg)
        assert info.value.key_path == "fetch.ca_file"
        assert str(path) in str(info.value) and expected in str(info.value)
    cfg = write_config(tmp_path / "c.json", {"fetch": {"ca_file": str(private_ca[0])}})
    assert load_settings(cfg).fetch.ca_file == str(private_ca[0])
    assert FetchSettings(ca_file=" ").ca_file is None
