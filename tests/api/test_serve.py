"""serve_api in the caller's event loop (port 0, stop event) and /readyz verdicts."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from worker.api import _is_loopback, create_app, serve_api
from worker.core import make_feedwatch
from worker.errors import ConfigError
from worker.models import utcnow
from worker.scheduler import Daemon

from .conftest import running_api, serving, settings_for


@pytest.mark.asyncio
async def test_serve_api_on_port_0_until_stop(tmp_path: Path) -> None:
    fw = make_feedwatch(settings_for(f"sqlite:///{tmp_path / 'x.db'}"))
    try:
        app = create_app(fw)
        stop = asyncio.Event()
        bound: asyncio.Future[tuple[str, int]] = (
            asyncio.get_running_loop().create_future()
        )
        task = asyncio.create_task(
            serve_api(
                app,
                "127.0.0.1",
                0,
                stop,
                on_started=lambda host, port: bound.set_result((host, port)),
            )
        )
        waiters: set[asyncio.Future[Any]] = {bound, task}
        done, _ = await asyncio.wait(
            waiters, timeout=10, return_when=asyncio.FIRST_COMPLETED
        )
        assert bound in done, "the server did not start"
        host, port = bound.result()
        assert host == "127.0.0.1" and port > 0
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            r = await client.get("/healthz")
            assert r.status_code == 200
            assert "server" not in r.headers
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, port), timeout=2).close()
    finally:
        fw.close()


@pytest.mark.asyncio
async def test_a_port_in_use_is_a_config_error(tmp_path: Path) -> None:
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with make_feedwatch(settings_for(f"sqlite:///{tmp_path / 'x.db'}")) as fw:
            app = create_app(fw)
            with pytest.raises(ConfigError) as info:
                await serve_api(app, "127.0.0.1", port, asyncio.Event())
        assert f"cannot listen on 127.0.0.1:{port}" in str(info.value)
        assert "api" in str(info.value)
    finally:
        taken.close()


def test_readyz_is_503_when_the_database_is_not_migrated(sqlite_url: str) -> None:
    with running_api(sqlite_url, fill=False, migrate=False) as served:
        r = served.get("/readyz", auth=False)
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "not ready"
        assert body["checks"]["database"] == "unreachable"
        assert body["reasons"] == [
            "database: not reachable (details in the server log)"
        ]
        # Other endpoints say the database failed, without its details.
        alerts = served.get("/api/alerts")
        assert alerts.status_code == 503
        assert "sqlite" not in alerts.json()["error"]


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    url = "postgresql://postgres@127.0.0.1:1/nowhere"
    with make_feedwatch(settings_for(url), migrate=False) as fw:
        with serving(create_app(fw)) as base:
            r = httpx.get(f"{base}/readyz", timeout=10)
        assert r.status_code == 503
        assert r.json()["checks"]["database"] == "unreachable"
        assert "127.0.0.1:1" not in r.text


def test_readyz_with_a_daemon(sqlite_url: str) -> None:
    with make_feedwatch(settings_for(sqlite_url)) as fw:
        daemon = Daemon(fw)
        daemon.polls, daemon.drains = 3, 7
        with serving(create_app(fw, daemon=daemon)) as base:
            # Not started yet: the scheduler is not running.
            assert httpx.get(f"{base}/readyz").status_code == 503
            daemon.running = True  # as Daemon.run() sets it once its jobs are on
            ready = httpx.get(f"{base}/readyz").json()
            assert ready["status"] == "ready"
            assert ready["checks"] == {
                "database": "ok",
                "scheduler": "running",
                "polls": 3,
                "drains": 7,
            }

            daemon.last_poll_at = utcnow() - timedelta(seconds=30)
            fresh = httpx.get(f"{base}/readyz")
            assert fresh.status_code == 200
            assert 30 <= fresh.json()["checks"]["last_poll_age_seconds"] < 60

            daemon.last_poll_at = utcnow() - timedelta(hours=2)
            stale = httpx.get(f"{base}/readyz")
            assert stale.status_code == 503
            assert stale.json()["reasons"][0].startswith("scheduler: last poll 7")

            daemon.last_poll_at = None
            daemon.stop()
            stopped = httpx.get(f"{base}/readyz")
            assert stopped.status_code == 503
            assert stopped.json()["reasons"] == ["scheduler: not running"]
            assert stopped.json()["checks"]["scheduler"] == "stopped"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.1", False),
        ("feedwatch.example", False),
    ],
)
def test_which_hosts_count_as_loopback(host: str, loopback: bool) -> None:
    # An open API (no token) on a non-loopback host is warned about at start-up.
    assert _is_loopback(host) is loopback
