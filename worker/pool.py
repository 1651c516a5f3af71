"""Worker processes for poll passes: forked once, before any thread or event loop,
each serving one job at a time over a socket pair (length-prefixed pickles).

A pass is mostly CPU work in Python (parsing, classifying, recording), so one
process uses one core; the pool lets a pass use every core, as gunicorn's pre-fork
workers do. This module only moves jobs and results: what a job is and what a
worker does with it is ``worker.poll``'s business (``start_pool``).

Forking happens before the parent opens its database or starts a thread, so a
child inherits no SQLite connection, lock or pool (each opens its own) and no
thread holding a lock. A child that dies is not replaced (a running daemon has
threads by then); its chunk and later ones are handled by the parent's fallback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from worker.errors import FeedwatchError

__all__ = ["PoolError", "ProcessPool", "Served"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!Q")
CLOSE_GRACE_SECONDS = 5.0
"""How long ``close`` lets a child finish its jobs before killing it."""


class PoolError(FeedwatchError):
    """A worker process died, answered garbage, or failed its job."""


class Served(Protocol):
    """What a child runs: one job at a time, then ``aclose`` before it exits."""

    async def handle(self, job: Any) -> Any: ...

    async def aclose(self) -> None: ...


class _Worker:
    __slots__ = ("dead", "pid", "queued", "receiving", "sending", "sock")

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self.queued = 0
        """Jobs sent and not yet answered."""
        self.sending = False
        self.receiving = False
        self.dead = False


class ProcessPool:
    """Forked worker processes; ``submit``/``result`` (or ``call``) run jobs on one
    of them, in the order given."""

    def __init__(self, workers: list[_Worker]) -> None:
        self._workers = workers

    @classmethod
    def fork(cls, size: int, serve: Callable[[], Served]) -> ProcessPool:
        """Fork ``size`` children, each running ``serve()``'s object until closed.

        Raises PoolError if the process has other threads (forking them is unsafe:
        a child would inherit locks no thread of its own can release).
        """
        if threading.active_count() > 1:
            raise PoolError(
                "cannot fork poll processes: this process already runs threads"
            )
        workers: list[_Worker] = []
        try:
            for _ in range(size):
                parent, child = socket.socketpair()
                pid = os.fork()
                if pid == 0:  # pragma: no cover - runs in the child, which _exits
                    parent.close()
                    for w in workers:
                        w.sock.close()
                    _child_main(child, serve)
                child.close()
                parent.setblocking(False)
                workers.append(_Worker(pid, parent))
        except OSError as e:
            pool = cls(workers)
            pool.close()
            raise PoolError(f"cannot fork poll processes: {e}") from e
        return cls(workers)

    @property
    def size(self) -> int:
        """Children still alive (as far as the pool knows)."""
        return sum(1 for w in self._workers if not w.dead)

    def live(self) -> list[int]:
        """Indexes of the live children (``submit`` and ``result`` take one)."""
        return [i for i, w in enumerate(self._workers) if not w.dead]

    async def call(self, index: int, job: Any, *, limit: float) -> Any:
        """Send ``job`` to child ``index`` and wait for its result (see ``submit``
        and ``result``)."""
        await self.submit(index, job)
        return await self.result(index, limit=limit)

    async def submit(self, index: int, job: Any) -> None:
        """Queue ``job`` on child ``index``, which runs its jobs in order; a child
        given its next job before it finishes the last never waits for this one.
        Keep jobs small: one unread job must fit the socket's buffer."""
        w = self._workers[index]
        if w.dead:
            raise PoolError(f"poll process {w.pid} is gone")
        if w.sending:
            raise PoolError(f"poll process {w.pid} is already being sent a job")
        loop = asyncio.get_running_loop()
        w.sending = True
        try:
            data = pickle.dumps(job, pickle.HIGHEST_PROTOCOL)
            await loop.sock_sendall(w.sock, _HEADER.pack(len(data)) + data)
        except OSError as e:
            self._stop(w)
            raise PoolError(f"poll process {w.pid} died: {e}") from e
        finally:
            w.sending = False
        w.queued += 1

    async def result(self, index: int, *, limit: float) -> Any:
        """The result of child ``index``'s oldest queued job.

        Raises PoolError if the child dies, fails the job or takes longer than
        ``limit`` seconds; a child that did not answer cleanly is stopped and not
        used again (its answer could otherwise arrive as the next job's), and its
        other queued jobs are lost with it.
        """
        w = self._workers[index]
        if w.dead:
            raise PoolError(f"poll process {w.pid} is gone")
        if w.receiving or not w.queued:
            raise PoolError(f"poll process {w.pid} has no job to answer")
        loop = asyncio.get_running_loop()
        w.receiving = True
        clean = False
        try:
            reply = await asyncio.wait_for(_recv(loop, w.sock), limit)
            clean = reply is not None
        except TimeoutError:
            raise PoolError(
                f"poll process {w.pid} took more than {limit:.0f}s on one chunk"
            ) from None
        except (OSError, EOFError, pickle.UnpicklingError) as e:
            raise PoolError(
                f"poll process {w.pid} died: {e or type(e).__name__}"
            ) from e
        finally:
            w.receiving = False
            w.queued -= 1
            if not clean:
                self._stop(w)
        if reply is None:
            raise PoolError(f"poll process {w.pid} died before answering")
        kind, value = reply
        if kind == "error":
            raise PoolError(f"poll process {w.pid} failed: {value}")
        return value

    def _stop(self, w: _Worker) -> None:
        if w.dead:
            return
        w.dead = True
        w.sock.close()
        try:
            os.kill(w.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(w.pid, CLOSE_GRACE_SECONDS)

    def shutdown(self) -> None:
        """Ask every child to exit after its jobs (EOF on its socket), without
        waiting: they leave while this process finishes its own work."""
        for w in self._workers:
            if not w.dead:
                w.dead = True
                w.sock.close()

    def close(self) -> None:
        """``shutdown``, then reap every child; one still running after
        ``CLOSE_GRACE_SECONDS`` is killed."""
        self.shutdown()
        for w in self._workers:
            if not _reap(w.pid, CLOSE_GRACE_SECONDS):
                try:
                    os.kill(w.pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                _reap(w.pid, CLOSE_GRACE_SECONDS)


def _reap(pid: int, grace: float) -> bool:
    """Wait up to ``grace`` seconds for ``pid`` to exit; True once it is reaped."""
    deadline = time.monotonic() + grace
    delay = 0.001
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if done:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.005)


async def _recv(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> Any:
    """One framed pickle from ``sock``; None on a clean EOF before a frame."""
    head = await _read_exact(loop, sock, _HEADER.size, eof_ok=True)
    if head is None:
        return None
    (length,) = _HEADER.unpack(head)
    body = await _read_exact(loop, sock, length, eof_ok=False)
    assert body is not None
    return pickle.loads(body)  # noqa: S301 - our own child or parent wrote it


async def _read_exact(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int, *, eof_ok: bool
) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = await loop.sock_recv_into(sock, view[got:])
        if k == 0:
            if eof_ok and got == 0:
                return None
            raise EOFError(f"connection closed after {got} of {n} bytes")
        got += k
    return bytes(buf)


def _child_main(
    sock: socket.socket, serve: Callable[[], Served]
) -> None:  # pragma: no cover
    """A child's life: serve jobs until EOF, then exit without running the
    parent's atexit handlers or finalizers (they own the parent's resources)."""
    code = 0
    try:
        # Ctrl-C reaches the whole process group, and a service manager's stop
        # often the whole control group: the parent decides, the child finishes
        # its job and leaves on EOF (the parent kills one it gives up on).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        asyncio.run(_child_loop(sock, serve))
    except BaseException:
        log.exception("poll process %d failed", os.getpid())
        code = 1
    finally:
        try:
            logging.shutdown()
        finally:
            os._exit(code)


async def _child_loop(
    sock: socket.socket, serve: Callable[[], Served]
) -> None:  # pragma: no cover
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    served = serve()
    try:
        while True:
            job = await _recv(loop, sock)
            if job is None:
                return
            reply: tuple[str, Any]
            try:
                reply = ("ok", await served.handle(job))
            except Exception as e:
                log.exception("poll process %d: job failed", os.getpid())
                reply = ("error", f"{type(e).__name__}: {e}")
            try:
                data = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
            except Exception as e:  # an unpicklable result is a bug: say so
                data = pickle.dumps(("error", f"cannot send the result: {e!r}"))
            await loop.sock_sendall(sock, _HEADER.pack(len(data)) + data)
    finally:
        await _close(served.aclose())


async def _close(aw: Awaitable[None]) -> None:
    try:
        await aw
    except Exception:
        log.exception("poll process %d: closing failed", os.getpid())
