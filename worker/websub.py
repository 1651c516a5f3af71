"""Sources stage, push side (WebSub, W3C Recommendation): fetched feeds -> hubs found,
subscriptions asked and renewed; hub callbacks -> verified intent and signed pushes
handed to ``poll.ingest_push``. Polling goes on beside it as the safety net.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from worker import __version__
from worker.config import Settings
from worker.errors import FeedError, FeedwatchError, NotFoundError, StoreError
from worker.fetch import (
    AddressRefused,
    IPAddress,
    Resolve,
    address_kind,
    build_user_agent,
    check_url_address,
    guarded_transport,
    is_public_address,
    proxy_routes,
    system_resolve,
)
from worker.models import FeedStatus, utcnow
from worker.store.base import Subscription, SubscriptionState

if TYPE_CHECKING:
    # starlette serves the callback only (worker.api); a poll pass never needs it.
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from worker.core import Feedwatch

__all__ = [
    "DEFAULT_LEASE",
    "MAX_LEASE",
    "SIGNATURE_METHODS",
    "SILENT_AFTER",
    "Discovery",
    "HubError",
    "SyncReport",
    "WebSubCallback",
    "callback_base",
    "check_signature",
    "discover",
    "due_action",
    "note_hubs",
    "parse_link_header",
    "push_fed",
    "renew_margin",
    "sync_subscriptions",
]

log = logging.getLogger(__name__)

DEFAULT_LEASE = 7 * 86400
"""Lease asked of hubs (hub.lease_seconds); hubs may grant another."""
MAX_LEASE = 365 * 86400
"""Longest lease taken from a hub; a longer grant is renewed as if it were this."""
SILENT_AFTER = timedelta(days=1)
"""A verified hub that pushed nothing for this long is taken for silent: the feed is
polled on its normal schedule again until a push arrives."""
RESEND_AFTER = timedelta(hours=1)
"""A subscribe request still unverified after this is sent again."""
DENIED_RETRY = timedelta(days=1)
"""A denied subscription is asked for again after this."""
MAX_CHALLENGE = 1024
_HUB_SNIPPET = 2048
"""Characters of hub.challenge echoed; a longer one is refused."""
PUSH_CONCURRENCY = 4
"""Pushed bodies ingested at once per process; more wait their turn."""
SIGNATURE_METHODS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
"""X-Hub-Signature methods the Recommendation allows (section 8)."""


class HubError(FeedError):
    """A hub did not take a subscribe request; names the hub and the topic."""

    def __init__(self, hub: str, topic: str, message: str) -> None:
        self.hub = hub
        self.topic = topic
        super().__init__(hub, f"subscribing to {topic}: {message}")


# -- discovery (pure) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Discovery:
    """A feed's hub and the topic URL to subscribe to (rel=self, else the feed URL)."""

    hub: str
    topic: str


# One link-value: <target> then ;-parameters, quoted strings kept whole.
_LINK_VALUE = re.compile(r'<([^>]*)>((?:[^",<]|"(?:[^"\\]|\\.)*")*)')
_LINK_PARAM = re.compile(r';\s*([\w*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)')
_HUB_WORD = re.compile(rb"hub", re.IGNORECASE)
# A document that can name a hub: a rel attribute holding "hub" (XML) or a "hubs"
# member (JSON Feed). Most feeds say "hub" only in their text ("GitHub", "Hubei"):
# they are not parsed a second time just to find none. XML attribute names are
# case-sensitive, so "rel" is matched as written: the literal start lets the regex
# engine skip ahead by memchr (~14x faster on a 20 KB feed than \b with IGNORECASE;
# an alternation at the top would lose that).
_REL_HUB = re.compile(
    rb"rel\s*=\s*(?:\"[^\"]*[hH][uU][bB]|'[^']*[hH][uU][bB]|[hH][uU][bB])"
)


def _may_name_hub(body: bytes) -> bool:
    return b'"hubs"' in body or _REL_HUB.search(body) is not None


def parse_link_header(value: str) -> list[tuple[str, frozenset[str]]]:
    """The (target, rel values) of an RFC 8288 ``Link`` header, in order.

    >>> parse_link_header('<https://hub.example/>; rel="hub", </f>; rel=self')
    [('https://hub.example/', frozenset({'hub'})), ('/f', frozenset({'self'}))]
    """
    out: list[tuple[str, frozenset[str]]] = []
    for m in _LINK_VALUE.finditer(value):
        rels: frozenset[str] = frozenset()
        for name, raw in _LINK_PARAM.findall(m.group(2)):
            if name.lower() == "rel":
                text = raw[1:-1] if raw.startswith('"') else raw
                rels = frozenset(text.lower().split())
                break
        out.append((m.group(1).strip(), rels))
    return out


def _absolute(target: str, base: str) -> str | None:
    """``target`` resolved against ``base`` if the result is an http(s) URL."""
    try:
        url = urllib.parse.urljoin(base, target.strip())
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def _from_json(body: bytes, base: str) -> tuple[str | None, str | None]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(doc, dict):
        return None, None
    hub: str | None = None
    hubs = doc.get("hubs")
    for entry in hubs if isinstance(hubs, list) else ():
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            continue
        kind = str(entry.get("type") or "websub").lower()
        if kind in ("websub", "pubsubhubbub"):
            hub = _absolute(entry["url"], base)
            if hub:
                break
    own = doc.get("feed_url")
    return hub, _absolute(own, base) if isinstance(own, str) else None


# lxml parsers must not be shared between threads: one per thread.
_PARSERS = threading.local()


def _xml_parser() -> Any:
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        from lxml import etree  # type: ignore[import-untyped]

        # No entities, no DTD, no network: the document is untrusted.
        parser = _PARSERS.parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            huge_tree=False,
            load_dtd=False,
            recover=True,
        )
    return parser


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _from_xml(body: bytes, base: str) -> tuple[str | None, str | None]:
    from lxml import etree

    try:
        root = etree.fromstring(body, _xml_parser())
    except (etree.XMLSyntaxError, ValueError):
        return None, None
    if root is None:
        return None, None
    # Feed-level links only: Atom <feed>'s children, RSS <channel>'s children.
    holders = [root]
    if _local(root.tag) in ("rss", "rdf"):
        holders = [c for c in root if _local(c.tag) == "channel"]
    hub: str | None = None
    own: str | None = None
    for holder in holders:
        for el in holder:
            if _local(el.tag) != "link" or not el.get("href"):
                continue
            rels = set((el.get("rel") or "").lower().split())
            if "hub" in rels and hub is None:
                hub = _absolute(el.get("href"), base)
            if "self" in rels and own is None:
                own = _absolute(el.get("href"), base)
    return hub, own


def discover(
    headers: Mapping[str, str],
    body: bytes,
    url: str,
    content_type: str | None = None,
) -> Discovery | None:
    """The hub a fetched feed names, or None: ``Link`` headers first, then the
    document (Atom/RSS ``<link rel="hub">``, JSON Feed ``hubs``); the topic is
    rel=self, else ``url``. Relative targets resolve against ``url``."""
    hub: str | None = None
    own: str | None = None
    for target, rels in parse_link_header(headers.get("link", "")):
        if "hub" in rels and hub is None:
            hub = _absolute(target, url)
        if "self" in rels and own is None:
            own = _absolute(target, url)
    if (hub is None or own is None) and (
        _may_name_hub(body) if hub is None else _HUB_WORD.search(body)
    ):
        start = body.lstrip()[:1]
        kind = (content_type or headers.get("content-type") or "").lower()
        doc_hub, doc_own = (
            _from_json(body, url)
            if start == b"{" or "json" in kind
            else _from_xml(body, url)
        )
        if hub is None:
            # The self URL of the document goes with the document's hub.
            hub, own = doc_hub, own or doc_own
        else:
            own = own or doc_own
    if hub is None:
        return None
    return Discovery(hub=hub, topic=own or url)


# -- signatures (pure) -----------------------------------------------------------------


def check_signature(secret: str, body: bytes, header: str | None) -> str | None:
    """Why ``X-Hub-Signature: method=hex`` does not sign ``body`` with ``secret``,
    or None when it does (compared in constant time)."""
    if not header:
        return "no X-Hub-Signature header"
    method, sep, given = header.strip().partition("=")
    algorithm = SIGNATURE_METHODS.get(method.strip().lower())
    if not sep or algorithm is None:
        return f"unsupported signature method {method.strip()[:20]!r}"
    expected = hmac.new(secret.encode("utf-8"), body, algorithm).hexdigest()
    # Bytes: compare_digest refuses str with non-ASCII characters (TypeError).
    given_bytes = given.strip().lower().encode("utf-8", "replace")
    if not hmac.compare_digest(expected.encode("ascii"), given_bytes):
        return f"the {method.strip().lower()} signature does not match the body"
    return None


# -- subscriptions ---------------------------------------------------------------------


def renew_margin(lease_seconds: int | None) -> timedelta:
    """How long before its lease ends a verified subscription is renewed: half the
    lease, at most a day."""
    lease = lease_seconds if lease_seconds and lease_seconds > 0 else DEFAULT_LEASE
    return min(timedelta(seconds=lease / 2), timedelta(days=1))


def due_action(sub: Subscription, now: datetime) -> str | None:
    """What ``sync_subscriptions`` does with ``sub`` at ``now``: ``subscribe``,
    ``resend`` (unverified too long), ``renew`` (lease ends soon), ``retry``
    (denied a while ago), or None."""
    waiting = sub.requested_at is not None and now - sub.requested_at < RESEND_AFTER
    state = sub.state
    if state in (SubscriptionState.DISCOVERED, SubscriptionState.EXPIRED):
        return None if waiting else "subscribe"
    if state == SubscriptionState.PENDING:
        return None if waiting else "resend"
    if state == SubscriptionState.DENIED:
        return "retry" if now - sub.updated_at >= DENIED_RETRY else None
    if state == SubscriptionState.VERIFIED:
        ends = sub.lease_expires_at
        if ends is None or ends - now <= renew_margin(sub.lease_seconds):
            return None if waiting else "renew"
    return None


@dataclass
class SyncReport:
    """What one ``sync_subscriptions`` run did."""

    expired: int = 0
    requested: dict[int, str] = field(default_factory=dict)
    """Feed id -> action, for each subscribe request a hub took."""
    failed: dict[int, str] = field(default_factory=dict)
    """Feed id -> error, for each request a hub did not take."""


def callback_base(settings: Settings) -> str | None:
    """The base URL of callbacks, or None when WebSub is off (``api.websub`` false
    or ``api.public_url`` unset)."""
    api = settings.api
    return api.public_url if api.websub and api.public_url else None


def _hub_refused(
    hub: str, feed_url: str, host: str, refused: Sequence[tuple[str, str]]
) -> str:
    """A refused hub's error, worded apart from a refused feed's: the hub comes from
    the feed's document, so the reader must learn which one and where to allow it."""
    if [ip for ip, _ in refused] == [host]:
        shown = f"{host} ({refused[0][1]} address)"
    else:
        where = ", ".join(f"{ip}: {kind}" for ip, kind in refused) or "none"
        shown = f"{host} ({where} address)"
    return (
        f"address: refusing the WebSub hub {hub} of feed {feed_url}: {shown}; "
        "hubs on private networks are refused unless "
        "fetch.allow_private_addresses is true"
    )


async def _ask_hub(
    client: httpx.AsyncClient,
    settings: Settings,
    sub: Subscription,
    form: Mapping[str, str],
    resolve: Resolve | None = None,
    *,
    feed_url: str,
) -> None:
    hub = sub.hub
    if not settings.fetch.allow_private_addresses:
        routes = proxy_routes(settings.fetch)
        rejected: list[IPAddress] = []

        def allowed(ip: IPAddress) -> bool:
            if is_public_address(ip):
                return True
            rejected.append(ip)
            return False

        try:
            await check_url_address(
                hub,
                allowed=allowed,
                resolve=resolve or system_resolve,
                # A hub reached through a proxy may have no DNS entry here.
                unresolved_ok=routes is not None
                and routes.select(httpx.URL(hub)) is not None,
            )
        except FeedError as e:
            if rejected:
                host = urllib.parse.urlsplit(hub).hostname or hub
                ip = rejected[0]
                kind = address_kind(ip) or "disallowed"
                detail = _hub_refused(hub, feed_url, host, [(str(ip), kind)])
            else:
                detail = str(e).removeprefix(f"{hub}: ")
            raise HubError(hub, sub.topic, detail) from e
    # The hub comes from an untrusted feed: read at most a snippet of its answer,
    # and all of it within the fetch timeout (a drip of bytes resets httpx's).
    status, start = 0, b""
    try:
        async with (
            asyncio.timeout(settings.fetch.timeout),
            client.stream("POST", hub, data=dict(form)) as response,
        ):
            status = response.status_code
            if not 200 <= status < 300:
                async for chunk in response.aiter_bytes():
                    start += chunk
                    if len(start) >= _HUB_SNIPPET:
                        break
    except AddressRefused as e:
        # The connect-time lookup answered differently from the check (rebinding).
        detail = _hub_refused(hub, feed_url, e.host, e.refused)
        raise HubError(hub, sub.topic, detail) from e
    except httpx.HTTPError as e:
        detail = str(e) or type(e).__name__
        raise HubError(hub, sub.topic, f"request failed: {detail}") from e
    except TimeoutError as e:
        raise HubError(
            hub,
            sub.topic,
            f"no complete answer within {settings.fetch.timeout:g}s",
        ) from e
    if not 200 <= status < 300:
        said = " ".join(start[:_HUB_SNIPPET].decode("utf-8", "replace").split())
        said = said[:200]
        raise HubError(hub, sub.topic, f"HTTP {status}" + (f": {said}" if said else ""))


async def sync_subscriptions(
    fw: Feedwatch,
    *,
    callback_base: str,
    now: datetime | None = None,
    lease_seconds: int = DEFAULT_LEASE,
    client: httpx.AsyncClient | None = None,
    resolve: Resolve | None = None,
) -> SyncReport:
    """Expire ended leases, then send a subscribe request for every subscription
    :func:`due_action` says is due (new hubs, unverified, ending leases, old
    denials) of a feed that is not disabled. Hub failures are kept on the row
    (``last_error``) and retried at a later run; StoreError propagates.

    The own client connects only to addresses the SSRF guard allows (unless
    ``fetch.allow_private_addresses``); ``resolve`` replaces getaddrinfo (tests)."""
    now = now or utcnow()
    store = fw.store
    report = SyncReport()
    report.expired = await asyncio.to_thread(store.expire_subscriptions, now)
    subs, feeds = await asyncio.gather(
        asyncio.to_thread(store.list_subscriptions),
        asyncio.to_thread(store.list_feeds),
    )
    live = {f.id: f.url for f in feeds if f.status != FeedStatus.DISABLED}
    due = [
        (sub, action)
        for sub in subs
        if sub.feed_id in live and (action := due_action(sub, now)) is not None
    ]
    if not due:
        return report
    settings = fw.settings
    own = client is None
    http = client or httpx.AsyncClient(
        transport=guarded_transport(
            "httpx",
            max_connections=10,
            allowed=None
            if settings.fetch.allow_private_addresses
            else is_public_address,
            resolve=resolve,
            proxies=proxy_routes(settings.fetch),
            ca_file=settings.fetch.ca_file,
        ),
        headers={"User-Agent": build_user_agent(settings.fetch, __version__)},
        timeout=httpx.Timeout(
            settings.fetch.timeout, connect=settings.fetch.connect_timeout
        ),
        follow_redirects=False,
        trust_env=False,
    )
    base = callback_base.rstrip("/")
    try:
        for sub, action in due:
            # A fresh secret per subscription; a renewal keeps it, so pushes the
            # hub signs meanwhile still check.
            secret = sub.secret or secrets.token_urlsafe(32)
            # Recorded before asking: hubs may verify before they answer.
            await asyncio.to_thread(
                store.subscription_requested, sub.feed_id, secret, now
            )
            form = {
                "hub.mode": "subscribe",
                "hub.topic": sub.topic,
                "hub.callback": f"{base}/websub/{sub.feed_id}",
                "hub.lease_seconds": str(lease_seconds),
                "hub.secret": secret,
            }
            try:
                await _ask_hub(
                    http, settings, sub, form, resolve, feed_url=live[sub.feed_id]
                )
            except HubError as e:
                log.warning("websub: feed %d: %s", sub.feed_id, e)
                report.failed[sub.feed_id] = str(e)
                try:
                    await asyncio.to_thread(
                        store.subscription_failed, sub.feed_id, str(e), now
                    )
                except NotFoundError:
                    pass  # the feed was removed meanwhile
                continue
            report.requested[sub.feed_id] = action
            log.info(
                "websub: %s feed=%d topic=%s hub=%s",
                action,
                sub.feed_id,
                sub.topic,
                sub.hub,
            )
    finally:
        if own:
            await http.aclose()
    return report


# -- the poll pass's side --------------------------------------------------------------


async def note_hubs(
    fw: Feedwatch, found: Mapping[int, Discovery], now: datetime
) -> int:
    """Record the hubs a poll pass discovered (feed id -> :func:`discover`'s
    answer); returns how many rows changed. A store failure is logged, never
    raised: discovery must not fail a poll."""
    if not found or not fw.settings.api.websub:
        return 0
    pairs = {fid: (d.hub, d.topic) for fid, d in found.items()}
    try:
        return await asyncio.to_thread(fw.store.record_hubs, pairs, now)
    except StoreError as e:
        log.warning("websub: recording discovered hubs failed: %s", e)
        return 0


async def push_fed(fw: Feedwatch, now: datetime) -> frozenset[int]:
    """Ids of feeds a live hub pushes (polled less often); empty when WebSub is off
    or the store fails (then every feed keeps its normal schedule)."""
    if not fw.settings.api.websub:
        return frozenset()
    try:
        ids = await asyncio.to_thread(fw.store.push_fed_feeds, now, now - SILENT_AFTER)
    except StoreError as e:
        log.warning("websub: reading live subscriptions failed: %s", e)
        return frozenset()
    return frozenset(ids)


# -- the callback (served by worker.api) -----------------------------------------------


class WebSubCallback:
    """``GET``/``POST /websub/{feed_id}``: intent verification and content
    distribution. A push is answered 202 at once and ingested afterwards."""

    def __init__(self, fw: Feedwatch) -> None:
        self.fw = fw
        self.processed = 0
        """Pushes whose ingestion has finished (well or not); tests wait on it."""
        self._slots: asyncio.Semaphore | None = None

    def routes(self) -> list[Route]:
        """The two routes, to mount at ``/websub``."""
        from starlette.routing import Route

        return [
            Route("/{feed_id:int}", self.verify, methods=["GET"]),
            Route("/{feed_id:int}", self.push, methods=["POST"]),
        ]

    async def verify(self, request: Request) -> Response:
        """Echo hub.challenge for a subscribe request we sent (topic matching);
        record a denial of one; 404 for anything else."""
        from starlette.responses import PlainTextResponse, Response

        feed_id = int(request.path_params["feed_id"])
        q = request.query_params
        mode = (q.get("hub.mode") or "").lower()
        topic = q.get("hub.topic") or ""
        store = self.fw.store
        now = utcnow()
        if mode == "subscribe":
            challenge = q.get("hub.challenge") or ""
            lease = (q.get("hub.lease_seconds") or "").strip()
            if not challenge or len(challenge) > MAX_CHALLENGE:
                return _refused(feed_id, "hub.challenge missing or too long")
            granted = None
            # isdecimal+isascii: "²" is a digit to isdigit() but not to int().
            if lease.isascii() and lease.isdecimal() and lease.strip("0"):
                granted = int(lease) if len(lease) <= 12 else MAX_LEASE
                granted = min(granted, MAX_LEASE)
            ok = await asyncio.to_thread(
                store.verify_subscription,
                feed_id,
                topic,
                granted or DEFAULT_LEASE,
                now,
            )
            if not ok:
                return _refused(feed_id, f"no subscribe request awaits for {topic!r}")
            log.info(
                "websub: verified feed=%d topic=%s lease=%ss",
                feed_id,
                topic,
                granted or DEFAULT_LEASE,
            )
            return PlainTextResponse(
                challenge, headers={"X-Content-Type-Options": "nosniff"}
            )
        if mode == "denied":
            reason = " ".join((q.get("hub.reason") or "").split())[:500] or None
            if await asyncio.to_thread(
                store.deny_subscription, feed_id, topic, reason, now
            ):
                log.warning(
                    "websub: the hub denied feed=%d topic=%s: %s",
                    feed_id,
                    topic,
                    reason or "no reason given",
                )
                return Response(status_code=200)
            return _refused(feed_id, f"no subscribe request awaits for {topic!r}")
        return _refused(feed_id, f"hub.mode {mode[:20]!r} not expected")

    async def push(self, request: Request) -> Response:
        """Check a pushed body's signature; 202 and ingest it if it is right, 202
        and drop it if not (no oracle for forgers), 410 if the subscription is
        not live, 404 if the feed has none."""
        from starlette.background import BackgroundTask
        from starlette.responses import Response

        feed_id = int(request.path_params["feed_id"])
        store = self.fw.store
        sub = await asyncio.to_thread(store.get_subscription, feed_id)
        now = utcnow()
        live = (
            sub.state == SubscriptionState.VERIFIED
            and sub.lease_expires_at is not None
            and sub.lease_expires_at > now
            and sub.secret
        )
        if not live or sub.secret is None:
            log.info(
                "websub: push for feed=%d ignored: the subscription is %s",
                feed_id,
                "expired" if sub.state == SubscriptionState.VERIFIED else sub.state,
            )
            return Response(status_code=410)
        encoding = (request.headers.get("content-encoding") or "identity").lower()
        if encoding.strip() != "identity":
            return _error(415, f"Content-Encoding {encoding[:20]!r} is not accepted")
        cap = self.fw.settings.fetch.max_body_bytes
        body = await _read_body(request, cap)
        if body is None:
            log.warning("websub: push for feed=%d refused: over %d bytes", feed_id, cap)
            return _error(413, f"the body exceeds {cap} bytes")
        problem = check_signature(
            sub.secret, body, request.headers.get("x-hub-signature")
        )
        if problem is not None:
            log.warning(
                "websub: push for feed=%d topic=%s rejected: %s",
                feed_id,
                sub.topic,
                problem,
            )
            return Response(status_code=202)
        task = BackgroundTask(
            self._ingest, feed_id, body, request.headers.get("content-type"), now
        )
        return Response(status_code=202, background=task)

    async def _ingest(
        self, feed_id: int, body: bytes, content_type: str | None, now: datetime
    ) -> None:
        from worker.poll import ingest_push

        if self._slots is None:
            self._slots = asyncio.Semaphore(PUSH_CONCURRENCY)
        store = self.fw.store
        try:
            async with self._slots:
                await asyncio.to_thread(store.record_push, feed_id, now)
                feed = await asyncio.to_thread(store.feed_by_id, feed_id)
                summary = await ingest_push(self.fw, feed, body, content_type)
            log.info(
                "websub: push feed=%d new_items=%d alerts=%d",
                feed_id,
                summary.new_items,
                summary.alerts,
            )
        except FeedwatchError as e:
            log.error("websub: ingesting a push for feed=%d failed: %s", feed_id, e)
        except Exception:
            log.exception(
                "websub: ingesting a push for feed=%d failed (a bug)", feed_id
            )
        finally:
            self.processed += 1


def _refused(feed_id: int, why: str) -> Response:
    log.info("websub: verification for feed=%d refused: %s", feed_id, why)
    return _error(404, "no such subscription request")


def _error(status: int, message: str) -> Response:
    from starlette.responses import Response

    return Response(
        json.dumps({"error": message}),
        status_code=status,
        media_type="application/json",
    )


async def _read_body(request: Request, cap: int) -> bytes | None:
    """The request body, or None past ``cap`` bytes (read no further)."""
    length = (request.headers.get("content-length") or "").strip()
    if length.isdigit() and int(length) > cap:
        return None
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            return None
        parts.append(chunk)
    return b"".join(parts)
