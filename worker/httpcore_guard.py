"""httpx's own transport (``fetch.transport: httpx``) with the address guard: an
httpcore network backend that connects only to allowed addresses. Kept apart from
worker.fetch so the default aiohttp transport never imports httpcore (h11, anyio)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

from worker.fetch import (
    IPAddress,
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


def httpx_transport(
    limits: httpx.Limits,
    allowed: Callable[[IPAddress], bool] | None,
    resolve: Resolve | None,
) -> httpx.AsyncBaseTransport:
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
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
