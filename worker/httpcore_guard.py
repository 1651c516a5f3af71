"""httpx's own transport (``fetch.transport: httpx``) with the address guard: an
httpcore network backend that connects only to allowed addresses; and through
proxies, one pool per proxy. Kept apart from worker.fetch so the default aiohttp
transport never imports httpcore (h11, anyio)."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpcore
import httpx

from worker.fetch import (
    IPAddress,
    Proxy,
    ProxyRoutes,
    Resolve,
    _allow_all,
    allowed_addresses,
    system_resolve,
)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that connects only to addresses the guard allows.

    The pool still hands TLS the URL's host name (SNI and certificate check), and
    the Host header comes from the request, so only the socket's peer is pinned.
    """

    def __init__(self, allowed: Callable[[IPAddress], bool], resolve: Resolve) -> None:
        self._allowed = allowed
        self._resolve = resolve
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await allowed_addresses(
                host, port, allowed=self._allowed, resolve=self._resolve
            )
        except (OSError, UnicodeError) as e:
            raise httpcore.ConnectError(f"cannot resolve host {host!r}: {e}") from e
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        assert last is not None  # allowed_addresses never returns an empty list
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class ProxyBackend(GuardedBackend):
    """The network backend of a proxy's pool: it connects to the proxy alone, at
    whatever address (the operator chose it), so a failure to connect is the
    proxy's (httpcore.ProxyError; a timeout stays ConnectTimeout)."""

    def __init__(self, resolve: Resolve) -> None:
        super().__init__(_allow_all, resolve)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            return await super().connect_tcp(
                host,
                port,
                timeout=timeout,
                local_address=local_address,
                socket_options=socket_options,
            )
        except httpcore.ConnectError as e:
            raise httpcore.ProxyError(str(e) or type(e).__name__) from e


class ProxyRouter(httpx.AsyncBaseTransport):
    """Sends each request through the transport of the proxy ``routes`` select
    for it, or the direct one."""

    def __init__(
        self,
        routes: ProxyRoutes,
        direct: httpx.AsyncBaseTransport,
        through: Mapping[Proxy, httpx.AsyncBaseTransport],
    ) -> None:
        self._routes = routes
        self._direct = direct
        self._through = dict(through)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        proxy = self._routes.select(request.url)
        transport = self._direct if proxy is None else self._through[proxy]
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        for transport in (self._direct, *self._through.values()):
            await transport.aclose()


def httpx_transport(
    limits: httpx.Limits,
    allowed: Callable[[IPAddress], bool] | None,
    resolve: Resolve | None,
    *,
    proxies: ProxyRoutes | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncBaseTransport:
    """httpx's transport, guarded as :func:`worker.fetch.guarded_transport` says."""
    direct = _direct_transport(limits, allowed, resolve, verify)
    if proxies is None:
        return direct
    through = {
        proxy: _proxy_transport(proxy, limits, resolve, verify)
        for proxy in proxies.proxies
    }
    return ProxyRouter(proxies, direct, through)


def _proxy_transport(
    proxy: Proxy,
    limits: httpx.Limits,
    resolve: Resolve | None,
    verify: ssl.SSLContext | bool,
) -> httpx.AsyncBaseTransport:
    """A pool that sends everything through ``proxy``: absolute-form requests for
    http, CONNECT tunnels for https (httpcore's AsyncHTTPProxy)."""
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False, verify=verify)
    auth = None
    if proxy.username is not None:
        auth = (proxy.username.encode(), (proxy.password or "").encode())
    # As for the direct pool: httpx takes no network backend, so the pool it would
    # build for httpx.Proxy is built here with ours.
    transport._pool = httpcore.AsyncHTTPProxy(
        proxy_url=proxy.url,
        proxy_auth=auth,
        ssl_context=transport._pool._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=ProxyBackend(resolve or system_resolve),
    )
    return transport


def _direct_transport(
    limits: httpx.Limits,
    allowed: Callable[[IPAddress], bool] | None,
    resolve: Resolve | None,
    verify: ssl.SSLContext | bool,
) -> httpx.AsyncBaseTransport:
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False, verify=verify)
    if allowed is None and resolve is None:
        return transport
    # httpx takes no network backend, so its pool is replaced by an equal one that
    # has ours (the attribute httpx's transport sends through).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=transport._pool._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(
            allowed or _allow_all, resolve or system_resolve
        ),
    )
    return transport
