"""A pool of ready sandboxes per key, so an env's `reset` never waits for a workspace to be built.

A *key* names what a sandbox holds (a task id, a repository at a commit). The factory builds a
sandbox for a key and snapshots it; the pool builds them ahead of time (`prewarm`), hands one out
(`acquire`) and takes it back (`release`), restoring it to its snapshot (milliseconds) instead of
building it again (seconds). Idle sandboxes beyond `max_idle` are closed, least recently used
first.

Example:
    >>> from turnwise.sandboxes.bwrap import BwrapSandbox
    >>> def build(key: str) -> BwrapSandbox:
    ...     box = BwrapSandbox()
    ...     box.write("task.txt", key)
    ...     box.snapshot()
    ...     return box
    >>> with SandboxPool(build, per_key=1) as pool:  # doctest: +SKIP
    ...     pool.prewarm(["task-1", "task-2"])
    ...     box = pool.acquire("task-1")  # ready (or waited for), not built now
    ...     box.run("echo changed > task.txt").ok
    ...     pool.release("task-1", box)  # restored, idle again
    True
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

from .base import Sandbox, SandboxError, SandboxUnavailable

__all__ = ["SandboxPool"]


def _close_quietly(sandbox: Sandbox) -> None:
    with contextlib.suppress(Exception):
        sandbox.close()


class SandboxPool:
    """Pre-built sandboxes per key, handed out and taken back; thread-safe.

    Args:
        factory: Builds a sandbox for a key *and snapshots it* (the pool restores to that
            snapshot on `release`).
        per_key: How many sandboxes `prewarm` keeps ready (idle or being built) per key.
        max_idle: Idle sandboxes kept in all; beyond it the least recently used is closed.
        workers: Threads that build sandboxes in the background.

    `hits` counts `acquire` calls served by an idle or an in-flight build, `misses` those that
    built synchronously.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Fake:  # stands in for a real sandbox here
        ...     key: str
        ...     restores: int = 0
        ...     def restore(self) -> None:
        ...         self.restores += 1
        ...     def close(self) -> None:
        ...         pass
        >>> with SandboxPool(Fake) as pool:
        ...     box = pool.acquire("t1")
        ...     pool.release("t1", box)
        ...     pool.acquire("t1") is box, box.restores, pool.hits, pool.misses
        (True, 1, 1, 1)
    """

    def __init__(
        self,
        factory: Callable[[str], Sandbox],
        *,
        per_key: int = 1,
        max_idle: int = 8,
        workers: int = 2,
    ) -> None:
        if per_key < 1 or max_idle < 0 or workers < 1:
            raise ValueError("per_key and workers must be at least 1, max_idle at least 0")
        self._factory = factory
        self.per_key = per_key
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[tuple[str, Sandbox]] = []  # least recently used first
        self._building: dict[str, list[Future[Sandbox]]] = {}
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox-pool")
        self._closed = False
        self.hits = 0
        self.misses = 0
        self.failed_builds = 0

    # ------------------------------------------------------------------ building
    def _build(self, key: str) -> Sandbox:
        try:
            return self._factory(key)
        except Exception as exc:
            kind = SandboxUnavailable if isinstance(exc, SandboxUnavailable) else SandboxError
            raise kind(f"building a sandbox for key {key!r} failed: {exc}") from exc

    def _on_built(self, key: str, future: Future[Sandbox]) -> None:
        """A background build finished: make it idle unless an `acquire` claimed it."""
        with self._lock:
            pending = self._building.get(key, [])
            if future not in pending:
                return  # claimed by acquire (which takes the result) or cancelled by close
            pending.remove(future)
            if not pending:
                del self._building[key]
            if future.cancelled():
                return
            if future.exception() is not None:
                self.failed_builds += 1
                return
            evicted = self._park(key, future.result())
        for old in evicted:
            _close_quietly(old)

    def _park(self, key: str, sandbox: Sandbox) -> list[Sandbox]:
        """Keep `sandbox` idle; the sandboxes to close now (lock held)."""
        if self._closed:
            return [sandbox]
        self._idle.append((key, sandbox))
        return self._evict()

    def _evict(self) -> list[Sandbox]:
        """Drop the least recently used idle sandboxes beyond `max_idle` (lock held)."""
        evicted = []
        while len(self._idle) > self.max_idle:
            evicted.append(self._idle.pop(0)[1])
        return evicted

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox pool is closed")

    # ------------------------------------------------------------------ the API
    def prewarm(self, keys: Iterable[str]) -> None:
        """Start building, in the background, what each key lacks to have `per_key` ready."""
        started: list[tuple[str, Future[Sandbox]]] = []
        with self._lock:
            self._check_open()
            for key in keys:
                ready = sum(k == key for k, _ in self._idle) + len(self._building.get(key, []))
                for _ in range(self.per_key - ready):
                    future = self._executor.submit(self._build, key)
                    self._building.setdefault(key, []).append(future)
                    started.append((key, future))
        for key, future in started:  # outside the lock: a finished build calls back at once
            future.add_done_callback(functools.partial(self._on_built, key))

    def acquire(self, key: str) -> Sandbox:
        """A ready sandbox for `key`: an idle one, else an in-flight build (waited for), else
        one built now.

        Raises:
            SandboxError: the pool is closed, or the factory failed (the message names the key).
        """
        with self._lock:
            self._check_open()
            for i in range(len(self._idle) - 1, -1, -1):  # the most recently used first
                if self._idle[i][0] == key:
                    self.hits += 1
                    return self._idle.pop(i)[1]
            pending = self._building.get(key)
            future = pending.pop(0) if pending else None
            if pending == []:
                del self._building[key]
            if future is not None:
                self.hits += 1
            else:
                self.misses += 1
        if future is None:
            return self._build(key)
        return future.result()  # raises the factory's error, which names the key

    def release(self, key: str, sandbox: Sandbox) -> None:
        """Take a sandbox back: restore it to its snapshot and keep it idle.

        A sandbox whose restore fails is closed; so is one released into a closed pool, and the
        least recently used idle one when more than `max_idle` are kept.
        """
        try:
            sandbox.restore()
        except Exception:
            _close_quietly(sandbox)
            return
        with self._lock:
            evicted = self._park(key, sandbox)
        for old in evicted:
            _close_quietly(old)

    def idle(self, key: str | None = None) -> int:
        """How many idle sandboxes the pool holds (for `key`, or in all)."""
        with self._lock:
            return sum(key is None or k == key for k, _ in self._idle)

    def stats(self) -> dict[str, Any]:
        """Counters: hits, misses, failed background builds, idle and building sandboxes."""
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "failed_builds": self.failed_builds,
                "idle": len(self._idle),
                "building": sum(map(len, self._building.values())),
            }

    def close(self) -> None:
        """Close every idle sandbox and every build still in flight (when it ends). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            building = [f for futures in self._building.values() for f in futures]
        for future in building:
            future.cancel()  # not started: never built; running: closed by _on_built
        for _, sandbox in idle:
            _close_quietly(sandbox)
        self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.stats()
        state = "closed" if self._closed else f"{s['idle']} idle, {s['building']} building"
        return f"SandboxPool({state}, hits={s['hits']}, misses={s['misses']})"
