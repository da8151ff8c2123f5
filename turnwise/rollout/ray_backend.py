"""Env workers as Ray actors: the same protocol and output as local processes, across machines.

`collect(..., backend="ray")` starts one actor per worker slot. Each actor holds a
`WorkerCore` (the env and the episode being played, exactly what a local worker process holds)
and answers the same messages. The main loop does not change: each actor has a bridge thread
in the main process that carries messages to it (`actor.handle.remote`) and writes the replies
into a local pipe, which the loop waits on like a worker process's pipe. An actor that dies
(its process killed, its node lost) makes `ray.get` raise in the bridge, which closes the pipe:
the loop sees the worker gone, replaces the actor and retries the episode, as with a process.

Ray is started locally (`ray.init`) unless it is already initialised or an address is given
(`--ray-address auto` or `ray://host:10001` for an existing cluster). The cluster's nodes
need turnwise installed (with the env's extra) in the same Python version; nothing
env-specific is pickled, each actor makes its env by id. A run started here shuts its local
Ray down at the end; a cluster, or a Ray the caller initialised, is left running.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from turnwise.rollout.workers import Limits, WorkerCore, install_signal_handlers

__all__ = ["RayWorkerHandle", "ray_session"]


class _Actor:
    """The body of the Ray actor: a `WorkerCore` behind two remote methods."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], split: str, limits: Limits) -> None:
        # Sync actors run their methods on the process's main thread, so SIGALRM time limits
        # work as in a worker process; if not, the main loop's watchdog still ends the episode.
        with contextlib.suppress(ValueError):
            install_signal_handlers()
        self.core = WorkerCore(env_id, env_kwargs, split, limits)

    def start(self) -> tuple[Any, ...]:
        return self.core.start()

    def pid(self) -> int:
        return os.getpid()

    def handle(self, message: tuple[Any, ...]) -> tuple[Any, ...]:
        return self.core.handle(message)

    def close(self) -> None:
        self.core.close()


_remote_actor: Any = None


def _actor_class() -> Any:
    global _remote_actor
    if _remote_actor is None:
        import ray

        _remote_actor = ray.remote(_Actor)
    return _remote_actor


@contextmanager
def ray_session(address: str | None, workers: int) -> Iterator[None]:
    """Ray for the length of a run: started locally unless it is up already or `address` names a
    cluster; shut down afterwards only if it was started here without an address."""
    try:
        import ray
    except ImportError:
        raise RuntimeError(
            "--backend ray needs Ray: pip install 'turnwise[ray]' (or pip install ray)"
        ) from None
    started_here = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        else:
            ray.init(
                # Room for every actor (each asks for one CPU) even on a small machine.
                num_cpus=max(workers, os.cpu_count() or 1),
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            started_here = True
    try:
        yield
    finally:
        if started_here:
            ray.shutdown()


class RayWorkerHandle:
    """The main process's end of one worker slot run by a Ray actor (see `WorkerHandle`)."""

    def __init__(
        self,
        slot: int,
        env_id: str,
        env_kwargs: dict[str, Any],
        split: str,
        limits: Limits,
        *,
        num_cpus: float = 1.0,
    ) -> None:
        self.slot = slot
        self._args = (env_id, env_kwargs, split, limits)
        self.num_cpus = num_cpus
        self.restarts = 0
        self.actor: Any = None
        self._pid: int | None = None
        self.conn: multiprocessing.connection.Connection | None = None
        self._outbox: queue.Queue[Any] | None = None
        self._thread: threading.Thread | None = None
        self._error = ""
        self.start()

    def start(self) -> None:
        """Start (or restart) the actor of this slot and its bridge thread."""
        ours, theirs = multiprocessing.Pipe(duplex=True)
        self.actor = (
            _actor_class().options(num_cpus=self.num_cpus, max_restarts=0).remote(*self._args)
        )
        self._outbox = queue.Queue()
        self._error = ""
        self._thread = threading.Thread(
            target=self._bridge,
            args=(self.actor, self._outbox, theirs),
            name=f"turnwise-ray-bridge-{self.slot}",
            daemon=True,
        )
        self.conn = ours
        self._thread.start()

    def _bridge(self, actor: Any, outbox: queue.Queue[Any], pipe: Any) -> None:
        """Carry messages to the actor and its replies back into the pipe, until told to stop or
        the actor is gone (then the pipe closes: the loop sees the worker die)."""
        import ray

        try:
            self._pid = ray.get(actor.pid.remote())
            pipe.send(ray.get(actor.start.remote()))
            while (message := outbox.get()) is not None:
                pipe.send(ray.get(actor.handle.remote(message)))
        except Exception as exc:  # RayActorError, a lost node, a closed pipe: the worker is gone
            self._error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        finally:
            pipe.close()

    @property
    def pid(self) -> int | None:
        """The actor's process id (on its node), once it has started."""
        return self._pid

    def waitables(self) -> list[Any]:
        assert self.conn is not None
        return [self.conn]

    def death(self) -> str:
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        return f"Ray actor died ({self._error or 'no reply'})"

    def send(self, message: Any) -> None:
        if self._outbox is None or self._thread is None or not self._thread.is_alive():
            raise BrokenPipeError("the Ray actor is gone")
        self._outbox.put(message)

    def restart(self) -> None:
        """Kill the actor and start a fresh one in its place."""
        self.kill()
        self.restarts += 1
        self.start()

    def kill(self) -> None:
        import ray

        if self.actor is not None:
            with contextlib.suppress(Exception):  # already dead
                ray.kill(self.actor, no_restart=True)
            self.actor = None
        if self._outbox is not None:
            self._outbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def stop(self, timeout: float = 2.0) -> None:
        """Let the actor close its env, then end it."""
        import ray

        if self.actor is not None and self._thread is not None and self._thread.is_alive():
            with contextlib.suppress(Exception):
                ray.get(self.actor.close.remote(), timeout=timeout)
        self.kill()
