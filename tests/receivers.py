"""Real loopback servers for tests: an SMTP server (aiosmtpd) and an HTTP webhook
receiver, both on 127.0.0.1 with an ephemeral port, both context managers.

Not a conftest: import what you need::

    with WebhookReceiver() as hook:
        hook.enqueue(Reply(503, {"Retry-After": "7"}))
        ...  # POST to hook.url()
        [request] = hook.wait_for(1)

    with SmtpReceiver() as smtp:
        smtp.fail_next(2, "451 4.3.0 try later")
        ...  # send to smtp.host, smtp.port
        [mail] = smtp.wait_for(1)
        mail.message["Subject"]
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = [
    "ReceivedMail",
    "RecordedRequest",
    "Reply",
    "SmtpReceiver",
    "WebhookReceiver",
    "client_tls_context",
    "closed_port",
    "make_self_signed_cert",
    "server_tls_context",
]

LOOPBACK = "127.0.0.1"
MAX_BODY = 10_000_000


def closed_port() -> int:
    """A loopback port with nothing listening (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _wait(cond: threading.Condition, ready: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    with cond:
        while not ready():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            cond.wait(left)


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Reply:
    """A programmed answer: status, headers, body, and a delay before answering
    (longer than the client's timeout to provoke one)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the receiver saw it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    timeout = 10  # a client that stalls mid-request cannot pin a thread forever

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        receiver = self.server.receiver
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY)) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = RecordedRequest(self.command, self.path, headers, body)
        reply = receiver._record(request)
        if reply.delay and receiver._stopping.wait(reply.delay):
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.body and self.command != "HEAD":
                self.wfile.write(reply.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up (timeout tests)
        receiver._answered(request, reply.status)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # stop() joins handler threads: nothing outlives a test

    def __init__(self, addr: tuple[str, int], receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        super().__init__(addr, _Handler)


class WebhookReceiver:
    """A threaded HTTP server on 127.0.0.1 that records every request and answers
    with the queued replies in order (then ``default``)."""

    def __init__(
        self, *, default: Reply | None = None, host: str = LOOPBACK, port: int = 0
    ) -> None:
        self.default = default or Reply()
        self.host = host
        self._port = port
        self._replies: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._receipts: list[tuple[RecordedRequest, int]] = []
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        return self._port

    def url(self, path: str = "/hook") -> str:
        """An http:// URL on this receiver."""
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> Self:
        """Bind and serve in a thread."""
        assert self._server is None, "already running"
        self._stopping.clear()
        self._server = _HttpServer((self.host, self._port), self)
        self._port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"webhook-receiver-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; delayed replies are abandoned; handler threads are joined."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def enqueue(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order."""
        with self._cond:
            self._replies.extend(replies)

    def _record(self, request: RecordedRequest) -> Reply:
        with self._cond:
            self._requests.append(request)
            reply = self._replies.popleft() if self._replies else self.default
            self._cond.notify_all()
        return reply

    def _answered(self, request: RecordedRequest, status: int) -> None:
        with self._cond:
            self._receipts.append((request, status))
            self._cond.notify_all()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests received so far, oldest first."""
        with self._cond:
            return list(self._requests)

    @property
    def receipts(self) -> list[tuple[RecordedRequest, int]]:
        """Requests whose answer was written out, with its status (a timed-out
        client may not have read it), oldest first."""
        with self._cond:
            return list(self._receipts)

    def delivered(self) -> list[RecordedRequest]:
        """Requests answered 2xx: what the sender counts as delivered."""
        return [r for r, status in self.receipts if 200 <= status < 300]

    def wait_for_delivered(
        self, count: int, timeout: float = 5.0
    ) -> list[RecordedRequest]:
        """Block until ``count`` requests were answered 2xx (TimeoutError otherwise)."""
        _wait(
            self._cond,
            lambda: sum(200 <= s < 300 for _, s in self._receipts) >= count,
            timeout,
            f"{count} 2xx answers",
        )
        return self.delivered()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until ``count`` requests have arrived (TimeoutError otherwise)."""
        _wait(
            self._cond,
            lambda: len(self._requests) >= count,
            timeout,
            f"{count} requests",
        )
        return self.requests


# --------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMail:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool = False
    login: str | None = None

    @property
    def message(self) -> EmailMessage:
        """The message parsed with the modern email policy."""
        return email.message_from_bytes(self.data, policy=email.policy.default)


class _SmtpHandler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        reply = self.receiver._take_failure("MAIL")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.receiver._take_failure("RCPT")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        reply = self.receiver._take_failure("DATA")
        if reply:
            return reply
        data = envelope.original_content or b""
        login = session.auth_data
        self.receiver._record(
            ReceivedMail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=data,
                tls=server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None,
                login=login.decode() if isinstance(login, bytes) else None,
            )
        )
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """aiosmtpd's Controller, able to bind port 0 (it probes the port it was given)."""

    def _trigger_server(self) -> None:
        server = cast(asyncio.Server, self.server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpReceiver:
    """An aiosmtpd server on 127.0.0.1 that records accepted messages and can be
    told to answer failures (``fail_next``); ``stop()``/``start()`` again on the
    same port simulates an outage with refused connections.

    ``tls_context``: implicit TLS (SMTPS). ``starttls_context``: offers STARTTLS
    (``require_starttls`` to insist). ``credentials``: AUTH PLAIN/LOGIN accounts
    (offered after STARTTLS only, as aiosmtpd insists).
    """

    def __init__(
        self,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        tls_context: ssl.SSLContext | None = None,
        starttls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self._tls_context = tls_context
        self._starttls_context = starttls_context
        self._require_starttls = require_starttls
        self._credentials = dict(credentials or {})
        self._failures: deque[tuple[str, str]] = deque()
        self._messages: list[ReceivedMail] = []
        self._cond = threading.Condition()
        self._controller: _Controller | None = None

    @property
    def port(self) -> int:
        """The bound port (known once started; kept across stop/start)."""
        return self._port

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode()
            if self._credentials.get(user) == auth_data.password.decode():
                return AuthResult(success=True, auth_data=auth_data.login)
        return AuthResult(success=False, handled=False)

    def start(self) -> Self:
        """Start serving in aiosmtpd's thread (on the previous port if restarted)."""
        assert self._controller is None, "already running"
        kwargs: dict[str, Any] = {}
        if self._starttls_context is not None:
            kwargs["tls_context"] = self._starttls_context
            kwargs["require_starttls"] = self._require_starttls
        if self._credentials:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = True
        controller = _Controller(
            _SmtpHandler(self),
            hostname=self.host,
            port=self._port,
            ssl_context=self._tls_context,
            server_hostname="receiver.test",
            ready_timeout=10.0,
            **kwargs,
        )
        controller.start()
        self._port = int(controller.port)
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop serving (connections are refused until ``start`` again)."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def fail_next(
        self,
        count: int = 1,
        reply: str = "451 4.3.0 Try again later",
        *,
        at: str = "DATA",
    ) -> None:
        """Answer the next ``count`` MAIL, RCPT or DATA commands with ``reply``."""
        at = at.upper()
        assert at in ("MAIL", "RCPT", "DATA"), at
        with self._cond:
            self._failures.extend([(at, reply)] * count)

    def _take_failure(self, stage: str) -> str | None:
        with self._cond:
            if self._failures and self._failures[0][0] == stage:
                return self._failures.popleft()[1]
        return None

    def _record(self, mail: ReceivedMail) -> None:
        with self._cond:
            self._messages.append(mail)
            self._cond.notify_all()

    @property
    def messages(self) -> list[ReceivedMail]:
        """Messages accepted so far, oldest first."""
        with self._cond:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until ``count`` messages were accepted (TimeoutError otherwise)."""
        _wait(
            self._cond,
            lambda: len(self._messages) >= count,
            timeout,
            f"{count} messages",
        )
        return self.messages


# --------------------------------------------------------------------------- TLS


def make_self_signed_cert(directory: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate for 127.0.0.1/localhost as (cert, key) files, made
    with the ``openssl`` command; None if it is not installed."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side TLS context for the certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def client_tls_context(cert: Path) -> ssl.SSLContext:
    """A client-side TLS context that trusts exactly this certificate."""
    return ssl.create_default_context(cafile=str(cert))
