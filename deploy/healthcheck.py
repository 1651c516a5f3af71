"""Container health check for the feedwatch worker (Docker HEALTHCHECK): exit 0 or 1.

Input: the process table, ``FEEDWATCH_DATABASE`` and ``FEEDWATCH_HEALTH_URL``;
output: one line on stdout naming what is wrong, and the exit status.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["daemon_running", "database_problem", "endpoint_problem", "main"]

TIMEOUT = 3.0


def daemon_running(name: str = "feedwatch", proc: Path = Path("/proc")) -> bool:
    """Whether a live (not zombie) process runs the ``name`` command."""
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue  # the process ended while we looked
        # A console script runs as "python /usr/local/bin/feedwatch ...".
        names = {Path(a.decode(errors="replace")).name for a in argv[:2]}
        state = stat.rsplit(")", 1)[-1].split()[:1]
        if name in names and state != ["Z"]:
            return True
    return False


def database_problem(url: str | None, timeout: float = TIMEOUT) -> str | None:
    """None if a network database accepts connections (or there is none to check)."""
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres") or not parts.hostname:
        return None
    host, port = parts.hostname, parts.port or 5432
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"database {host}:{port} is unreachable: {e}"
    return None


def endpoint_problem(url: str | None, timeout: float = TIMEOUT) -> str | None:
    """None if ``url`` (an HTTP health endpoint, when configured) answers 2xx."""
    if not url:
        return None
    if urlsplit(url).scheme not in ("http", "https"):
        return f"health URL {url!r} is not http(s)"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310
            status = int(r.status)
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError as e:
        return f"{url}: {e}"
    return None if 200 <= status < 300 else f"{url}: HTTP {status}"


def main(process: str = "feedwatch") -> int:
    """Check the daemon, its database and its health URL; 0 healthy, 1 not."""
    checks = [
        None if daemon_running(process) else f"no running {process} process",
        database_problem(os.environ.get("FEEDWATCH_DATABASE")),
        endpoint_problem(os.environ.get("FEEDWATCH_HEALTH_URL")),
    ]
    problems = [p for p in checks if p]
    sys.stdout.write(("; ".join(problems) or "healthy") + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
