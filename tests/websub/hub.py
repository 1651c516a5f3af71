"""A small real WebSub hub on 127.0.0.1 for tests (standard library + httpx).

It takes subscribe requests (form POST), verifies intent with a GET to the callback
carrying ``hub.challenge`` (before answering, or after with ``verify="async"``), can
deny instead, and distributes content to verified subscribers signed with
``X-Hub-Signature: sha256=HMAC(secret, body)``. Every request it gets is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal, Self

import httpx

__all__ = ["Hub", "HubSubscription"]

Verify = Literal["sync", "async", "never", "deny"]


@dataclass
class HubSubscription:
    """What the hub keeps per (topic, callback)."""

    topic: str
    callback: str
    secret: str | None
    lease_seconds: int
    verified: bool = False


@dataclass
class _State:
    lock: threading.Condition = field(default_factory=threading.Condition)
    requests: list[dict[str, str]] = field(default_factory=list)
    """Every subscribe/unsubscribe form received, in order."""
    verifications: list[tuple[str, int, str]] = field(default_factory=list)
    """(callback, status, body) of every verification GET."""
    subscriptions: dict[tuple[str, str], HubSubscription] = field(default_factory=dict)
    verify: Verify = "sync"
    fail_status: int | None = None
    lease: int | None = None
    """Lease the hub grants; None: what the subscriber asked."""


class Hub:
    """``with Hub() as hub``: ``hub.url`` takes subscriptions; ``publish`` pushes."""

    def __init__(self) -> None:
        self._state = _State()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []

    def __enter__(self) -> Self:
        httpd = ThreadingHTTPServer(
            ("127.0.0.1", 0), _handler(self._state, self._spawn)
        )
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for worker in self._workers:
            worker.join(10)
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def _spawn(self, fn: Callable[[], None]) -> None:
        worker = threading.Thread(target=fn, daemon=True)
        self._workers.append(worker)
        worker.start()

    @property
    def url(self) -> str:
        """Where subscribers POST."""
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    # -- behaviour -----------------------------------------------------------------

    def configure(
        self,
        *,
        verify: Verify = "sync",
        fail_status: int | None = None,
        lease: int | None = None,
    ) -> None:
        """How the hub treats the next subscribe requests: verify before answering
        (sync), after (async), not at all (never), or deny; or answer
        ``fail_status``; grant ``lease`` seconds (None: as asked)."""
        with self._state.lock:
            self._state.verify = verify
            self._state.fail_status = fail_status
            self._state.lease = lease

    # -- observations --------------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, str]]:
        """Subscribe forms received so far (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def verifications(self) -> list[tuple[str, int, str]]:
        """(callback, status, body) of each verification GET made (a copy)."""
        with self._state.lock:
            return list(self._state.verifications)

    def subscription(self, topic: str) -> HubSubscription:
        """The only subscription of ``topic``."""
        with self._state.lock:
            [sub] = [s for (t, _), s in self._state.subscriptions.items() if t == topic]
            return sub

    def wait_verifications(self, count: int, timeout: float = 10.0) -> None:
        """Block until ``count`` verification GETs were made (AssertionError if not)."""
        deadline = time.monotonic() + timeout
        with self._state.lock:
            while len(self._state.verifications) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self._state.verifications)} verifications"
                self._state.lock.wait(left)

    # -- distribution --------------------------------------------------------------

    def publish(
        self,
        topic: str,
        body: bytes,
        content_type: str = "application/atom+xml",
        *,
        secret: str | None = None,
        method: str = "sha256",
        signature: str | None = None,
    ) -> list[httpx.Response]:
        """POST ``body`` to every verified subscriber of ``topic``, signed with its
        secret (or ``secret``), or with the literal header ``signature``."""
        with self._state.lock:
            subs = [
                s
                for (t, _), s in self._state.subscriptions.items()
                if t == topic and s.verified
            ]
        assert subs, f"nobody verified a subscription to {topic}"
        out = []
        with httpx.Client(timeout=10) as client:
            for sub in subs:
                headers = {"Content-Type": content_type}
                key = secret if secret is not None else sub.secret
                if signature is not None:
                    headers["X-Hub-Signature"] = signature
                elif key is not None:
                    digest = hmac.new(
                        key.encode(), body, getattr(hashlib, method)
                    ).hexdigest()
                    headers["X-Hub-Signature"] = f"{method}={digest}"
                out.append(client.post(sub.callback, content=body, headers=headers))
        return out


def _verify(state: _State, sub: HubSubscription, mode: Verify) -> None:
    if mode == "deny":
        query = {
            "hub.mode": "denied",
            "hub.topic": sub.topic,
            "hub.reason": "topic not served here",
        }
    else:
        query = {
            "hub.mode": "subscribe",
            "hub.topic": sub.topic,
            "hub.challenge": secrets.token_hex(16),
            "hub.lease_seconds": str(sub.lease_seconds),
        }
    sep = "&" if "?" in sub.callback else "?"
    url = sub.callback + sep + urllib.parse.urlencode(query)
    try:
        with httpx.Client(timeout=10) as client:
            response = client.get(url)
        status, text = response.status_code, response.text
    except httpx.HTTPError as e:
        status, text = 0, str(e)
    with state.lock:
        if mode != "deny" and status == 200 and text == query["hub.challenge"]:
            sub.verified = True
        state.verifications.append((sub.callback, status, text))
        state.lock.notify_all()


def _handler(
    state: _State, spawn: Callable[[Callable[[], None]], None]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            form = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
            with state.lock:
                state.requests.append(form)
                mode, fail, lease = state.verify, state.fail_status, state.lease
            if fail is not None:
                self._answer(fail, b"hub says no")
                return
            if form.get("hub.mode") != "subscribe" or not form.get("hub.callback"):
                self._answer(400, b"expected hub.mode=subscribe and hub.callback")
                return
            asked = int(form.get("hub.lease_seconds") or 864000)
            sub = HubSubscription(
                topic=form["hub.topic"],
                callback=form["hub.callback"],
                secret=form.get("hub.secret"),
                lease_seconds=lease if lease is not None else asked,
            )
            with state.lock:
                old = state.subscriptions.get((sub.topic, sub.callback))
                if old is not None and old.verified:
                    sub.verified = True  # a renewal: still verified meanwhile
                state.subscriptions[(sub.topic, sub.callback)] = sub
            if mode == "sync":
                _verify(state, sub, mode)
                self._answer(204)
                return
            self._answer(202)
            if mode in ("async", "deny"):
                spawn(lambda: _verify(state, sub, mode))

    return Handler
