"""Worker processes for poll passes: forked once, before any thread or event loop,
each serving one job at a time over a socket pair (length-prefixed pickles).

A pass is mostly CPU work in Python (parsing, classifying, recording), so one
process uses one core; the pool lets a pass use every core, as gunicorn's pre-fork
workers do. This module only moves jobs and results: what a job is and what a
worker does with it is ``worker.poll``'s business (``start_pool``).

Forking happens before the parent opens its database or starts a thread, so a
child inherits no SQLite connection, lock or pool (each opens its own) and no
thread holding a lock. A child that dies leaves its chunk and later ones to the
parent's fallback; ``revive`` replaces it at the next pass with a fresh interpreter
(``python -m worker.pool``, given its end of a new socket pair), since a running
daemon has threads by then and must not fork. Replacement is bounded: one attempt per
slot a minute at most, spaced further after each replacement that did no work, and
none after ``MAX_RESPAWNS`` of those in a row.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from worker.errors import FeedwatchError

__all__ = ["PoolError", "ProcessPool", "Served"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!Q")
CLOSE_GRACE_SECONDS = 5.0
"""How long ``close`` lets a child finish its jobs before killing it."""
RESPAWN_INTERVAL = 60.0
"""Least seconds between two replacements of one slot; doubled after each
replacement that died before answering a job."""
MAX_RESPAWNS = 3
"""Replacements of one slot in a row that may die before answering a job; then the
slot stays empty."""
SPAWN_READY_SECONDS = 30.0
"""How long a replacement may take to start (interpreter, imports, ``serve()``)."""


class PoolError(FeedwatchError):
    """A worker process died, answered garbage, or failed its job."""


class Served(Protocol):
    """What a child runs: one job at a time, then ``aclose`` before it exits."""

    async def handle(self, job: Any) -> Any: ...

    async def aclose(self) -> None: ...


class _Worker:
    __slots__ = (
        "dead",
        "pid",
        "proc",
        "queued",
        "reaped",
        "receiving",
        "sending",
        "sock",
    )

    def __init__(
        self,
        pid: int,
        sock: socket.socket,
        proc: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.pid = pid
        self.sock = sock
        self.proc = proc
        """The replacement's Popen (it reaps its own child); None: forked."""
        self.queued = 0
        """Jobs sent and not yet answered."""
        self.sending = False
        self.receiving = False
        self.dead = False
        self.reaped = False

    def reap(self, grace: float) -> bool:
        """Wait up to ``grace`` seconds for the process to exit; True once reaped."""
        if not self.reaped:
            if self.proc is None:
                self.reaped = _reap(self.pid, grace)
            else:
                try:
                    self.proc.wait(grace)
                except subprocess.TimeoutExpired:
                    return False
                self.reaped = True
        return self.reaped

    def kill(self) -> None:
        if not self.reaped:  # once reaped, the pid may be someone else's
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@dataclass
class _Slot:
    """A child's place in the pool, kept across its replacements."""

    strikes: int = 0
    """Replacements in a row that have not answered a job yet."""
    last_spawn: float = -float("inf")
    given_up: bool = False


@dataclass(frozen=True)
class _Setup:
    """What a replacement needs besides its socket: what it serves, and the
    parent's logging (a fresh interpreter has none)."""

    serve: Callable[[], Served]
    log_level: int
    log_format: str | None
    log_datefmt: str | None
    levels: dict[str, int] = field(default_factory=dict)


class ProcessPool:
    """Forked worker processes; ``submit``/``result`` (or ``call``) run jobs on one
    of them, in the order given, and ``revive`` replaces dead ones."""

    def __init__(
        self, workers: list[_Worker], serve: Callable[[], Served] | None = None
    ) -> None:
        self._workers = workers
        self._slots = [_Slot() for _ in workers]
        self._serve = serve
        self._serve_pickled: bytes | None = None
        self._retired: list[_Worker] = []
        """Replaced processes not reaped yet (``close`` waits for them)."""
        self._closed = False

    @classmethod
    def fork(cls, size: int, serve: Callable[[], Served]) -> ProcessPool:
        """Fork ``size`` children, each running ``serve()``'s object until closed;
        ``revive`` starts replacements with ``serve`` pickled, so it should pickle
        (a module-level class or function, or a ``functools.partial`` of one).

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
        return cls(workers, serve)

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
        self._slots[index].strikes = 0  # it answered: it works
        kind, value = reply
        if kind == "error":
            raise PoolError(f"poll process {w.pid} failed: {value}")
        return value

    def _stop(self, w: _Worker) -> None:
        if w.dead:
            return
        w.dead = True
        w.sock.close()
        w.kill()
        w.reap(CLOSE_GRACE_SECONDS)

    async def revive(self, *, now: float | None = None) -> list[int]:
        """Replace the children that died (checked here, so one that died idle is
        found too) with fresh interpreters, before a pass hands out its jobs;
        returns the new children's pids.

        Bounded: a slot is refilled at most once per ``RESPAWN_INTERVAL`` seconds
        (``now`` is ``time.monotonic()``), twice as long after each replacement that
        died before answering a job, and never again after ``MAX_RESPAWNS`` of
        those in a row. A failed start is logged, never raised: the pass goes on
        with the children it has.
        """
        if self._closed or self._serve is None:
            return []
        now = time.monotonic() if now is None else now
        for w in self._workers:
            if not w.dead and w.reap(0):
                log.error("poll process %d has exited", w.pid)
                w.dead = True
                w.sock.close()
        due: list[int] = []
        for i, (w, slot) in enumerate(zip(self._workers, self._slots, strict=True)):
            if not w.dead or slot.given_up or self._spent(i):
                continue
            if now >= slot.last_spawn + RESPAWN_INTERVAL * 2 ** max(
                slot.strikes - 1, 0
            ):
                due.append(i)
        if not due:
            return []
        if self._serve_pickled is None:
            try:
                self._serve_pickled = pickle.dumps(
                    _setup(self._serve), pickle.HIGHEST_PROTOCOL
                )
            except Exception as e:
                log.error(
                    "cannot replace dead poll processes: %r does not pickle (%s); "
                    "make the pool's factory a module-level callable",
                    self._serve,
                    e,
                )
                self._serve = None
                return []
        started = await asyncio.gather(*(self._respawn(i, now) for i in due))
        return [pid for pid in started if pid is not None]

    def _spent(self, index: int) -> bool:
        slot = self._slots[index]
        if slot.strikes < MAX_RESPAWNS:
            return False
        slot.given_up = True
        log.error(
            "poll process slot %d: %d replacements in a row died before answering a "
            "job; not replacing it again (see their errors above; restart the "
            "daemon once fixed)",
            index,
            slot.strikes,
        )
        return True

    async def _respawn(self, index: int, now: float) -> int | None:
        old, slot = self._workers[index], self._slots[index]
        if not old.reap(0):
            self._retired.append(old)
        slot.last_spawn = now
        slot.strikes += 1
        assert self._serve_pickled is not None
        try:
            w = await _spawn(self._serve_pickled)
        except PoolError as e:
            log.error("cannot replace poll process %d: %s", old.pid, e)
            self._spent(index)
            return None
        if self._closed:  # shut down while it started
            w.dead = True
            w.sock.close()
            self._retired.append(w)
            return None
        self._workers[index] = w
        log.info("poll process pid=%d replaces pid=%d", w.pid, old.pid)
        return w.pid

    def shutdown(self) -> None:
        """Ask every child to exit after its jobs (EOF on its socket), without
        waiting: they leave while this process finishes its own work."""
        self._closed = True
        for w in self._workers:
            if not w.dead:
                w.dead = True
                w.sock.close()

    def close(self) -> None:
        """``shutdown``, then reap every child, replaced ones included; one still
        running after ``CLOSE_GRACE_SECONDS`` is killed."""
        self.shutdown()
        for w in [*self._workers, *self._retired]:
            if not w.reap(CLOSE_GRACE_SECONDS):
                w.kill()
                w.reap(CLOSE_GRACE_SECONDS)


def _setup(serve: Callable[[], Served]) -> _Setup:
    """What a replacement is sent: ``serve``, and logging set up as here."""
    root = logging.getLogger()
    fmt = next((h.formatter for h in root.handlers if h.formatter), None)
    levels = {
        name: logger.level
        for name, logger in list(logging.root.manager.loggerDict.items())
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET
    }
    return _Setup(
        serve,
        root.level,
        fmt._fmt if fmt else None,
        fmt.datefmt if fmt else None,
        levels,
    )


def _interpreter_flags() -> list[str]:
    """This interpreter's command-line flags, for a replacement to start with
    (multiprocessing's helper: private, but in every CPython since 3.2)."""
    args: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    return args


async def _spawn(setup: bytes) -> _Worker:
    """Start a fresh interpreter serving jobs on a new socket pair (nothing is
    forked from this process, which may have threads), send it ``setup`` (over the
    socket, not argv: settings carry secrets) and wait until it is ready.

    Raises PoolError if it cannot start, dies or says nothing in
    ``SPAWN_READY_SECONDS``; it is killed and reaped then.
    """
    loop = asyncio.get_running_loop()
    parent, child = socket.socketpair()
    try:
        # Popen, not asyncio's subprocesses: fork+exec takes milliseconds, and
        # those would reap the child from a watcher thread of their own. The
        # interpreter's flags (-X dev, -W, -O, ...) carry over, as a forked child
        # has them and as multiprocessing passes them.
        proc = subprocess.Popen(  # noqa: S603, ASYNC220 - our interpreter and module
            [
                sys.executable,
                *_interpreter_flags(),
                "-m",
                "worker.pool",
                str(child.fileno()),
            ],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # the parent's stdout is its own output
        )
    except OSError as e:
        parent.close()
        raise PoolError(f"cannot start a poll process: {e}") from e
    finally:
        child.close()
    parent.setblocking(False)
    w = _Worker(proc.pid, parent, proc)
    try:
        await loop.sock_sendall(parent, _HEADER.pack(len(setup)) + setup)
        reply = await asyncio.wait_for(_recv(loop, parent), SPAWN_READY_SECONDS)
    except TimeoutError:
        reply = f"no word in {SPAWN_READY_SECONDS:.0f}s"
    except (OSError, EOFError, pickle.UnpicklingError) as e:
        reply = str(e) or type(e).__name__
    except BaseException:  # cancelled: nobody else knows of it
        parent.close()
        w.kill()
        w.reap(CLOSE_GRACE_SECONDS)
        raise
    if reply != ("ready", proc.pid):
        w.dead = True
        parent.close()
        w.kill()
        w.reap(CLOSE_GRACE_SECONDS)
        why = "it exited" if reply is None else reply
        raise PoolError(
            f"poll process {proc.pid} died at start ({why}, status "
            f"{proc.returncode}); see its error above"
        )
    return w


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


def _ignore_stop_signals() -> None:  # pragma: no cover
    # Ctrl-C reaches the whole process group, and a service manager's stop
    # often the whole control group: the parent decides, the child finishes
    # its job and leaves on EOF (the parent kills one it gives up on).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _child_main(
    sock: socket.socket, serve: Callable[[], Served], *, ready: bool = False
) -> None:  # pragma: no cover
    """A child's life: serve jobs until EOF, then exit without running the
    parent's atexit handlers or finalizers (they own the parent's resources)."""
    code = 0
    try:
        _ignore_stop_signals()
        asyncio.run(_child_loop(sock, serve, ready=ready))
    except BaseException:
        log.exception("poll process %d failed", os.getpid())
        code = 1
    finally:
        try:
            logging.shutdown()
        finally:
            os._exit(code)


async def _child_loop(
    sock: socket.socket, serve: Callable[[], Served], *, ready: bool
) -> None:  # pragma: no cover
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    served = serve()
    try:
        if ready:
            data = pickle.dumps(("ready", os.getpid()))
            await loop.sock_sendall(sock, _HEADER.pack(len(data)) + data)
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


def _spawned_main(fd: int) -> None:  # pragma: no cover
    """A replacement's life (``python -m worker.pool FD``): read its setup from
    the socket, then live as a forked child does."""
    # A stop signal in the instant before this line kills it: the parent then
    # sees a replacement that died at start, as for any other cause.
    _ignore_stop_signals()
    sock = socket.socket(fileno=fd)
    try:
        head = sock.recv(_HEADER.size, socket.MSG_WAITALL)
        if len(head) < _HEADER.size:
            os._exit(1)  # the parent gave up on it already
        (length,) = _HEADER.unpack(head)
        body = sock.recv(length, socket.MSG_WAITALL)
        setup: _Setup = pickle.loads(body)  # noqa: S301 - our parent wrote it
    except BaseException:
        logging.basicConfig(stream=sys.stderr)
        log.exception("poll process %d cannot read its setup", os.getpid())
        os._exit(1)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(setup.log_format, setup.log_datefmt))
    logging.basicConfig(level=setup.log_level, handlers=[handler])
    for name, level in setup.levels.items():
        logging.getLogger(name).setLevel(level)
    _child_main(sock, setup.serve, ready=True)


if __name__ == "__main__":  # pragma: no cover
    from worker.pool import _spawned_main as main  # one copy of this module

    main(int(sys.argv[1]))
