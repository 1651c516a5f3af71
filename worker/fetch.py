"""Fetch stage: a feed URL and its validators -> ``Fetched`` bytes or ``NotModified``.

Untrusted input: time, size, redirect and decompression caps and an SSRF guard;
failures raise ``FetchError(url, stage)`` (stages listed on ``Fetcher.fetch``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import logging
import os
import re
import socket
import ssl
import sys
import threading
import time
import types
import urllib.parse
import urllib.request
import zlib
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from worker.config import FetchSettings
from worker.errors import ConfigError, FeedwatchError, FetchError

if TYPE_CHECKING:
    import aiohttp
    import aiohttp.abc

__all__ = [
    "AddressRefused",
    "AiohttpTransport",
    "Fetched",
    "Fetcher",
    "IPAddress",
    "NotModified",
    "Proxy",
    "ProxyRoutes",
    "Resolve",
    "address_kind",
    "allowed_addresses",
    "build_user_agent",
    "check_url_address",
    "freshness_lifetime",
    "guarded_transport",
    "is_public_address",
    "parse_retry_after",
    "preload_transport",
    "proxy_routes",
    "system_resolve",
    "tls_context",
]

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]
"""A name resolver: (host, port) -> IP address strings in preference order; raises
OSError when the name does not resolve. ``system_resolve`` (getaddrinfo) by default."""

_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_PERMANENT_CODES = frozenset({301, 308})
# Response headers worth keeping for scheduling (cache-control, expires, retry-after),
# WebSub discovery (link) and diagnostics.
_KEPT_HEADERS = (
    "age",
    "cache-control",
    "content-location",
    "content-type",
    "date",
    "etag",
    "expires",
    "last-modified",
    "link",
    "retry-after",
)
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.9, "
    "application/json;q=0.8, */*;q=0.5"
)
_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Fetched:
    """A feed document as it came over the wire (decoded from gzip/deflate)."""

    url: str
    """The final URL, after redirects."""
    status: int
    body: bytes
    etag: str | None
    last_modified: str | None
    content_type: str | None
    body_hash: str
    """sha256 hex of ``body``: an unchanged body need not be parsed again."""
    permanent_redirect: str | None
    """Where the feed now lives if it was reached through 301/308 redirects only."""
    headers: Mapping[str, str]
    """Selected response headers, lower-case names (cache-control, expires, ...)."""


@dataclass(frozen=True, slots=True)
class NotModified:
    """The server answered 304: the document is unchanged since the validators."""

    url: str
    etag: str | None
    last_modified: str | None
    headers: Mapping[str, str] = field(default_factory=dict)
    """Selected response headers of the 304 (cache-control, expires, ...)."""


def build_user_agent(settings: FetchSettings, version: str) -> str:
    """The User-Agent: the template with ``{version}``, plus ``; +contact`` if set."""
    agent = settings.user_agent.replace("{version}", version)
    if settings.contact:
        contact = f"+{settings.contact.strip()}"
        if agent.endswith(")"):
            agent = f"{agent[:-1]}; {contact})"
        else:
            agent = f"{agent} ({contact})"
    # A header value must not carry CR/LF or other control characters.
    return _CONTROL_CHARS.sub(" ", agent).strip()


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None if
    absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.I)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:[=,]|$)", re.I)


def freshness_lifetime(
    headers: Mapping[str, str], *, now: datetime | None = None
) -> float | None:
    """Seconds the response stays fresh (RFC 9111 4.2.1): Cache-Control max-age
    minus Age, else Expires minus Date; None if the headers give no lifetime."""
    control = headers.get("cache-control", "")
    if _NO_CACHE.search(control):
        return None
    m = _MAX_AGE.search(control)
    if m:
        age = headers.get("age", "").strip()
        return max(0.0, float(m.group(1)) - (float(age) if age.isdigit() else 0.0))
    expires = headers.get("expires")
    if not expires:
        return None
    try:
        until = parsedate_to_datetime(expires)
    except (TypeError, ValueError, IndexError):
        return 0.0  # an invalid Expires means "already expired" (RFC 9111 5.3)
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    base = now or datetime.now(UTC)
    date = headers.get("date")
    if date:
        try:
            base = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            pass
        if base.tzinfo is None:
            base = base.replace(tzinfo=UTC)
    return max(0.0, (until - base).total_seconds())


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address hidden in an IPv4-mapped, 6to4 or Teredo IPv6 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
    return ip


def address_kind(ip: IPAddress) -> str | None:
    """Why an address is not public ("loopback", "private", ...), or None if it is."""
    ip = _unwrap(ip)
    if ip in _METADATA_ADDRESSES:
        return "cloud metadata"
    checks = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "non-global"),
    )
    for failed, kind in checks:
        if failed:
            return kind
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True for a globally routable unicast address (the SSRF guard's default policy)."""
    return address_kind(ip) is None


def _parse_ip(text: str) -> IPAddress:
    # getaddrinfo may report IPv6 link-local addresses with a zone ("fe80::1%eth0").
    return ipaddress.ip_address(text.split("%", 1)[0])


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses getaddrinfo gives for a host, in its order, without repeats."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


_PRIVATE_HINT = (
    "feeds on private networks are refused unless fetch.allow_private_addresses is true"
)


async def check_url_address(
    url: str,
    *,
    allowed: Callable[[IPAddress], bool] = is_public_address,
    resolve: Resolve = system_resolve,
    unresolved_ok: bool = False,
) -> None:
    """Refuse (FetchError stage "address") a URL whose host resolves to any address
    ``allowed`` rejects; by default anything but public unicast (SSRF guard).

    A second lookup at connect time may answer differently (DNS rebinding): the
    transports of :func:`guarded_transport` filter what they connect to as well.
    ``unresolved_ok``: a name that does not resolve here passes (a proxy resolves
    it; networks that reach the internet through one often have no public DNS).
    """
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:
        raise FetchError(url, "url", f"not a valid URL: {e}") from e
    if not host:
        raise FetchError(url, "url", "the URL has no host")
    try:
        addresses = await resolve(host, port)
    except (OSError, UnicodeError) as e:
        if unresolved_ok:
            return
        raise FetchError(url, "connect", f"cannot resolve host {host!r}: {e}") from e
    for text in addresses:
        ip = _parse_ip(text)
        if not allowed(ip):
            kind = address_kind(ip) or "disallowed"
            shown = host if host == str(ip) else f"{host} ({ip})"
            raise FetchError(
                url,
                "address",
                f"refusing to fetch from {shown}: {kind} address; {_PRIVATE_HINT}",
            )


class AddressRefused(FeedwatchError):
    """Every address a host resolved to at connect time is refused by the guard.

    Raised by :func:`guarded_transport`'s transports through the httpx call; the
    fetch and WebSub code turn it into their own error naming the URL.
    """

    def __init__(self, host: str, refused: Sequence[tuple[str, str]]) -> None:
        self.host = host
        self.refused = tuple(refused)
        """(address, kind) pairs, e.g. ("127.0.0.1", "loopback")."""
        shown = ", ".join(f"{ip}: {kind}" for ip, kind in self.refused) or "none"
        super().__init__(
            f"refusing to connect to {host} ({shown} address); {_PRIVATE_HINT}"
        )


async def allowed_addresses(
    host: str,
    port: int,
    *,
    allowed: Callable[[IPAddress], bool],
    resolve: Resolve = system_resolve,
) -> list[str]:
    """Resolve ``host`` and keep the addresses ``allowed`` accepts, in order: what a
    guarded connection may use. Raises AddressRefused if none is left, OSError if
    the name does not resolve."""
    kept: list[str] = []
    refused: list[tuple[str, str]] = []
    for text in await resolve(host, port):
        try:
            ip = _parse_ip(text)
        except ValueError:
            refused.append((text, "unreadable"))
            continue
        if allowed(ip):
            kept.append(text)
        else:
            refused.append((str(ip), address_kind(ip) or "disallowed"))
    if not kept:
        raise AddressRefused(host, refused)
    return kept


@dataclass(frozen=True, slots=True)
class Proxy:
    """A forward proxy: where it is, safe to show, and its credentials, never shown."""

    url: str
    """``scheme://host:port``, without credentials."""
    source: str
    """Where it was set: ``fetch.proxy`` or the environment variable's name."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> tuple[str, int]:
        """(host, port) a transport connects to (host in lower case, no brackets)."""
        parts = urllib.parse.urlsplit(self.url)
        return (parts.hostname or "", parts.port or 80)


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ProxyRoutes:
    """Which proxy a URL goes through: the one for its scheme, unless its host is
    loopback (a proxy cannot reach this machine's) or matches ``no_proxy``."""

    http: Proxy | None
    https: Proxy | None
    no_proxy: tuple[str, ...] = ()
    """Entries as ``fetch.no_proxy`` takes them (names, addresses, networks, ``*``)."""
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)
    _everything: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names: list[str] = []
        networks: list[IPNetwork] = []
        for entry in self.no_proxy:
            host = entry.lower()
            if host.startswith("["):  # [v6] or [v6]:port
                host = host[1:].partition("]")[0]
            elif host.count(":") == 1:  # name:port or v4:port; any port matches
                host = host.partition(":")[0]
            try:
                networks.append(ipaddress.ip_network(host, strict=False))
                continue
            except ValueError:
                pass
            name = host.lstrip("*").strip(".")
            if name:
                try:  # httpx gives hosts in Unicode; xn-- entries must match them
                    name = name.encode("idna").decode("idna")
                except UnicodeError:
                    pass
                names.append(name)
        object.__setattr__(self, "_names", tuple(names))
        object.__setattr__(self, "_networks", tuple(networks))
        object.__setattr__(self, "_everything", "*" in self.no_proxy)

    @property
    def proxies(self) -> tuple[Proxy, ...]:
        """The distinct proxies in use."""
        return tuple(dict.fromkeys(p for p in (self.http, self.https) if p))

    def endpoints(self) -> frozenset[tuple[str, int]]:
        """The proxies' (host, port): the SSRF guard lets these be connected to."""
        return frozenset(p.endpoint for p in self.proxies)

    def select(self, url: httpx.URL) -> Proxy | None:
        """The proxy ``url`` goes through, or None to connect directly."""
        scheme = url.scheme
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or scheme not in ("http", "https") or self._direct(url.host):
            return None
        return proxy

    def _direct(self, host: str) -> bool:
        if self._everything:
            return True
        try:
            ip = _parse_ip(host)
        except ValueError:
            name = host.rstrip(".").lower()
            if name == "localhost" or name.endswith(".localhost"):
                return True
            return any(name == n or name.endswith(f".{n}") for n in self._names)
        return _unwrap(ip).is_loopback or any(ip in net for net in self._networks)


def proxy_routes(
    settings: FetchSettings, environ: Mapping[str, str] | None = None
) -> ProxyRoutes | None:
    """The proxies the settings give, None if every request goes directly.

    ``fetch.proxy`` serves both schemes; unset and with ``fetch.trust_env``, the
    environment's do as curl's would: ``http_proxy`` / ``https_proxy``, else
    ``all_proxy`` (lower case first, then upper). Hosts in ``fetch.no_proxy`` and,
    with ``trust_env``, ``no_proxy`` go directly. ConfigError naming the variable
    if one cannot be used (a SOCKS proxy, say).
    """
    env = os.environ if environ is None else environ
    http: Proxy | None = None
    https: Proxy | None = None
    if settings.proxy is not None:
        http = https = _proxy(settings.proxy.get_secret_value(), "fetch.proxy")
    elif settings.trust_env:
        fallback = _env_value(env, "all_proxy")
        for_http = _env_value(env, "http_proxy") or fallback
        for_https = _env_value(env, "https_proxy") or fallback
        http = _proxy(for_http[1], for_http[0]) if for_http else None
        https = _proxy(for_https[1], for_https[0]) if for_https else None
    if http is None and https is None:
        return None
    no_proxy = settings.no_proxy
    listed = _env_value(env, "no_proxy") if settings.trust_env else None
    if listed is not None:
        try:
            no_proxy += FetchSettings.split_no_proxy(listed[1])
        except ValueError as e:
            raise ConfigError(
                "environment", listed[0], f"{e}; {_ENV_PROXY_HINT}"
            ) from e
    return ProxyRoutes(http, https, no_proxy)


_ENV_PROXY_HINT = "fix the variable, or set fetch.trust_env: false to ignore it"


def _env_value(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(variable, value) of a proxy variable, lower case before upper (an empty
    lower-case one unsets it); None if unset."""
    for var in (name, name.upper()):
        if var in env:
            value = env[var].strip()
            return (var, value) if value else None
    return None


def _proxy(url: str, source: str) -> Proxy:
    try:
        bare, username, password = FetchSettings.split_proxy_url(url)
    except ValueError as e:
        if source == "fetch.proxy":
            raise ConfigError(None, "fetch.proxy", str(e)) from e
        raise ConfigError("environment", source, f"{e}; {_ENV_PROXY_HINT}") from e
    return Proxy(bare, source, username, password)


def _allow_all(ip: IPAddress) -> bool:
    return True


def _guarded_resolver(
    allowed: Callable[[IPAddress], bool],
    resolve: Resolve,
    exempt: frozenset[tuple[str, int]] = frozenset(),
) -> aiohttp.abc.AbstractResolver:
    """An aiohttp resolver returning only the addresses ``allowed`` accepts, but
    every address of an ``exempt`` (host, port): the proxies, which the operator
    chose and which may well be on a private network."""
    from aiohttp.abc import AbstractResolver, ResolveResult

    class GuardedResolver(AbstractResolver):
        async def resolve(
            self, host: str, port: int = 0, family: int = socket.AF_INET
        ) -> list[ResolveResult]:
            # AddressRefused is no OSError, so aiohttp lets it through unchanged;
            # an OSError becomes a connect error as usual.
            if (host.lower(), port) in exempt:
                addresses = list(await resolve(host, port))
            else:
                addresses = await allowed_addresses(
                    host, port, allowed=allowed, resolve=resolve
                )
            found: list[ResolveResult] = []
            for address in addresses:
                fam = socket.AF_INET6 if ":" in address else socket.AF_INET
                if family in (socket.AF_UNSPEC, fam):
                    found.append(
                        {
                            "hostname": host,
                            "host": address,
                            "port": port,
                            "family": fam,
                            "proto": 0,
                            "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                        }
                    )
            if not found:
                raise OSError(f"no allowed address of the requested family for {host}")
            return found

        async def close(self) -> None:
            pass

    return GuardedResolver()


_HTTP_VERSIONS: dict[object, bytes] = {(1, 1): b"HTTP/1.1", (1, 0): b"HTTP/1.0"}


class _DeferredCAContext(ssl.SSLContext):
    """An SSLContext that loads the default CA store (``set_default_verify_paths``)
    on first use instead of when asked: before its first handshake (``wrap_bio``,
    ``wrap_socket``) or a look at its store, so it verifies exactly as loaded."""

    def _load_default_ca(self) -> None:
        with _DEFERRED_CA_LOCK:
            if not self.__dict__.get("_ca_loaded"):
                _SET_DEFAULT_VERIFY_PATHS(self)
                self.__dict__["_ca_loaded"] = True

    def set_default_verify_paths(self) -> None:
        self._load_default_ca()

    def wrap_socket(self, *args: Any, **kwargs: Any) -> Any:
        self._load_default_ca()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> Any:
        self._load_default_ca()
        return super().wrap_bio(*args, **kwargs)

    def get_ca_certs(self, binary_form: bool = False) -> Any:
        self._load_default_ca()
        return super().get_ca_certs(binary_form)

    def cert_store_stats(self) -> dict[str, int]:
        self._load_default_ca()
        return super().cert_store_stats()


_SET_DEFAULT_VERIFY_PATHS = ssl.SSLContext.set_default_verify_paths
_DEFERRED_CA_LOCK = threading.Lock()
_IMPORT_AIOHTTP_LOCK = threading.Lock()


def _defer_default_verify_paths(self: ssl.SSLContext) -> None:
    if type(self) is ssl.SSLContext:
        self.__class__ = _DeferredCAContext
    else:  # a subclass of its own: loaded now, as asked
        _SET_DEFAULT_VERIFY_PATHS(self)


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The client TLS context for https: httpx's default CAs, plus those of
    ``ca_file`` (``fetch.ca_file``) if given. Loading the CAs takes tens of
    milliseconds: call it only when a context is needed. ConfigError naming
    fetch.ca_file if that file cannot be loaded."""
    ctx = httpx.create_ssl_context(trust_env=False)
    if ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except ssl.SSLError as e:
            raise ConfigError(
                ca_file, "fetch.ca_file", f"holds no PEM CA certificate ({e})"
            ) from e
        except OSError as e:
            raise ConfigError(
                ca_file, "fetch.ca_file", f"cannot read it: {e.strerror or e}"
            ) from e
    return ctx


def _import_aiohttp() -> None:
    """Import aiohttp (ImportError if missing) without loading the CA store twice.

    aiohttp builds two default TLS contexts when imported, each loading the system
    CA store (~25 ms apiece) although feedwatch hands it its own context for https.
    While aiohttp is imported, a context asked to load the default store gets it
    on its first handshake instead (``_DeferredCAContext``); nothing else changes.
    """
    if "aiohttp.connector" in sys.modules:
        return
    with _IMPORT_AIOHTTP_LOCK:
        own = ssl.SSLContext.__dict__.get("set_default_verify_paths")
        ssl.SSLContext.set_default_verify_paths = _defer_default_verify_paths  # type: ignore[method-assign]
        try:
            import aiohttp  # noqa: F401
        finally:
            if own is None:
                del ssl.SSLContext.set_default_verify_paths
            else:
                ssl.SSLContext.set_default_verify_paths = own  # type: ignore[method-assign]


def preload_transport(transport: str) -> None:
    """Import the HTTP transport now rather than on the first request: before the
    poll processes are forked, so they share it instead of each importing it."""
    if transport == "aiohttp":
        try:
            _import_aiohttp()
            return
        except ImportError:  # the Fetcher falls back to httpx's own transport
            pass
    import worker.httpcore_guard  # noqa: F401


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp connection pool: httpx's request and
    response types for little more than aiohttp's own cost per request.

    The request goes out as built: aiohttp adds no Accept, Accept-Encoding or
    User-Agent of its own, keeps no cookies between requests (one feed's cookies
    must not reach another) and, like httpx's own transport, sends no credentials
    from the URL. The response body is streamed as sent (no decompression), in
    chunks of at most 64 KiB; redirects are not followed. Honours the request's
    ``timeout`` extension (``connect`` per connection attempt, ``pool`` for getting
    a connection, ``read`` per read; no ``total``) and ``sni_hostname``. aiohttp
    errors are raised as httpx's (ConnectError, ConnectTimeout, ReadTimeout,
    RemoteProtocolError, ReadError, ...); AddressRefused from the guard as is.

    ``proxies`` routes requests through forward proxies (plain http in absolute
    form, https through a CONNECT tunnel), with their credentials as
    Proxy-Authorization; a proxy that cannot be reached or refuses the tunnel
    raises httpx.ProxyError, "407 Proxy Authentication Required" style for a
    refusal as httpcore words it. The guard lets the proxies' addresses through.

    ``allowed``, ``resolve`` and ``ca_file`` as for :func:`guarded_transport`;
    ``verify=False`` skips certificate checks. aiohttp is imported here
    (ImportError if missing; see ``_import_aiohttp``); the session is made in the
    running loop on the first request and the TLS context on the first https
    request (if ``ca_file`` cannot be loaded then, that request raises
    httpx.ConnectError naming it).
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float | None = 5.0,
        allowed: Callable[[IPAddress], bool] | None = None,
        resolve: Resolve | None = None,
        verify: ssl.SSLContext | bool = True,
        proxies: ProxyRoutes | None = None,
        ca_file: str | None = None,
    ) -> None:
        _import_aiohttp()  # ImportError here, not on the first request

        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._allowed = allowed
        self._resolve = resolve
        self._proxies = proxies
        self._via: dict[Proxy, tuple[Any, str | None]] = {}
        self._ssl: ssl.SSLContext | bool | None = None if verify is True else verify
        self._ca_file = ca_file
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        resolver = None
        if self._allowed is not None or self._resolve is not None:
            resolver = _guarded_resolver(
                self._allowed or _allow_all,
                self._resolve or system_resolve,
                self._proxies.endpoints() if self._proxies else frozenset(),
            )
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            keepalive_timeout=self._keepalive_expiry,
            resolver=resolver,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"),
            auto_decompress=False,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(),
        )
        return self._session

    def _ssl_for(self, url: httpx.URL) -> ssl.SSLContext | bool:
        if url.scheme != "https":
            return True  # unused for plain HTTP
        if self._ssl is None:
            # Loading the CA bundle takes tens of milliseconds: only when needed.
            try:
                self._ssl = tls_context(self._ca_file)
            except ConfigError as e:  # the file went away after the config load
                raise httpx.ConnectError(str(e)) from e
        return self._ssl

    def _proxy_args(self, proxy: Proxy) -> tuple[Any, str | None]:
        """The proxy's URL for aiohttp and its Proxy-Authorization value, if any."""
        found = self._via.get(proxy)
        if found is None:
            from yarl import URL

            auth = None
            if proxy.username is not None:
                userpass = f"{proxy.username}:{proxy.password or ''}".encode()
                auth = f"Basic {base64.b64encode(userpass).decode('ascii')}"
            found = self._via[proxy] = (URL(proxy.url), auth)
        return found

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        import aiohttp

        t = request.extensions.get("timeout") or {}
        key = (t.get("connect"), t.get("read"), t.get("pool"))
        found = self._timeouts.get(key)
        if found is None:
            found = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, sock_connect=key[0], sock_read=key[1], connect=key[2]
            )
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return the response with its body still unread."""
        import aiohttp
        from multidict import CIMultiDict
        from yarl import URL

        session = self._session or self._open()
        url = request.url
        try:
            target = URL(str(url), encoded=True)  # httpx has percent-encoded it
            target.port  # noqa: B018 (yarl checks the netloc on first use)
        except ValueError as e:  # yarl checks more than httpx, e.g. the port range
            raise httpx.UnsupportedProtocol(f"invalid URL {str(url)!r}: {e}") from e
        if url.userinfo:
            target = target.with_user(None)
        headers = request.headers
        encoding = headers.encoding
        data: Any = None
        try:
            if request.content:
                data = request.content
        except httpx.RequestNotRead:
            data = request.stream
        sent = CIMultiDict(
            [
                (k.decode(encoding), v.decode(encoding))
                for k, v in headers.raw
                # aiohttp frames the body itself.
                if data is None or k.lower() != b"transfer-encoding"
            ]
        )
        proxy = self._proxies.select(url) if self._proxies is not None else None
        via: dict[str, Any] = {}
        if proxy is not None:
            via["proxy"], auth = self._proxy_args(proxy)
            # (aiohttp's proxy_auth is deprecated.) The credentials go on the
            # request itself in absolute form, on the CONNECT for a tunnel.
            if auth is not None and url.scheme == "https":
                via["proxy_headers"] = {"Proxy-Authorization": auth}
            elif auth is not None:
                sent["Proxy-Authorization"] = auth
        try:
            response = await session.request(
                request.method,
                target,
                headers=sent,
                data=data,
                allow_redirects=False,
                timeout=self._timeout(request),
                ssl=self._ssl_for(url),
                server_hostname=request.extensions.get("sni_hostname"),
                **via,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise _httpx_error(e, proxy) from e
        try:
            extensions: dict[str, Any] = {
                "http_version": _HTTP_VERSIONS.get(response.version, b"HTTP/1.1")
            }
            if response.reason:
                extensions["reason_phrase"] = response.reason.encode("ascii", "ignore")
            return httpx.Response(
                response.status,
                headers=response.raw_headers,
                stream=_AiohttpStream(response),
                request=request,
                extensions=extensions,
            )
        except BaseException:
            response.close()
            raise

    async def aclose(self) -> None:
        """Close the pool's connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class _AiohttpStream(httpx.AsyncByteStream):
    """An aiohttp response body as httpx's stream; closing it before the end
    closes the connection (aiohttp reuses only connections read to the end)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        import aiohttp

        content = self._response.content
        try:
            while chunk := await content.read(_CHUNK):
                yield chunk
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise _httpx_error(e) from e

    async def aclose(self) -> None:
        self._response.release()


def _httpx_error(e: BaseException, proxy: Proxy | None = None) -> httpx.TransportError:
    """The httpx exception for an aiohttp (or socket) error, same message;
    httpx.ProxyError if ``proxy`` could not be reached or refused the tunnel."""
    import aiohttp

    message = str(e) or type(e).__name__
    kind: type[httpx.TransportError]
    if isinstance(e, aiohttp.ClientConnectorError) and not isinstance(e.ssl, bool):
        # aiohttp names our TLS context by its repr; it is the default one.
        message = message.replace(f"ssl:{e.ssl}", "ssl:default")
    if proxy is not None:
        if isinstance(e, aiohttp.ClientHttpProxyError):
            return httpx.ProxyError(f"{e.status} {e.message}".rstrip())
        if (
            isinstance(e, aiohttp.ClientConnectorError)
            and (e.host.lower(), e.port) == proxy.endpoint
        ):
            return httpx.ProxyError(message)
    if isinstance(e, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(e, TimeoutError):
        kind = httpx.ReadTimeout
    elif isinstance(e, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError
    elif isinstance(e, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        kind = httpx.RemoteProtocolError
    elif isinstance(e, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        kind = httpx.UnsupportedProtocol
    elif isinstance(e, aiohttp.ClientPayloadError | OSError):
        kind = httpx.ReadError
    else:
        kind = httpx.TransportError
    return kind(message)


def guarded_transport(
    kind: str,
    *,
    max_connections: int = 100,
    allowed: Callable[[IPAddress], bool] | None = is_public_address,
    resolve: Resolve | None = None,
    proxies: ProxyRoutes | None = None,
    verify: ssl.SSLContext | bool = True,
    ca_file: str | None = None,
) -> httpx.AsyncBaseTransport:
    """An httpx transport (``kind`` "aiohttp" or "httpx") whose connections go only
    to addresses ``allowed`` accepts, judged on the very lookup the connection
    uses (no DNS rebinding between a check and the connect).

    ``allowed=None`` filters nothing (``fetch.allow_private_addresses``); ``resolve``
    replaces getaddrinfo (tests). Refusals raise AddressRefused from the request.
    ``proxies``: requests they select go through a proxy, which may be at any
    address (only the proxy is connected to; it connects to the feed); a proxy
    that cannot be reached or refuses raises httpx.ProxyError. ``verify``: the
    TLS context for https origins (tests), or False for no checks. ``ca_file``
    (``fetch.ca_file``): CAs trusted besides the default ones, unless ``verify``
    is given; ConfigError if httpx's transport cannot load it.
    """
    if kind == "aiohttp":
        try:
            return AiohttpTransport(
                max_connections=max_connections,
                allowed=allowed,
                resolve=resolve,
                verify=verify,
                proxies=proxies,
                ca_file=ca_file,
            )
        except ImportError:
            log.warning("aiohttp is not installed; using httpx's own transport")
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    from worker.httpcore_guard import httpx_transport

    if verify is True and ca_file is not None:
        # httpx's transport makes its context when made: one for all its pools.
        verify = tls_context(ca_file)
    return httpx_transport(limits, allowed, resolve, proxies=proxies, verify=verify)


class _Decoder:
    """Incremental gzip/deflate decoder that never produces more than ``limit`` bytes,
    whatever the compression ratio of one chunk (a 64 KiB chunk can inflate to 64 MB)."""

    def __init__(self, encoding: str, limit: int) -> None:
        self._encoding = encoding
        self._limit = limit
        self._total = 0
        self._raw_deflate = False
        self._started = False
        self._d: zlib._Decompress | None = None
        self._done = False

    def _new(self) -> zlib._Decompress:
        if self._encoding == "deflate":
            return zlib.decompressobj(-zlib.MAX_WBITS if self._raw_deflate else 15)
        return zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> bytes:
        """Decode one chunk; raises _TooLarge past the limit, zlib.error if corrupt."""
        out: list[bytes] = []
        while data and not self._done:
            if self._d is None:
                if self._started and self._encoding == "gzip" and not data.strip(b"\0"):
                    break  # zero padding after the last gzip member
                self._d = self._new()
            try:
                chunk = self._d.decompress(data, self._limit - self._total + 1)
            except zlib.error:
                # "deflate" is zlib-wrapped by the RFC but often sent raw.
                if self._encoding == "deflate" and not self._started:
                    self._raw_deflate = True
                    self._started = True
                    self._d = None
                    continue
                raise
            self._started = True
            self._total += len(chunk)
            if self._total > self._limit:
                raise _TooLarge
            out.append(chunk)
            if self._d.eof:
                rest = self._d.unused_data
                self._d = None  # a further gzip member may follow
                if self._encoding == "deflate":
                    self._done = True  # anything after the stream is ignored
            else:
                rest = self._d.unconsumed_tail
                if not chunk and rest == data:
                    break  # no progress possible; wait for more input
            data = rest
        return b"".join(out)

    def finish(self) -> bytes:
        """Flush what is left; raises zlib.error if the stream was cut short."""
        if self._d is None:
            return b""
        tail = self._d.flush()
        self._total += len(tail)
        if self._total > self._limit:
            raise _TooLarge
        if not self._d.eof:
            raise zlib.error("compressed stream is truncated")
        return tail


class _TooLarge(Exception):
    pass


def _content_encodings(value: str | None) -> list[str]:
    if not value:
        return []
    codes = [c.strip().lower() for c in value.split(",")]
    return ["gzip" if c == "x-gzip" else c for c in codes if c and c != "identity"]


class Fetcher:
    """One shared transport for every feed; use as ``async with Fetcher(...) as f``.

    Requests go to the transport directly, without httpx.AsyncClient: on a 304 its
    per-request URL merging, header merging and cookie jar cost more than the
    request itself. Redirects are followed here, ``asyncio.timeout`` bounds each
    fetch, and no cookies are kept (one feed's must not reach another).

    ``allow_files`` lets ``file://`` URLs be read (CLI and configured file feeds);
    ``allowed_address`` replaces the public-address policy of the SSRF guard (used
    when ``settings.allow_private_addresses`` is false), which both checks each URL
    and filters the addresses the transport connects to; ``resolve`` replaces
    getaddrinfo for both (tests).

    Requests go through the proxy of :func:`proxy_routes` (read from the settings
    and the environment here: ConfigError if unusable). Then the guard checks
    each hop's host as resolved here, and lets the proxy's own address through.
    """

    def __init__(
        self,
        settings: FetchSettings,
        *,
        version: str,
        allow_files: bool = False,
        max_connections: int = 100,
        allowed_address: Callable[[IPAddress], bool] = is_public_address,
        resolve: Resolve | None = None,
    ) -> None:
        self.settings = settings
        self.user_agent = build_user_agent(settings, version)
        self.allow_files = allow_files
        self._max_connections = max_connections
        self._allowed_address = allowed_address
        self._resolve = resolve
        self._proxies = proxy_routes(settings)
        self._http: httpx.AsyncBaseTransport | None = None
        self._header_items = (
            ("User-Agent", self.user_agent),
            ("Accept", _ACCEPT),
            ("Accept-Encoding", "gzip, deflate"),
        )
        # What httpx's client would set: each transport applies them its own way
        # (the connect timeout matters; asyncio.timeout bounds the whole fetch).
        self._extensions = {
            "timeout": httpx.Timeout(
                settings.timeout, connect=settings.connect_timeout
            ).as_dict()
        }
        self._hosts: dict[str, asyncio.Semaphore] = {}

    def _transport(self) -> httpx.AsyncBaseTransport:
        """The aiohttp transport if configured and installed, else httpx's own; both
        filtered by the SSRF guard unless private addresses are allowed.

        A single httpx connection pool spends most of its CPU in pool bookkeeping
        past ~16 connections (encode/httpcore#1035); aiohttp's pool does not.
        """
        guard = not self.settings.allow_private_addresses
        return guarded_transport(
            self.settings.transport,
            max_connections=self._max_connections,
            allowed=self._allowed_address if guard else None,
            resolve=self._resolve,
            proxies=self._proxies,
            ca_file=self.settings.ca_file,
        )

    async def __aenter__(self) -> Fetcher:
        self._http = self._transport()
        if self._proxies is not None:
            routes = self._proxies
            log.debug(
                "fetching through proxies http=%s https=%s; directly: loopback, %s",
                routes.http and f"{routes.http.url} ({routes.http.source})",
                routes.https and f"{routes.https.url} ({routes.https.source})",
                ", ".join(routes.no_proxy) or "nothing else",
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the transport and its connections."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Fetched | NotModified:
        """GET one feed, conditionally if validators are given.

        Raises FetchError with ``stage`` one of: url, address (SSRF guard), connect,
        timeout, network, protocol, status (with ``status``/``retry_after``),
        redirect, size, decode, file.
        """
        try:
            parts = urllib.parse.urlsplit(url.strip())
            scheme = parts.scheme.lower()
        except ValueError as e:
            raise FetchError(url, "url", f"not a valid URL: {e}") from e
        if scheme == "file":
            if not self.allow_files:
                raise FetchError(
                    url, "url", "file:// URLs are not allowed for this feed"
                )
            return await asyncio.to_thread(self._read_file, url)
        if scheme not in ("http", "https"):
            raise FetchError(url, "url", "expected an http:// or https:// URL")
        if self._http is None:
            raise RuntimeError("Fetcher used outside 'async with'")
        started = time.monotonic()
        try:
            async with self._host_slot(parts, url):
                result = await self._fetch_within_timeout(
                    self._http, url, etag, last_modified
                )
        except FetchError as e:
            log.debug(
                "fetch %s error stage=%s %.3fs",
                url,
                e.stage,
                time.monotonic() - started,
            )
            raise
        if isinstance(result, NotModified):
            log.debug("fetch %s status=304 %.3fs", url, time.monotonic() - started)
        else:
            log.debug(
                "fetch %s status=%d bytes=%d final=%s %.3fs",
                url,
                result.status,
                len(result.body),
                result.url,
                time.monotonic() - started,
            )
        return result

    def _host_slot(
        self, parts: urllib.parse.SplitResult, url: str
    ) -> asyncio.Semaphore:
        """The semaphore bounding requests to the feed's host (host:port)."""
        try:
            key = f"{(parts.hostname or '').lower()}:{parts.port or parts.scheme}"
        except ValueError:
            key = url
        sem = self._hosts.get(key)
        if sem is None:
            sem = self._hosts[key] = asyncio.Semaphore(
                self.settings.per_host_concurrency
            )
        return sem

    async def _fetch_within_timeout(
        self,
        http: httpx.AsyncBaseTransport,
        url: str,
        etag: str | None,
        last_modified: str | None,
    ) -> Fetched | NotModified:
        try:
            async with asyncio.timeout(self.settings.timeout):
                result = await self._fetch(http, url, etag, last_modified)
        except FetchError as e:
            if e.url == url:
                raise
            # A redirect hop failed: report it against the feed's own URL.
            detail = e.message.removeprefix(f"{e.url}: {e.stage}: ")
            raise FetchError(
                url,
                e.stage,
                f"after redirect to {e.url}: {detail}",
                status=e.status,
                retry_after=e.retry_after,
            ) from e
        except TimeoutError as e:
            raise FetchError(
                url,
                "timeout",
                f"no complete response within {self.settings.timeout:g}s",
            ) from e
        return result

    async def _fetch(
        self,
        http: httpx.AsyncBaseTransport,
        url: str,
        etag: str | None,
        last_modified: str | None,
    ) -> Fetched | NotModified:
        # Validators come from an earlier response: send them only if they are
        # still valid header values (a server could have sent anything).
        validators: list[tuple[str, str]] = []
        if etag and _safe_header_value(etag):
            validators.append(("If-None-Match", etag))
        if last_modified and _safe_header_value(last_modified):
            validators.append(("If-Modified-Since", last_modified))
        current = url
        permanent: str | None = None
        only_permanent = True
        for _hop in range(self.settings.max_redirects + 1):
            proxy = self._proxy_for(current)
            if not self.settings.allow_private_addresses:
                await check_url_address(
                    current,
                    allowed=self._allowed_address,
                    resolve=self._resolve or system_resolve,
                    unresolved_ok=proxy is not None,
                )
            try:
                request = self._request(current, validators)
                response = await http.handle_async_request(request)
            except AddressRefused as e:
                raise FetchError(current, "address", e.message) from e
            except httpx.InvalidURL as e:
                raise FetchError(current, "url", f"not a valid URL: {e}") from e
            except httpx.HTTPError as e:
                raise _translate(current, e, self.settings, proxy) from e
            try:
                status = response.status_code
                got = _header_map(response.headers)
                if status in _REDIRECT_CODES:
                    location = got.get("location")
                    if not location:
                        raise FetchError(
                            current,
                            "redirect",
                            f"HTTP {status} without a Location header",
                        )
                    target = urllib.parse.urljoin(current, location.strip())
                    if urllib.parse.urlsplit(target).scheme.lower() not in (
                        "http",
                        "https",
                    ):
                        raise FetchError(
                            current,
                            "redirect",
                            f"redirect to a non-HTTP URL {target!r}",
                        )
                    only_permanent = only_permanent and status in _PERMANENT_CODES
                    if only_permanent:
                        permanent = target
                    current = target
                    continue
                if status == 304:
                    return NotModified(
                        url=current,
                        etag=got.get("etag") or etag,
                        last_modified=got.get("last-modified") or last_modified,
                        headers=_kept_headers(got),
                    )
                if status == 407 and proxy is not None:
                    raise _proxy_refused(current, proxy, response.reason_phrase)
                if status >= 300:
                    raise _status_error(current, response, got, proxy)
                body = await self._read_body(current, response, got, proxy)
            finally:
                await response.aclose()
            return Fetched(
                url=current,
                status=status,
                body=body,
                etag=got.get("etag"),
                last_modified=got.get("last-modified"),
                content_type=got.get("content-type"),
                body_hash=hashlib.sha256(body).hexdigest(),
                permanent_redirect=permanent,
                headers=_kept_headers(got),
            )
        raise FetchError(
            url,
            "redirect",
            f"more than {self.settings.max_redirects} redirects (last to {current})",
        )

    def _proxy_for(self, url: str) -> Proxy | None:
        """The proxy the transport sends ``url`` through (the same choice)."""
        if self._proxies is None:
            return None
        try:
            return self._proxies.select(httpx.URL(url))
        except httpx.InvalidURL:
            return None  # refused further on

    def _request(
        self, url: str, validators: Sequence[tuple[str, str]]
    ) -> httpx.Request:
        """A GET as httpx's client would build it, credentials in the URL sent as
        Basic auth; raises httpx.InvalidURL."""
        parsed = httpx.URL(url)
        if not parsed.host:
            raise FetchError(url, "url", "the URL has no host")
        if parsed.port is not None and parsed.port > 65535:
            # httpx does not check; its own transport would crash on it.
            raise FetchError(url, "url", "not a valid URL: Port out of range 0-65535")
        # Given a stream, httpx.Request adds no Host of its own and does not look
        # for a body to encode: half its cost.
        headers = [
            ("Host", parsed.netloc.decode("ascii")),
            *self._header_items,
            *validators,
        ]
        if parsed.userinfo:
            userpass = f"{parsed.username}:{parsed.password}".encode()
            token = base64.b64encode(userpass).decode("ascii")
            headers.append(("Authorization", f"Basic {token}"))
        request = httpx.Request(
            "GET",
            parsed,
            headers=headers,
            stream=httpx.ByteStream(b""),
            extensions=self._extensions,
        )
        request.read()
        return request

    async def _read_body(
        self,
        url: str,
        response: httpx.Response,
        headers: Mapping[str, str],
        proxy: Proxy | None,
    ) -> bytes:
        cap = self.settings.max_body_bytes
        length = headers.get("content-length", "").strip()
        if length.isdigit() and int(length) > cap:
            raise FetchError(
                url,
                "size",
                f"Content-Length {int(length)} exceeds the limit of {cap} bytes",
            )
        encodings = _content_encodings(headers.get("content-encoding"))
        for enc in encodings:
            if enc not in ("gzip", "deflate"):
                raise FetchError(url, "decode", f"unsupported Content-Encoding {enc!r}")
        # Encodings are listed in the order applied, so undo them last to first.
        decoders = [_Decoder(enc, cap) for enc in reversed(encodings)]
        parts: list[bytes] = []
        raw = 0
        size = 0
        try:
            # Chunks as the transport reads them: at most 64 KiB from both.
            async for chunk in response.aiter_raw():
                raw += len(chunk)
                if raw > cap:
                    raise FetchError(
                        url, "size", f"body exceeds the limit of {cap} bytes"
                    )
                for d in decoders:
                    chunk = d.feed(chunk)
                size += len(chunk)
                if size > cap:
                    raise _TooLarge
                parts.append(chunk)
            for i, d in enumerate(decoders):
                tail = d.finish()
                for later in decoders[i + 1 :]:
                    tail = later.feed(tail)
                parts.append(tail)
                size += len(tail)
        except _TooLarge as e:
            raise FetchError(
                url, "size", f"decompressed body exceeds the limit of {cap} bytes"
            ) from e
        except zlib.error as e:
            raise FetchError(url, "decode", f"corrupt {encodings[0]} body: {e}") from e
        except httpx.HTTPError as e:
            raise _translate(url, e, self.settings, proxy) from e
        if size > cap:
            raise FetchError(
                url, "size", f"decompressed body exceeds the limit of {cap} bytes"
            )
        return b"".join(parts)

    def _read_file(self, url: str) -> Fetched:
        cap = self.settings.max_body_bytes
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise FetchError(url, "url", "file:// URLs must name a local file")
        path = Path(urllib.request.url2pathname(parts.path))
        try:
            with path.open("rb") as f:
                body = f.read(cap + 1)
        except OSError as e:
            raise FetchError(
                url, "file", f"cannot read {path}: {e.strerror or e}"
            ) from e
        if len(body) > cap:
            raise FetchError(url, "size", f"file exceeds the limit of {cap} bytes")
        return Fetched(
            url=url,
            status=200,
            body=body,
            etag=None,
            last_modified=None,
            content_type=None,
            body_hash=hashlib.sha256(body).hexdigest(),
            permanent_redirect=None,
            headers=types.MappingProxyType({}),
        )


def _header_map(headers: httpx.Headers) -> dict[str, str]:
    """Lower-case name -> value, repeated headers joined by ", " (as
    ``headers.get`` does), so that each lookup is a dict lookup."""
    found: dict[str, str] = {}
    encoding = headers.encoding
    for raw_name, raw_value in headers.raw:
        name = raw_name.decode(encoding).lower()
        value = raw_value.decode(encoding)
        found[name] = f"{found[name]}, {value}" if name in found else value
    return found


def _kept_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    return types.MappingProxyType(
        {k: headers[k] for k in _KEPT_HEADERS if k in headers}
    )


def _safe_header_value(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _status_error(
    url: str,
    response: httpx.Response,
    headers: Mapping[str, str],
    proxy: Proxy | None = None,
) -> FetchError:
    status = response.status_code
    retry_after = parse_retry_after(headers.get("retry-after"))
    reason = response.reason_phrase or ""
    msg = f"HTTP {status} {reason}".rstrip()
    if status < 400:
        msg = f"unexpected {msg}"
    if retry_after is not None:
        msg += f" (retry after {retry_after:g}s)"
    if proxy is not None:
        msg += f" (via the proxy {proxy.url})"
    return FetchError(url, "status", msg, status=status, retry_after=retry_after)


_PROXY_STATUS = re.compile(r"(\d{3})(?: (.*))?")


def _proxy_refused(
    url: str, proxy: Proxy, reason: str, status: int = 407
) -> FetchError:
    """The proxy answered ``status`` instead of forwarding the request."""
    msg = f"the proxy {proxy.url} answered HTTP {status} {reason}".rstrip()
    if status == 407:
        if proxy.username is None:
            msg += f"; it wants a user name and password: give them in {proxy.source}"
            msg += " (http://user:password@host:port)"
        else:
            msg += f"; check the user name and password given in {proxy.source}"
    return FetchError(url, "status", msg, status=status)


def _translate(
    url: str, e: httpx.HTTPError, settings: FetchSettings, proxy: Proxy | None = None
) -> FetchError:
    """An httpx error as a FetchError naming the stage (and the proxy if used)."""
    detail = str(e) or type(e).__name__
    via = ""
    if proxy is not None:
        if isinstance(e, httpx.ProxyError):
            refused = _PROXY_STATUS.fullmatch(detail)
            if refused:
                status, reason = int(refused.group(1)), refused.group(2) or ""
                return _proxy_refused(url, proxy, reason, status)
            return FetchError(
                url, "connect", f"cannot connect to the proxy {proxy.url}: {detail}"
            )
        via = f" (via the proxy {proxy.url})"
    if isinstance(e, httpx.ConnectTimeout):
        return FetchError(
            url,
            "timeout",
            f"connect timed out after {settings.connect_timeout:g}s{via}",
        )
    if isinstance(e, httpx.TimeoutException):
        return FetchError(url, "timeout", f"timed out: {detail}{via}")
    if isinstance(e, httpx.ConnectError | httpx.ProxyError):
        return FetchError(url, "connect", f"cannot connect: {detail}{via}")
    if isinstance(e, httpx.ProtocolError):
        return FetchError(url, "protocol", f"bad HTTP response: {detail}{via}")
    if isinstance(e, httpx.UnsupportedProtocol):
        return FetchError(url, "url", detail)
    return FetchError(url, "network", f"{detail}{via}")
