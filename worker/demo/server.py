"""Demo source: serves a directory of feed files over HTTP from a background thread.

Input: a directory of ``.xml``/``.rss``/``.atom``/``.json`` feed files (default: the
bundled demo feeds); output: one URL per feed, answering GET/HEAD with ETag and
Last-Modified and 304 to conditional requests, as a well-behaved publisher does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from worker.errors import ConfigError, FeedwatchError

__all__ = [
    "CONTENT_TYPES",
    "EXPECTED_FILE",
    "DemoFeedServer",
    "ServedRequest",
    "bundled_feeds_dir",
    "feed_files",
    "load_expected",
    "main",
]

_log = logging.getLogger(__name__)

CONTENT_TYPES: dict[str, str] = {
    ".xml": "application/rss+xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".json": "application/feed+json",
}
"""Media type sent for each served file extension (all files are UTF-8)."""

EXPECTED_FILE = "expected.json"
"""The answer key beside the demo feeds; never served as a feed."""


def bundled_feeds_dir() -> Path:
    """Where the demo feeds shipped inside the package live (works from a wheel too)."""
    return Path(__file__).resolve().parent / "feeds"


def feed_files(directory: str | Path | None = None) -> list[Path]:
    """The feed files of ``directory`` in name order: known extensions, no answer key."""
    root = Path(directory) if directory is not None else bundled_feeds_dir()
    return sorted(
        p
        for p in root.iterdir()
        if p.is_file()
        and p.suffix.lower() in CONTENT_TYPES
        and p.name != EXPECTED_FILE
        and not p.name.startswith(".")
    )


def load_expected(directory: str | Path | None = None) -> dict[str, Any]:
    """The demo answer key (``expected.json``): alerting guids, topics, one-story pairs."""
    root = Path(directory) if directory is not None else bundled_feeds_dir()
    path = root / EXPECTED_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(
            str(path), "", f"cannot read the answer key: {e.strerror}"
        ) from e
    except json.JSONDecodeError as e:
        raise ConfigError(
            str(path), f"line {e.lineno}, column {e.colno}", f"not valid JSON: {e.msg}"
        ) from e
    if not isinstance(data, dict) or not isinstance(data.get("feeds"), dict):
        raise ConfigError(
            str(path), "feeds", "expected an object with a 'feeds' mapping"
        )
    return data


@dataclass(frozen=True, slots=True)
class ServedRequest:
    """One request the server answered, so tests can see 200s versus 304s."""

    method: str
    path: str
    status: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive clients may hold a handler thread; stop() must not wait for them.
    block_on_close = False

    def __init__(self, address: tuple[str, int], directory: Path) -> None:
        self.directory = directory
        # Bounded, so a long benchmark run does not grow without limit.
        self.served: deque[ServedRequest] = deque(maxlen=10_000)
        self.lock = threading.Lock()
        super().__init__(address, _Handler)

    def lookup(self, name: str) -> Path | None:
        """The served file called ``name``, or None: only listed names, no paths."""
        for path in feed_files(self.directory):
            if path.name == name:
                return path
        return None

    def record(self, request: ServedRequest) -> None:
        with self.lock:
            self.served.append(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response are normal for a test server: no stderr noise.
        _log.debug("demo feed server: error serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "feedwatch-demo"
    timeout = 10

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _serve(self, *, send_body: bool) -> None:
        name = unquote(urlsplit(self.path).path).lstrip("/")
        path = self.server.lookup(name)
        if path is None:
            self._plain(HTTPStatus.NOT_FOUND, b"no such feed\n", send_body)
            return
        try:
            body = path.read_bytes()
            mtime = int(path.stat().st_mtime)
        except OSError:
            self._plain(HTTPStatus.NOT_FOUND, b"no such feed\n", send_body)
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        last_modified = formatdate(mtime, usegmt=True)
        if self._not_modified(etag, mtime):
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
            self.end_headers()
            return
        self.send_response(HTTPStatus.OK)
        self.send_header(
            "Content-Type", f"{CONTENT_TYPES[path.suffix.lower()]}; charset=utf-8"
        )
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _not_modified(self, etag: str, mtime: int) -> bool:
        # RFC 9110 13.2.2: If-None-Match wins; If-Modified-Since only counts without it.
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            tags = [t.strip() for t in if_none_match.split(",")]
            return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)
        if_modified_since = self.headers.get("If-Modified-Since")
        if if_modified_since is None:
            return False
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return mtime <= since.timestamp()

    def _plain(self, status: HTTPStatus, body: bytes, send_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = int(code) if isinstance(code, int) or str(code).isdigit() else 0
        self.server.record(ServedRequest(self.command or "", self.path, status))
        _log.debug("demo feed server: %s %s -> %s", self.command, self.path, code)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("demo feed server: %s", format % args)


class DemoFeedServer:
    """Serves feed files on loopback in a daemon thread, for ``feedwatch demo`` and tests.

    >>> with DemoFeedServer() as server:  # doctest: +SKIP
    ...     urls = server.urls()  # http://127.0.0.1:<port>/capital-desk.rss, ...
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.directory = (
            Path(directory) if directory is not None else bundled_feeds_dir()
        )
        if not self.directory.is_dir():
            raise ConfigError(
                str(self.directory), "", "the demo feed directory does not exist"
            )
        if not feed_files(self.directory):
            raise ConfigError(
                str(self.directory),
                "",
                "no feed files here (expected *.xml, *.rss, *.atom or *.json)",
            )
        self.host = host
        self._requested_port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> DemoFeedServer:
        """Bind and serve in the background; returns self once requests are accepted."""
        if self._httpd is not None:
            raise RuntimeError("the demo feed server is already running")
        try:
            httpd = _Server((self.host, self._requested_port), self.directory)
        except OSError as e:
            raise FeedwatchError(
                f"demo feed server: cannot listen on {self.host}:"
                f"{self._requested_port}: {e.strerror or e}"
            ) from e
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"demo-feeds:{httpd.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._httpd, self._thread = httpd, thread
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> DemoFeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is accepting requests."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one if 0 was asked for)."""
        return int(self._running().server_address[1])

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def url(self, name: str) -> str:
        """The URL of the feed file called ``name``."""
        return f"{self.base_url}/{quote(name)}"

    def urls(self) -> list[str]:
        """One URL per served feed file, in file-name order (the answer key excluded)."""
        return [self.url(p.name) for p in feed_files(self.directory)]

    def requests(self) -> list[ServedRequest]:
        """Requests answered so far (the latest 10,000), oldest first."""
        httpd = self._running()
        with httpd.lock:
            return list(httpd.served)

    def _running(self) -> _Server:
        if self._httpd is None:
            raise RuntimeError("the demo feed server is not running; call start()")
        return self._httpd


def main(argv: Sequence[str] | None = None) -> int:
    """Serve demo feeds until SIGINT/SIGTERM (used by the compose ``demo-feeds`` service)."""
    parser = argparse.ArgumentParser(
        prog="python -m worker.demo.server",
        description="Serve a directory of feed files with ETag/Last-Modified support.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument(
        "--dir", dest="directory", default=None, help="default: the bundled demo feeds"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        with DemoFeedServer(args.directory, host=args.host, port=args.port) as server:
            for url in server.urls():
                _log.info("serving %s", url)
            stop.wait()
    except FeedwatchError as e:
        _log.error("%s", e)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
