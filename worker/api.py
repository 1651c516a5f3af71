"""HTTP API stage: the store and the running daemon -> JSON, Prometheus text, digests.

Input: a Feedwatch (store, settings), optionally the Daemon; output: a Starlette app
(``create_app``) served by uvicorn inside the daemon's event loop (``serve_api``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from worker import __version__
from worker.config import parse_duration
from worker.digest import build_digest, digest_payload, render_digest
from worker.errors import ConfigError, FeedwatchError, NotFoundError, StoreError
from worker.metrics import CONTENT_TYPE, Metrics
from worker.models import Item, utcnow
from worker.store.base import AlertRow, StoryRow
from worker.websub import WebSubCallback

if TYPE_CHECKING:
    from worker.core import Feedwatch
    from worker.scheduler import Daemon

__all__ = [
    "OPEN_PATHS",
    "ApiParamError",
    "ApiStore",
    "BearerAuth",
    "create_app",
    "openapi_schema",
    "parse_time",
    "run_api",
    "serve_api",
]

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
"""Paths served without the token (health checks); so is everything under ``/websub/``."""
_OPEN_PREFIXES = ("/websub/",)
# A browser opening the page cannot send a header, so this path also reads ?token=.
_QUERY_TOKEN_PATHS = frozenset({"/digest"})

READY_TIMEOUT = 5.0
"""Seconds the readiness check waits for the database."""
MAX_ALERTS = 1000
MAX_ITEMS = 200
MAX_QUERY = 1000
"""Characters of a search query (``q``)."""
GRACEFUL_SHUTDOWN = 5
"""Seconds open requests get to finish once the API is told to stop."""

_HTML_HEADERS = {
    # Inline styles only: the digest template carries no script, image or font.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    # The page URL may hold ?token=: never send it to the outlets linked from it.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class ApiParamError(FeedwatchError):
    """A query parameter is wrong; the message names it (answered with 400)."""

    def __init__(self, param: str, problem: str) -> None:
        self.param = param
        super().__init__(f"{param}: {problem}")


@runtime_checkable
class ApiStore(Protocol):
    """The queries the API needs beyond the Store protocol (``SqlStore`` has them)."""

    def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        ...

    def count_pending_deliveries(self) -> int:
        """The outbox depth."""
        ...

    def search_items(self, q: str, limit: int = 50) -> list[Item]:
        """Full-text search of item titles and summaries."""
        ...


def parse_time(value: str, now: datetime) -> datetime:
    """A moment from ``24h``/``7d``/``90m`` (that long before ``now``) or an ISO
    date or datetime (UTC when it names no zone).

    >>> parse_time("24h", datetime(2026, 1, 2, tzinfo=UTC)).isoformat()
    '2026-01-01T00:00:00+00:00'
    >>> parse_time("2026-11-01", datetime(2026, 1, 2, tzinfo=UTC)).isoformat()
    '2026-11-01T00:00:00+00:00'
    """
    try:
        seconds = parse_duration(value)
    except ValueError:
        pass
    else:
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError as e:
            raise ValueError(f"{value!r} reaches back out of range") from e
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError as e:
        raise ValueError(
            f"expected a duration (24h, 7d) or a date (2026-11-01), got {value!r}"
        ) from e
    try:
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    except OverflowError as e:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise ValueError(f"{value!r} is out of range in UTC") from e


# -- query parameters ------------------------------------------------------------------


def _time_param(
    request: Request, name: str, now: datetime, default: str | None
) -> datetime | None:
    raw = request.query_params.get(name) or default
    if raw is None:
        return None
    try:
        return parse_time(raw, now)
    except ValueError as e:
        raise ApiParamError(name, str(e)) from e


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise ApiParamError(name, f"expected a whole number, got {raw!r}") from e
    if not low <= value <= high:
        raise ApiParamError(name, f"expected {low} to {high}, got {value}")
    return value


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _bool_param(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return False
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ApiParamError(name, f"expected true or false, got {raw!r}")


def _choice_param(
    request: Request, name: str, choices: Sequence[str], default: str
) -> str:
    raw = request.query_params.get(name) or default
    if raw not in choices:
        raise ApiParamError(name, f"expected one of {', '.join(choices)}, got {raw!r}")
    return raw


def _period(request: Request, default_since: str) -> tuple[datetime, datetime | None]:
    now = utcnow()
    since = _time_param(request, "since", now, default_since)
    until = _time_param(request, "until", now, None)
    assert since is not None
    if until is not None and until <= since:
        raise ApiParamError(
            "until",
            f"must be after since ({since.isoformat()}), got {until.isoformat()}",
        )
    return since, until


# -- JSON shapes -----------------------------------------------------------------------


def _iso(dt: datetime) -> str:
    """UTC as the models serialise it (``...Z``)."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _alert_json(row: AlertRow) -> dict[str, Any]:
    return {
        **row.alert.model_dump(mode="json"),
        "deliveries": [d.model_dump(mode="json") for d in row.deliveries],
    }


def _story_json(row: StoryRow) -> dict[str, Any]:
    return {
        **row.story.model_dump(mode="json"),
        "topics": list(row.topics),
        "rules": list(row.rules),
        "alerts": [
            {
                "id": a.id,
                "rule": a.rule,
                "severity": a.severity,
                "score": a.score,
                "created_at": _iso(a.created_at),
            }
            for a in row.alerts
        ],
    }


def _error(
    status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# -- authentication --------------------------------------------------------------------


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(_OPEN_PREFIXES)


def _bearer(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


class BearerAuth:
    """ASGI middleware: every path but the open ones needs ``Authorization: Bearer
    <token>`` (``/digest`` also takes ``?token=``); compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass an authorised request on; answer 401 with a Bearer challenge."""
        if scope["type"] != "http" or _is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = _bearer(request.headers.get("authorization"))
        if given is None and scope["path"] in _QUERY_TOKEN_PATHS:
            given = request.query_params.get("token") or None
        if given is not None and hmac.compare_digest(
            given.encode("utf-8"), self._token
        ):
            await self.app(scope, receive, send)
            return
        if given is None:
            message, challenge = (
                "a bearer token is required",
                'Bearer realm="feedwatch"',
            )
        else:
            message = "the bearer token is not valid"
            challenge = 'Bearer realm="feedwatch", error="invalid_token"'
        response = _error(401, message, {"WWW-Authenticate": challenge})
        await response(scope, receive, send)


# -- endpoints -------------------------------------------------------------------------


class _Endpoints:
    """The request handlers; store calls run in threads (the Store is synchronous)."""

    def __init__(
        self,
        fw: Feedwatch,
        store: ApiStore,
        daemon: Daemon | None,
        metrics: Metrics,
    ) -> None:
        self.fw = fw
        self.store = store
        self.daemon = daemon
        self.metrics = metrics
        tick = float(fw.settings.poll.tick)
        # A pass runs every tick; several missed ones in a row mean the poller is stuck.
        self.stale_after = max(5 * tick, 300.0)

    async def healthz(self, request: Request) -> Response:
        """Liveness: the process answers."""
        return JSONResponse({"status": "ok", "version": __version__})

    async def readyz(self, request: Request) -> Response:
        """Readiness: the database answers, the scheduler runs and polls recently."""
        reasons: list[str] = []
        checks: dict[str, Any] = {}
        try:
            await asyncio.wait_for(asyncio.to_thread(self.store.ping), READY_TIMEOUT)
            checks["database"] = "ok"
        except (StoreError, TimeoutError) as e:
            # Details stay in the log: this endpoint needs no token.
            log.warning("readyz: the database is not ready: %s", e or "timed out")
            checks["database"] = "unreachable"
            reasons.append("database: not reachable (details in the server log)")
        if self.daemon is not None:
            self._check_daemon(self.daemon, checks, reasons)
        body = {
            "status": "not ready" if reasons else "ready",
            "checks": checks,
            "reasons": reasons,
        }
        return JSONResponse(body, status_code=503 if reasons else 200)

    def _check_daemon(
        self, daemon: Daemon, checks: dict[str, Any], reasons: list[str]
    ) -> None:
        # Read defensively: the Daemon's attributes are its own business.
        stop_event = getattr(daemon, "stop_event", None)
        stopping = isinstance(stop_event, asyncio.Event) and stop_event.is_set()
        if getattr(daemon, "running", True) is False or stopping:
            checks["scheduler"] = "stopped"
            reasons.append("scheduler: not running")
        else:
            checks["scheduler"] = "running"
        for name in ("polls", "drains"):
            value = getattr(daemon, name, None)
            if isinstance(value, int):
                checks[name] = value
        last = getattr(daemon, "last_poll_at", None)
        if isinstance(last, datetime):
            age = max((utcnow() - last).total_seconds(), 0.0)
            checks["last_poll_age_seconds"] = round(age, 3)
            if age > self.stale_after:
                reasons.append(
                    f"scheduler: last poll {age:.0f}s ago "
                    f"(more than {self.stale_after:.0f}s)"
                )

    async def metrics_text(self, request: Request) -> Response:
        """Prometheus exposition text of this process's metrics."""
        body = await asyncio.to_thread(self.metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    async def openapi(self, request: Request) -> Response:
        """The OpenAPI 3.1 description of this API."""
        return JSONResponse(openapi_schema())

    async def alerts(self, request: Request) -> Response:
        """Alerts, newest first, each with its deliveries."""
        since = _time_param(request, "since", utcnow(), None)
        failed = _bool_param(request, "failed")
        limit = _int_param(request, "limit", 100, 1, MAX_ALERTS)
        rows = await asyncio.to_thread(
            self.fw.store.list_alerts, since, failed_only=failed, limit=limit
        )
        return JSONResponse({"alerts": [_alert_json(r) for r in rows]})

    async def alert(self, request: Request) -> Response:
        """One alert with its deliveries (404 if unknown)."""
        alert_id = str(request.path_params["alert_id"])
        row = await asyncio.to_thread(self.fw.store.get_alert, alert_id)
        return JSONResponse(_alert_json(row))

    async def stories(self, request: Request) -> Response:
        """Stories seen in [since, until), newest first, with sources and alerts."""
        since, until = _period(request, "24h")
        rows = await asyncio.to_thread(self.fw.store.stories, since, until)
        return JSONResponse(
            {
                "since": _iso(since),
                "until": _iso(until) if until else None,
                "stories": [_story_json(r) for r in rows],
            }
        )

    async def feeds(self, request: Request) -> Response:
        """Every subscribed feed with its poll state and stored item count."""

        def read() -> list[dict[str, Any]]:
            counts = self.fw.store.item_count_by_feed()
            return [
                {**f.model_dump(mode="json"), "items": counts.get(f.url, 0)}
                for f in self.fw.store.list_feeds()
            ]

        return JSONResponse({"feeds": await asyncio.to_thread(read)})

    async def items(self, request: Request) -> Response:
        """Full-text search of item titles and summaries."""
        q = (request.query_params.get("q") or "").strip()
        if not q:
            raise ApiParamError("q", "required: the words to search for")
        if len(q) > MAX_QUERY:
            raise ApiParamError("q", f"at most {MAX_QUERY} characters, got {len(q)}")
        limit = _int_param(request, "limit", 20, 1, MAX_ITEMS)
        found = await asyncio.to_thread(self.store.search_items, q, limit)
        return JSONResponse(
            {"query": q, "items": [i.model_dump(mode="json") for i in found]}
        )

    async def digest(self, request: Request) -> Response:
        """The digest of a period as JSON, text, Markdown or HTML."""
        fmt = _choice_param(request, "format", ("json", "text", "md", "html"), "json")
        since, until = _period(request, "24h")
        d = await asyncio.to_thread(
            build_digest,
            self.fw.store,
            since,
            until,
            rules=request.query_params.getlist("rule"),
            topics=request.query_params.getlist("topic"),
        )
        if fmt == "json":
            return JSONResponse(digest_payload(d))
        body = await asyncio.to_thread(render_digest, d, fmt)
        if fmt == "html":
            return HTMLResponse(body, headers=_HTML_HEADERS)
        if fmt == "md":
            return Response(body, media_type="text/markdown; charset=utf-8")
        return PlainTextResponse(body)

    async def digest_page(self, request: Request) -> Response:
        """The digest as a web page (a browser may pass the token as ``?token=``)."""
        since, until = _period(request, "24h")
        d = await asyncio.to_thread(
            build_digest,
            self.fw.store,
            since,
            until,
            rules=request.query_params.getlist("rule"),
            topics=request.query_params.getlist("topic"),
        )
        body = await asyncio.to_thread(render_digest, d, "html")
        return HTMLResponse(body, headers=_HTML_HEADERS)


# -- errors ----------------------------------------------------------------------------


async def _param_error(request: Request, exc: Exception) -> Response:
    return _error(400, str(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, str(exc))


async def _store_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s: %s", request.method, request.url.path, exc)
    return _error(503, "the database failed (details in the server log)")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    return _error(500, "internal error (details in the server log)")


# -- the app ---------------------------------------------------------------------------


def create_app(
    fw: Feedwatch,
    *,
    daemon: Daemon | None = None,
    metrics: Metrics | None = None,
) -> Starlette:
    """The API over ``fw``'s store; ``metrics`` default ``fw.metrics`` if it has one,
    else a new registry. With no ``api.token`` configured the API is open."""
    store = fw.store
    if not isinstance(store, ApiStore):
        raise TypeError(
            f"{type(store).__name__} lacks ping/count_pending_deliveries/search_items"
        )
    if metrics is None:
        found = getattr(fw, "metrics", None)
        metrics = found if isinstance(found, Metrics) else Metrics()
    metrics.track_outbox(store.count_pending_deliveries)
    ep = _Endpoints(fw, store, daemon, metrics)
    routes: list[BaseRoute] = [
        Route("/healthz", ep.healthz),
        Route("/readyz", ep.readyz),
        Route("/metrics", ep.metrics_text),
        Route("/openapi.json", ep.openapi),
        Route("/api/alerts", ep.alerts),
        Route("/api/alerts/{alert_id}", ep.alert),
        Route("/api/stories", ep.stories),
        Route("/api/feeds", ep.feeds),
        Route("/api/items", ep.items),
        Route("/api/digest", ep.digest),
        Route("/digest", ep.digest_page),
    ]
    websub = WebSubCallback(fw) if fw.settings.api.websub else None
    if websub is not None:
        # Hubs call these (no token): the callback of worker.websub, not client API.
        routes.append(Mount("/websub", routes=websub.routes()))
    secret = fw.settings.api.token
    token = secret.get_secret_value() if secret is not None else ""
    middleware = [Middleware(BearerAuth, token=token)] if token else []
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            ApiParamError: _param_error,
            NotFoundError: _not_found,
            StoreError: _store_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.state.metrics = metrics
    app.state.open_access = not token
    app.state.websub = websub
    return app


# -- serving ---------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the daemon owns SIGTERM/SIGINT), telling
    the caller once it accepts connections."""

    def __init__(
        self, config: uvicorn.Config, on_started: Callable[[], None] | None
    ) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing: stopping is the ``stop`` event's job."""
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start listening, then report it."""
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            self._on_started()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (port 0: any free port); ConfigError if not."""
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except BaseException:
            sock.close()
            raise
    except OSError as e:
        raise ConfigError(
            None, "api", f"cannot listen on {host}:{port}: {e.strerror or e}"
        ) from e
    return sock


async def serve_api(
    app: Starlette,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    on_started: Callable[[str, int], None] | None = None,
    access_log: bool = False,
) -> None:
    """Serve ``app`` on host:port in the running loop until ``stop`` is set.

    ``port=0`` binds a free port; ``on_started(host, port)`` is called with the bound
    port once connections are accepted. ConfigError if the address cannot be bound.
    No signal handlers are installed.
    """
    sock = _bind(host, port)
    bound = int(sock.getsockname()[1])
    if getattr(app.state, "open_access", False) and not _is_loopback(host):
        log.warning(
            "the API on %s:%d has no token (api.token): anyone who can reach it "
            "can read alerts and items",
            host,
            bound,
        )
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=access_log,
        http="h11",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )

    def started() -> None:
        log.info("API listening on http://%s:%d", host, bound)
        if on_started is not None:
            on_started(host, bound)

    server = _Server(config, started)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="api-server")
    stopping = asyncio.create_task(stop.wait(), name="api-stop")
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serving
    finally:
        stopping.cancel()
        if not serving.done():
            server.should_exit = server.force_exit = True
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
        sock.close()


async def run_api(
    fw: Feedwatch, stop: asyncio.Event, *, daemon: Daemon | None = None
) -> None:
    """``create_app`` + ``serve_api`` on ``api.host``/``api.port`` until ``stop``."""
    app = create_app(fw, daemon=daemon)
    await serve_api(app, fw.settings.api.host, fw.settings.api.port, stop)


# -- OpenAPI ---------------------------------------------------------------------------


def _param(
    name: str, description: str, schema: dict[str, Any], *, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


_SINCE = _param(
    "since",
    "Start: a duration before now (90m, 24h, 7d) or an ISO date/datetime (UTC "
    "unless it names a zone).",
    {"type": "string", "default": "24h"},
)
_UNTIL = _param(
    "until",
    "End (exclusive), same forms as since; default now.",
    {"type": "string"},
)
_FILTERS = (
    _param(
        "rule",
        "Only stories where this rule matched (repeatable).",
        {"type": "array", "items": {"type": "string"}},
    ),
    _param(
        "topic",
        "Only stories with this topic (repeatable).",
        {"type": "array", "items": {"type": "string"}},
    ),
)
_ERROR = {"$ref": "#/components/responses/Error"}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    params: Sequence[dict[str, Any]] = (),
    open_: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": list(params),
        "responses": responses,
    }
    if open_:
        op["security"] = []
    return op


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI 3.1 document served at ``/openapi.json`` (written by hand)."""
    unauthorised = {"401": {"$ref": "#/components/responses/Unauthorized"}}
    bad = {"400": _ERROR, **unauthorised}
    paths: dict[str, Any] = {
        "/healthz": {
            "get": _op(
                "Liveness: the process answers.",
                {"200": _json("Alive: {status, version}.")},
                open_=True,
            )
        },
        "/readyz": {
            "get": _op(
                "Readiness: the database answers; with the daemon, its scheduler "
                "runs and its last poll is recent.",
                {
                    "200": _json("Ready: {status, checks, reasons: []}."),
                    "503": _json("Not ready: reasons lists what failed."),
                },
                open_=True,
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics (text exposition format).",
                {
                    "200": {
                        "description": "feedwatch_* counters, gauges and histograms.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **unauthorised,
                },
            )
        },
        "/openapi.json": {
            "get": _op("This document.", {"200": _json("OpenAPI 3.1."), **unauthorised})
        },
        "/api/alerts": {
            "get": _op(
                "Alerts, newest first, each with its deliveries.",
                {"200": _json("{alerts: [Alert + deliveries]}."), **bad},
                params=[
                    _param(
                        "since",
                        "Only alerts created since: a duration (24h, 7d) or an ISO "
                        "date; default all.",
                        {"type": "string"},
                    ),
                    _param(
                        "failed",
                        "Only alerts with a dead delivery or a failed attempt "
                        "still pending.",
                        {"type": "boolean", "default": False},
                    ),
                    _param(
                        "limit",
                        "At most this many.",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_ALERTS,
                            "default": 100,
                        },
                    ),
                ],
            )
        },
        "/api/alerts/{alert_id}": {
            "get": {
                **_op(
                    "One alert with its deliveries.",
                    {
                        "200": _json("Alert + deliveries."),
                        "404": _ERROR,
                        **unauthorised,
                    },
                ),
                "parameters": [
                    {
                        "name": "alert_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
            }
        },
        "/api/stories": {
            "get": _op(
                "Stories seen in [since, until), newest first, with their sources, "
                "topics, rules and alerts.",
                {"200": _json("{since, until, stories: [...]}."), **bad},
                params=[_SINCE, _UNTIL],
            )
        },
        "/api/feeds": {
            "get": _op(
                "Subscribed feeds with poll state and stored item counts.",
                {"200": _json("{feeds: [Feed + items]}."), **unauthorised},
            )
        },
        "/api/items": {
            "get": _op(
                "Full-text search of item titles and summaries, best match first.",
                {"200": _json("{query, items: [Item]}."), **bad},
                params=[
                    _param(
                        "q",
                        'Words (all must appear, English stemming), "quoted '
                        'phrases", `or` between alternatives, -word to exclude.',
                        {"type": "string"},
                        required=True,
                    ),
                    _param(
                        "limit",
                        "At most this many.",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_ITEMS,
                            "default": 20,
                        },
                    ),
                ],
            )
        },
        "/api/digest": {
            "get": _op(
                "The digest of a period (stories grouped with sources and evidence).",
                {
                    "200": {
                        "description": "The digest in the asked format.",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "text/plain": {"schema": {"type": "string"}},
                            "text/markdown": {"schema": {"type": "string"}},
                            "text/html": {"schema": {"type": "string"}},
                        },
                    },
                    **bad,
                },
                params=[
                    _SINCE,
                    _UNTIL,
                    *_FILTERS,
                    _param(
                        "format",
                        "json, text, md or html.",
                        {
                            "type": "string",
                            "enum": ["json", "text", "md", "html"],
                            "default": "json",
                        },
                    ),
                ],
            )
        },
        "/digest": {
            "get": _op(
                "The digest as a web page. Also takes the token as ?token= "
                "(a browser cannot send the header).",
                {
                    "200": {
                        "description": "HTML page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    **bad,
                },
                params=[
                    _SINCE,
                    _UNTIL,
                    *_FILTERS,
                    _param("token", "The API token.", {"type": "string"}),
                ],
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "feedwatch API",
            "version": __version__,
            "description": (
                "Alerts, stories, feeds, search and digests of a feedwatch daemon. "
                "Every path but /healthz and /readyz needs `Authorization: Bearer "
                "<api.token>` when a token is configured."
            ),
        },
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": _json(
                    "The request failed; error says why (a bad parameter is named).",
                    {
                        "type": "object",
                        "properties": {"error": {"type": "string"}},
                        "required": ["error"],
                    },
                ),
                "Unauthorized": _json(
                    "No token, or a wrong one (WWW-Authenticate: Bearer).",
                    {
                        "type": "object",
                        "properties": {"error": {"type": "string"}},
                    },
                ),
            },
        },
    }
