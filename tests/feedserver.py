"""A real threaded HTTP feed server on 127.0.0.1 for tests: documents in, HTTP out.

Serves published documents with ETag/Last-Modified validators, answers 304 to matching
conditional requests, gzips when asked, and injects faults (status codes, redirects,
delays, endless bodies). Records every request. Standard library only.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import NamedTuple

__all__ = ["FeedServer", "Request"]

_CHUNK = 64 * 1024


class Request(NamedTuple):
    """One request as the server saw it (header names lower-cased)."""

    method: str
    path: str
    """The path with its query string."""
    headers: dict[str, str]


@dataclass(slots=True)
class _Doc:
    body: bytes
    content_type: str
    etag: str | None
    last_modified: float | None
    encoding: str | None
    headers: dict[str, str]


@dataclass(slots=True)
class _Stream:
    size: int
    content_type: str
    content_length: bool
    encoding: str | None


@dataclass(slots=True)
class _Fault:
    status: int
    times: int | None
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    docs: dict[str, _Doc] = field(default_factory=dict)
    streams: dict[str, _Stream] = field(default_factory=dict)
    faults: dict[str, _Fault] = field(default_factory=dict)
    redirects: dict[str, tuple[str, int]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    stream_done: dict[str, threading.Event] = field(default_factory=dict)


def _etag_matches(header: str, etag: str) -> bool:
    def bare(tag: str) -> str:
        tag = tag.strip()
        return tag[2:] if tag.startswith("W/") else tag

    return any(t.strip() == "*" or bare(t) == bare(etag) for t in header.split(","))


class FeedServer:
    """Threaded HTTP server on an ephemeral 127.0.0.1 port; ``with FeedServer() as s``."""

    def __init__(self) -> None:
        self._state = _State()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> FeedServer:
        """Bind and serve in a daemon thread."""
        handler = _make_handler(self._state)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._state.stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; wakes delayed responses so no thread lingers."""
        self._state.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._httpd is None:
            raise RuntimeError("FeedServer is not started")
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        """Absolute URL of ``path`` on this server."""
        if not path.startswith("/"):
            path = "/" + path
        return f"http://127.0.0.1:{self.port}{path}"

    # -- content -----------------------------------------------------------------

    def set(
        self,
        path: str,
        body: bytes,
        content_type: str = "application/rss+xml",
        *,
        etag: bool = True,
        last_modified: bool = True,
        encoding: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Publish or replace a document. ``encoding`` marks ``body`` as already
        encoded (e.g. "gzip") and sends it as is with that Content-Encoding;
        ``headers`` are added to every 200 answer."""
        doc = _Doc(
            body=body,
            content_type=content_type,
            etag=f'"{hashlib.sha256(body).hexdigest()[:16]}"' if etag else None,
            last_modified=float(int(time.time())) if last_modified else None,
            encoding=encoding,
            headers=dict(headers or {}),
        )
        with self._state.lock:
            self._state.docs[path] = doc
            self._state.streams.pop(path, None)

    def set_stream(
        self,
        path: str,
        size: int,
        content_type: str = "application/rss+xml",
        *,
        content_length: bool = True,
        encoding: str | None = None,
    ) -> None:
        """Serve ``size`` bytes generated on the fly, in 64 KiB writes; ``sent(path)``
        tells how many reached the socket before the client hung up."""
        with self._state.lock:
            self._state.streams[path] = _Stream(
                size, content_type, content_length, encoding
            )
            self._state.stream_done[path] = threading.Event()
            self._state.sent.pop(path, None)
            self._state.docs.pop(path, None)

    def remove(self, path: str) -> None:
        """Unpublish a document (404 from now on)."""
        with self._state.lock:
            self._state.docs.pop(path, None)
            self._state.streams.pop(path, None)

    # -- faults ------------------------------------------------------------------

    def fail(
        self,
        path: str,
        status: int,
        *,
        times: int | None = 1,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        """Answer the next ``times`` requests (None: all) for ``path`` with ``status``."""
        with self._state.lock:
            self._state.faults[path] = _Fault(status, times, dict(headers or {}), body)

    def redirect(self, path: str, to: str, status: int = 301) -> None:
        """Answer ``path`` with a redirect to ``to`` (a path or a full URL, sent as is)."""
        with self._state.lock:
            self._state.redirects[path] = (to, status)

    def slow(self, path: str, seconds: float) -> None:
        """Wait ``seconds`` before answering ``path`` (woken early by ``stop``)."""
        with self._state.lock:
            self._state.delays[path] = seconds

    def reset(self) -> None:
        """Forget documents, faults and recorded requests."""
        with self._state.lock:
            for d in (
                self._state.docs,
                self._state.streams,
                self._state.faults,
                self._state.redirects,
                self._state.delays,
                self._state.sent,
            ):
                d.clear()
            self._state.requests.clear()

    # -- observations ------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        """Requests received so far, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    def requests_for(self, path: str) -> list[Request]:
        """Requests received for one path."""
        return [r for r in self.requests if r.path == path]

    def wait_stream_done(self, path: str, timeout: float = 10.0) -> bool:
        """Wait until the server stopped writing ``path`` (finished or the client
        hung up); False if it is still writing after ``timeout`` seconds."""
        with self._state.lock:
            done = self._state.stream_done.get(path)
        if done is None:
            raise KeyError(f"no stream published at {path!r}")
        return done.wait(timeout)

    def sent(self, path: str) -> int:
        """Body bytes written for ``path`` so far (streams only)."""
        with self._state.lock:
            return self._state.sent.get(path, 0)


def _make_handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FeedServer/1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _serve(self, *, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            with state.lock:
                state.requests.append(Request(self.command, self.path, headers))
                delay = state.delays.get(path)
                fault = state.faults.get(path)
                if fault is not None and fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del state.faults[path]
                redirect = state.redirects.get(path)
                doc = state.docs.get(path)
                stream = state.streams.get(path)
            if delay and state.stopping.wait(delay):
                return
            if fault is not None:
                self._send(fault.status, fault.body, "text/plain", fault.headers, head)
            elif redirect is not None:
                to, status = redirect
                self._send(status, b"", "text/plain", {"Location": to}, head)
            elif doc is not None:
                self._send_doc(doc, headers, head)
            elif stream is not None:
                self._send_stream(path, stream, head)
            else:
                self._send(404, b"not found", "text/plain", {}, head)

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str,
            extra: Mapping[str, str],
            head: bool,
        ) -> None:
            self.send_response(status)
            if status != 304:
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            if not head and status != 304:
                self._write(body)

        def _write(self, data: bytes) -> bool:
            try:
                self.wfile.write(data)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return False
            return True

        def _send_doc(self, doc: _Doc, req: Mapping[str, str], head: bool) -> None:
            validators: dict[str, str] = {}
            if doc.etag:
                validators["ETag"] = doc.etag
            if doc.last_modified is not None:
                validators["Last-Modified"] = formatdate(doc.last_modified, usegmt=True)
            inm = req.get("if-none-match")
            ims = req.get("if-modified-since")
            if inm is not None:
                if doc.etag and _etag_matches(inm, doc.etag):
                    self._send(304, b"", "", validators, head)
                    return
            elif ims is not None and doc.last_modified is not None:
                try:
                    since = parsedate_to_datetime(ims).timestamp()
                except (TypeError, ValueError):
                    since = None
                if since is not None and doc.last_modified <= since:
                    self._send(304, b"", "", validators, head)
                    return
            body = doc.body
            extra = dict(validators)
            if doc.encoding:
                extra["Content-Encoding"] = doc.encoding
            elif "gzip" in req.get("accept-encoding", ""):
                body = gzip.compress(body)
                extra["Content-Encoding"] = "gzip"
            extra["Vary"] = "Accept-Encoding"
            extra.update(doc.headers)
            self._send(200, body, doc.content_type, extra, head)

        def _send_stream(self, path: str, stream: _Stream, head: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", stream.content_type)
            if stream.encoding:
                self.send_header("Content-Encoding", stream.encoding)
            if stream.content_length:
                self.send_header("Content-Length", str(stream.size))
            else:
                # No length: the body ends when the connection closes.
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            with state.lock:
                done = state.stream_done[path]
            try:
                if not head:
                    self._write_stream(path, stream)
            finally:
                done.set()

        def _write_stream(self, path: str, stream: _Stream) -> None:
            block = b"<!-- padding -->" * (_CHUNK // 16)
            left = stream.size
            while left > 0 and not state.stopping.is_set():
                piece = block[: min(left, _CHUNK)]
                if not self._write(piece):
                    return
                left -= len(piece)
                with state.lock:
                    state.sent[path] = state.sent.get(path, 0) + len(piece)

    return Handler
