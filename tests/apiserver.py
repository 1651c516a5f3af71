"""The HTTP API served for tests: ``serve_api`` on 127.0.0.1:0 in a thread with its own
event loop, stopped and joined on exit."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette

from worker.api import serve_api

START_TIMEOUT = 15.0


@contextlib.contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """Serve ``app`` with ``serve_api`` on 127.0.0.1:0 in a thread of its own (its
    own event loop); yields the base URL; stops it and joins the thread."""
    started = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop

        def on_started(host: str, port: int) -> None:
            state["url"] = f"http://{host}:{port}"
            started.set()

        await serve_api(app, "127.0.0.1", 0, stop, on_started=on_started)

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as e:
            state["error"] = e
        finally:
            started.set()

    thread = threading.Thread(target=run, name="api-test-server", daemon=True)
    thread.start()
    try:
        assert started.wait(START_TIMEOUT), "the API server did not start"
        if "error" in state:
            raise state["error"]
        yield state["url"]
    finally:
        if "loop" in state:
            with contextlib.suppress(RuntimeError):  # loop already closed
                state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(START_TIMEOUT)
        assert not thread.is_alive(), "the API server did not stop"
    if "error" in state:
        raise state["error"]
